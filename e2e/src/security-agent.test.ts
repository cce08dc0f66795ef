/**
 * The dataset agent's TLS conventions: node.crt, node.key and cluster.crt beside
 * agent.yml mean HTTPS as that node; the certificate is the node's identity.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import winston from 'winston';
import { FlockerClient } from '@flocker/api';
import { startControlService, type ControlService } from '@flocker/control-api';
import { ClusterPki } from './cluster/pki';
import { REPO_ROOT } from './cluster/Cluster';
import { killProcessGroups } from './cluster/processes';
import { waitFor } from './cluster/run';
import { releaseMountsAndLoopsOrThrow } from './loopPools';
import { removeTree } from './removeTree';

const AGENT_MAIN = path.join(REPO_ROOT, 'packages/dataset-agent/dist/main.js');
const silent = winston.createLogger({ silent: true });

describe('dataset agent over mutual TLS', () => {
  let dir: string;
  let pki: ClusterPki;
  let control: ControlService;
  let admin: FlockerClient;
  const children: ChildProcess[] = [];

  function writeAgentYml(configDir: string, extra = ''): string {
    fs.mkdirSync(configDir, { recursive: true, mode: 0o700 });
    const file = path.join(configDir, 'agent.yml');
    fs.writeFileSync(
      file,
      [
        'version: 1',
        `control-service: {hostname: 127.0.0.1, port: ${control.port}${extra}}`,
        `dataset: {backend: loopback, root_path: ${path.join(dir, 'pool')}}`,
        `node: {state_dir: ${path.join(configDir, 'state')}, mount_root: ${path.join(configDir, 'mnt')}, host: 127.0.0.1}`,
        'agent: {resync_interval_seconds: 1}',
        '',
      ].join('\n'),
    );
    return file;
  }

  function startAgent(config: string): {
    child: ChildProcess;
    exited: Promise<{ code: number | null; output: string }>;
  } {
    // In a process group of its own: afterAll ends it whole, with any losetup or mount it ran.
    const child = spawn(process.execPath, [AGENT_MAIN, '--config', config], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    children.push(child);
    let output = '';
    child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<{ code: number | null; output: string }>((resolve) =>
      child.on('exit', (code) => resolve({ code, output })),
    );
    return { child, exited };
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-agent-tls-'));
    pki = await ClusterPki.create(path.join(dir, 'pki'), ['127.0.0.1']);
    control = await startControlService({
      port: 0,
      host: '127.0.0.1',
      dataDir: path.join(dir, 'control'),
      logger: silent,
      tls: pki.serverCredentials(),
    });
    admin = new FlockerClient({ baseUrl: control.url, dispatcher: await pki.userDispatcher('admin') });
  });
  afterAll(async () => {
    const survivors = await killProcessGroups(children.map((c) => c.pid));
    await control?.close();
    // The loopback pool's devices (its spares) and mounts, then the directory.
    releaseMountsAndLoopsOrThrow(dir);
    removeTree(dir);
    if (survivors.length > 0) throw new Error(`agent processes still alive after SIGKILL: ${survivors.join(' ')}`);
  });

  it('reports over HTTPS as the node its certificate names; node.json follows the certificate', async () => {
    const configDir = path.join(dir, 'node1');
    const config = writeAgentYml(configDir);
    const uuid = await pki.installNode(configDir);
    // A node.json from before the certificate, naming another UUID.
    fs.mkdirSync(path.join(configDir, 'state'), { recursive: true });
    fs.writeFileSync(path.join(configDir, 'state', 'node.json'), JSON.stringify({ uuid: randomUUID() }));
    const { child } = startAgent(config);
    await waitFor(
      'the agent to report as its certificate',
      async () => ((await admin.listNodes()).some((n) => n.uuid === uuid) ? true : undefined),
      {
        timeoutMs: 30_000,
        intervalMs: 100,
      },
    );
    expect(JSON.parse(fs.readFileSync(path.join(configDir, 'state', 'node.json'), 'utf8'))).toEqual({ uuid });
    child.kill('SIGTERM');
  }, 60_000);

  it('refuses to start with a partial set of TLS files, naming the missing one', async () => {
    const configDir = path.join(dir, 'node2');
    const config = writeAgentYml(configDir);
    await pki.installNode(configDir);
    fs.rmSync(path.join(configDir, 'node.key'));
    const { code, output } = await startAgent(config).exited;
    expect(code).not.toBe(0);
    expect(output).toMatch(/node\.key/);
  }, 30_000);

  it('refuses a key that does not belong to the certificate', async () => {
    const configDir = path.join(dir, 'node3');
    const config = writeAgentYml(configDir);
    await pki.installNode(configDir);
    const other = path.join(dir, 'other');
    await pki.installNode(other);
    fs.copyFileSync(path.join(other, 'node.key'), path.join(configDir, 'node.key'));
    const { code, output } = await startAgent(config).exited;
    expect(code).not.toBe(0);
    expect(output).toMatch(/does not belong to/);
  }, 30_000);

  it('explicit files in agent.yml override the defaults; an API user certificate is not a node identity', async () => {
    const configDir = path.join(dir, 'node4');
    const user = await pki.user('alice');
    const config = writeAgentYml(configDir, `, ca_file: ${pki.caFile}, cert_file: ${user.cert}, key_file: ${user.key}`);
    const { code, output } = await startAgent(config).exited;
    expect(code).not.toBe(0);
    expect(output).toMatch(/not a node certificate/);
  }, 30_000);
});
