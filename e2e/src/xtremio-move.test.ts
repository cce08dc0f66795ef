/**
 * End to end on the XtremIO backend (issue 25): two real dataset agents (spawned processes, the
 * LocalAgentBed of localAgents.ts) as two hosts, each with its own initiator IQN, by-id directory
 * and iscsiadm stand-in, against the XtremIO simulator process. A dataset is created, mounted,
 * written on a, moved to b (unmap from a's initiator group, map to b's, the stand-in's "rescan"
 * gives b a loop device behind wwn-0x<naa>), read on b, and deleted (the array's volume goes). The array's
 * refusal of the first creates shows in the node's state with the array's own message. Then the Docker
 * volume plugin beside each agent (driven over its socket as dockerd would, no dockerd): a volume created
 * and written through b's plugin is mounted through a's, which moves it.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type DatasetState } from '@flocker/api';
import { XtremioDriver } from '@flocker/storage-drivers';
import { startSimulatedArray, type SimulatedArray } from '@flocker/storage-drivers/testing';
import { callPlugin } from '@flocker/volume-plugin/testing';
import { killProcessGroups } from './cluster/processes';
import { LocalAgentBed } from './localAgents';

jest.setTimeout(180_000);

const MiB = 1024 * 1024;
const PLUGIN_MAIN = join(resolve(__dirname, '../..'), 'packages/volume-plugin/dist/main.js');

let bed: LocalAgentBed;
let array: SimulatedArray;
const plugins: ChildProcess[] = [];

beforeAll(async () => {
  bed = await LocalAgentBed.start('flocker-e2e-xio-');
  array = await startSimulatedArray('e2e');
  await writeConfig('a');
  await writeConfig('b');
  bed.startAgent('a');
  bed.startAgent('b');
  await bed.waitFor('nodes to report', async () => {
    const known = new Set((await bed.client.listNodes()).map((n) => n.uuid));
    return ['a', 'b'].every((n) => existsSync(join(bed.dir, n, 'state', 'node.json')) && known.has(bed.nodeUuid(n)));
  });
});

afterAll(async () => {
  const survivors = await killProcessGroups(plugins.map((p) => p.pid));
  await bed.close();
  await array.cleanup();
  if (survivors.length > 0) throw new Error(`plugin processes still alive after SIGKILL: ${survivors.join(' ')}`);
});

/** flocker-docker-plugin beside agent `name` (no dockerd), answering on its socket once ready. */
async function startPlugin(name: string): Promise<string> {
  const socket = join(bed.dir, `plugins-${name}`, 'flocker.sock');
  mkdirSync(join(bed.dir, `plugins-${name}`), { recursive: true });
  const log = createWriteStream(join(bed.dir, `plugin-${name}.log`), { flags: 'a' });
  const args = ['--agent-config', bed.configPath(name), '--socket', socket, '--docker-socket', 'none'];
  // In a process group of its own: afterAll ends it whole, with its findmnt watcher and any mount it ran.
  const proc = spawn(process.execPath, [PLUGIN_MAIN, ...args, '--mount-timeout', '90'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  proc.stdout?.pipe(log);
  proc.stderr?.pipe(log);
  plugins.push(proc);
  await bed.waitFor(
    `the plugin of ${name} to answer`,
    async () => (await callPlugin(socket, '/Plugin.Activate').catch(() => undefined))?.status === 200,
  );
  return socket;
}

/** What dockerd sends a plugin; it answers 200 with Err set on failure. */
async function plugin(socket: string, call: string, body: object): Promise<Record<string, unknown>> {
  const reply = await callPlugin(socket, `/VolumeDriver.${call}`, body);
  const answer = reply.body as Record<string, unknown>;
  if (typeof answer['Err'] === 'string' && answer['Err'] !== '') throw new Error(`${call}: ${answer['Err']}`);
  return answer;
}

/** agent.yml of one host: the XtremIO section (JSON is YAML) and the node's own paths. */
async function writeConfig(name: string): Promise<void> {
  const dataset = await array.host(name);
  const node = join(bed.dir, name);
  writeFileSync(
    bed.configPath(name),
    [
      'version: 1',
      `control-service: {hostname: 127.0.0.1, port: ${bed.control.port}}`,
      `dataset: ${JSON.stringify(dataset)}`,
      `node: {state_dir: ${join(node, 'state')}, mount_root: ${join(node, 'mnt')}, era_file: ${join(node, 'era')}}`,
      'agent: {resync_interval_seconds: 1, default_dataset_size: 67108864, backoff_initial_seconds: 0.2, backoff_max_seconds: 2}',
      '',
    ].join('\n'),
  );
}

async function stateOf(datasetId: string): Promise<DatasetState | undefined> {
  return (await bed.client.listDatasetState()).find((s) => s.dataset_id === datasetId);
}

async function waitMountedOn(name: string, datasetId: string): Promise<string> {
  const uuid = bed.nodeUuid(name);
  const path = join(bed.dir, name, 'mnt', datasetId);
  await bed.waitFor(
    `${datasetId} mounted on ${name}`,
    async () => {
      const s = await stateOf(datasetId);
      return s?.primary === uuid && s.path === path;
    },
    60_000,
  );
  return path;
}

describe('dataset agents on XtremIO (simulator)', () => {
  it('creates a dataset on one host (the array refusals shown in the node state until it succeeds), moves it with its data to another, and destroys its volume on delete', async () => {
    const observer = new XtremioDriver(await array.host('observer'));
    const volumesOf = async (id: string) => (await observer.listVolumes()).filter((v) => v.datasetId === id);

    // The array refuses the first creates: its message shows in the node's state, then the agent's retry succeeds.
    await array.fault({ op: 'POST volumes', kind: 'error', message: 'too_many_objs', times: 2 });
    const id = (
      await bed.client.createDataset({ primary: bed.nodeUuid('a'), maximum_size: 64 * MiB, metadata: { name: 'xio' } })
    ).dataset_id;
    const error = await bed.waitFor('the array message in the node state', async () => {
      const cluster = await bed.client.waitForCluster(undefined, 0);
      return cluster.nodes.find((n) => n.uuid === bed.nodeUuid('a'))?.errors.find((e) => e.dataset_id === id);
    });
    expect(error.message).toMatch(/XtremIO answered HTTP 400: too_many_objs/);
    const onA = await waitMountedOn('a', id);
    writeFileSync(join(onA, 'hello.txt'), 'written on a\n');
    execFileSync('sync', ['-f', join(onA, 'hello.txt')]);
    const [volume] = await volumesOf(id);
    expect(volume?.attachedTo).toBe('iqn.1993-08.org.debian:01:a');

    await bed.client.updateDataset(id, { primary: bed.nodeUuid('b') });
    const onB = await waitMountedOn('b', id);
    expect(readFileSync(join(onB, 'hello.txt'), 'utf8')).toBe('written on a\n');
    expect((await volumesOf(id)).map((v) => v.attachedTo)).toEqual(['iqn.1993-08.org.debian:01:b']);

    await bed.client.deleteDataset(id);
    await bed.waitFor(
      'the volume to be destroyed on the array',
      async () => (await volumesOf(id)).length === 0,
      60_000,
    );
    await observer.close();
  });

  it('serves Docker volumes through the plugin: created and written via b, mounted via a (moved with its data)', async () => {
    const [onA, onB] = [await startPlugin('a'), await startPlugin('b')];
    await plugin(onB, 'Create', { Name: 'xio-vol', Opts: { size: '64MiB' } });
    const mountedB = (await plugin(onB, 'Mount', { Name: 'xio-vol', ID: 'container-b' }))['Mountpoint'] as string;
    writeFileSync(join(mountedB, 'via-plugin.txt'), 'from b\n');
    execFileSync('sync', ['-f', join(mountedB, 'via-plugin.txt')]);
    await plugin(onB, 'Unmount', { Name: 'xio-vol', ID: 'container-b' });
    // b keeps the lease (idle leases, the default): a's Mount asks for it, and the control service has b hand it over.
    expect((await bed.client.listLeases()).map((l) => [l.node_uuid, l.release_on_request])).toEqual([
      [bed.nodeUuid('b'), true],
    ]);
    const mountedA = (await plugin(onA, 'Mount', { Name: 'xio-vol', ID: 'container-a' }))['Mountpoint'] as string;
    expect((await bed.client.listLeases()).map((l) => l.node_uuid)).toEqual([bed.nodeUuid('a')]);
    expect(readFileSync(join(mountedA, 'via-plugin.txt'), 'utf8')).toBe('from b\n');
    await plugin(onA, 'Unmount', { Name: 'xio-vol', ID: 'container-a' });
  });
});
