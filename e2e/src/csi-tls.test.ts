/**
 * flocker-csi over mutual TLS, each side with the certificate of its role: the controller
 * with an API user's, the node plugin with its node's (and its node id from it). A real
 * dataset agent (loopback) over TLS; the volume's full life: create, stage, publish,
 * write, unpublish, unstage, delete. A controller holding a mere node certificate is
 * refused by the control service's rules: PERMISSION_DENIED.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FlockerClient } from '@flocker/api';
import { startControlService, type ControlService } from '@flocker/control-api';
import { createCsiClient, grpcCode, type CsiClient } from '@flocker/csi-driver';
import { ClusterPki } from './cluster/pki';
import { killProcessGroups } from './cluster/processes';
import { waitFor } from './cluster/run';
import { releaseMountsAndLoops } from './localAgents';
import { removeTree } from './removeTree';
import winston from 'winston';

jest.setTimeout(180_000);

const REPO = path.resolve(__dirname, '../..');
const AGENT_MAIN = path.join(REPO, 'packages/dataset-agent/dist/main.js');
const CSI_PACKAGE = path.join(REPO, 'packages/csi-driver');
const CSI_MAIN = path.join(CSI_PACKAGE, 'dist/main.js');
const MiB = 1024 * 1024;
const silent = winston.createLogger({ silent: true });

let dir: string;
let pki: ClusterPki;
let control: ControlService;
const children: ChildProcess[] = [];
const clients: CsiClient[] = [];

function spawnLogged(name: string, args: string[]): void {
  const log = fs.createWriteStream(path.join(dir, `${name}.log`), { flags: 'a' });
  // In a process group of its own: afterAll ends it whole, with any losetup or mount it ran.
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  children.push(child);
}

function logs(): string {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .map((f) => `--- ${f}\n${fs.readFileSync(path.join(dir, f), 'utf8').split('\n').slice(-15).join('\n')}`)
    .join('\n');
}

async function startCsi(name: string, args: string[]): Promise<CsiClient> {
  const socket = path.join(dir, `${name}.sock`);
  spawnLogged(name, [
    CSI_MAIN,
    '--endpoint',
    socket,
    '--control-url',
    control.url,
    '--cacert',
    pki.caFile,
    '--stage-timeout',
    '60',
    '--default-size',
    '64MiB',
    ...args,
  ]);
  await waitFor(`${name}'s socket`, () => fs.existsSync(socket), { timeoutMs: 30_000, context: logs });
  const c = createCsiClient(socket);
  clients.push(c);
  return c;
}

beforeAll(async () => {
  execFileSync('bash', [path.join(CSI_PACKAGE, 'scripts/fetch-proto.sh')], { stdio: 'inherit' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-csi-tls-'));
  pki = await ClusterPki.create(path.join(dir, 'pki'), ['127.0.0.1']);
  control = await startControlService({
    port: 0,
    host: '127.0.0.1',
    dataDir: path.join(dir, 'control'),
    logger: silent,
    tls: pki.serverCredentials(),
  });
});

afterAll(async () => {
  for (const c of clients) c.close();
  const survivors = await killProcessGroups(children.map((c) => c.pid));
  await control?.close();
  if (!dir) return;
  releaseMountsAndLoops(dir);
  removeTree(dir);
  if (survivors.length > 0) throw new Error(`processes still alive after SIGKILL: ${survivors.join(' ')}`);
});

describe('flocker-csi over mutual TLS', () => {
  it('controller as an API user, node plugin as its node (id from its certificate): a volume from create to delete', async () => {
    const configDir = path.join(dir, 'node1');
    fs.mkdirSync(configDir, { recursive: true, mode: 0o700 });
    const uuid = await pki.installNode(configDir);
    fs.writeFileSync(
      path.join(configDir, 'agent.yml'),
      [
        'version: 1',
        `control-service: {hostname: 127.0.0.1, port: ${control.port}}`,
        `dataset: {backend: loopback, root_path: ${path.join(dir, 'pool')}}`,
        `node: {state_dir: ${path.join(configDir, 'state')}, mount_root: ${path.join(configDir, 'mnt')}, host: 127.0.0.1}`,
        'agent: {resync_interval_seconds: 1}',
        '',
      ].join('\n'),
    );
    spawnLogged('agent', [AGENT_MAIN, '--config', path.join(configDir, 'agent.yml')]);
    const admin = new FlockerClient({ baseUrl: control.url, dispatcher: await pki.userDispatcher('admin') });
    const user = await pki.user('csi-controller');
    // A controller holding another node's certificate (refused below).
    const stranger = path.join(dir, 'stranger');
    await pki.installNode(stranger);
    // The three plugins start while the agent comes up (one after another after it they were most of this test).
    const [controller, node, wrong] = await Promise.all([
      startCsi('controller', ['--mode', 'controller', '--cert', user.cert, '--key', user.key]),
      // No --node-id and a state dir without node.json: the id comes from the node certificate.
      startCsi('node', [
        '--mode',
        'node',
        '--cert',
        path.join(configDir, 'node.crt'),
        '--key',
        path.join(configDir, 'node.key'),
        '--state-dir',
        path.join(dir, 'empty'),
      ]),
      startCsi('wrong-controller', [
        '--mode',
        'controller',
        '--cert',
        path.join(stranger, 'node.crt'),
        '--key',
        path.join(stranger, 'node.key'),
      ]),
    ]);
    await waitFor('the agent to report', async () => (await admin.listNodes()).some((n) => n.uuid === uuid), {
      timeoutMs: 60_000,
      context: logs,
    });
    expect(await node.node.NodeGetInfo!({})).toMatchObject({ node_id: uuid });
    expect(await node.identity.Probe!({})).toMatchObject({ ready: { value: true } });
    expect(await controller.identity.Probe!({})).toMatchObject({ ready: { value: true } });

    const cap = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
    const created = (await controller.controller.CreateVolume!({
      name: 'pvc-tls',
      capacity_range: { required_bytes: 64 * MiB },
      volume_capabilities: [cap],
    })) as {
      volume: { volume_id: string };
    };
    const id = created.volume.volume_id;
    const staging = path.join(dir, 'kubelet', 'staging');
    const target = path.join(dir, 'kubelet', 'pods', 'p', 'volume');
    fs.mkdirSync(staging, { recursive: true });
    await node.node.NodeStageVolume!({ volume_id: id, staging_target_path: staging, volume_capability: cap });
    await node.node.NodePublishVolume!({
      volume_id: id,
      staging_target_path: staging,
      target_path: target,
      volume_capability: cap,
    });
    fs.writeFileSync(path.join(target, 'f'), 'over TLS\n');
    expect(fs.readFileSync(path.join(target, 'f'), 'utf8')).toBe('over TLS\n');
    expect((await admin.listLeases()).find((l) => l.dataset_id === id)?.node_uuid).toBe(uuid);
    await node.node.NodeUnpublishVolume!({ volume_id: id, target_path: target });
    await node.node.NodeUnstageVolume!({ volume_id: id, staging_target_path: staging });
    expect((await admin.listLeases()).find((l) => l.dataset_id === id)).toBeUndefined();
    await controller.controller.DeleteVolume!({ volume_id: id });
    expect((await admin.listDatasets()).find((d) => d.dataset_id === id)?.deleted ?? true).toBe(true);

    // A controller holding another node's certificate may not create a volume on this node.
    const refused = await wrong.controller.CreateVolume!({ name: 'pvc-refused', volume_capabilities: [cap] }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(grpcCode(refused)).toBe(7); // PERMISSION_DENIED
    expect(String(refused)).toMatch(/FORBIDDEN/);
  });
});
