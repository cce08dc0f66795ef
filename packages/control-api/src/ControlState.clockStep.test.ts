/**
 * T3 review finding 1 (session 18): node liveness in production ran on the wall clock. ControlState's
 * `now` defaults to Date.now (main.ts and server.ts pass none), so a step of the system clock
 * (NTP after a suspend, a VM restored, `date -s`) of more than --node-timeout + --lease-grace
 * makes every node that reported a moment ago "dead" at the next liveness check, and its
 * unpinned leases (containers using volumes) are released before it can report again.
 * runtime/clock.ts says deadlines must be monotonic for exactly this reason. Now liveness, the time dead, the lease
 * grace and the start timeout are measured on a monotonic clock (ControlStateOptions.monoNow); the wall clock is
 * what is shown (last_seen) and shared (a node's last_seen in etcd: a replica hears from a node when it changes).
 */
import { MemoryConfigurationStore, type StoreListener } from './ConfigurationStore';
import { acquireLease, createDataset } from './configuration';
import { nodeStates } from './clusterState';
import { ControlState } from './ControlState';
import { openOnTestClock } from './testing/clockedState';
import { A, B, D1, T0, letterReport as report } from './testing/fixtures';
import winston from 'winston';

const T = 30_000;
const G = 5_000;
const HOUR = 3_600_000;

describe('ControlState in production (no injected clock): a wall-clock step', () => {
  let state: ControlState | undefined;
  /** Real time passed (what performance.now sees) and the step of the wall clock on top of it. */
  let elapsed = 0;
  let step = 0;

  beforeEach(async () => {
    elapsed = 0;
    step = 0;
    const wall0 = Date.now();
    const perf0 = performance.now();
    jest.spyOn(Date, 'now').mockImplementation(() => wall0 + elapsed + step);
    jest.spyOn(performance, 'now').mockImplementation(() => perf0 + elapsed);
    state = await ControlState.open({
      store: new MemoryConfigurationStore(),
      nodeTimeoutMs: T,
      leaseGraceMs: G,
      logger: winston.createLogger({ silent: true }),
      // Liveness checked only when the test asks.
      livenessCheckMs: HOUR,
    });
    await state.report(report(A));
    await state.mutate((c) => createDataset(c, { primary: A, dataset_id: D1, metadata: { name: 'db' } }));
    await state.mutate((c, n) => acquireLease(c, { dataset_id: D1, node_uuid: A, expires: null }, n));
  });
  afterEach(async () => {
    await state?.close();
    jest.restoreAllMocks();
  });

  it('a step forward does not declare a node that just reported dead nor release its lease', async () => {
    const s = state as ControlState;
    // NTP steps the clock one hour forward; no real time passes (the node reported just now).
    step = HOUR;
    await s.checkLiveness();
    expect(s.deadSince(A)).toBeUndefined();
    expect(s.listEvents().map((e) => e.kind)).toEqual([]);
    expect([...s.configuration.leases.keys()]).toEqual([D1]);
    // Still so just before T of real time after its report, the clock stepped: it is the silence that counts.
    elapsed = T - 1;
    await s.checkLiveness();
    expect(s.deadSince(A)).toBeUndefined();
    expect([...s.configuration.leases.keys()]).toEqual([D1]);
  });

  it('a step back does not postpone declaring a silent node dead (and failing over) by the size of the step', async () => {
    const s = state as ControlState;
    step = -HOUR;
    // The node goes silent; real time passes beyond the timeout and the grace.
    elapsed = T + G + 1_000;
    await s.checkLiveness();
    expect(s.deadSince(A)).toBeDefined();
    expect([...s.configuration.leases.keys()]).toEqual([]);
    expect(s.listEvents().map((e) => e.kind)).toEqual(['node_dead', 'lease_released_dead_node']);
  });
});

describe('ControlState with an injected monotonic and wall clock', () => {
  /** Monotonic and wall-clock ms; a step moves only `wall`. */
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

  async function open(listen?: (l: StoreListener) => void): Promise<ControlState> {
    const memory = new MemoryConfigurationStore();
    const store =
      listen === undefined
        ? memory
        : Object.assign(memory, {
            subscribe: (l: StoreListener) => {
              listen(l);
              return Promise.resolve();
            },
          });
    state = await openOnTestClock(store, { nodeTimeoutMs: T, leaseGraceMs: G, wall: () => wall, mono: () => mono });
    return state;
  }

  async function leasedToA(s: ControlState): Promise<void> {
    await s.report(report(A));
    await s.mutate((c) => createDataset(c, { primary: A, dataset_id: D1, metadata: { name: 'db' } }));
    await s.mutate((c, n) => acquireLease(c, { dataset_id: D1, node_uuid: A, expires: null }, n));
  }

  it('a step back: dead exactly T after its last report and the lease released exactly G later, on the monotonic clock', async () => {
    const s = await open();
    await leasedToA(s);
    const reportedAt = wall;
    wall -= HOUR;
    pass(T);
    await s.checkLiveness();
    expect(s.deadSince(A)).toBeUndefined();
    pass(1);
    await s.checkLiveness();
    // Shown on the wall clock as it reads now: the report was T + 1 ago.
    expect(s.deadSince(A)).toBe(wall - 1);
    pass(G - 2);
    await s.checkLiveness();
    expect([...s.configuration.leases.keys()]).toEqual([D1]);
    pass(1);
    await s.checkLiveness();
    expect([...s.configuration.leases.keys()]).toEqual([]);
    // last_seen stays the wall-clock time the report came (what it said then); dead_since is on the clock now.
    const [a] = nodeStates(s.reportedNodes(), wall, T);
    expect(a?.last_seen).toBe(new Date(reportedAt).toISOString());
    expect(a?.dead_since).toBe(new Date(wall - G).toISOString());
  });

  it('a step forward while a node is dead neither shortens nor lengthens its grace', async () => {
    const s = await open();
    await leasedToA(s);
    pass(T + 1);
    await s.checkLiveness();
    expect(s.deadSince(A)).toBeDefined();
    wall += HOUR;
    await s.checkLiveness();
    expect([...s.configuration.leases.keys()]).toEqual([D1]);
    pass(G);
    await s.checkLiveness();
    expect([...s.configuration.leases.keys()]).toEqual([]);
  });

  it("through the store: a replica hears from a node at each new last_seen, even one older than the last (that replica's clock stepped back)", async () => {
    let listener: StoreListener | undefined;
    const s = await open((l) => (listener = l));
    const deliver = (at: number): void => listener?.report(report(B), at);
    deliver(wall);
    const first = wall;
    pass(T - 1);
    // The replica B reports to stepped back an hour: its last_seen is older than the one held.
    deliver(first - HOUR);
    pass(T - 1);
    await s.checkLiveness();
    expect(s.deadSince(B)).toBeUndefined();
    // The same last_seen again (a re-read of the store) is no news: dead T after the last new one.
    deliver(first - HOUR);
    pass(2);
    await s.checkLiveness();
    expect(s.deadSince(B)).toBeDefined();
    // Heard again through that replica (its last_seen still older than the held one): back at once.
    deliver(first - HOUR + 5_000);
    expect(s.deadSince(B)).toBeUndefined();
    expect(s.listEvents().map((e) => e.kind)).toEqual(['node_dead', 'node_back']);
  });

  it('after a takeover: a node whose stored report is old (dead before) is dead by start + T, whatever the wall clock says of its age', async () => {
    let listener: StoreListener | undefined;
    // A stored report from a day ago (a dead node), read at start, before any wall-clock check could tell its age.
    const s = await open((l) => (listener = l));
    listener?.report(report(A), wall - 24 * HOUR);
    pass(T);
    await s.checkLiveness();
    expect(s.deadSince(A)).toBeUndefined();
    pass(1);
    await s.checkLiveness();
    expect(s.deadSince(A)).toBeDefined();
    // Its last_seen is still the stored one.
    expect(nodeStates(s.reportedNodes(), wall, T)[0]?.last_seen).toBe(new Date(wall - T - 1 - 24 * HOUR).toISOString());
  });
});
