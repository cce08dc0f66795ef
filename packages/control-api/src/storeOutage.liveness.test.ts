/**
 * Review FR19-10 (session 19): a replica cut off from its store for longer than T + G heard no node meanwhile (the
 * agents left it for a replica that answers), so it declared every node dead on its own and queued the release of
 * every unpinned lease; when the store came back, that release committed on its stale view before its watch had
 * delivered what the nodes reported to another replica all along. Now a replica neither declares a death nor releases
 * a lease while its store does not answer, and every node it holds counts as heard when the store answers again (T
 * again, as at a start), so the reports shared meanwhile arrive before it judges anyone.
 */
import { MemoryConfigurationStore, type StoreListener } from './ConfigurationStore';
import { StoreError } from './errors';
import { acquireLease, createDataset } from './configuration';
import { type ControlState } from './ControlState';
import { openOnTestClock } from './testing/clockedState';
import { A, B, D1, D2, T0, letterReport as report } from './testing/fixtures';

const T = 30_000;
const G = 5_000;

describe('a replica back from a store outage longer than T + G', () => {
  let mono = 5_000;
  let wall = T0;
  let state: ControlState | undefined;
  const pass = (ms: number): void => {
    mono += ms;
    wall += ms;
  };
  afterEach(async () => {
    await state?.close();
    state = undefined;
  });

  async function open(): Promise<{ s: ControlState; listener: StoreListener; setDown: (d: boolean) => void }> {
    const memory = new MemoryConfigurationStore();
    let down = false;
    let listener: StoreListener | undefined;
    const commit = memory.commit.bind(memory);
    const store = Object.assign(memory, {
      subscribe: (l: StoreListener) => {
        listener = l;
        return Promise.resolve();
      },
      commit: (config: Parameters<typeof commit>[0]) =>
        down ? Promise.reject(new StoreError('STORE_UNAVAILABLE', 'etcd unreachable')) : commit(config),
    });
    state = await openOnTestClock(store, { nodeTimeoutMs: T, leaseGraceMs: G, wall: () => wall, mono: () => mono });
    const s = state;
    await s.report(report(A));
    await s.report(report(B));
    await s.mutate((c) => createDataset(c, { primary: A, dataset_id: D1, metadata: { name: 'a' } }));
    await s.mutate((c) => createDataset(c, { primary: B, dataset_id: D2, metadata: { name: 'b' } }));
    await s.mutate((c, n) => acquireLease(c, { dataset_id: D1, node_uuid: A, expires: null }, n));
    await s.mutate((c, n) => acquireLease(c, { dataset_id: D2, node_uuid: B, expires: null }, n));
    if (listener === undefined) throw new Error('not subscribed');
    return { s, listener, setDown: (d) => (down = d) };
  }

  it('declares no node dead and releases no lease before the reports shared meanwhile arrive', async () => {
    const { s, listener, setDown } = await open();
    setDown(true);
    listener.reachable?.(false, 'etcd did not answer a read');
    // Cut off for T + G + 10 s: A and B report to another replica all along (this one hears nothing of it).
    for (let i = 0; i < 45; i += 1) {
      pass(1_000);
      await s.checkLiveness();
    }
    expect(s.deadSince(A)).toBeUndefined();
    // The store answers again; this replica's watch has not caught up yet.
    setDown(false);
    listener.reachable?.(true);
    await s.checkLiveness();
    pass(1_000);
    await s.checkLiveness();
    expect([...s.configuration.leases.keys()].sort()).toEqual([D1, D2]);
    expect(s.deadSince(A)).toBeUndefined();
    expect(s.deadSince(B)).toBeUndefined();
    expect(s.listEvents().map((e) => e.kind)).not.toContain('node_dead');
    // The watch delivers A's report (made through the other replica); B really went silent.
    pass(5_000);
    listener.report(report(A), wall, false);
    pass(T - 6_000);
    await s.checkLiveness();
    expect(s.deadSince(B)).toBeUndefined();
    // B, silent since the store came back: dead T after that, its lease released G later. A alive.
    pass(1_001);
    await s.checkLiveness();
    expect(s.deadSince(B)).toBeDefined();
    expect(s.deadSince(A)).toBeUndefined();
    listener.report(report(A), wall, false);
    pass(G);
    await s.checkLiveness();
    expect([...s.configuration.leases.keys()]).toEqual([D1]);
    expect(s.listEvents().map((e) => e.kind)).toEqual(['node_dead', 'lease_released_dead_node']);
  });
});
