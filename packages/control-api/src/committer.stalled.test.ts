/**
 * Review S26B B1: a write request read before a stall of this replica's event loop is never applied after it: not when
 * its handler reaches the committer only after the stall, and not re-applied (rebased) when its commit, held up by the
 * stall, loses the compare-and-swap to another replica's newer configuration. Writes without a request's mark (the
 * service's own: lease expiry, schedules) are re-applied as before. The stall guard's clock is injected here.
 */
import type { Applied, Configuration } from './configuration';
import { emptyConfiguration } from './configuration';
import { Committer } from './committer';
import { MemoryConfigurationStore } from './ConfigurationStore';
import { StoreConflict } from './etcd/conflict';
import { handleMarked, StallGuard } from './stallGuard';
import { silentLogger } from './testing/httpService';

/** A write adding a node on `host` (its uuid the host), one version up. */
const addNode =
  (host: string) =>
  (c: Configuration): Applied<undefined> => ({
    config: { ...c, version: c.version + 1, nodes: new Map([...c.nodes, [host, { uuid: host, host }]]) },
    result: undefined,
    status: 200,
  });

const hosts = (c: Configuration): string[] => [...c.nodes.keys()].sort();

/** A shared store another replica wrote to first, once: the next commit sees that and loses (StoreConflict). */
class LosesOnce extends MemoryConfigurationStore {
  winner: Configuration | undefined;
  /** Runs as the losing commit starts (a stall of the loop there, in these tests). */
  onLosing = (): void => undefined;
  override async commit(config: Configuration): Promise<void> {
    const winner = this.winner;
    if (winner === undefined) return super.commit(config);
    this.winner = undefined;
    this.onLosing();
    await super.commit(winner);
    throw new StoreConflict(winner);
  }
}

let now = 0;
let guard: StallGuard;
beforeEach(() => {
  now = 0;
  guard = new StallGuard(() => now, silentLogger);
  guard.start();
});
afterEach(() => guard.stop());

function committer(store: MemoryConfigurationStore): Committer {
  return new Committer({
    store,
    logger: silentLogger,
    now: () => 0,
    initial: emptyConfiguration,
    onChange: () => undefined,
  });
}

/**
 * The guard lets a write through at the current time: its mark (as the middleware gives it). `clientWaitMs`: how long
 * its client said it waits for the answer before it gives up on this replica (CLIENT_WAIT_HEADER).
 */
function letThrough(clientWaitMs?: number): ReturnType<StallGuard['mark']> {
  expect(guard.refusesWrite(clientWaitMs)).toBeUndefined();
  return guard.mark(clientWaitMs);
}

it('a request read before a stall whose handler reaches the committer after it is refused, unapplied', async () => {
  const store = new MemoryConfigurationStore();
  const c = committer(store);
  const mark = letThrough();
  now += 2_000; // the loop stalls while the handler awaits something
  await expect(handleMarked(mark, () => c.mutate(addNode('read-before')))).rejects.toMatchObject({
    code: 'REPLICA_STALLED',
    // What was not applied (review s27 F9): a hand-over's release request, recorded before, was.
    message: expect.stringMatching(/this request's change was not applied/),
  });
  expect(store.commits).toBe(0);
  // A request marked after the guard saw the stall (let through once its window passed) is applied.
  expect(guard.refusesWrite()).toBeDefined();
  await handleMarked(guard.mark(), () => c.mutate(addNode('read-after')));
  expect(hosts(store.committed)).toEqual(['read-after']);
});

it("a commit a stall held up that loses to another replica's: the request's write is refused, the service's own re-applied", async () => {
  const store = new LosesOnce();
  store.winner = { ...emptyConfiguration, version: 5, nodes: new Map([['other', { uuid: 'other', host: 'other' }]]) };
  store.onLosing = () => void (now += 2_000);
  const c = committer(store);
  const fromRequest = handleMarked(letThrough(), () => c.mutate(addNode('from-request')));
  const own = c.mutate(addNode('own'));
  await expect(fromRequest).rejects.toMatchObject({ code: 'REPLICA_STALLED' });
  await own;
  expect(hosts(store.committed)).toEqual(['other', 'own']);
  expect(hosts(c.configuration)).toEqual(['other', 'own']);
});

it('without a stall, a request whose commit loses is re-applied on the newer configuration as before', async () => {
  const store = new LosesOnce();
  store.winner = { ...emptyConfiguration, version: 5, nodes: new Map([['other', { uuid: 'other', host: 'other' }]]) };
  const c = committer(store);
  await handleMarked(letThrough(), () => c.mutate(addNode('from-request')));
  expect(hosts(store.committed)).toEqual(['from-request', 'other']);
});

it("a write made in a request's context after its handler ended (a timer it armed) is the service's own: applied", async () => {
  const store = new MemoryConfigurationStore();
  const c = committer(store);
  let fire = (): void => undefined;
  const fired = new Promise<void>((resolve) => (fire = resolve));
  let later: Promise<unknown> | undefined;
  await handleMarked(letThrough(), async () => {
    // Armed by the request (as a lease's expiry timer is), run after it.
    later = fired.then(() => c.mutate(addNode('expiry')));
    await c.mutate(addNode('from-request'));
  });
  now += 2_000;
  fire();
  await later;
  expect(hosts(store.committed)).toEqual(['expiry', 'from-request']);
});

it("a sole replica's guard (inFlight false) applies a write read before a stall: no other replica to move to (review s27 F9)", async () => {
  guard.stop();
  guard = new StallGuard(() => now, silentLogger, { inFlight: false });
  guard.start();
  const store = new MemoryConfigurationStore();
  const c = committer(store);
  const mark = letThrough();
  now += 2_000;
  await handleMarked(mark, () => c.mutate(addNode('read-before')));
  expect(hosts(store.committed)).toEqual(['read-before']);
  // A write read right after the stall is still refused unread (the middleware's check is unchanged).
  expect(guard.refusesWrite()).toBeDefined();
});

describe("the client's stated wait (review s27 F9: a brief stall refused writes whose clients were still waiting)", () => {
  it('a write whose client waits 10 s, in flight across a 700-ms stall (a GC pause): applied', async () => {
    const store = new MemoryConfigurationStore();
    const c = committer(store);
    const mark = letThrough(10_000);
    now += 800; // 700 ms past the tick period: a stall the guard sees
    await handleMarked(mark, () => c.mutate(addNode('waited')));
    expect(hosts(store.committed)).toEqual(['waited']);
  });

  it('refused as before when its client may have given up: the stall reaches its wait, or it stated none', async () => {
    const store = new MemoryConfigurationStore();
    const c = committer(store);
    const short = letThrough(1_000);
    const unstated = letThrough();
    const long = letThrough(10_000);
    const late = letThrough(10_000);
    now += 800;
    await expect(handleMarked(short, () => c.mutate(addNode('short')))).rejects.toMatchObject({
      code: 'REPLICA_STALLED',
    });
    await expect(handleMarked(unstated, () => c.mutate(addNode('unstated')))).rejects.toMatchObject({
      code: 'REPLICA_STALLED',
    });
    await handleMarked(long, () => c.mutate(addNode('long')));
    now += 9_000; // a write read with `long`, still in flight: its client has given up by now
    await expect(handleMarked(late, () => c.mutate(addNode('late')))).rejects.toMatchObject({
      code: 'REPLICA_STALLED',
    });
    expect(hosts(store.committed)).toEqual(['long']);
  });

  it('a write read right after a stall: let through when its client still waits, refused when it may not', () => {
    now += 800;
    expect(guard.refusesWrite(10_000)).toBeUndefined();
    expect(guard.refusesWrite(1_000)).toBeDefined();
    expect(guard.refusesWrite()).toBeDefined();
    // A stall as long as the wait: refused whatever the client said.
    now += 30_000;
    expect(guard.refusesWrite(10_000)).toBeDefined();
  });

  it('a write let through after a stall counts that stall in its age: a second one refuses it sooner', async () => {
    const store = new MemoryConfigurationStore();
    const c = committer(store);
    // Read right after a 2.9-s stall: its client may have waited up to 4.1 s (8.6 with the slack), under its 9 s.
    now += 3_000;
    const mark = letThrough(9_000);
    await new Promise((resolve) => setTimeout(resolve, 250)); // the guard's (real) timer ticks: that stall has ended
    now += 800; // another 0.7-s stall: up to 4.9 s (9.4), no longer surely under its wait
    await expect(handleMarked(mark, () => c.mutate(addNode('aged')))).rejects.toMatchObject({
      code: 'REPLICA_STALLED',
    });
  });

  // Review s29 R1 F3: the client's timer starts before the replica sees the request (a SYN dropped on a full accept
  // queue is sent again after 1 s, TLS handshakes queue on a busy loop), so the slack is half the stated wait (>= 1 s).
  it('a write whose client waits 4 s (a lease POST with another replica) is refused once a stall takes its age past half that wait', async () => {
    const store = new MemoryConfigurationStore();
    const c = committer(store);
    const mark = letThrough(4_000);
    now += 2_100; // a 2-s stall: up to 2.7 s old (0.6 s unread), under 4 s with 1 s of slack but not with 2 s
    await expect(handleMarked(mark, () => c.mutate(addNode('late')))).rejects.toMatchObject({
      code: 'REPLICA_STALLED',
    });
    expect(hosts(store.committed)).toEqual([]);
  });

  it('a 0.7-s stall still refuses no write whose client waits 4 s: in flight across it, or read right after it', async () => {
    const store = new MemoryConfigurationStore();
    const c = committer(store);
    const mark = letThrough(4_000);
    now += 800; // up to 1.4 s old (+ 2 s of slack) < 4 s
    await handleMarked(mark, () => c.mutate(addNode('gc')));
    expect(hosts(store.committed)).toEqual(['gc']);
    await new Promise((resolve) => setTimeout(resolve, 250)); // the guard's (real) timer ticks: that stall has ended
    now += 800; // another: a write read right after it, up to 1.9 s unread (+ 2 s) < 4 s
    expect(guard.refusesWrite(4_000)).toBeUndefined();
  });
});
