/**
 * Review T4 (session 19): every control replica killed -9 at once and started again 3 s later on the
 * same ports (a power cut of the control hosts, `systemctl restart` on all of them), under one real
 * agent with a mounted, leased dataset. The outage is shorter than the self-fence bound F = T/2, so
 * nothing may change for the node: no fence, no unmount, the lease kept, no node declared dead.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { killProcessGroup } from './cluster/processes';
import { waitFor as waitUntil } from './cluster/run';
import { FlockerClient } from '@flocker/api';
import { EtcdTestCluster } from '@flocker/control-api/testing';
import { releaseMountsAndLoopsOrThrow } from './loopPools';
import { removeTree } from './removeTree';

jest.setTimeout(180_000);

const REPO = resolve(__dirname, '../..');
const CONTROL_MAIN = join(REPO, 'packages/control-api/dist/main.js');
const AGENT_MAIN = join(REPO, 'packages/dataset-agent/dist/main.js');
const MiB = 1024 * 1024;
const NODE_TIMEOUT_S = 10;
const LEASE_GRACE_S = 2;

const Listening = z.object({ listening: z.string(), port: z.number() });
const NodeJson = z.object({ uuid: z.string() });

class Replica {
  proc: ChildProcess | undefined;
  url = '';
  constructor(
    private readonly args: string[],
    private readonly logFile: string,
  ) {}
  port = 0;
  async start(): Promise<void> {
    const proc = spawn(
      process.execPath,
      [
        CONTROL_MAIN,
        '--insecure-http',
        '--host',
        '127.0.0.1',
        '--port',
        String(this.port),
        '--log-level',
        'info',
        ...this.args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.proc = proc;
    const log = createWriteStream(this.logFile, { flags: 'a' });
    proc.stderr?.pipe(log);
    const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
    this.url = await new Promise<string>((res, rej) => {
      proc.once('exit', (code) => rej(new Error(`flocker-control exited with ${String(code)} (log ${this.logFile})`)));
      lines.once('line', (line) => res(Listening.parse(JSON.parse(line)).listening));
    });
    this.port = Number(new URL(this.url).port);
    lines.on('line', (l) => log.write(`${l}\n`));
  }
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.proc;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((res) => proc.once('exit', () => res()));
    proc.kill(signal);
    await gone;
  }
}

let dir: string;
let etcd: EtcdTestCluster;
let replicas: Replica[] = [];
let agent: ChildProcess | undefined;

function logs(): string {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .map((f) => `--- ${f}\n${readFileSync(join(dir, f), 'utf8').split('\n').slice(-20).join('\n')}`)
    .join('\n');
}

function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  return waitUntil(what, probe, { timeoutMs, intervalMs: 50, context: logs });
}

beforeAll(async () => {
  etcd = await EtcdTestCluster.start();
});

afterAll(async () => {
  await etcd?.stop();
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'flocker-t4-allrestart-'));
});

afterEach(async () => {
  const survivors = await killProcessGroup(agent?.pid);
  agent = undefined;
  await Promise.all(replicas.map((r) => r.kill()));
  replicas = [];
  releaseMountsAndLoopsOrThrow(dir);
  if (process.env.T4_KEEP === undefined) removeTree(dir);
  if (survivors.length > 0) throw new Error(`agent processes still alive after SIGKILL: ${survivors.join(' ')}`);
});

it('all replicas killed -9 at once and back 3 s later: the node keeps its mount and lease, is never declared dead, does not fence', async () => {
  const storeArgs = [
    '--store',
    'etcd',
    '--etcd-endpoints',
    etcd.endpoints.join(','),
    '--etcd-prefix',
    `/t4-${process.pid}-${Date.now()}`,
    '--etcd-timeout',
    '2',
    '--node-timeout',
    String(NODE_TIMEOUT_S),
    '--lease-grace',
    String(LEASE_GRACE_S),
  ];
  replicas = [1, 2, 3].map((i) => new Replica(storeArgs, join(dir, `control-${i}.log`)));
  await Promise.all(replicas.map((r) => r.start()));
  const ports = replicas.map((r) => Number(new URL(r.url).port));

  const config = join(dir, 'agent.yml');
  writeFileSync(
    config,
    [
      'version: 1',
      `control-service: {hostname: 127.0.0.1, port: ${ports[0]}, hostnames: ["127.0.0.1:${ports[1]}", "127.0.0.1:${ports[2]}"]}`,
      `dataset: {backend: loopback, root_path: ${join(dir, 'pool')}}`,
      `node: {state_dir: ${join(dir, 'state')}, mount_root: ${join(dir, 'mnt')}, era_file: ${join(dir, 'era')}}`,
      `agent: {default_dataset_size: ${64 * MiB}, log_level: debug}`,
      '',
    ].join('\n'),
  );
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'era'), 'era-t4-allrestart\n');
  const log = createWriteStream(join(dir, 'agent.log'), { flags: 'a' });
  agent = spawn(process.execPath, [AGENT_MAIN, '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  agent.stdout?.pipe(log);
  agent.stderr?.pipe(log);

  const clients = replicas.map((r) => new FlockerClient({ baseUrl: r.url, timeoutMs: 5_000 }));
  const [c1, c2, c3] = clients as [FlockerClient, FlockerClient, FlockerClient];
  const nodeJson = join(dir, 'state', 'node.json');
  const node = await waitFor('the agent to report', async () => {
    if (!existsSync(nodeJson)) return undefined;
    const uuid = NodeJson.parse(JSON.parse(readFileSync(nodeJson, 'utf8'))).uuid;
    return (await c3.listNodes()).some((n) => n.uuid === uuid) ? uuid : undefined;
  });
  const ds = await c1.createDataset({ primary: node, maximum_size: 64 * MiB, metadata: { name: 't4-in-use' } });
  await waitFor('mounted', async () =>
    (await c2.listDatasetState()).some(
      (s) => s.dataset_id === ds.dataset_id && s.path !== undefined && s.path !== null,
    ),
  );
  await c2.acquireLease({ dataset_id: ds.dataset_id, node_uuid: node, expires: null, holder: 'docker' });
  await waitFor('the lease on every replica', async () => {
    const all = await Promise.all(clients.map((c) => c.listLeases()));
    return all.every((ls) => ls.some((l) => l.dataset_id === ds.dataset_id)) ? true : undefined;
  });

  const logBefore = readFileSync(join(dir, 'agent.log'), 'utf8').length;
  const mountPath = join(dir, 'mnt', ds.dataset_id);
  const mounted = () => readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mountPath} `);
  expect(mounted()).toBe(true);
  await Promise.all(replicas.map((r) => r.kill('SIGKILL')));
  await new Promise((r) => setTimeout(r, 3_000));
  await Promise.all(replicas.map((r) => r.start()));
  const restartedAt = Date.now();
  const problems: string[] = [];
  while (Date.now() - restartedAt < 20_000) {
    if (!mounted()) problems.push(`${Date.now() - restartedAt} ms: unmounted`);
    const held = await Promise.all(
      clients.map((c) =>
        c.listLeases().then(
          (ls) => ls.some((l) => l.dataset_id === ds.dataset_id),
          () => true,
        ),
      ),
    );
    if (!held.every(Boolean)) problems.push(`${Date.now() - restartedAt} ms: lease held on ${JSON.stringify(held)}`);
    const alive = await Promise.all(
      clients.map((c) =>
        c.listNodes().then(
          (ns) => ns.some((n) => n.uuid === node),
          () => true,
        ),
      ),
    );
    if (!alive.every(Boolean)) problems.push(`${Date.now() - restartedAt} ms: node listed on ${JSON.stringify(alive)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const agentLines = readFileSync(join(dir, 'agent.log'), 'utf8').slice(logBefore).split('\n');
  const fenced = agentLines.filter((l) => /fencing this node|node fenced/.test(l)).map((l) => l.slice(0, 240));
  const events = (await c1.listEvents()).map((e) => e.message).filter((m) => /dead|released/i.test(m));
  writeFileSync(join(dir, 'result.txt'), JSON.stringify({ problems, fenced, events }, null, 1));
  expect({ problems: problems.slice(0, 5), fenced, events }).toEqual({ problems: [], fenced: [], events: [] });
});
