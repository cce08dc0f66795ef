/**
 * The new primary with no live copy here (issue 24): when it may make a new dataset. A `create` is
 * right only when the dataset has no data anywhere; a holder the view does not show (a control
 * service restarted before the holder reported again: node states are kept in memory) counts as
 * holding nothing, and once this node reported its new copy the holder would retire its own
 * ("the primary holds its live copy already"). What the decision can tell without the control
 * service: this pool keeping something of the dataset (a move's received snapshots or a receive
 * still running, a replica, a retired copy) means it has data, so no create over it. Every
 * combination of what the decision reads here is enumerated against the rule written out.
 */
import type { ClusterSnapshot, NodeState } from '@flocker/api';
import {
  calculateLocalChanges,
  failureSteps,
  localActions,
  type LocalAction,
  type LocalClusterNode,
  type LocalObservation,
} from './localChanges';

const ME = '11111111-1111-4111-8111-111111111111';
const A = '22222222-2222-4222-8222-222222222222';
const C = '44444444-4444-4444-8444-444444444444';
const D = '33333333-3333-4333-8333-333333333333';
const ctx = { nodeUuid: ME, mountRoot: '/flocker', defaultSize: 1000 };
const PATH = `/flocker/${D}`;

type Holder = 'alive' | 'dead';

interface Case {
  /** The other nodes shown holding a live copy. */
  holders: Holder[];
  retained: boolean;
  replicaHere: boolean;
  accept: boolean;
}

/** The rule: wait for a live holder; a dead one's replica only with the loss accepted; never a create over data here. */
function expected(c: Case): LocalAction['kind'] | null {
  if (c.holders.includes('alive')) return null;
  if (c.holders.includes('dead')) return c.replicaHere && c.accept ? 'promoteReplica' : 'refuse';
  return c.retained ? 'refuse' : 'create';
}

function decide(c: Case): LocalAction[] {
  const others = [A, C];
  const nodes: LocalClusterNode[] = [
    { uuid: ME, host: '10.0.0.1', alive: true, copies: [] },
    ...c.holders.map((h, i) => ({
      uuid: others[i] as string,
      host: `10.0.0.${i + 2}`,
      alive: h === 'alive',
      copies: [D],
    })),
  ];
  const here: LocalObservation = {
    copies: [],
    moving: new Set(),
    retained: new Set(c.retained ? [D] : []),
    ...(c.replicaHere ? { replicaHere: new Map([[D, 'replica-000003']]) } : {}),
  };
  return calculateLocalChanges(
    [{ datasetId: D, primary: ME, maximumSize: 2000, deleted: false, acceptReplicaLoss: c.accept }],
    nodes,
    here,
    ctx,
  );
}

const HOLDERS: Holder[][] = [[], ['alive'], ['dead'], ['alive', 'dead'], ['dead', 'alive'], ['dead', 'dead']];

describe('the primary with no live copy here: create only where the dataset has no data', () => {
  const cases: Case[] = [];
  for (const holders of HOLDERS)
    for (const retained of [false, true])
      // A replica here is retained too (LocalAgent: replicaHere is taken from the retained datasets).
      for (const replicaHere of retained ? [false, true] : [false])
        for (const accept of [false, true]) cases.push({ holders, retained, replicaHere, accept });

  it.each(cases.map((c) => [JSON.stringify(c), c] as const))('%s', (_, c) => {
    const actions = decide(c);
    expect(actions.map((a) => a.kind)).toEqual(expected(c) === null ? [] : [expected(c)]);
    const [action] = actions;
    if (action?.kind === 'create')
      expect(action).toEqual({ kind: 'create', datasetId: D, size: 2000, mountPath: PATH });
    if (action?.kind === 'refuse') {
      expect(action.code).toBe('SOURCE_UNREACHABLE');
      // A dead holder is named; data here with no holder shown says so.
      if (c.holders.length > 0) expect(action.message).toContain(A);
      else expect(action.message).toContain('no node this node sees holds its live copy');
    }
  });

  it('covers every combination (6 holder sets x 3 pool states x 2 loss settings)', () => {
    expect(cases).toHaveLength(36);
  });

  it('a new dataset (nothing here, nothing anywhere) is still created, however many nodes the cluster has', () => {
    const many: LocalClusterNode[] = Array.from({ length: 1000 }, (_, i) => ({
      uuid: `${String(i).padStart(8, '0')}-0000-4000-8000-000000000000`,
      host: `10.1.${i >> 8}.${i & 255}`,
      alive: i % 7 !== 0,
      copies: [],
      copyCount: 16 * (i % 5),
    }));
    expect(
      calculateLocalChanges(
        [{ datasetId: D, primary: ME, maximumSize: null, deleted: false }],
        [{ uuid: ME, host: '10.0.0.1', alive: true, copies: [] }, ...many],
        { copies: [], moving: new Set(), retained: new Set(['55555555-5555-4555-8555-555555555555']) },
        ctx,
      ),
    ).toEqual([{ kind: 'create', datasetId: D, size: 1000, mountPath: PATH }]);
  });
});

describe('from a local view whose holder state is missing (the control service restarted, the holder not reported yet)', () => {
  const state = (uuid: string, host: string, held: string[]): NodeState => ({
    uuid,
    era: 'e',
    host,
    instance_id: uuid,
    backend: 'local-zfs',
    manifestations: held.map((id) => ({ dataset_id: id, blockdevice_id: id, size: 2000, status: 'attached' as const })),
    errors: [],
    alive: true,
    last_seen: '2026-12-05T16:00:00.000Z',
  });
  /** B's view, moved here while A holds the copy: A's state shown or not (A a peer with copies in steps only). */
  const view = (holderShown: boolean): ClusterSnapshot => ({
    generation: 'i.2.1',
    configuration_tag: 'v2',
    datasets: [{ dataset_id: D, primary: ME, maximum_size: 2000, metadata: {}, deleted: false }],
    leases: [],
    nodes: [state(ME, '10.0.0.1', []), ...(holderShown ? [state(A, '10.0.0.2', [D])] : [])],
    peers: [
      { uuid: ME, host: '10.0.0.1', alive: true, copies: 0, replica_of: [] },
      ...(holderShown ? [{ uuid: A, host: '10.0.0.2', alive: true, copies: 0, replica_of: [] }] : []),
    ],
  });
  const pool = (retained: boolean): LocalObservation => ({
    copies: [],
    moving: new Set(),
    retained: new Set(retained ? [D] : []),
  });

  // Also the holder dead and forgotten by a restarted service, this pool keeping the final snapshot of a move away:
  // a create here made the holder, once back, retire the only copy with the writes after that snapshot.
  it('the move has reached this pool (snapshots received, or a receive running): refused, not created', () => {
    expect(localActions(view(false), pool(true), ctx)).toMatchObject([{ kind: 'refuse', code: 'SOURCE_UNREACHABLE' }]);
    // Once the holder reports again: nothing to do here (it pushes the copy), the refusal forgotten.
    expect(localActions(view(true), pool(true), ctx)).toEqual([]);
    const refusal = { action: 'refuse' as const, retryAt: 0 };
    expect(failureSteps([], new Map([[D, refusal]]), 1, new Set())).toEqual({ due: [], forget: [D] });
  });

  it('nothing of it here yet: still a create (what this node cannot tell without a control service signal)', () => {
    expect(localActions(view(false), pool(false), ctx)).toEqual([
      { kind: 'create', datasetId: D, size: 2000, mountPath: PATH },
    ]);
    expect(localActions(view(true), pool(false), ctx)).toEqual([]);
  });
});
