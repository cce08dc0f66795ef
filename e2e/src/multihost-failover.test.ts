/**
 * (4) A dead host: the volume it held moves to a live host within a bounded
 * time (node timeout + force detach), and when the dead host comes back (same
 * era: agent restarted; new era: rebooted; or a healed network partition) it
 * never mounts or writes that volume again: a write into its old mount fails
 * (the force detach fenced the device: EIO) or that mount is gone (a partitioned
 * agent unmounts by itself within T/2). Real processes; needs root.
 * Failover of Docker volumes (leases) and the writer's view: multihost-fencing.test.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  isMountedOn,
  loopMounts,
  md5On,
  readFileOn,
  run,
  sleep,
  TEST_DATASET_SIZE,
  waitForMountedOn,
  writeBlobOn,
  writeFileOn,
  type Cluster,
  type ClusterHost,
  waitFor,
} from './cluster';
import { clusterForSuite } from './cluster/suite';

const NODE_TIMEOUT_S = Number(process.env.FLOCKER_E2E_NODE_TIMEOUT ?? 3);
/** How long a move away from a dead host may take: node timeout plus this slack. */
const FAILOVER_SLACK_MS = Number(process.env.FLOCKER_E2E_FAILOVER_SLACK_MS ?? 20_000);
/** How long a host that came back is watched for a wrong move. */
const OBSERVE_MS = Math.max(3_000, NODE_TIMEOUT_S * 1_000);

jest.setTimeout(180_000);

let cluster: Cluster;
let a: ClusterHost;
let b: ClusterHost;

clusterForSuite({ hosts: 2, withDocker: true, nodeTimeoutSeconds: NODE_TIMEOUT_S }, (started) => {
  cluster = started;
  [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
});

async function backingFile(device: string): Promise<string> {
  return (await run(['losetup', '--noheadings', '--output', 'BACK-FILE', '--list', device])).stdout.trim();
}

/** The backing file of whatever serves `path` on host. */
async function imageMountedAt(host: ClusterHost, path: string): Promise<string | undefined> {
  const m = (await loopMounts(host)).find((x) => x.target === path);
  return m === undefined ? undefined : backingFile(m.device);
}

/** Safety: host has no loop device of the live image mounted anywhere. */
async function expectNotUsingImage(host: ClusterHost, image: string): Promise<void> {
  for (const m of await loopMounts(host)) expect(await backingFile(m.device)).not.toBe(image);
}

/**
 * A write (with fsync) into `dir` only if a filesystem is mounted there in host's namespace:
 * exit 3 when nothing is mounted, 0 when the write and its fsync went through, else the failure.
 * The shell first enters `dir`, then checks that its working directory is the root of a mount (another
 * device than its parent): from then on that working directory pins the mount (an agent's umount gets
 * EBUSY and retries), so the write goes into the file system checked. Checking /proc/self/mounts before
 * the `cd` raced with A's restarted agent unmounting the stale mount in between: the write then landed
 * in the bare mount point directory on the host's root file system and succeeded (session 22 FAIL-A).
 */
async function writeIntoStaleMount(
  host: ClusterHost,
  dir: string,
  file: string,
): Promise<{ code: number; stderr: string }> {
  const r = await host.exec(
    [
      'sh',
      '-c',
      'cd "$1" 2>/dev/null || exit 3; [ "$(stat -c %d .)" != "$(stat -c %d ..)" ] || exit 3; echo stale > "$2" && sync "$2"',
      'sh',
      dir,
      file,
    ],
    { check: false },
  );
  return { code: r.code, stderr: r.stderr };
}

/** A write into a fenced mount fails as the fence makes it fail, or finds nothing mounted (3). */
function expectFencedOrGone(write: { code: number; stderr: string }): void {
  expect(write.code).not.toBe(0);
  if (write.code !== 3) expect(write.stderr).toMatch(/Input\/output error|Read-only file system/);
}

/**
 * Runs `body`; if it throws, keeps every host's logs (agent, plugin, dockerd) in $FLOCKER_E2E_KEEP_LOGS or a new
 * directory under the system's temporary directory, and says where (a flake may be seen once in many runs).
 */
async function keepingLogsOnFailure(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    try {
      const keep =
        process.env.FLOCKER_E2E_KEEP_LOGS ?? fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-failover-logs-'));
      for (const h of cluster.hosts) fs.cpSync(h.layout.logDir, path.join(keep, h.name), { recursive: true });
      console.error(`test failed: the hosts' logs are kept in ${keep}`);
    } catch (copy) {
      console.error(`test failed; the hosts' logs could not be kept: ${String(copy)}`);
    }
    throw e;
  }
}

interface Held {
  id: string;
  pathA: string;
  md5A: string;
}

async function datasetHeldByA(): Promise<Held> {
  const d = await cluster.client.createDataset({
    primary: a.requireNodeUuid(),
    maximum_size: TEST_DATASET_SIZE,
    metadata: { name: `dead-${randomUUID().slice(0, 8)}` },
  });
  const pathA = await waitForMountedOn(cluster.client, d.dataset_id, a.requireNodeUuid());
  const md5A = await writeBlobOn(a, pathA, 4);
  return { id: d.dataset_id, pathA, md5A };
}

/** Moves the dataset to B while A is dead; returns B's path, its image and the time it took. */
async function failOverToB(held: Held): Promise<{ pathB: string; imageB: string; ms: number }> {
  const t0 = Date.now();
  await cluster.client.updateDataset(held.id, { primary: b.requireNodeUuid() });
  const pathB = await waitForMountedOn(
    cluster.client,
    held.id,
    b.requireNodeUuid(),
    NODE_TIMEOUT_S * 1_000 + FAILOVER_SLACK_MS,
  );
  const ms = Date.now() - t0;
  expect(await md5On(b, `${pathB}/blob`)).toBe(held.md5A);
  await writeFileOn(b, `${pathB}/from-b`, 'written on B after the failover\n');
  const imageB = await imageMountedAt(b, pathB);
  expect(imageB).toBeDefined();
  return { pathB, imageB: imageB ?? '', ms };
}

/** After A is back: B still has the dataset, with everything B wrote; A uses no device of it. */
async function expectBStillOwns(held: Held, pathB: string, imageB: string): Promise<void> {
  await sleep(OBSERVE_MS);
  expect(await waitForMountedOn(cluster.client, held.id, b.requireNodeUuid(), 1_000)).toBe(pathB);
  expect(await isMountedOn(b, pathB)).toBe(true);
  expect(await imageMountedAt(b, pathB)).toBe(imageB);
  expect(await readFileOn(b, `${pathB}/from-b`)).toBe('written on B after the failover\n');
  expect(await md5On(b, `${pathB}/blob`)).toBe(held.md5A);
  await expectNotUsingImage(a, imageB);
}

describe('(4) a dead host', () => {
  it('agent and dockerd killed: the volume moves to B within node timeout + slack; A restarted (same era), then rebooted (new era), never takes it back', () =>
    keepingLogsOnFailure(async () => {
      const held = await datasetHeldByA();
      await a.killAgent('SIGKILL');
      await a.killDocker('SIGKILL');
      const { pathB, imageB, ms } = await failOverToB(held);
      expect(ms).toBeLessThan(NODE_TIMEOUT_S * 1_000 + FAILOVER_SLACK_MS);
      expect(ms).toBeGreaterThanOrEqual(NODE_TIMEOUT_S * 1_000 - 1_000); // it really waited for the node timeout

      // While A is dead its old mount (of the device B's force detach fenced) is still there: writes fail.
      expectFencedOrGone(await writeIntoStaleMount(a, held.pathA, 'from-a-dead'));

      // Same era: the agent and dockerd come back; the old mount is fenced, or removed by the agent.
      // (startAgent waits until the restarted agent has reported: ClusterHost.startAgent, 778cbc3.)
      await a.startAgent();
      await a.startDocker();
      expectFencedOrGone(await writeIntoStaleMount(a, held.pathA, 'from-a-after'));
      // The restarted agent runs (a loaded host takes seconds to start it): it fences and removes the stale mount.
      await waitFor(
        `A's restarted agent to remove its stale mount ${held.pathA}`,
        async () => !(await isMountedOn(a, held.pathA)),
        { timeoutMs: 60_000, intervalMs: 250 },
      );
      await expectBStillOwns(held, pathB, imageB);
      expect((await writeIntoStaleMount(a, held.pathA, 'from-a-after')).code).toBe(3);
      for (const f of ['from-a-dead', 'from-a-after']) expect((await b.exec(['ls', pathB])).stdout).not.toContain(f);

      // New era: a reboot drops every mount; the agent must not mount the dataset again.
      await a.reboot();
      await expectBStillOwns(held, pathB, imageB);
      expect(await isMountedOn(a, held.pathA)).toBe(false);
    }));

  it('a network partition: A unmounts by itself, the volume moves to B; when the network heals, A (same era, agent running all along) does not write it', async () => {
    const held = await datasetHeldByA();
    await a.disconnect();
    let pathB: string;
    let imageB: string;
    try {
      ({ pathB, imageB } = await failOverToB(held));
      // A is still running, but its agent fenced itself (unmounted within T/2): a write there during the partition fails…
      expect(await isMountedOn(a, held.pathA)).toBe(false);
      expect((await writeIntoStaleMount(a, held.pathA, 'from-a-partitioned')).code).toBe(3);
    } finally {
      await a.reconnect();
    }
    await expectBStillOwns(held, pathB, imageB);
    // …and nothing of A's is in what B sees.
    expect((await b.exec(['ls', pathB])).stdout).not.toContain('from-a-partitioned');
  });

  it('after all that, the volume can still move back to A and keeps its data', async () => {
    const held = await datasetHeldByA();
    await cluster.client.updateDataset(held.id, { primary: b.requireNodeUuid() });
    const pathB = await waitForMountedOn(cluster.client, held.id, b.requireNodeUuid());
    await writeFileOn(b, `${pathB}/round`, 'trip\n');
    await cluster.client.updateDataset(held.id, { primary: a.requireNodeUuid() });
    const pathA = await waitForMountedOn(cluster.client, held.id, a.requireNodeUuid());
    expect(await readFileOn(a, `${pathA}/round`)).toBe('trip\n');
    expect(await md5On(a, `${pathA}/blob`)).toBe(held.md5A);
  });
});
