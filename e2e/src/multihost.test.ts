/**
 * Several hosts on one machine (e2e/src/cluster): volumes follow containers.
 * Real control service, dataset agents, volume plugins and dockerds; needs root.
 */
import { randomUUID } from 'node:crypto';
import {
  isMountedOn,
  md5On,
  readFileOn,
  sleep,
  TEST_DATASET_SIZE,
  TINY_IMAGE,
  VOLUME_DRIVER,
  waitForMountedOn,
  writeBlobOn,
  writeFileOn,
  type Cluster,
  type ClusterHost,
} from './cluster';
import { clusterForSuite } from './cluster/suite';

jest.setTimeout(120_000);

let cluster: Cluster;
let a: ClusterHost;
let b: ClusterHost;
let c: ClusterHost;

clusterForSuite({ hosts: 3, withDocker: true, nodeTimeoutSeconds: 5 }, (started) => {
  cluster = started;
  [a, b, c] = cluster.hosts as [ClusterHost, ClusterHost, ClusterHost];
});

async function createMountedDataset(host: ClusterHost, name: string): Promise<{ id: string; path: string }> {
  const d = await cluster.client.createDataset({
    primary: host.requireNodeUuid(),
    maximum_size: TEST_DATASET_SIZE,
    metadata: { name },
  });
  const path = await waitForMountedOn(cluster.client, d.dataset_id, host.requireNodeUuid());
  return { id: d.dataset_id, path };
}

const volumeRun = (host: ClusterHost, volume: string, script: string, extra: string[] = []) =>
  host.docker(
    [
      'run',
      '--rm',
      '-v',
      `${volume}:/data`,
      `--volume-driver=${VOLUME_DRIVER}`,
      ...extra,
      TINY_IMAGE,
      'sh',
      '-c',
      script,
    ],
    {
      check: false,
      timeoutMs: 150_000,
    },
  );

describe('a cluster of three hosts', () => {
  it('gives every host its own hostname, address, Docker daemon and node', async () => {
    const names = await Promise.all(cluster.hosts.map(async (h) => (await h.exec(['hostname'])).stdout.trim()));
    expect(names).toEqual(['host-a', 'host-b', 'host-c']);
    const ids = await Promise.all(
      cluster.hosts.map(async (h) => (await h.docker(['info', '--format', '{{.ID}}'])).stdout.trim()),
    );
    expect(new Set(ids).size).toBe(3);
    const nodes = await cluster.client.listNodes();
    expect(nodes.map((n) => n.host).sort()).toEqual(['10.77.0.11', '10.77.0.12', '10.77.0.13']);
    expect(new Set(cluster.hosts.map((h) => h.requireNodeUuid())).size).toBe(3);
  });
});

describe('volumes follow containers', () => {
  it('(1) moves a mounted, unused dataset A→B when its primary changes; a file written on A is read on B', async () => {
    const { id, path: pathA } = await createMountedDataset(a, `api-${randomUUID().slice(0, 8)}`);
    await writeFileOn(a, `${pathA}/hello`, 'written on A\n');
    const md5 = await writeBlobOn(a, pathA, 4);

    const t0 = Date.now();
    await cluster.client.updateDataset(id, { primary: b.requireNodeUuid() });
    const pathB = await waitForMountedOn(cluster.client, id, b.requireNodeUuid());
    const moveMs = Date.now() - t0;

    expect(await readFileOn(b, `${pathB}/hello`)).toBe('written on A\n');
    expect(await md5On(b, `${pathB}/blob`)).toBe(md5);
    expect(await isMountedOn(a, pathA)).toBe(false);
    expect(moveMs).toBeLessThan(20_000);
  });

  it('(2) `docker run -v vol:/data --volume-driver=flocker` on B moves a volume last used on A, with its data', async () => {
    const vol = `pg-${randomUUID().slice(0, 8)}`;
    const onA = await volumeRun(
      a,
      vol,
      'echo "written on $(hostname)" > /data/hello && dd if=/dev/urandom of=/data/blob bs=1M count=2 2>/dev/null && md5sum /data/blob > /data/blob.md5',
    );
    expect(onA.stderr).toBe('');
    expect(onA.code).toBe(0);
    const onB = await volumeRun(b, vol, 'cat /data/hello && md5sum -c /data/blob.md5 && grep " /data " /proc/mounts');
    expect(onB.code).toBe(0);
    expect(onB.stdout).toMatch(/^written on [0-9a-f]+\n\/data\/blob: OK\n\/dev\/loop\d+ \/data ext4/);
    // And on to a third host.
    const onC = await volumeRun(c, vol, 'md5sum -c /data/blob.md5');
    expect(onC.stdout).toContain('/data/blob: OK');
  });

  it('(3) while a container on A uses the volume, `docker run` on B fails fast and clearly; after it stops, B gets the volume', async () => {
    const vol = `held-${randomUUID().slice(0, 8)}`;
    const holder = `holder-${randomUUID().slice(0, 8)}`;
    await a.docker([
      'run',
      '-d',
      '--name',
      holder,
      '--init',
      '-v',
      `${vol}:/data`,
      `--volume-driver=${VOLUME_DRIVER}`,
      TINY_IMAGE,
      'sh',
      '-c',
      'echo held-by-a > /data/owner && exec sleep 600',
    ]);
    try {
      await waitFor(
        async () => (await a.docker(['exec', holder, 'cat', '/data/owner'], { check: false })).stdout === 'held-by-a\n',
      );
      const t0 = Date.now();
      const refused = await volumeRun(b, vol, 'cat /data/owner');
      const refusedMs = Date.now() - t0;
      expect(refused.code).not.toBe(0);
      // Idle leases (the default): A's plugin declines the hand-over, the control service says why.
      expect(refused.stderr).toMatch(/in use|declined to let go of it: a container on \S+ uses it/i);
      expect(refused.stderr).toContain(a.address);
      expect(refusedMs).toBeLessThan(10_000);
      // The refused attempt must not have disturbed A's container.
      expect((await a.docker(['exec', holder, 'cat', '/data/owner'])).stdout).toBe('held-by-a\n');
    } finally {
      await a.docker(['rm', '-f', holder]);
    }
    const taken = await volumeRun(b, vol, 'cat /data/owner');
    expect(taken.stderr).toBe('');
    expect(taken.stdout).toBe('held-by-a\n');
  });
});

describe('(6) a component killed with SIGKILL in the middle of a move', () => {
  it("the source host's agent killed right after the move is requested, restarted: the move completes, data intact", async () => {
    const { id, path: pathA } = await createMountedDataset(a, `k1-${randomUUID().slice(0, 8)}`);
    const md5 = await writeBlobOn(a, pathA, 8);
    await cluster.client.updateDataset(id, { primary: b.requireNodeUuid() });
    await a.killAgent('SIGKILL');
    await sleep(200);
    await a.startAgent();
    const pathB = await waitForMountedOn(cluster.client, id, b.requireNodeUuid());
    expect(await md5On(b, `${pathB}/blob`)).toBe(md5);
    expect(await isMountedOn(a, pathA)).toBe(false);
  });

  it("the destination host's agent killed before the move, restarted later: the move completes, data intact", async () => {
    const { id, path: pathA } = await createMountedDataset(a, `k2-${randomUUID().slice(0, 8)}`);
    const md5 = await writeBlobOn(a, pathA, 8);
    await b.killAgent('SIGKILL');
    await cluster.client.updateDataset(id, { primary: b.requireNodeUuid() });
    await sleep(1_000); // A detaches meanwhile; B is not there to attach
    await b.startAgent();
    const pathB = await waitForMountedOn(cluster.client, id, b.requireNodeUuid());
    expect(await md5On(b, `${pathB}/blob`)).toBe(md5);
  });

  it.each([
    { agent: 'source', crashing: () => a, crashAfter: 'unmount:1', step: 'unmounting (before detaching)', tag: 'k4' },
    { agent: 'destination', crashing: () => b, crashAfter: 'attach:1', step: 'attaching (before mounting)', tag: 'k5' },
  ])(
    'the $agent agent SIGKILLs itself right after $step; restarted, the move completes',
    async ({ crashing, crashAfter, tag }) => {
      const host = crashing();
      const { id, path: pathA } = await createMountedDataset(a, `${tag}-${randomUUID().slice(0, 8)}`);
      const md5 = await writeBlobOn(a, pathA, 8);
      await host.killAgent('SIGTERM');
      await host.startAgent({ env: { FLOCKER_AGENT_CRASH_AFTER: crashAfter } });
      await cluster.client.updateDataset(id, { primary: b.requireNodeUuid() });
      await waitFor(async () => host.agentPid() === undefined);
      await host.startAgent();
      const pathB = await waitForMountedOn(cluster.client, id, b.requireNodeUuid());
      expect(await md5On(b, `${pathB}/blob`)).toBe(md5);
    },
  );

  it('the volume plugin on B killed while `docker run` waits for the volume, restarted: the next run gets the volume, data intact', async () => {
    const vol = `k3-${randomUUID().slice(0, 8)}`;
    const onA = await volumeRun(
      a,
      vol,
      'dd if=/dev/urandom of=/data/blob bs=1M count=4 2>/dev/null && md5sum /data/blob > /data/blob.md5',
    );
    expect(onA.code).toBe(0);
    const pending = volumeRun(b, vol, 'md5sum -c /data/blob.md5');
    await sleep(150);
    await b.killPlugin('SIGKILL');
    await b.startPlugin();
    const first = await pending; // may fail: Docker lost its plugin connection
    const second = first.code === 0 ? first : await volumeRun(b, vol, 'md5sum -c /data/blob.md5');
    expect(second.stderr).toBe('');
    expect(second.stdout).toContain('/data/blob: OK');
    // Docker's view on B is consistent again: the volume can be used twice more.
    expect((await volumeRun(b, vol, 'true')).code).toBe(0);
  });
});

async function waitFor(probe: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(50);
  }
}
