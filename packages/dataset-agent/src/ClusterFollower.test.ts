import {
  type ClusterAnswer,
  type ClusterDelta,
  type ClusterSnapshot,
  FlockerApiError,
  type NodeState,
} from '@flocker/api';
import winston from 'winston';
import { ClusterFollower, type SnapshotChange } from './ClusterFollower';
import { ManualClock, settle } from '@flocker/runtime/testing';

const ME = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';
const node = (uuid: string, volumes: NodeState['volumes'] = []): NodeState => ({
  uuid,
  era: 'e',
  host: 'h',
  instance_id: `i-${uuid}`,
  backend: 'fake',
  manifestations: [],
  volumes,
  errors: [],
  alive: true,
  last_seen: '',
});
const snap = (generation: number, over: Partial<ClusterSnapshot> = {}): ClusterSnapshot => ({
  generation: String(generation),
  configuration_tag: 't',
  datasets: [],
  leases: [],
  nodes: [node(ME), node(OTHER)],
  ...over,
});

/** A control service whose long-polls the test answers one by one. */
function setup() {
  const clock = new ManualClock();
  const calls: Array<{
    since: string | undefined;
    timeoutMs: number | undefined;
    at: number;
    answer: (s: ClusterSnapshot) => void;
    fail: (e: Error) => void;
  }> = [];
  const adopted: Array<{ generation: string; askedAt: number; change: SnapshotChange }> = [];
  const follower = new ClusterFollower({
    waitForCluster: (since, timeoutMs) =>
      new Promise((answer, fail) => calls.push({ since, timeoutMs, at: clock.now(), answer, fail })),
    nodeUuid: ME,
    clock,
    logger: winston.createLogger({ silent: true }),
    pollWaitMs: 25_000,
    backoffInitialMs: 100,
    backoffMaxMs: 400,
    adopted: (s, askedAt, change) => adopted.push({ generation: s.generation, askedAt, change }),
  });
  return { clock, calls, adopted, follower };
}

describe('ClusterFollower (manual clock)', () => {
  it('a snapshot asked for or deleted is a configuration change (issue 20): the source node takes it at once', async () => {
    const { calls, adopted, follower } = setup();
    follower.start();
    calls[0]!.answer(snap(1));
    await settle();
    const asked = { snapshot_id: 's', dataset_id: 'd', metadata: {}, created_at: 'T' };
    calls[1]!.answer(snap(2, { snapshots: [asked] }));
    await settle();
    calls[2]!.answer(snap(3, { snapshots: [{ ...asked, deleted: true as const }] }));
    await settle();
    expect(adopted.map((a) => a.change)).toEqual(['config', 'config', 'config']);
    follower.stop();
  });

  it('reads at once, then long-polls from the generation held, and tells what each new snapshot changed', async () => {
    const { calls, adopted, follower } = setup();
    follower.start();
    expect(calls[0]).toMatchObject({ since: undefined, timeoutMs: 0 });
    calls[0]!.answer(snap(1));
    await settle();
    expect(calls[1]).toMatchObject({ since: '1', timeoutMs: 25_000 });
    calls[1]!.answer(
      snap(2, {
        nodes: [node(ME, [{ blockdevice_id: 'b', dataset_id: 'd', size: 1, attached_to: null }]), node(OTHER)],
      }),
    );
    await settle();
    const othersMoved = [node(ME), node(OTHER, [{ blockdevice_id: 'b', dataset_id: 'd', size: 1, attached_to: null }])];
    calls[2]!.answer(snap(3, { nodes: othersMoved }));
    await settle();
    calls[3]!.answer(
      snap(4, { datasets: [{ dataset_id: 'd', primary: ME, metadata: {}, deleted: false }], nodes: othersMoved }),
    );
    await settle();
    calls[4]!.answer(snap(4));
    await settle();
    // First: config. Only our own report changed: own. Another node's: others. Datasets: config. Same generation: none.
    expect(adopted.map((a) => a.change)).toEqual(['config', 'own', 'others', 'config', 'none']);
    expect(follower.snapshot?.generation).toBe('4');
    follower.stop();
  });

  it('backs off between failures exactly as backoffDelay (no jitter), and starts over after a success', async () => {
    const { clock, calls, follower } = setup();
    follower.start();
    for (let i = 0; i < 4; i++) {
      calls[i]!.fail(new Error('ECONNREFUSED'));
      await settle();
      await clock.advanceUntil(() => calls.length > i + 1, 1000, 10);
    }
    const gaps = calls.slice(1).map((c, i) => c.at - calls[i]!.at);
    expect(gaps).toEqual([100, 200, 400, 400]);
    calls[4]!.answer(snap(1));
    await settle();
    calls[5]!.fail(new Error('ECONNRESET'));
    await settle();
    await clock.advanceUntil(() => calls.length > 6, 1000, 10);
    expect(calls[6]!.at - calls[5]!.at).toBe(100);
    follower.stop();
  });

  it('after a failure, reads the current snapshot at once instead of long-polling from the generation held (followLongPoll)', async () => {
    const { clock, calls, adopted, follower } = setup();
    follower.start();
    calls[0]!.answer(snap(1));
    await settle();
    expect(calls[1]).toMatchObject({ since: '1', timeoutMs: 25_000 });
    calls[1]!.fail(new Error('ECONNRESET'));
    await settle();
    await clock.advance(100);
    expect(calls[2]).toMatchObject({ since: undefined, timeoutMs: 0 });
    calls[2]!.answer(snap(1)); // unchanged: still an answer, so still proof the configuration is current
    await settle();
    expect(adopted.map((a) => [a.generation, a.change])).toEqual([
      ['1', 'config'],
      ['1', 'none'],
    ]);
    expect(calls[3]).toMatchObject({ since: '1', timeoutMs: 25_000 });
    follower.stop();
  });

  it('refetch asks at once, one at a time; an answer to an older question never replaces a newer snapshot', async () => {
    const { clock, calls, adopted, follower } = setup();
    follower.start(); // calls[0]: the long-poll, asked first
    await clock.advance(10);
    follower.refetch();
    follower.refetch();
    expect(calls).toHaveLength(2);
    expect(calls[1]).toMatchObject({ since: undefined, timeoutMs: 0 });
    calls[1]!.answer(snap(5));
    await settle();
    calls[0]!.answer(snap(4)); // asked before the refetch: ignored
    await settle();
    expect(adopted.map((a) => a.generation)).toEqual(['5']);
    expect(follower.snapshot?.generation).toBe('5');
    follower.stop();
  });

  it('stops polling once stopped; an answer that comes after is not adopted', async () => {
    const { calls, adopted, follower } = setup();
    follower.start();
    follower.stop();
    calls[0]!.answer(snap(1));
    await settle();
    expect(calls).toHaveLength(1);
    expect(adopted).toEqual([]);
    follower.refetch();
    expect(calls).toHaveLength(1);
  });
});

describe('ClusterFollower by deltas of its node view (issue 23)', () => {
  const dataset = (id: string): ClusterSnapshot['datasets'][number] => ({
    dataset_id: id,
    primary: ME,
    metadata: {},
    deleted: false,
  });
  const delta = (since: number, generation: number, over: Partial<ClusterDelta> = {}): ClusterDelta => ({
    delta: true,
    since: String(since),
    generation: String(generation),
    configuration_tag: 't',
    datasets: [],
    removed_datasets: [],
    leases: [],
    removed_leases: [],
    nodes: [],
    removed_nodes: [],
    ...over,
  });
  function setupDeltas() {
    const clock = new ManualClock();
    type Call = {
      since: string | undefined;
      timeoutMs: number | undefined;
      answer: (a: ClusterAnswer) => void;
      fail: (e: Error) => void;
    };
    const deltaCalls: Call[] = [];
    const wholeCalls: Call[] = [];
    const adopted: Array<{ snap: ClusterSnapshot; change: SnapshotChange }> = [];
    const follower = new ClusterFollower({
      waitForCluster: (since, timeoutMs) =>
        new Promise((answer, fail) => wholeCalls.push({ since, timeoutMs, answer: (a) => answer(a), fail })),
      waitForClusterDelta: (since, timeoutMs) =>
        new Promise((answer, fail) => deltaCalls.push({ since, timeoutMs, answer, fail })),
      nodeUuid: ME,
      clock,
      logger: winston.createLogger({ silent: true }),
      pollWaitMs: 25_000,
      backoffInitialMs: 100,
      backoffMaxMs: 400,
      adopted: (s, _askedAt, change) => adopted.push({ snap: s, change }),
    });
    return { clock, deltaCalls, wholeCalls, adopted, follower };
  }

  it('merges each delta into the view held and tells what it changed', async () => {
    const { deltaCalls, wholeCalls, adopted, follower } = setupDeltas();
    follower.start();
    expect(deltaCalls[0]).toMatchObject({ since: undefined, timeoutMs: 0 });
    deltaCalls[0]!.answer(snap(1, { datasets: [dataset('d1')] }));
    await settle();
    expect(deltaCalls[1]).toMatchObject({ since: '1', timeoutMs: 25_000 });
    deltaCalls[1]!.answer(delta(1, 2, { datasets: [dataset('d2')] }));
    await settle();
    expect(follower.snapshot?.generation).toBe('2');
    expect(follower.snapshot?.datasets.map((d) => d.dataset_id)).toEqual(['d1', 'd2']);
    deltaCalls[2]!.answer(delta(2, 3, { removed_datasets: ['d1'] }));
    await settle();
    expect(follower.snapshot?.datasets.map((d) => d.dataset_id)).toEqual(['d2']);
    // Only OTHER's state changed: 'others'.
    deltaCalls[3]!.answer(
      delta(3, 4, { nodes: [node(OTHER, [{ blockdevice_id: 'b', dataset_id: 'd2', size: 1, attached_to: null }])] }),
    );
    await settle();
    expect(adopted.map((a) => a.change)).toEqual(['config', 'config', 'config', 'others']);
    expect(follower.snapshot?.nodes.map((n) => n.uuid)).toEqual([ME, OTHER]);
    expect(wholeCalls).toHaveLength(0);
    follower.stop();
  });

  it('a delta for another view than the one held is followed by a read of the whole view', async () => {
    const { deltaCalls, follower } = setupDeltas();
    follower.start();
    deltaCalls[0]!.answer(snap(1));
    await settle();
    deltaCalls[1]!.answer(delta(7, 8, { datasets: [dataset('d9')] }));
    await settle();
    expect(deltaCalls[2]).toMatchObject({ since: undefined, timeoutMs: 0 });
    deltaCalls[2]!.answer(snap(8, { datasets: [dataset('d9'), dataset('d10')] }));
    await settle();
    expect(follower.snapshot?.datasets.map((d) => d.dataset_id)).toEqual(['d9', 'd10']);
    expect(deltaCalls[3]).toMatchObject({ since: '8' });
    follower.stop();
  });

  it('a refetch (a report answered with another configuration tag) asks for what changed since the view held', async () => {
    const { deltaCalls, follower } = setupDeltas();
    follower.start();
    deltaCalls[0]!.answer(snap(1, { datasets: [dataset('d1')] }));
    await settle();
    follower.refetch();
    // deltaCalls[1] is the long-poll; the refetch asks at once, from the generation held.
    expect(deltaCalls[2]).toMatchObject({ since: '1', timeoutMs: 0 });
    // A change elsewhere: nothing in this view, but the new tag.
    deltaCalls[2]!.answer({ ...delta(1, 2), configuration_tag: 't2' });
    await settle();
    expect(follower.snapshot).toMatchObject({ generation: '2', configuration_tag: 't2' });
    expect(follower.snapshot?.datasets.map((d) => d.dataset_id)).toEqual(['d1']);
    follower.stop();
  });

  it('a control service that refuses deltas (400, an older version) is followed with whole snapshots', async () => {
    const { deltaCalls, wholeCalls, follower } = setupDeltas();
    follower.start();
    deltaCalls[0]!.fail(new FlockerApiError(400, 'INVALID_REQUEST', 'unrecognized key: delta'));
    await settle();
    expect(wholeCalls[0]).toMatchObject({ since: undefined, timeoutMs: 0 });
    wholeCalls[0]!.answer(snap(1));
    await settle();
    expect(wholeCalls[1]).toMatchObject({ since: '1', timeoutMs: 25_000 });
    expect(deltaCalls).toHaveLength(1);
    expect(follower.snapshot?.generation).toBe('1');
    follower.stop();
  });
});
