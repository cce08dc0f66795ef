/**
 * Review FR M1 (session 18) on a real etcd: a node report etcd still holds from a long-retired node, read at a
 * replica's start, claims nothing (the live node reinstalled on that compute instance is accepted), while the same node
 * heard again through another replica (its put seen by the watch) claims its instance again.
 */
import { randomUUID } from 'node:crypto';
import { isAlive } from '../clusterState';
import type { ControlState } from '../ControlState';
import { reportClaimConflict } from '../reportClaims';
import { A, B, T0, letterReport as report } from '../testing/fixtures';
import { etcdReplicas } from '../testing/etcdReplicas';

jest.setTimeout(60_000);
const T = 10_000;
const DAY = 24 * 3_600_000;

let t = T0;
const bed = etcdReplicas('each');

async function replica(prefix: string): Promise<ControlState> {
  return bed.openState(prefix, { nodeTimeoutMs: T, now: () => t, livenessCheckMs: 3_600_000 });
}

async function eventually(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const onX = (uuid: string) => report(uuid, { instance_id: 'i-X', backend: 'aws' });

/** The refusal code of B's report of i-X through `s` (undefined: accepted). */
function claimOfB(s: ControlState): string | undefined {
  const now = s.now();
  return reportClaimConflict(
    onX(B),
    (i) => s.nodesClaimingInstance(i),
    (n) => isAlive(n, now, s.nodeTimeoutMs),
  )?.code;
}

afterEach(() => {
  t = T0;
});

it("a retired node's stored report claims nothing at a replica's start; heard through another replica, it does", async () => {
  const prefix = `/t-${randomUUID()}`;
  const old = await replica(prefix);
  await old.report(onX(A));
  await bed.closeAll(); // `old` only

  // A day later (A retired; B is its host reinstalled): a restarted replica reads A's report at its start.
  t += DAY;
  const c = await replica(prefix);
  expect(c.reportedNode(A)).toBeDefined();
  expect(claimOfB(c)).toBeUndefined();

  // A reports through another replica after all: c's watch sees the put, and A claims i-X again.
  const d = await replica(prefix);
  t += 1_000;
  await d.report(onX(A));
  await eventually(() => c.reportedNode(A)?.lastSeen === t);
  expect(claimOfB(c)).toBe('INSTANCE_CLAIMED');
});
