/**
 * HA control plane end to end: a 3-member etcd cluster, two flocker-control replicas on
 * it (real processes), and a real flocker-dataset-agent (loopback backend, real loop
 * devices and mounts) whose agent.yml names both replicas (`control-service.hostnames`).
 * The replica the agent talks to is killed with -9 while the agent waits in a long-poll;
 * a dataset created through the other replica is mounted within seconds: the wait moved
 * to the surviving replica instead of failing into a back-off or the resync timer.
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
import { mountsUnder, releaseMountsAndLoopsOrThrow } from './loopPools';
import { removeTree } from './removeTree';

jest.setTimeout(120_000);

const REPO = resolve(__dirname, '../..');
const CONTROL_MAIN = join(REPO, 'packages/control-api/dist/main.js');
const AGENT_MAIN = join(REPO, 'packages/dataset-agent/dist/main.js');
const MiB = 1024 * 1024;
/** How long the agent may take to mount a dataset created through the surviving replica. */
const MOUNT_AFTER_KILL_MS = Number(process.env.FLOCKER_E2E_ETCD_FAILOVER_MS ?? 5_000);
/**
 * The agent's back-off after a failed long-poll and its resync interval are both far above
 * MOUNT_AFTER_KILL_MS: a mount in time can only come from the wait carried over.
 */
const BACKOFF_S = 15;
const RESYNC_S = 120;

const Listening = z.object({ listening: z.string(), port: z.number() });
const NodeJson = z.object({ uuid: z.string() });
const LogLine = z
  .object({
    level: z.string(),
    message: z.string(),
    timestamp: z.string(),
    waitedMs: z.number().optional(),
    streamed: z.boolean().optional(),
  })
  .loose();

class Replica {
  proc: ChildProcess | undefined;
  url = '';
  constructor(
    private readonly args: string[],
    private readonly logFile: string,
  ) {}
  async start(): Promise<void> {
    const proc = spawn(
      process.execPath,
      [CONTROL_MAIN, '--insecure-http', '--host', '127.0.0.1', '--port', '0', '--log-level', 'warn', ...this.args],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.proc = proc;
    proc.stderr?.pipe(createWriteStream(this.logFile, { flags: 'a' }));
    const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
    this.url = await new Promise<string>((res, rej) => {
      proc.once('exit', (code) => rej(new Error(`flocker-control exited with ${String(code)} (log ${this.logFile})`)));
      lines.once('line', (line) => res(Listening.parse(JSON.parse(line)).listening));
    });
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

function portOf(url: string): number {
  return Number(new URL(url).port);
}

function agentLog(): string {
  const f = join(dir, 'agent.log');
  return existsSync(f) ? readFileSync(f, 'utf8') : '';
}

function logs(): string {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .map((f) => `--- ${f}\n${readFileSync(join(dir, f), 'utf8').split('\n').slice(-20).join('\n')}`)
    .join('\n');
}

function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
): Promise<T> {
  return waitUntil(what, probe, { timeoutMs, intervalMs: 25, context: logs });
}

/** The kernel's view: `path` is a mount point of a loop device. */
function mountedAt(path: string): boolean {
  return mountsUnder(dir).some((m) => m.mountPoint === path && m.device.startsWith('/dev/loop'));
}

beforeAll(async () => {
  etcd = await EtcdTestCluster.start();
});

afterAll(async () => {
  await etcd?.stop();
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'flocker-etcd-agent-e2e-'));
});

afterEach(async () => {
  // The agent's whole process group: a losetup or mount it ran dies with it, before its pool goes.
  const survivors = await killProcessGroup(agent?.pid);
  agent = undefined;
  await Promise.all(replicas.map((r) => r.kill()));
  replicas = [];
  // Every mount and loop device of this test (the pool's volumes and its spares), then the directory.
  releaseMountsAndLoopsOrThrow(dir);
  removeTree(dir);
  if (survivors.length > 0) throw new Error(`agent processes still alive after SIGKILL: ${survivors.join(' ')}`);
});

it('an agent given both replicas keeps following its view (watch or long-poll) through a kill -9 of the one it talks to and mounts a dataset created through the other within seconds', async () => {
  const storeArgs = [
    '--store',
    'etcd',
    '--etcd-endpoints',
    etcd.endpoints.join(','),
    '--etcd-prefix',
    `/e2e-${process.pid}-${Date.now()}`,
    '--etcd-timeout',
    '2',
  ];
  const r1 = new Replica(storeArgs, join(dir, 'control-1.log'));
  const r2 = new Replica(storeArgs, join(dir, 'control-2.log'));
  replicas = [r1, r2];
  await Promise.all([r1.start(), r2.start()]);

  // agent.yml: `hostname` is the first replica (the one the agent starts with), `hostnames` adds the second.
  const config = join(dir, 'agent.yml');
  writeFileSync(
    config,
    [
      'version: 1',
      `control-service: {hostname: 127.0.0.1, port: ${portOf(r1.url)}, hostnames: ["127.0.0.1:${portOf(r2.url)}"]}`,
      `dataset: {backend: loopback, root_path: ${join(dir, 'pool')}}`,
      `node: {state_dir: ${join(dir, 'state')}, mount_root: ${join(dir, 'mnt')}, era_file: ${join(dir, 'era')}}`,
      `agent: {resync_interval_seconds: ${RESYNC_S}, default_dataset_size: ${64 * MiB}, backoff_initial_seconds: ${BACKOFF_S}, backoff_max_seconds: ${BACKOFF_S}, log_level: debug}`,
      '',
    ].join('\n'),
  );
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'era'), 'era-etcd-e2e\n');
  const log = createWriteStream(join(dir, 'agent.log'), { flags: 'a' });
  // In a process group of its own, ended whole by afterEach.
  agent = spawn(process.execPath, [AGENT_MAIN, '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  agent.stdout?.pipe(log);
  agent.stderr?.pipe(log);

  const viaR1 = new FlockerClient({ baseUrl: r1.url, timeoutMs: 5_000 });
  const viaR2 = new FlockerClient({ baseUrl: r2.url, timeoutMs: 5_000 });
  const nodeJson = join(dir, 'state', 'node.json');
  const node = await waitFor('the agent to report', async () => {
    if (!existsSync(nodeJson)) return undefined;
    const uuid = NodeJson.parse(JSON.parse(readFileSync(nodeJson, 'utf8'))).uuid;
    return (await viaR2.listNodes()).some((n) => n.uuid === uuid) ? uuid : undefined;
  });

  // Before the kill: the agent works through the first replica.
  const first = await viaR1.createDataset({ primary: node, maximum_size: 64 * MiB, metadata: { name: 'before-kill' } });
  const firstPath = join(dir, 'mnt', first.dataset_id);
  await waitFor('the first dataset to be mounted', async () =>
    (await viaR2.listDatasetState()).some((s) => s.dataset_id === first.dataset_id && s.path === firstPath),
  );
  expect(mountedAt(firstPath)).toBe(true);
  // Let the agent settle back into its long-poll on the first replica.
  await new Promise((r) => setTimeout(r, 500));
  const logBeforeKill = agentLog().length;

  // Taken before the signal: the agent may fail over before this process hears of the exit.
  const killedAt = Date.now();
  await r1.kill('SIGKILL');
  const second = await viaR2.createDataset({ primary: node, maximum_size: 64 * MiB, metadata: { name: 'after-kill' } });
  const secondPath = join(dir, 'mnt', second.dataset_id);
  await waitFor('the second dataset to be mounted after the kill', () => mountedAt(secondPath), MOUNT_AFTER_KILL_MS);
  const mountedAfterMs = Date.now() - killedAt;
  // The surviving replica learns the new state from the agent's report.
  await waitFor(
    'the surviving replica to see the mount',
    async () =>
      (await viaR2.listDatasetState()).some((s) => s.dataset_id === second.dataset_id && s.path === secondPath),
    MOUNT_AFTER_KILL_MS,
  );
  expect(mountedAfterMs).toBeLessThan(MOUNT_AFTER_KILL_MS);

  // The long-poll in progress failed over inside the client: the agent never saw the control service as unreachable.
  const after = agentLog()
    .slice(logBeforeKill)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => LogLine.safeParse(JSON.parse(l)))
    .flatMap((p) => (p.success ? [p.data] : []));
  expect(after.filter((l) => l.message === 'cannot reach the control service')).toEqual([]);
  const answered = after.find((l) => l.message === 'cluster snapshot' && Date.parse(l.timestamp) >= killedAt);
  if (answered?.streamed === true) {
    // Over the streaming watch (the default since session 7): the cut watch was watched again at once
    // through the other replica, from the generation held.
    expect(after.some((l) => l.message === 'the watch was cut: watching again at once')).toBe(true);
    expect(after.some((l) => l.message === "watching this node's view again")).toBe(true);
  } else {
    // Over long-polls: the first snapshot after the kill answers a wait asked before it.
    expect(answered?.waitedMs).toBeDefined();
    const askedAt = Date.parse(answered?.timestamp ?? '') - (answered?.waitedMs ?? 0);
    expect(askedAt).toBeLessThan(killedAt);
  }
  // The first dataset stayed mounted throughout.
  expect(mountedAt(firstPath)).toBe(true);
  expect(agent.exitCode).toBeNull();
});
