/**
 * Review T4 (session 19): the two-writers check of a partition. Replica 0 is cut off from etcd
 * (blackholed), node a (naming replica 0 only) is declared dead by the healthy replicas, and its
 * dataset, with a writer still writing on a (no dockerd on a: the fence cannot stop it), is moved
 * to b through a healthy replica. Checked: every write acknowledged on a (fsync returned) is on b,
 * and none is acknowledged on a after b mounted the dataset.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
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

jest.setTimeout(240_000);

const ROOT = resolve(__dirname, '../..');
const CONTROL_MAIN = join(ROOT, 'packages/control-api/dist/main.js');
const AGENT_MAIN = join(ROOT, 'packages/dataset-agent/dist/main.js');
const MiB = 1024 * 1024;
const Listening = z.object({ listening: z.string(), port: z.number() });
const NodeJson = z.object({ uuid: z.string() });

let dir = '';
let etcd: EtcdTestCluster | undefined;
const procs = new Set<ChildProcess>();
const agentGroups: number[] = [];
const servers: Server[] = [];
const sockets = new Set<Socket>();

/** A TCP proxy to `target` whose traffic can be blackholed (both directions paused) and let through again. */
class Blackhole {
  blocked = false;
  private pairs: Array<[Socket, Socket]> = [];
  port = 0;
  constructor(private readonly target: URL) {}
  async start(): Promise<void> {
    const server = createServer((down) => {
      const up = createConnection({ host: this.target.hostname, port: Number(this.target.port) });
      for (const s of [down, up]) {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => sockets.delete(s));
      }
      down.pipe(up);
      up.pipe(down);
      this.pairs.push([down, up]);
      if (this.blocked) this.block();
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    this.port = (server.address() as { port: number }).port;
  }
  block(): void {
    this.blocked = true;
    for (const [d, u] of this.pairs) {
      d.unpipe(u);
      u.unpipe(d);
      d.pause();
      u.pause();
    }
  }
  heal(): void {
    this.blocked = false;
    for (const [d, u] of this.pairs) {
      d.pipe(u);
      u.pipe(d);
      d.resume();
      u.resume();
    }
  }
}

function logs(): string {
  return ['agent-a.log', 'agent-b.log', 'control-0.log', 'control-1.log', 'control-2.log', 'writer.log']
    .map((f) => join(dir, f))
    .filter((f) => existsSync(f))
    .map((f) => `--- ${f}\n${readFileSync(f, 'utf8').split('\n').slice(-12).join('\n')}`)
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
  proc.stdout?.pipe(out);
  procs.add(proc);
  proc.once('exit', () => procs.delete(proc));
  return proc;
}

async function startReplica(index: number, endpoints: string[], prefix: string): Promise<string> {
  const proc = spawn(
    process.execPath,
    [
      CONTROL_MAIN,
      '--insecure-http',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--metrics-port',
      '0',
      '--log-level',
      'info',
      '--store',
      'etcd',
      '--etcd-endpoints',
      endpoints.join(','),
      '--etcd-prefix',
      prefix,
      '--etcd-timeout',
      '2',
      '--node-timeout',
      '10',
      '--lease-grace',
      '2',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const out = createWriteStream(join(dir, `control-${index}.log`), { flags: 'a' });
  proc.stderr?.pipe(out);
  procs.add(proc);
  proc.once('exit', () => procs.delete(proc));
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
  const url = await new Promise<string>((res, rej) => {
    proc.once('exit', (code) => rej(new Error(`flocker-control exited with ${String(code)}\n${logs()}`)));
    lines.once('line', (line) => res(Listening.parse(JSON.parse(line)).listening));
  });
  lines.on('line', (l) => out.write(`${l}\n`));
  return url;
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise<void>((res) => proc.once('exit', () => res()));
  proc.kill('SIGKILL');
  await gone;
}

function startWriter(mount: string, ack: string): ChildProcess {
  const script = `const fs=require('fs');let i=0;const fd=fs.openSync('seq.log','a');
setInterval(()=>{try{fs.writeSync(fd,(i+1)+'\\n');fs.fsyncSync(fd);i++;fs.writeFileSync(process.argv[1],String(i));}
catch(e){console.error(new Date().toISOString()+' writer stopped after '+i+': '+e.message);process.exit(3)}},20);`;
  return track(
    spawn(process.execPath, ['-e', script, ack], { cwd: mount, stdio: ['ignore', 'pipe', 'pipe'] }),
    'writer.log',
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'flk-t4-part2-'));
  etcd = await EtcdTestCluster.start();
});

afterAll(async () => {
  for (const p of [...procs]) p.kill('SIGKILL');
  const survivors = await killProcessGroups(agentGroups);
  for (const s of sockets) s.destroy();
  for (const s of servers) s.close();
  await new Promise((r) => setTimeout(r, 300));
  await etcd?.stop();
  if (dir !== '') {
    releaseMountsAndLoops(dir);
    if (process.env.T4_KEEP === undefined) removeTree(dir);
  }
  if (survivors.length > 0) throw new Error(`agent processes still alive after SIGKILL: ${survivors.join(' ')}`);
});

it('a node cut off with its replica, declared dead, its dataset moved with its writer still writing: no write acknowledged on it after the move, none lost', async () => {
  const prefix = `/t4-part-${process.pid}`;
  const holes = etcd!.endpoints.map((e) => new Blackhole(new URL(e)));
  await Promise.all(holes.map((h) => h.start()));
  const urls = [
    await startReplica(
      0,
      holes.map((h) => `127.0.0.1:${h.port}`),
      prefix,
    ),
    await startReplica(1, etcd!.endpoints, prefix),
    await startReplica(2, etcd!.endpoints, prefix),
  ];
  const hostPort = urls.map((u) => new URL(u)).map((u) => `${u.hostname}:${u.port}`);
  const orders: Record<string, string[]> = {
    // a reaches replica 0 only (cut off with it): since 7441b22 an agent naming the healthy replicas too moves to
    // them when replica 0 answers STORE_UNAVAILABLE, and is never declared dead (review-t4-replica-partition).
    a: [hostPort[0]!],
    b: [hostPort[1]!, hostPort[2]!, hostPort[0]!],
  };
  const healthy = new FlockerClient({ baseUrl: urls[1]!, baseUrls: [urls[2]!], timeoutMs: 3_000 });

  const agents = new Map<string, ChildProcess>();
  for (const name of ['a', 'b']) {
    const node = join(dir, name);
    mkdirSync(join(node, 'state'), { recursive: true });
    writeFileSync(join(node, 'era'), `era-t4p-${name}\n`);
    const [first, ...others] = orders[name]!;
    writeFileSync(
      join(dir, `${name}.yml`),
      [
        'version: 1',
        `control-service: {hostname: ${first!.split(':')[0]}, port: ${first!.split(':')[1]}, hostnames: ${JSON.stringify(others)}}`,
        `dataset: {backend: loopback, root_path: ${join(dir, 'pool')}}`,
        `node: {state_dir: ${join(node, 'state')}, mount_root: ${join(node, 'mnt')}, era_file: ${join(node, 'era')}}`,
        `agent: {resync_interval_seconds: 2, default_dataset_size: ${64 * MiB}, backoff_initial_seconds: 0.2, backoff_max_seconds: 2, log_level: debug}`,
        '',
      ].join('\n'),
    );
    const proc = track(
      spawn(process.execPath, [AGENT_MAIN, '--config', join(dir, `${name}.yml`)], {
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      }),
      `agent-${name}.log`,
    );
    if (proc.pid !== undefined) agentGroups.push(proc.pid);
    agents.set(name, proc);
  }
  const uuids = new Map<string, string>();
  for (const name of ['a', 'b']) {
    const nodeJson = join(dir, name, 'state', 'node.json');
    uuids.set(
      name,
      await waitFor(`agent ${name} to register`, async () => {
        if (!existsSync(nodeJson)) return undefined;
        const uuid = NodeJson.parse(JSON.parse(readFileSync(nodeJson, 'utf8'))).uuid;
        return (await healthy.listNodes()).some((n) => n.uuid === uuid) ? uuid : undefined;
      }),
    );
  }
  const ds = await healthy.createDataset({
    primary: uuids.get('a')!,
    maximum_size: 64 * MiB,
    metadata: { name: 't4-part' },
  });
  const onA = join(dir, 'a', 'mnt', ds.dataset_id);
  const mountedAt = (p: string) => mountsUnder(dir).some((m) => m.mountPoint === p);
  await waitFor('the dataset mounted on a', () => mountedAt(onA), 60_000);
  const ack = join(dir, 'ack');
  const writer = startWriter(onA, ack);
  await waitFor('the writer to write', () => existsSync(ack));
  await new Promise((r) => setTimeout(r, 1_000));

  for (const h of holes) h.block();
  const cutAt = Date.now();
  await waitFor(
    'the healthy replicas to declare a dead',
    async () => !(await healthy.listNodes()).some((n) => n.uuid === uuids.get('a')),
    30_000,
  );
  await new Promise((r) => setTimeout(r, 3_000));
  await healthy.updateDataset(ds.dataset_id, { primary: uuids.get('b')! });
  const onB = join(dir, 'b', 'mnt', ds.dataset_id);
  await waitFor('the dataset mounted on b', () => mountedAt(onB), 60_000);
  const mountedOnBAt = Date.now();
  const ackAtB = Number(readFileSync(ack, 'utf8'));
  await new Promise((r) => setTimeout(r, 3_000));
  const ackLater = Number(readFileSync(ack, 'utf8'));
  const onBLines = new Set(readFileSync(join(onB, 'seq.log'), 'utf8').trim().split('\n').map(Number));
  const missing: number[] = [];
  for (let i = 1; i <= ackLater; i++) if (!onBLines.has(i)) missing.push(i);
  for (const h of holes) h.heal();
  await new Promise((r) => setTimeout(r, 3_000));
  const writerLog = existsSync(join(dir, 'writer.log')) ? readFileSync(join(dir, 'writer.log'), 'utf8') : '';
  writeFileSync(
    join(dir, 'result.txt'),
    JSON.stringify(
      {
        cutToMovedMs: mountedOnBAt - cutAt,
        ackAtB,
        ackLater,
        onBMax: Math.max(...onBLines),
        missing: missing.length,
        writerExit: writer.exitCode,
        writerLog,
        aStillMounted: mountedAt(onA),
      },
      null,
      1,
    ),
  );
  expect({ ackedOnAAfterBMounted: ackLater - ackAtB, missingOnB: missing.slice(0, 10) }).toEqual({
    ackedOnAAfterBMounted: 0,
    missingOnB: [],
  });
  await stop(writer);
  execFileSync('sync');
});
