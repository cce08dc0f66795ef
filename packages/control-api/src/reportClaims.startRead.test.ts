/**
 * Review FR M1 (session 18): since liveness is timed on the monotonic clock (1946fbf), a node report the store held at
 * a replica's start counts as heard at that start (its wall-clock age cannot be trusted), alive for T. A long-dead node
 * whose report etcd still holds then won the instance claim for T after every control-service start: the live node
 * reinstalled under a new UUID on that compute instance was refused INSTANCE_CLAIMED, had no accepted report for T/2
 * and fenced itself (its containers killed). A node held only from the store's read at start, never heard since, is
 * no live claimant (nor "reporting" for a forget); heard once since start (a new last_seen put by a replica, or its
 * own report here), it claims again. The file store holds such a node only from its identity, as a ghost, dead.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import winston from 'winston';
import { FileConfigurationStore, MemoryConfigurationStore, type StoreListener } from './ConfigurationStore';
import { isAlive } from './clusterState';
import { ControlState } from './ControlState';
import { reportClaimConflict } from './reportClaims';
import { A, B, T0, letterReport as report } from './testing/fixtures';

const T = 30_000;
const DAY = 24 * 3_600_000;
const silent = winston.createLogger({ silent: true });

let wall = T0;
let mono = 1_000_000;
let state: ControlState | undefined;

/** A service on a shared store whose read at start and later puts the test delivers (`listener`). */
async function openShared(): Promise<{ s: ControlState; listener: StoreListener }> {
  let listener: StoreListener | undefined;
  const store = Object.assign(new MemoryConfigurationStore(), {
    subscribe: (l: StoreListener) => {
      listener = l;
      return Promise.resolve();
    },
  });
  state = await ControlState.open({
    store,
    nodeTimeoutMs: T,
    logger: silent,
    now: () => wall,
    monoNow: () => mono,
    livenessCheckMs: 3_600_000,
  });
  if (listener === undefined) throw new Error('not subscribed');
  return { s: state, listener };
}

/** What the report route answers B reporting A's instance i-X (its conflict code, undefined: accepted). */
function claimOfB(s: ControlState): string | undefined {
  const now = s.now();
  return reportClaimConflict(
    report(B, { instance_id: 'i-X', backend: 'aws' }),
    (i) => s.nodesClaimingInstance(i),
    (n) => isAlive(n, now, s.nodeTimeoutMs),
  )?.code;
}

beforeEach(() => {
  wall = T0;
  mono = 1_000_000;
});

afterEach(async () => {
  await state?.close();
  state = undefined;
});

describe('a node held only from the store read at start claims nothing', () => {
  it('a day-dead node read from the store at start does not block the live node reporting its instance', async () => {
    const { s, listener } = await openShared();
    // Old node A (instance i-X) last reported a day ago; B is the same host reinstalled under a new UUID.
    listener.report(report(A, { instance_id: 'i-X', backend: 'aws' }), wall - DAY, true);
    expect(claimOfB(s)).toBeUndefined();
    await s.report(report(B, { instance_id: 'i-X', backend: 'aws' }));
    // Liveness stays as conservative as before: A counts alive until start + T, dead after.
    expect(s.deadSince(A)).toBeUndefined();
    mono += T + 1;
    wall += T + 1;
    await s.checkLiveness();
    expect(s.deadSince(A)).toBeDefined();
    expect(claimOfB(s)).toBeUndefined();
  });

  it('A actually alive (a new last_seen delivered after start) still wins the claim', async () => {
    const { s, listener } = await openShared();
    listener.report(report(A, { instance_id: 'i-X', backend: 'aws' }), wall - 5_000, true);
    expect(claimOfB(s)).toBeUndefined();
    // Another replica heard from A: its refresh put reaches this one.
    mono += 2_000;
    wall += 2_000;
    listener.report(report(A, { instance_id: 'i-X', backend: 'aws' }), wall);
    expect(claimOfB(s)).toBe('INSTANCE_CLAIMED');
  });

  it('a new last_seen older than the held one (a replica whose clock stepped back) is heard too', async () => {
    const { s, listener } = await openShared();
    listener.report(report(A, { instance_id: 'i-X', backend: 'aws' }), wall - 5_000, true);
    listener.report(report(A, { instance_id: 'i-X', backend: 'aws' }), wall - 60_000);
    expect(claimOfB(s)).toBe('INSTANCE_CLAIMED');
  });

  it("a node first seen in a put after start (another replica took its report) claims, and so does A's own report here", async () => {
    const { s, listener } = await openShared();
    listener.report(report(A, { instance_id: 'i-X', backend: 'aws' }), wall);
    expect(claimOfB(s)).toBe('INSTANCE_CLAIMED');
    const again = await openShared();
    again.listener.report(report(A, { instance_id: 'i-X', backend: 'aws' }), wall - DAY, true);
    await again.s.report(report(A, { instance_id: 'i-X', backend: 'aws' }));
    expect(claimOfB(again.s)).toBe('INSTANCE_CLAIMED');
    await s.close();
  });

  it('flocker nodes forget: not "reporting" while held from the start read; forgettable once dead at start + T', async () => {
    const { s, listener } = await openShared();
    listener.report(report(A, { instance_id: 'i-X', backend: 'aws' }), wall - DAY, true);
    await expect(s.forgetNode(A)).rejects.toThrow(/started less than the node timeout/);
    await expect(s.forgetNode(A)).rejects.not.toThrow(/is reporting/);
    mono += T + 1;
    wall += T + 1;
    await s.checkLiveness();
    await expect(s.forgetNode(A)).resolves.toMatchObject({ uuid: A });
  });

  it('a node heard since start is still refused as reporting', async () => {
    const { s, listener } = await openShared();
    listener.report(report(A, { instance_id: 'i-X', backend: 'aws' }), wall - 5_000, true);
    listener.report(report(A, { instance_id: 'i-X', backend: 'aws' }), wall);
    await expect(s.forgetNode(A)).rejects.toThrow(/is reporting/);
  });
});

describe('file store: a node known from its identity alone (node_identities.json) claims nothing', () => {
  let dir = '';
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'fx15-claims-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("after a restart, B reporting the retired A's instance is accepted before start + T (A not held) and after (A a dead ghost)", async () => {
    const open = async (): Promise<ControlState> =>
      (state = await ControlState.open({
        store: new FileConfigurationStore(dir),
        nodeTimeoutMs: T,
        logger: silent,
        now: () => wall,
        monoNow: () => mono,
        livenessCheckMs: 3_600_000,
      }));
    const first = await open();
    await first.report(report(A, { instance_id: 'i-X', backend: 'aws' }));
    await first.close();
    wall += DAY;
    mono += DAY;
    const s = await open();
    // Before start + T: A is not held at all.
    expect(claimOfB(s)).toBeUndefined();
    mono += T + 1;
    wall += T + 1;
    await s.checkLiveness();
    // Then held from its identity, dead: still no claimant.
    expect(s.reportedNode(A)?.report.instance_id).toBe('i-X');
    expect(s.deadSince(A)).toBeDefined();
    expect(claimOfB(s)).toBeUndefined();
    await s.report(report(B, { instance_id: 'i-X', backend: 'aws' }));
    expect(s.deadSince(B)).toBeUndefined();
  });
});
