/**
 * End to end (issue 19): one volume used on one node at once by a pod (flocker-csi's node
 * service) and a Docker container (flocker-docker-plugin), each holding its own share of the
 * node's lease: the lease ends only when the last lets go, so neither's release lets another
 * node take the volume from under the other. Real processes: the control service (in process),
 * two dataset agents on one loopback pool (real loop devices, ext4, mounts), flocker-csi beside
 * each, and the Docker plugin beside agent a, driven over its socket as dockerd would. Needs root.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FlockerApiError, type Lease } from '@flocker/api';
import { createCsiClient, grpcCode, type CsiClient } from '@flocker/csi-driver';
import { callPlugin } from '@flocker/volume-plugin/testing';
import { killProcessGroups } from './cluster/processes';
import { LocalAgentBed } from './localAgents';

jest.setTimeout(240_000);

const REPO = resolve(__dirname, '../..');
const CSI_MAIN = join(REPO, 'packages/csi-driver/dist/main.js');
const PLUGIN_MAIN = join(REPO, 'packages/volume-plugin/dist/main.js');
const MiB = 1024 * 1024;
const CAP = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
const FAILED_PRECONDITION = 9;

let bed: LocalAgentBed;
const procs: ChildProcess[] = [];
const clients: CsiClient[] = [];
let csiA: CsiClient;
let csiB: CsiClient;
let pluginSocket: string;

function spawnLogged(name: string, args: string[]): void {
  const log = createWriteStream(join(bed.dir, `${name}.log`), { flags: 'a' });
  // In a process group of its own: afterAll ends it whole, with any mount it ran.
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  proc.stdout?.pipe(log);
  proc.stderr?.pipe(log);
  procs.push(proc);
}

/** flocker-csi (node service) beside agent `name`, on <dir>/csi-<name>.sock. */
async function startCsi(name: string): Promise<CsiClient> {
  const socket = join(bed.dir, `csi-${name}.sock`);
  spawnLogged(`csi-${name}`, [
    CSI_MAIN,
    '--endpoint',
    `unix://${socket}`,
    '--mode',
    name === 'a' ? 'all' : 'node',
    '--control-url',
    bed.control.url,
    '--state-dir',
    join(bed.dir, name, 'state'),
    '--default-size',
    '64MiB',
    '--stage-timeout',
    '60',
    '--handover-wait',
    '1',
  ]);
  await bed.waitFor(`the CSI socket of ${name}`, () => existsSync(socket));
  const client = createCsiClient(socket);
  clients.push(client);
  return client;
}

beforeAll(async () => {
  bed = await LocalAgentBed.start('flocker-shared-lease-');
  for (const name of ['a', 'b']) {
    const before = (await bed.client.listNodes()).length;
    bed.startAgent(name);
    await bed.waitFor(`agent ${name} to report`, async () => (await bed.client.listNodes()).length === before + 1);
  }
  csiA = await startCsi('a');
  csiB = await startCsi('b');
  // The Docker plugin beside agent a (its node UUID and control service from a's agent.yml), no dockerd.
  pluginSocket = join(bed.dir, 'plugins', 'flocker.sock');
  mkdirSync(join(bed.dir, 'plugins'), { recursive: true });
  spawnLogged('plugin-a', [
    PLUGIN_MAIN,
    '--agent-config',
    bed.configPath('a'),
    '--socket',
    pluginSocket,
    '--docker-socket',
    'none',
    '--mount-timeout',
    '60',
    // The shares' counting, not idle leases: the plugin's share goes after its last Unmount.
    '--idle-lease-seconds',
    '0',
  ]);
  await bed.waitFor(
    'the plugin to answer',
    async () => (await callPlugin(pluginSocket, '/Plugin.Activate').catch(() => undefined))?.status === 200,
  );
});

afterAll(async () => {
  for (const c of clients) c.close();
  const survivors = await killProcessGroups(procs.map((p) => p.pid));
  await bed?.close();
  if (survivors.length > 0) throw new Error(`processes still alive after SIGKILL: ${survivors.join(' ')}`);
});

/** What Docker sends the plugin; the plugin answers 200 with Err set on failure. */
async function plugin(call: string, body: object): Promise<Record<string, unknown>> {
  const reply = await callPlugin(pluginSocket, `/VolumeDriver.${call}`, body);
  const answer = reply.body as Record<string, unknown>;
  if (typeof answer['Err'] === 'string' && answer['Err'] !== '') throw new Error(`${call}: ${answer['Err']}`);
  return answer;
}

async function leaseOf(id: string): Promise<Lease | undefined> {
  return (await bed.client.listLeases()).find((l) => l.dataset_id === id);
}

/** The kubelet's paths of a pod on node `n`. */
function kubelet(n: string, pod: string): { staging: string; target: string } {
  const staging = join(bed.dir, `${n}-kubelet`, 'staging', pod);
  mkdirSync(staging, { recursive: true });
  return { staging, target: join(bed.dir, `${n}-kubelet`, 'pods', pod, 'volume') };
}

async function stageAndPublish(csi: CsiClient, id: string, p: { staging: string; target: string }): Promise<void> {
  await csi.node.NodeStageVolume!({ volume_id: id, staging_target_path: p.staging, volume_capability: CAP });
  await csi.node.NodePublishVolume!({
    volume_id: id,
    staging_target_path: p.staging,
    target_path: p.target,
    volume_capability: CAP,
  });
}

async function unpublishAndUnstage(csi: CsiClient, id: string, p: { staging: string; target: string }): Promise<void> {
  await csi.node.NodeUnpublishVolume!({ volume_id: id, target_path: p.target });
  await csi.node.NodeUnstageVolume!({ volume_id: id, staging_target_path: p.staging });
}

/** Node b may have neither the volume (a stage there is FAILED_PRECONDITION) nor may it move there (409). */
async function expectKeptOnA(id: string, usedBy: string): Promise<void> {
  const refused = await csiB.node.NodeStageVolume!({
    volume_id: id,
    staging_target_path: kubelet('b', 'refused').staging,
    volume_capability: CAP,
  }).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(grpcCode(refused)).toBe(FAILED_PRECONDITION);
  expect(String(refused)).toContain(`(it holds the lease; used there by ${usedBy})`);
  const moved = await bed.client.updateDataset(id, { primary: bed.nodeUuid('b') }).catch((err: unknown) => err);
  expect(moved).toBeInstanceOf(FlockerApiError);
  expect(moved).toMatchObject({ status: 409, code: 'LEASE_HELD' });
  expect((await bed.client.listDatasets()).find((d) => d.dataset_id === id)?.primary).toBe(bed.nodeUuid('a'));
}

/** The volume moves to b (its lease gone), is staged there with the data, and is let go again. */
async function expectMovesToB(id: string, file: string, text: string): Promise<void> {
  const p = kubelet('b', `moved-${file}`);
  await stageAndPublish(csiB, id, p);
  expect(readFileSync(join(p.target, file), 'utf8')).toBe(text);
  expect((await leaseOf(id))?.node_uuid).toBe(bed.nodeUuid('b'));
  await unpublishAndUnstage(csiB, id, p);
  expect(await leaseOf(id)).toBeUndefined();
}

async function createVolume(name: string): Promise<string> {
  const created = (await csiA.controller.CreateVolume!({
    name,
    capacity_range: { required_bytes: 64 * MiB },
    volume_capabilities: [CAP],
  })) as { volume: { volume_id: string } };
  return created.volume.volume_id;
}

describe('a pod and a Docker container on one node share its lease on a volume', () => {
  it('pod first: unstaging it keeps the lease for the container; the last Unmount ends it', async () => {
    const id = await createVolume('shared-pod-first');
    const pod = kubelet('a', 'pod-first');
    await stageAndPublish(csiA, id, pod);
    writeFileSync(join(pod.target, 'pod.txt'), 'from the pod\n');
    expect((await leaseOf(id))?.holders).toEqual(['csi']);

    // The Docker container mounts the same volume (by its name): the plugin adds its share.
    const mounted = await plugin('Mount', { Name: 'shared-pod-first', ID: 'container-1' });
    const mountpoint = String(mounted['Mountpoint']);
    expect(readFileSync(join(mountpoint, 'pod.txt'), 'utf8')).toBe('from the pod\n');
    expect((await leaseOf(id))?.holders).toEqual(['csi', 'docker']);

    // The pod goes: the container still uses the volume, so the lease stays and b cannot take it.
    await unpublishAndUnstage(csiA, id, pod);
    expect(await leaseOf(id)).toEqual({
      dataset_id: id,
      node_uuid: bed.nodeUuid('a'),
      expires: null,
      holders: ['docker'],
    });
    await expectKeptOnA(id, 'docker');
    writeFileSync(join(mountpoint, 'container.txt'), 'from the container\n');

    // The container goes: its Unmount lets go of the last share and the lease ends; b may have it.
    await plugin('Unmount', { Name: 'shared-pod-first', ID: 'container-1' });
    await bed.waitFor('the lease to end', async () => (await leaseOf(id)) === undefined, 10_000);
    await expectMovesToB(id, 'container.txt', 'from the container\n');
  });

  it('container first: its last Unmount keeps the lease for the pod; unstaging the pod ends it', async () => {
    const id = await createVolume('shared-container-first');
    const mounted = await plugin('Mount', { Name: 'shared-container-first', ID: 'container-2' });
    const mountpoint = String(mounted['Mountpoint']);
    writeFileSync(join(mountpoint, 'container.txt'), 'from the container\n');
    expect((await leaseOf(id))?.holders).toEqual(['docker']);

    const pod = kubelet('a', 'pod-second');
    await stageAndPublish(csiA, id, pod);
    expect(readFileSync(join(pod.target, 'container.txt'), 'utf8')).toBe('from the container\n');
    expect((await leaseOf(id))?.holders).toEqual(['docker', 'csi']);

    // The container goes (Unmount answers, then the plugin lets go of its share): the pod keeps the lease.
    await plugin('Unmount', { Name: 'shared-container-first', ID: 'container-2' });
    await bed.waitFor('the plugin to let go of its share', async () => (await leaseOf(id))?.holders?.join() === 'csi');
    expect(await leaseOf(id)).toEqual({
      dataset_id: id,
      node_uuid: bed.nodeUuid('a'),
      expires: null,
      holders: ['csi'],
    });
    await expectKeptOnA(id, 'csi');
    writeFileSync(join(pod.target, 'pod.txt'), 'from the pod\n');

    // The pod goes: the last share, the lease ends; b may have the volume, with the pod's data.
    await unpublishAndUnstage(csiA, id, pod);
    expect(await leaseOf(id)).toBeUndefined();
    await expectMovesToB(id, 'pod.txt', 'from the pod\n');
  });
});
