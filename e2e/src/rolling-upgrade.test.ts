/**
 * Rolling upgrade of a 3-node cluster (docs/compatibility.md "Rolling upgrade"): a 3-member
 * etcd cluster, three flocker-control replicas on it and three dataset agents (real processes
 * of the workspace build, loopback backend on one shared pool: real loop devices and mounts),
 * each node with a mounted dataset and a writer appending to it. The replicas are restarted
 * one by one (SIGTERM, start again on the same port, as `systemctl restart` after an upgrade
 * does), then the agents one by one, each waited for before the next. Throughout: no dataset
 * is unmounted (the kernel's mount table sampled every 20 ms), every writer keeps writing,
 * and the API, asked through a client given all three replicas as agents and the CLI are,
 * never goes longer than API_GAP_BOUND_MS without an answer.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { FlockerClient } from '@flocker/api';
import { EtcdTestCluster } from '@flocker/control-api/testing';
import { killProcessGroups } from './cluster/processes';
import { waitFor as waitUntil } from './cluster/run';
import { mountsUnder, releaseMountsAndLoops } from './localAgents';
import { removeTree } from './removeTree';

jest.setTimeout(180_000);

const REPO = resolve(__dirname, '../..');
const CONTROL_MAIN = join(REPO, 'packages/control-api/dist/main.js');
const AGENT_MAIN = join(REPO, 'packages/dataset-agent/dist/main.js');
const MiB = 1024 * 1024;
/** The documented bound (docs/compatibility.md): the longest time the API goes unanswered during a rolling upgrade. */
const API_GAP_BOUND_MS = 2_000;
const NODES = ['a', 'b', 'c'] as const;

const Listening = z.object({ listening: z.string(), port: z.number() });
const NodeJson = z.object({ uuid: z.string() });

let dir = '';
let etcd: EtcdTestCluster | undefined;
const procs = new Set<ChildProcess>();
/** The process group of every agent started (each its own), restarted ones too: a tool it ran may outlive it. */
const agentGroups: number[] = [];

function logs(): string {
  return [...NODES.map((n) => `agent-${n}.log`), 'control-0.log', 'control-1.log', 'control-2.log']
    .map((f) => join(dir, f))
    .filter((f) => existsSync(f))
    .map((f) => `--- ${f}\n${readFileSync(f, 'utf8').split('\n').slice(-15).join('\n')}`)
    .join('\n');
}

function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
): Promise<T> {
  return waitUntil(what, probe, { timeoutMs, intervalMs: 50, context: logs });
}

function track(proc: ChildProcess, log: string): ChildProcess {
  const out = createWriteStream(join(dir, log), { flags: 'a' });
  proc.stderr?.pipe(out);
  procs.add(proc);
  proc.once('exit', () => procs.delete(proc));
  return proc;
}

async function stop(proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise<void>((res) => proc.once('exit', () => res()));
  proc.kill(signal);
  await gone;
}

class Replica {
  proc: ChildProcess | undefined;
  port = 0;
  constructor(
    private readonly index: number,
    private readonly storeArgs: string[],
  ) {}
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    const proc = track(
      spawn(
        process.execPath,
        [
          CONTROL_MAIN,
          '--insecure-http',
          '--host',
          '127.0.0.1',
          '--port',
          String(this.port),
          '--metrics-port',
          '0',
          '--log-level',
          'warn',
          ...this.storeArgs,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
      `control-${this.index}.log`,
    );
    this.proc = proc;
    const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
    this.port = await new Promise<number>((res, rej) => {
      proc.once('exit', (code) => rej(new Error(`flocker-control exited with ${String(code)}\n${logs()}`)));
      lines.once('line', (line) => res(Listening.parse(JSON.parse(line)).port));
    });
  }
}

function startAgent(name: string): ChildProcess {
  const proc = track(
    spawn(process.execPath, [AGENT_MAIN, '--config', join(dir, `${name}.yml`)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    }),
    `agent-${name}.log`,
  );
  if (proc.pid !== undefined) agentGroups.push(proc.pid);
  return proc;
}

/** A writer "container": appends a line every 50 ms with its cwd in the mount (which keeps the mount busy). */
function startWriter(mount: string): ChildProcess {
  return track(
    spawn('sh', ['-c', 'while :; do date +%s%N >> writes.log || exit 1; sleep 0.05; done'], {
      cwd: mount,
      stdio: 'ignore',
    }),
    'writers.log',
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'flk-rolling-'));
  etcd = await EtcdTestCluster.start();
});

afterAll(async () => {
  for (const p of [...procs]) p.kill('SIGKILL');
  // Each agent's whole group, with any losetup or mount it ran, gone before its pool is taken off.
  const survivors = await killProcessGroups(agentGroups);
  await new Promise((r) => setTimeout(r, 300));
  await etcd?.stop();
  if (dir !== '') {
    releaseMountsAndLoops(dir);
    removeTree(dir);
  }
  if (survivors.length > 0) throw new Error(`agent processes still alive after SIGKILL: ${survivors.join(' ')}`);
});

it('control replicas, then agents, restarted one by one: no dataset unmounted, writers never stop, API gap within the bound', async () => {
  const storeArgs = [
    '--store',
    'etcd',
    '--etcd-endpoints',
    etcd!.endpoints.join(','),
    '--etcd-prefix',
    `/e2e-rolling-${process.pid}-${Date.now()}`,
    '--etcd-timeout',
    '2',
  ];
  const replicas = [0, 1, 2].map((i) => new Replica(i, storeArgs));
  await Promise.all(replicas.map((r) => r.start()));
  const [first, ...others] = replicas.map((r) => `127.0.0.1:${r.port}`);
  const client = new FlockerClient({
    baseUrl: replicas[0]!.url,
    baseUrls: replicas.slice(1).map((r) => r.url),
    timeoutMs: 1_000,
  });

  // Three nodes on one shared pool (the loopback stand-in for shared block storage).
  const agents = new Map<string, ChildProcess>();
  for (const name of NODES) {
    const node = join(dir, name);
    mkdirSync(join(node, 'state'), { recursive: true });
    writeFileSync(join(node, 'era'), `era-rolling-${name}\n`);
    writeFileSync(
      join(dir, `${name}.yml`),
      [
        'version: 1',
        `control-service: {hostname: ${first!.split(':')[0]}, port: ${first!.split(':')[1]}, hostnames: ${JSON.stringify(others)}}`,
        `dataset: {backend: loopback, root_path: ${join(dir, 'pool')}}`,
        `node: {state_dir: ${join(node, 'state')}, mount_root: ${join(node, 'mnt')}, era_file: ${join(node, 'era')}}`,
        `agent: {resync_interval_seconds: 2, default_dataset_size: ${64 * MiB}, backoff_initial_seconds: 0.2, backoff_max_seconds: 2}`,
        '',
      ].join('\n'),
    );
    agents.set(name, startAgent(name));
  }
  const uuids = new Map<string, string>();
  for (const name of NODES) {
    const nodeJson = join(dir, name, 'state', 'node.json');
    uuids.set(
      name,
      await waitFor(`agent ${name} to register`, async () => {
        if (!existsSync(nodeJson)) return undefined;
        const uuid = NodeJson.parse(JSON.parse(readFileSync(nodeJson, 'utf8'))).uuid;
        return (await client.listNodes()).some((n) => n.uuid === uuid) ? uuid : undefined;
      }),
    );
  }

  // One dataset per node, mounted, with a writer in it.
  const mounts = new Map<string, string>();
  for (const name of NODES) {
    const ds = await client.createDataset({ primary: uuids.get(name)!, maximum_size: 64 * MiB, metadata: { name } });
    mounts.set(name, join(dir, name, 'mnt', ds.dataset_id));
  }
  const mounted = (): Set<string> => new Set(mountsUnder(dir).map((m) => m.mountPoint));
  await waitFor('every dataset to be mounted', () => [...mounts.values()].every((m) => mounted().has(m)), 60_000);
  const writers = [...mounts.values()].map(startWriter);

  // Watchers: the mount table every 20 ms, the API every 50 ms.
  const unmounted: string[] = [];
  let longestGapMs = 0;
  let lastAnswer = Date.now();
  let watching = true;
  const mountWatch = (async () => {
    while (watching) {
      const now = mounted();
      for (const m of mounts.values()) if (!now.has(m) && !unmounted.includes(m)) unmounted.push(m);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const apiWatch = (async () => {
    while (watching) {
      try {
        await client.listDatasets();
        const now = Date.now();
        longestGapMs = Math.max(longestGapMs, now - lastAnswer);
        lastAnswer = now;
      } catch {
        // A gap: measured at the next answer.
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  await new Promise((r) => setTimeout(r, 500));

  // Control replicas one by one: each answers again (and has caught up through etcd) before the next goes.
  const shownMs: string[] = [];
  for (const r of replicas) {
    await stop(r.proc!);
    const restartedAt = Date.now();
    await r.start();
    const direct = new FlockerClient({ baseUrl: r.url, timeoutMs: 1_000 });
    await waitFor(`replica on ${r.port} to know every node`, async () => (await direct.listNodes()).length === 3);
    const answeredMs = Date.now() - restartedAt;
    // Session 11's load floor: a restarted replica shows a node's "mounted" once the node reports the version it loaded.
    await waitFor(`replica on ${r.port} to show every dataset mounted`, async () => {
      const state = await direct.listDatasetState();
      return NODES.every((n) => state.some((s) => s.primary === uuids.get(n) && s.path === mounts.get(n)));
    });
    shownMs.push(`${answeredMs}/${Date.now() - restartedAt}`);
  }
  process.stdout.write(
    `rolling upgrade: restart -> that replica knows every node / shows every dataset mounted: ${shownMs.join(', ')} ms\n`,
  );
  // Agents one by one: each reports its dataset mounted and has run a full resync (2 s) before the next goes.
  for (const name of NODES) {
    await stop(agents.get(name)!);
    agents.set(name, startAgent(name));
    const uuid = uuids.get(name)!;
    await new Promise((r) => setTimeout(r, 2_500));
    await waitFor(`agent ${name} to report its dataset after its restart`, async () =>
      (await client.listDatasetState()).some((s) => s.primary === uuid && s.path === mounts.get(name)),
    );
    expect(agents.get(name)!.exitCode).toBeNull();
  }
  await new Promise((r) => setTimeout(r, 500));
  watching = false;
  await Promise.all([mountWatch, apiWatch]);

  expect(unmounted).toEqual([]);
  expect(writers.every((w) => w.exitCode === null)).toBe(true);
  for (const m of mounts.values()) {
    const lines = readFileSync(join(m, 'writes.log'), 'utf8').trim().split('\n');
    expect(lines.length).toBeGreaterThan(20);
  }
  expect(longestGapMs).toBeLessThan(API_GAP_BOUND_MS);
  process.stdout.write(`rolling upgrade: longest API gap ${longestGapMs} ms\n`);

  // The upgraded cluster still works: a new dataset on each node is mounted.
  const fresh = await client.createDataset({
    primary: uuids.get('b')!,
    maximum_size: 64 * MiB,
    metadata: { name: 'n' },
  });
  await waitFor('a dataset created after the upgrade to be mounted', () =>
    mounted().has(join(dir, 'b', 'mnt', fresh.dataset_id)),
  );
  for (const w of writers) await stop(w, 'SIGKILL');
  execFileSync('sync');
});
