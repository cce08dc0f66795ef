/**
 * A dataset moving between two hosts of the multi-host harness (e2e/src/cluster) on backend scaleio:
 * real control service and dataset agents, the ScaleIO gateway simulator as its own process in the
 * control service's network namespace (agents reach it on the bridge), each host an SDC with its own
 * by-id directory, volumes as loop devices behind emc-vol-<systemId>-<volumeId> links. The agents
 * find their SDC by GUID, map, format, mount; a change of primary unmounts and unmaps on A and maps
 * and mounts on B with the data. Needs root.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { ScaleIoDriver } from '@flocker/storage-drivers';
import { destroyTempRoot } from '@flocker/storage-drivers/testing';
import {
  readFileOn,
  REPO_ROOT,
  TEST_DATASET_SIZE,
  waitFor,
  waitForMountedOn,
  writeFileOn,
  type Cluster,
  type ClusterHost,
} from './cluster';
import { clusterForSuite } from './cluster/suite';

jest.setTimeout(180_000);

const SYSTEM = '7a1c0de500000e2e';
const POOL = 'b0b0b0b000000000';
const USER = 'admin';
const PASSWORD = 'Scaleio123';

let cluster: Cluster;
let a: ClusterHost;
let b: ClusterHost;
let simRoot: string;
let sim: ChildProcess | undefined;
let gatewayForTest: string;
let clusterId: string;

function sdcOf(index: number) {
  return {
    id: `0000e2e00000000${index}`,
    guid: `E2E00000-0000-4000-8000-00000000000${index}`,
    ip: `10.77.0.${11 + index}`,
  };
}

async function startSimulator(netns: string, byIdDirs: string[]): Promise<number> {
  const config = {
    systemId: SYSTEM,
    listen: '0.0.0.0',
    username: USER,
    password: PASSWORD,
    dataDir: path.join(simRoot, 'data'),
    pools: [{ id: POOL, name: 'default' }],
    sdcs: byIdDirs.map((byIdDir, i) => ({ ...sdcOf(i), byIdDir })),
  };
  const main = path.join(REPO_ROOT, 'packages/storage-drivers/dist/scaleio/simulator/main.js');
  sim = spawn('ip', ['netns', 'exec', netns, process.execPath, main, JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const child = sim;
  const first = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`simulator exited with ${code}`)));
  });
  return (JSON.parse(first) as { port: number }).port;
}

function driverForTest(): ScaleIoDriver {
  return new ScaleIoDriver({
    gateway_url: gatewayForTest,
    username: USER,
    password: PASSWORD,
    cluster_id: clusterId,
    storage_pool_id: POOL,
    sdc_guid: sdcOf(0).guid,
    device_by_id_dir: path.join(simRoot, 'unused'),
  });
}

clusterForSuite(
  { hosts: 2, withAgents: false, nodeTimeoutSeconds: 5 },
  async (started) => {
    cluster = started;
    [a, b] = cluster.hosts as [ClusterHost, ClusterHost];
    simRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'flocker-e2e-scaleio-'));
    clusterId = randomUUID();
    const byIdDirs = cluster.hosts.map((h) => path.join(h.layout.dir, 'dev-disk-by-id'));
    const port = await startSimulator(cluster.layout.controlNetns, byIdDirs);
    gatewayForTest = `http://${cluster.layout.controlRootAddress}:${port}`;
    // The harness writes a loopback dataset section; each host gets the scaleio one instead.
    for (const [i, host] of cluster.hosts.entries()) {
      const yaml = await fs.readFile(host.layout.agentConfig, 'utf8');
      const dataset = [
        'dataset:',
        '  backend: scaleio',
        `  gateway_url: http://${cluster.layout.controlBridgeAddress}:${port}`,
        `  username: ${USER}`,
        `  password: ${PASSWORD}`,
        `  cluster_id: ${clusterId}`,
        `  storage_pool_id: ${POOL}`,
        `  sdc_guid: ${sdcOf(i).guid}`,
        `  device_by_id_dir: ${JSON.stringify(byIdDirs[i])}`,
        '  operation_timeout_seconds: 30',
      ].join('\n');
      const replaced = yaml.replace(/^dataset:\n(?: {2}.*\n)+/m, `${dataset}\n`);
      if (replaced === yaml) throw new Error('no dataset section in the harness agent.yml');
      await fs.writeFile(host.layout.agentConfig, replaced);
      await host.startAgent();
    }
  },
  async () => {
    // Datasets go first (agents unmount, unmap, remove), then the simulator (unmaps anything left).
    const d = driverForTest();
    try {
      for (const ds of await cluster.client.listDatasets())
        if (ds.deleted !== true) await cluster.client.deleteDataset(ds.dataset_id);
      await waitFor(
        'the datasets’ volumes to be removed',
        async () => ((await d.listVolumes()).length === 0 ? true : undefined),
        {
          timeoutMs: 60_000,
          intervalMs: 250,
        },
      );
    } finally {
      await d.close();
      if (sim !== undefined && sim.exitCode === null) {
        const exited = new Promise((resolve) => sim?.once('exit', resolve));
        sim.kill('SIGTERM');
        await exited;
      }
      await destroyTempRoot(simRoot);
    }
  },
);

it('moves a dataset with its data from A to B through SDC mappings', async () => {
  const d = await cluster.client.createDataset({
    primary: a.requireNodeUuid(),
    maximum_size: TEST_DATASET_SIZE,
    metadata: { name: 'scaleio-move' },
  });
  const pathA = await waitForMountedOn(cluster.client, d.dataset_id, a.requireNodeUuid(), 60_000);
  const content = `scaleio ${randomUUID()}\n`;
  await writeFileOn(a, path.join(pathA, 'data.txt'), content);

  const driver = driverForTest();
  try {
    const [volume] = (await driver.listVolumes()).filter((v) => v.datasetId === d.dataset_id);
    expect(volume).toMatchObject({ attachedTo: sdcOf(0).id, size: 8 * 1024 ** 3 });
    const linkA = path.join(a.layout.dir, 'dev-disk-by-id', `emc-vol-${SYSTEM}-${volume?.blockdeviceId}`);
    expect((await fs.lstat(linkA)).isSymbolicLink()).toBe(true);

    await cluster.client.updateDataset(d.dataset_id, { primary: b.requireNodeUuid() });
    const pathB = await waitForMountedOn(cluster.client, d.dataset_id, b.requireNodeUuid(), 60_000);
    expect(await readFileOn(b, path.join(pathB, 'data.txt'))).toBe(content);
    const [moved] = (await driver.listVolumes()).filter((v) => v.datasetId === d.dataset_id);
    expect(moved).toMatchObject({ blockdeviceId: volume?.blockdeviceId, attachedTo: sdcOf(1).id });
    await expect(fs.lstat(linkA)).rejects.toMatchObject({ code: 'ENOENT' });
  } finally {
    await driver.close();
  }
});
