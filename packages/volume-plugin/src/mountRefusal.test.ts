import type { ActionError, ClusterSnapshot, NodeState } from '@flocker/api';
import { finalRefusal, mayPutBack, RefusalClock, refusalMessage, standbyReplica } from './mountRefusal';
import { nodeState } from './testing/nodeState';

const ME = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const DEAD = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const OTHER = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';
const ID = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd';

const refusal = (code: string, message: string): ActionError => ({
  dataset_id: ID,
  action: 'refuse',
  code,
  message,
  attempts: 0,
  since: '2026-12-05T22:00:00.000Z',
});

const holding = { dataset_id: ID, blockdevice_id: ID, status: 'mounted' as const, path: `/m/${ID}`, size: 0 };

function snapshot(nodes: NodeState[], over: Partial<ClusterSnapshot> = {}): ClusterSnapshot {
  return {
    generation: 'g1',
    configuration_tag: 'v7',
    datasets: [{ dataset_id: ID, primary: ME, metadata: { name: 'vol1' }, deleted: false, maximum_size: null }],
    leases: [],
    nodes,
    ...over,
  };
}

const deadMsg = `the data of dataset ${ID} is on node ${DEAD} (10.0.0.2), which is dead: local storage cannot be moved off a dead node`;

describe('finalRefusal', () => {
  it('SOURCE_UNREACHABLE naming a dead node, TWO_LIVE_COPIES and NOT_ON_LOCAL_STORAGE are final', () => {
    const dead = nodeState(DEAD, '10.0.0.2', { alive: false, manifestations: [holding] });
    const s = snapshot([nodeState(ME, '10.0.0.1', { errors: [refusal('SOURCE_UNREACHABLE', deadMsg)] }), dead]);
    expect(finalRefusal(s, ME, ID)?.deadSource?.uuid).toBe(DEAD);
    const two = snapshot([
      nodeState(ME, '10.0.0.1', { errors: [refusal('TWO_LIVE_COPIES', `… node ${DEAD} …`)] }),
      dead,
    ]);
    expect(finalRefusal(two, ME, ID)?.error.code).toBe('TWO_LIVE_COPIES');
    const clone = snapshot([nodeState(ME, '10.0.0.1', { errors: [refusal('NOT_ON_LOCAL_STORAGE', 'a clone …')] })]);
    expect(finalRefusal(clone, ME, ID)?.error.code).toBe('NOT_ON_LOCAL_STORAGE');
  });

  it('not final: the named node alive (its report ends it), no node named, another action’s error, another dataset', () => {
    const alive = snapshot([
      nodeState(ME, 'a', { errors: [refusal('SOURCE_UNREACHABLE', deadMsg)] }),
      nodeState(DEAD, 'b'),
    ]);
    expect(finalRefusal(alive, ME, ID)).toBeUndefined();
    const none = snapshot([
      nodeState(ME, 'a', { errors: [refusal('SOURCE_UNREACHABLE', 'no node this node sees holds it')] }),
    ]);
    expect(finalRefusal(none, ME, ID)).toBeUndefined();
    const failed = snapshot([
      nodeState(ME, 'a', { errors: [{ ...refusal('TWO_LIVE_COPIES', 'x'), action: 'mount' }] }),
    ]);
    expect(finalRefusal(failed, ME, ID)).toBeUndefined();
    const other = snapshot([
      nodeState(ME, 'a', { errors: [{ ...refusal('TWO_LIVE_COPIES', 'x'), dataset_id: OTHER.replace(/c/g, 'e') }] }),
    ]);
    expect(finalRefusal(other, ME, ID)).toBeUndefined();
    const unknownCode = snapshot([nodeState(ME, 'a', { errors: [refusal('SOMETHING_NEW', deadMsg)] })]);
    expect(finalRefusal(unknownCode, ME, ID)).toBeUndefined();
  });

  it('not from this node’s report once it is not alive', () => {
    const s = snapshot([
      nodeState(ME, 'a', { alive: false, errors: [refusal('TWO_LIVE_COPIES', 'x')] }),
      nodeState(DEAD, 'b', { alive: false }),
    ]);
    expect(finalRefusal(s, ME, ID)).toBeUndefined();
  });
});

describe('RefusalClock', () => {
  it('answers only once the refusal has stayed for the grace; a snapshot without it starts over', () => {
    let t = 0;
    const clock = new RefusalClock(2_000, () => t);
    const r = { error: refusal('TWO_LIVE_COPIES', 'x') };
    expect(clock.check(r, 'v7')).toBeUndefined();
    t = 1_999;
    expect(clock.check(r, 'v7')).toBeUndefined();
    t = 2_000;
    expect(clock.check(r, 'v7')).toBe(r);
    expect(clock.check(undefined, 'v7')).toBeUndefined();
    t = 3_000;
    expect(clock.check(r, 'v7')).toBeUndefined();
    t = 4_999;
    expect(clock.check(r, 'v7')).toBeUndefined();
    t = 5_000;
    expect(clock.check(r, 'v7')).toBe(r);
  });

  // RV finding 4: a refusal still shown after the user's opt-in (a new configuration) may come from a report built
  // on the older one: it must outlive the grace again under the new configuration before the Mount fails on it.
  it('starts the grace again when the configuration changes', () => {
    let t = 0;
    const clock = new RefusalClock(2_000, () => t);
    const r = { error: refusal('SOURCE_UNREACHABLE', 'x') };
    expect(clock.check(r, 'v7')).toBeUndefined();
    t = 1_900;
    expect(clock.check(r, 'v8')).toBeUndefined();
    t = 2_500;
    expect(clock.check(r, 'v8')).toBeUndefined();
    t = 3_899;
    expect(clock.check(r, 'v8')).toBeUndefined();
    t = 3_900;
    expect(clock.check(r, 'v8')).toBe(r);
    // Another change after it had become final: waited for again.
    t = 4_000;
    expect(clock.check(r, 'v9')).toBeUndefined();
    t = 6_000;
    expect(clock.check(r, 'v9')).toBe(r);
  });
});

describe('standbyReplica and refusalMessage', () => {
  const now = Date.parse('2026-12-05T22:00:30.000Z');
  const replicas = [{ dataset_id: ID, node_uuid: OTHER, snapshot: 's3', taken_at: '2026-12-05T22:00:00.000Z' }];
  const s = snapshot([
    nodeState(ME, '10.0.0.1', { errors: [refusal('SOURCE_UNREACHABLE', deadMsg)] }),
    nodeState(DEAD, '10.0.0.2', { alive: false, manifestations: [holding], replicas }),
    nodeState(OTHER, '10.0.0.3'),
  ]);

  it('the dead source’s replica, with its node’s host; none while no snapshot was sent', () => {
    expect(standbyReplica(s, ID, DEAD)).toEqual({ node: OTHER, host: '10.0.0.3', takenAt: replicas[0]!.taken_at });
    const unsent = snapshot([
      nodeState(DEAD, 'b', { replicas: [{ ...replicas[0]!, snapshot: null, taken_at: null }] }),
    ]);
    expect(standbyReplica(unsent, ID, DEAD)).toBeUndefined();
  });

  it('says where the data is, what to do (the replica’s failover command first), then the agent’s words', () => {
    const r = finalRefusal(s, ME, ID)!;
    expect(refusalMessage(s, ME, 'vol1', ID, r, 'takenBack', now)).toBe(
      'volume vol1 cannot be mounted on this host: its data is on host 10.0.0.2, which is dead (local storage cannot be moved off a dead node). ' +
        "The volume stays on 10.0.0.2 (this Mount's move was taken back). " +
        'Bring 10.0.0.2 back, then run the container again. ' +
        'Or start from the standby replica on host 10.0.0.3, 30 s old, losing every write after it: flocker volumes move vol1 10.0.0.3 --accept-replica-loss, then run the container on 10.0.0.3. ' +
        `The dataset agent on this host reports: ${deadMsg} (SOURCE_UNREACHABLE).`,
    );
  });

  it('the move left asked for: how to take it back', () => {
    const r = finalRefusal(s, ME, ID)!;
    const text = refusalMessage(s, ME, 'vol1', ID, r, 'pending', now);
    expect(text).toContain(
      'Bring 10.0.0.2 back, then run the container again. The move here stays asked for (it goes on by itself once 10.0.0.2 is back); to take it back: flocker volumes move vol1 10.0.0.2. Or start from',
    );
    expect(text).not.toContain('stays on 10.0.0.2');
  });
});

describe('mayPutBack', () => {
  const base = [nodeState(ME, 'a'), nodeState(DEAD, 'b', { alive: false, manifestations: [holding] })];

  it('the primary still here, no lease, no copy here, the old node still holding it, no move under way', () => {
    expect(mayPutBack(snapshot(base), ME, ID, DEAD)).toBe(true);
  });

  it('not when anything says otherwise', () => {
    // Moved on meanwhile (another host's Mount, a user's move).
    expect(
      mayPutBack(snapshot(base, { datasets: [{ ...snapshot(base).datasets[0]!, primary: OTHER }] }), ME, ID, DEAD),
    ).toBe(false);
    // Leased (a CSI pod here, or another node's Mount).
    expect(
      mayPutBack(snapshot(base, { leases: [{ dataset_id: ID, node_uuid: ME, expires: null }] }), ME, ID, DEAD),
    ).toBe(false);
    // A copy here (the data came, or a copy of its own: two live copies).
    expect(mayPutBack(snapshot([nodeState(ME, 'a', { manifestations: [holding] }), base[1]!]), ME, ID, DEAD)).toBe(
      false,
    );
    // The old node holds nothing (any more).
    expect(mayPutBack(snapshot([nodeState(ME, 'a'), nodeState(DEAD, 'b', { alive: false })]), ME, ID, DEAD)).toBe(
      false,
    );
    // A live source sending it here.
    const sending = nodeState(DEAD, 'b', {
      manifestations: [holding],
      moves: [{ dataset_id: ID, to: ME, phase: 'copying', rounds: 1, bytes_sent: 1, bytes_total: 9 }],
    });
    expect(mayPutBack(snapshot([nodeState(ME, 'a'), sending]), ME, ID, DEAD)).toBe(false);
    // Deleted.
    expect(
      mayPutBack(snapshot(base, { datasets: [{ ...snapshot(base).datasets[0]!, deleted: true }] }), ME, ID, DEAD),
    ).toBe(false);
  });

  // RV finding 3: only where the data is bound to the old node (local storage); a block volume's takeover from a
  // dead node is not undone, alive or dead, nor is one from an old node the snapshot no longer shows.
  it('only when the old node keeps the data on local storage', () => {
    for (const backend of ['local-btrfs', 'local-zfs'])
      expect(
        mayPutBack(
          snapshot([nodeState(ME, 'a'), nodeState(DEAD, 'b', { backend, manifestations: [holding] })]),
          ME,
          ID,
          DEAD,
        ),
      ).toBe(true);
    for (const alive of [false, true])
      expect(
        mayPutBack(
          snapshot([
            nodeState(ME, 'a'),
            nodeState(DEAD, 'b', { backend: 'loopback', alive, manifestations: [holding] }),
          ]),
          ME,
          ID,
          DEAD,
        ),
      ).toBe(false);
    expect(mayPutBack(snapshot([nodeState(ME, 'a')]), ME, ID, DEAD)).toBe(false);
  });
});
