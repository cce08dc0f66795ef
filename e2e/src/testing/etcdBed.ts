/**
 * An HA control plane of real processes, the set-up the review-t4 e2e tests share: a real 3-member etcd
 * cluster, flocker-control replicas on it (`--store etcd`), dataset agents naming them (loopback pools under
 * the bed's temp directory: real loop devices and mounts, so root), TCP blackholes that cut a replica off from
 * etcd, and a writer appending with fsync. Every log goes to `<dir>/<name>.log`. `T4_KEEP` set: the directory
 * is kept after close (its mounts and devices released all the same).
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
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import type { FlockerClient } from '@flocker/api';
import { EtcdTestCluster } from '@flocker/control-api/testing';
import { killProcessGroups } from '../cluster/processes';
import { waitFor as waitUntil } from '../cluster/run';
import { mountsUnder, releaseMountsAndLoopsOrThrow } from '../loopPools';
import { removeTree } from '../removeTree';

const REPO = resolve(__dirname, '../../..');
export const CONTROL_MAIN = join(REPO, 'packages/control-api/dist/main.js');
export const AGENT_MAIN = join(REPO, 'packages/dataset-agent/dist/main.js');
export const MiB = 1024 * 1024;

const Listening = z.object({ listening: z.string(), port: z.number() });
const NodeJson = z.object({ uuid: z.string() });

export interface EtcdStoreOptions {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly etcdTimeout?: number;
  readonly nodeTimeout?: number | string;
  readonly leaseGrace?: number;
}

/** A replica's store flags: etcd at `endpoints` under `prefix`; the timeouts in seconds, each left out when unset. */
export function etcdStoreArgs(o: EtcdStoreOptions): string[] {
  return [
    '--store',
    'etcd',
    '--etcd-endpoints',
    o.endpoints.join(','),
    '--etcd-prefix',
    o.prefix,
    ...(o.etcdTimeout !== undefined ? ['--etcd-timeout', String(o.etcdTimeout)] : []),
    ...(o.nodeTimeout !== undefined ? ['--node-timeout', String(o.nodeTimeout)] : []),
    ...(o.leaseGrace !== undefined ? ['--lease-grace', String(o.leaseGrace)] : []),
  ];
}

/** A TCP proxy to `target` whose traffic can be blackholed (both directions paused: nothing refused) and let through again. */
export class Blackhole {
  blocked = false;
  port = 0;
  private readonly pairs: Array<[Socket, Socket]> = [];
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  constructor(private readonly target: URL) {}

  /** `127.0.0.1:<port>`, to name in place of the target. */
  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const server = createServer((down) => {
      const up = createConnection({ host: this.target.hostname, port: Number(this.target.port) });
      for (const s of [down, up]) {
        this.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => this.sockets.delete(s));
      }
      down.pipe(up);
      up.pipe(down);
      this.pairs.push([down, up]);
      if (this.blocked) this.block();
    });
    this.server = server;
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
  close(): void {
    for (const s of this.sockets) s.destroy();
    this.server?.close();
  }
}

/** A flocker-control process; started again (`start` after `kill`), it listens on the port it had. */
export class ControlReplica {
  proc: ChildProcess | undefined;
  url = '';
  port = 0;
  constructor(
    private readonly bed: EtcdBed,
    readonly logFile: string,
    private readonly args: readonly string[],
  ) {}

  /** `127.0.0.1:<port>`, as an agent.yml names it. */
  get hostPort(): string {
    const u = new URL(this.url);
    return `${u.hostname}:${u.port}`;
  }

  async start(): Promise<void> {
    const proc = this.bed.track(
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
          'info',
          ...this.args,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
      this.logFile,
      { stdout: false },
    );
    this.proc = proc;
    const log = createWriteStream(join(this.bed.dir, this.logFile), { flags: 'a' });
    const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
    this.url = await new Promise<string>((res, rej) => {
      proc.once('exit', (code) => rej(new Error(`flocker-control exited with ${String(code)}\n${this.bed.logs()}`)));
      lines.once('line', (line) => res(Listening.parse(JSON.parse(line)).listening));
    });
    this.port = Number(new URL(this.url).port);
    lines.on('line', (l) => log.write(`${l}\n`));
  }

  /** Sends `signal` and waits for the exit (not for SIGSTOP: use proc.kill). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.proc;
    if (proc === undefined) return;
    await stopProcess(proc, signal);
  }
}

/** What an agent.yml's `agent:` line says: the default is a quick resync and back-off, debug logs. */
export type AgentSettings = Readonly<Record<string, string | number>>;
const QUICK_AGENT: AgentSettings = {
  resync_interval_seconds: 2,
  default_dataset_size: 64 * MiB,
  backoff_initial_seconds: 0.2,
  backoff_max_seconds: 2,
  log_level: 'debug',
};

/** Sends `signal` to `proc` unless it has exited, and waits for the exit. */
export async function stopProcess(proc: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise<void>((res) => proc.once('exit', () => res()));
  proc.kill(signal);
  await gone;
}

export class EtcdBed {
  readonly replicas: ControlReplica[] = [];
  private readonly procs = new Set<ChildProcess>();
  /** Every agent's process group (each its own), exited ones too: a losetup or mount it ran may outlive it. */
  private readonly agentGroups = new Set<number>();
  private readonly holes: Blackhole[] = [];

  private constructor(
    readonly dir: string,
    readonly etcd: EtcdTestCluster,
  ) {}

  /** A temp directory named from `tmpPrefix` and a 3-member etcd cluster (stopped by close). */
  static async start(tmpPrefix: string): Promise<EtcdBed> {
    const dir = mkdtempSync(join(tmpdir(), tmpPrefix));
    try {
      return new EtcdBed(dir, await EtcdTestCluster.start());
    } catch (err) {
      removeTree(dir);
      throw err;
    }
  }

  /** Logs the process's stderr (and stdout unless told not to) to `<dir>/<log>`; close kills it. */
  track(proc: ChildProcess, log: string, { stdout = true }: { stdout?: boolean } = {}): ChildProcess {
    const out = createWriteStream(join(this.dir, log), { flags: 'a' });
    proc.stderr?.pipe(out);
    if (stdout) proc.stdout?.pipe(out);
    this.procs.add(proc);
    proc.once('exit', () => this.procs.delete(proc));
    return proc;
  }

  /** The last lines of every log, for a failure message. */
  logs(): string {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.log'))
      .map((f) => `--- ${f}\n${readFileSync(join(this.dir, f), 'utf8').split('\n').slice(-20).join('\n')}`)
      .join('\n');
  }

  waitFor<T>(
    what: string,
    probe: () => Promise<T | undefined | false> | T | undefined | false,
    timeoutMs = 30_000,
  ): Promise<T> {
    return waitUntil(what, probe, { timeoutMs, intervalMs: 50, context: () => this.logs() });
  }

  /** One started blackhole in front of each etcd member, in the order of etcd.endpoints. */
  async blackholes(): Promise<Blackhole[]> {
    const holes = this.etcd.endpoints.map((e) => new Blackhole(new URL(e)));
    this.holes.push(...holes);
    await Promise.all(holes.map((h) => h.start()));
    return holes;
  }

  /** Starts a replica with `args` (the store's flags, etcdStoreArgs), logging to `control-<n>.log` by default. */
  async startReplica(
    args: readonly string[],
    logFile = `control-${this.replicas.length}.log`,
  ): Promise<ControlReplica> {
    const r = new ControlReplica(this, logFile, args);
    this.replicas.push(r);
    await r.start();
    return r;
  }

  /**
   * Three replicas on one store (`store`, its endpoints those of etcd), replica 0 reaching etcd through the
   * blackholes returned (one in front of each member), so that it can be cut off from etcd alone.
   */
  async startReplicasBehindHoles(
    store: Omit<EtcdStoreOptions, 'endpoints'>,
  ): Promise<{ holes: Blackhole[]; replicas: ControlReplica[] }> {
    const holes = await this.blackholes();
    // Started together (each registers itself, in this order, before it awaits its start).
    const replicas = await Promise.all([
      this.startReplica(etcdStoreArgs({ ...store, endpoints: holes.map((h) => h.endpoint) })),
      this.startReplica(etcdStoreArgs({ ...store, endpoints: this.etcd.endpoints })),
      this.startReplica(etcdStoreArgs({ ...store, endpoints: this.etcd.endpoints })),
    ]);
    return { holes, replicas };
  }

  /** `<dir>/<name>`: the agent's state, mount root and era file are under it. */
  nodeDir(name: string): string {
    return join(this.dir, name);
  }

  /** Where agent `name` mounts dataset `id`. */
  mountPath(name: string, id: string): string {
    return join(this.nodeDir(name), 'mnt', id);
  }

  agentLogFile(name: string): string {
    return join(this.dir, `agent-${name}.log`);
  }

  /**
   * Spawns agent `name` on the shared pool `<dir>/pool`, naming the replicas `controls` (host:port, the first
   * its primary), in a process group of its own, logging to agent-<name>.log.
   */
  startAgent(
    name: string,
    controls: readonly string[],
    { era = `era-${name}`, agent = QUICK_AGENT }: { era?: string; agent?: AgentSettings } = {},
  ): ChildProcess {
    const node = this.nodeDir(name);
    mkdirSync(join(node, 'state'), { recursive: true });
    writeFileSync(join(node, 'era'), `${era}\n`);
    const [first, ...others] = controls;
    if (first === undefined) throw new Error('an agent names at least one replica');
    const [host, port] = first.split(':');
    const settings = Object.entries(agent)
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ');
    const config = join(this.dir, `${name}.yml`);
    writeFileSync(
      config,
      [
        'version: 1',
        `control-service: {hostname: ${host}, port: ${port}, hostnames: ${JSON.stringify(others)}}`,
        `dataset: {backend: loopback, root_path: ${join(this.dir, 'pool')}}`,
        `node: {state_dir: ${join(node, 'state')}, mount_root: ${join(node, 'mnt')}, era_file: ${join(node, 'era')}}`,
        `agent: {${settings}}`,
        '',
      ].join('\n'),
    );
    const proc = this.track(
      spawn(process.execPath, [AGENT_MAIN, '--config', config], { stdio: ['ignore', 'pipe', 'pipe'], detached: true }),
      `agent-${name}.log`,
    );
    if (proc.pid !== undefined) this.agentGroups.add(proc.pid);
    return proc;
  }

  /** Agent `name`'s node uuid once `client` lists the node. */
  registered(name: string, client: FlockerClient, what = `agent ${name} to register`): Promise<string> {
    const nodeJson = join(this.nodeDir(name), 'state', 'node.json');
    return this.waitFor(what, async () => {
      if (!existsSync(nodeJson)) return undefined;
      const uuid = NodeJson.parse(JSON.parse(readFileSync(nodeJson, 'utf8'))).uuid;
      return (await client.listNodes()).some((n) => n.uuid === uuid) ? uuid : undefined;
    });
  }

  /** The kernel's view: something is mounted at `path`. */
  mountedAt(path: string): boolean {
    return mountsUnder(this.dir).some((m) => m.mountPoint === path);
  }

  /**
   * A 64 MiB dataset `name` made through `client` with node `uuid` (agent `agent`) its primary, waited for
   * mounted there, and a writer in it (startWriter, acknowledging to `<dir>/ack`) that has written for 1 s.
   */
  async mountedWithWriter(
    client: FlockerClient,
    agent: string,
    uuid: string,
    name: string,
  ): Promise<{ datasetId: string; mount: string; ack: string; writer: ChildProcess }> {
    const ds = await client.createDataset({ primary: uuid, maximum_size: 64 * MiB, metadata: { name } });
    const mount = this.mountPath(agent, ds.dataset_id);
    await this.waitFor(`the dataset mounted on ${agent}`, () => this.mountedAt(mount), 60_000);
    const ack = join(this.dir, 'ack');
    const writer = this.startWriter(mount, ack);
    await this.waitFor('the writer to write', () => existsSync(ack));
    await new Promise((r) => setTimeout(r, 1_000));
    return { datasetId: ds.dataset_id, mount, ack, writer };
  }

  /**
   * A writer in `mount` (its cwd, which keeps the mount busy): every 20 ms appends the next number to seq.log,
   * fsyncs, then writes the count acknowledged so far to `ack`; exits 3 on the first failure (writer.log says why).
   */
  startWriter(mount: string, ack: string): ChildProcess {
    const script = `const fs=require('fs');let i=0;const fd=fs.openSync('seq.log','a');
setInterval(()=>{try{fs.writeSync(fd,(i+1)+'\\n');fs.fsyncSync(fd);i++;fs.writeFileSync(process.argv[1],String(i));}
catch(e){console.error(new Date().toISOString()+' writer stopped after '+i+': '+e.message);process.exit(3)}},20);`;
    return this.track(
      spawn(process.execPath, ['-e', script, ack], { cwd: mount, stdio: ['ignore', 'pipe', 'pipe'] }),
      'writer.log',
    );
  }

  /**
   * Kills every process (a frozen replica thawed first) and every agent's process group, closes the blackholes,
   * stops etcd, releases the mounts and loop devices under the directory and removes it; fails when an agent
   * process or a loop device outlives that.
   */
  async close(): Promise<void> {
    for (const r of this.replicas) r.proc?.kill('SIGCONT');
    for (const p of [...this.procs]) p.kill('SIGKILL');
    const survivors = await killProcessGroups(this.agentGroups);
    for (const h of this.holes) h.close();
    try {
      await new Promise((r) => setTimeout(r, 300));
      await this.etcd.stop();
    } finally {
      releaseMountsAndLoopsOrThrow(this.dir);
      if (process.env.T4_KEEP === undefined) removeTree(this.dir);
    }
    if (survivors.length > 0) throw new Error(`agent processes still alive after SIGKILL: ${survivors.join(' ')}`);
  }
}

/**
 * An EtcdBed started before the file's tests and closed after them (call at the top level of a test file);
 * answers a getter for it.
 */
export function useEtcdBed(tmpPrefix: string): () => EtcdBed {
  let bed: EtcdBed | undefined;
  beforeAll(async () => {
    bed = await EtcdBed.start(tmpPrefix);
  });
  afterAll(async () => {
    await bed?.close();
  });
  return () => {
    if (bed === undefined) throw new Error('the etcd bed did not start');
    return bed;
  };
}
