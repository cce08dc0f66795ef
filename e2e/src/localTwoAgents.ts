/**
 * Two real dataset agents (nodes a and b on 127.0.0.2 and 127.0.0.3) on local pools — btrfs loop pools or ZFS
 * file pools — with a control service over mutual TLS in this process: the set-up and steps the local e2e tests of
 * two live copies and failovers share (local-two-live-copies*.test.ts, local-failover-return.test.ts). Each agent
 * runs in a process group of its own; close() kills them all. Needs root.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import winston from 'winston';
import { FlockerClient } from '@flocker/api';
import { startControlService, type ControlService } from '@flocker/control-api';
import { ensureZfs, makeBtrfsLoopPool, makeZfsFilePool } from '@flocker/storage-drivers/testing';
import { ClusterPki } from './cluster/pki';
import { killProcessGroups } from './cluster/processes';
import { REPO_ROOT } from './cluster/Cluster';
import { waitFor } from './cluster/run';
import { removeTree } from './removeTree';

const AGENT_MAIN = path.join(REPO_ROOT, 'packages/dataset-agent/dist/main.js');
const silent = winston.createLogger({ silent: true });
export const MiB = 1024 * 1024;

/** A node's pool as the test sees it: the engine's own layout. */
export interface LocalPool {
  readonly pool: string;
  destroy(): void;
  /** Whether the dataset has a live copy here (btrfs: its subvolume; ZFS: its file system writable). */
  live(id: string): boolean;
  /** Whether anything of the dataset is left here (a copy, snapshots, a retired file system). */
  anything(id: string): boolean;
}

export interface LocalNode<P extends LocalPool = LocalPool> {
  readonly name: string;
  readonly uuid: string;
  readonly address: string;
  readonly pool: P;
  readonly mountRoot: string;
  readonly config: string;
  pid?: number;
  /** The process group of every agent process started for the node (each its own), exited ones too. */
  readonly groups: number[];
  log: string;
}

export function sha256(file: string): string {
  return execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0] ?? '';
}

/** Every file under dir (relative path -> sha256). */
export function digests(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(dir).sort()) out[name] = sha256(path.join(dir, name));
  return out;
}

/** The state letter of a process (/proc/<pid>/stat): 'T' stopped. */
export function processState(pid: number): string | undefined {
  try {
    return /\) (\S)/.exec(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

/** Mount points (this namespace) at dir. */
export function mountsAt(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === dir);
}

/** Writes mib MiB of random bytes to file, fsync'd (an acknowledged write); flags are more dd operands. */
export function dd(file: string, mib: number, flags: string[] = []): void {
  execFileSync('dd', ['if=/dev/urandom', `of=${file}`, 'bs=1M', `count=${mib}`, 'conv=fsync', 'status=none', ...flags]);
}

/** A 512 MiB btrfs loop pool: live is the dataset's subvolume; anything, it or its snapshots. */
export function btrfsPool(dir: string, name: string): LocalPool {
  const p = makeBtrfsLoopPool(dir, name, 512 * MiB);
  return {
    pool: p.pool,
    destroy: () => p.destroy(),
    live: (id) => fs.existsSync(path.join(p.pool, 'flocker', 'datasets', id)),
    anything: (id) =>
      fs.existsSync(path.join(p.pool, 'flocker', 'datasets', id)) ||
      fs.existsSync(path.join(p.pool, 'flocker', 'snapshots', id)),
  };
}

const zfsGet = (fs: string): string[] | undefined => {
  try {
    return execFileSync('zfs', ['get', '-H', '-o', 'value', 'readonly,mountpoint', fs], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .trim()
      .split('\n');
  } catch {
    return undefined;
  }
};

/** A 512 MiB ZFS file pool: live is the dataset's file system writable and mountable; anything, it at all. */
export function zfsPool(dir: string, name: string): LocalPool {
  const p = makeZfsFilePool(dir, name, 512 * MiB);
  return {
    pool: p.pool,
    destroy: () => p.destroy(),
    live: (id) => {
      const [readonly, mountpoint] = zfsGet(`${p.pool}/flocker/${id}`) ?? [];
      return readonly === 'off' && mountpoint !== undefined && mountpoint !== 'none';
    },
    anything: (id) => zfsGet(`${p.pool}/flocker/${id}`) !== undefined,
  };
}

/** One local engine an e2e test runs on, with the reason it cannot run here (skip) if so. */
export interface LocalEngineCase {
  readonly engine: 'btrfs' | 'zfs';
  readonly skip?: string;
  readonly makePool: (dir: string, name: string) => LocalPool;
}

/** btrfs loop pools, then ZFS file pools (the kernel's zfs, else zfs-fuse; skipped with the reason where neither runs). */
export function localEngineCases(): readonly LocalEngineCase[] {
  const zfsReady = ensureZfs();
  return [
    { engine: 'btrfs', makePool: btrfsPool },
    { engine: 'zfs', ...(zfsReady.ok ? {} : { skip: zfsReady.reason }), makePool: zfsPool },
  ];
}

/**
 * The two nodes' agents and the control service. Made in beforeAll (new, then startControl, addNodes), closed in
 * afterAll; what a step waits for fails with the last lines of both agents' logs.
 */
export class TwoLocalAgents<P extends LocalPool = LocalPool> {
  readonly dir: string;
  readonly nodes: Array<LocalNode<P>> = [];
  private readonly transferPort = randomInt(20_000, 30_000);
  private pki?: ClusterPki;
  private controlService?: ControlService;
  private adminClient?: FlockerClient;

  /** A temp directory named from prefix (removed by close). */
  constructor(prefix: string) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  }

  get control(): ControlService {
    if (this.controlService === undefined) throw new Error('the control service is not started');
    return this.controlService;
  }
  get admin(): FlockerClient {
    if (this.adminClient === undefined) throw new Error('the control service is not started');
    return this.adminClient;
  }
  /** Nodes a and b. */
  get ab(): [LocalNode<P>, LocalNode<P>] {
    return this.nodes as [LocalNode<P>, LocalNode<P>];
  }

  /** The control service (node timeout 5 s) on <dir>/control and port (0: any), an admin client of it; the PKI first. */
  async startControl(port = 0): Promise<void> {
    this.pki ??= await ClusterPki.create(path.join(this.dir, 'pki'), ['127.0.0.1']);
    this.controlService = await startControlService({
      port,
      host: '127.0.0.1',
      dataDir: path.join(this.dir, 'control'),
      logger: silent,
      nodeTimeoutSeconds: 5,
      tls: this.pki.serverCredentials(),
    });
    this.adminClient = new FlockerClient({
      baseUrl: this.controlService.url,
      dispatcher: await this.pki.userDispatcher('admin'),
    });
  }

  /** The control service restarted on its directory and port: the node states it kept in memory forgotten. */
  async restartControl(): Promise<void> {
    const port = this.control.port;
    await this.control.close();
    await this.startControl(port);
  }

  /** Nodes a and b: each's certificate, pool and agent.yml (resync every second); then made is called with it. */
  async addNodes(
    engine: 'btrfs' | 'zfs',
    makePool: (dir: string, name: string) => P,
    made: (n: LocalNode<P>) => void = () => undefined,
  ): Promise<void> {
    if (this.pki === undefined) throw new Error('startControl first');
    for (const [name, address] of [
      ['a', '127.0.0.2'],
      ['b', '127.0.0.3'],
    ] as const) {
      const configDir = path.join(this.dir, name);
      fs.mkdirSync(configDir, { recursive: true, mode: 0o700 });
      const uuid = await this.pki.installNode(configDir);
      const pool = makePool(this.dir, `${name}-pool`);
      const mountRoot = path.join(configDir, 'mnt');
      const config = path.join(configDir, 'agent.yml');
      fs.writeFileSync(
        config,
        [
          'version: 1',
          `control-service: {hostname: 127.0.0.1, port: ${this.control.port}}`,
          `dataset: {backend: local, engine: ${engine}, pool: ${pool.pool}, transfer_port: ${this.transferPort}}`,
          `node: {state_dir: ${path.join(configDir, 'state')}, mount_root: ${mountRoot}, host: ${address}}`,
          'agent: {resync_interval_seconds: 1, backoff_initial_seconds: 0.2, backoff_max_seconds: 2}',
          '',
        ].join('\n'),
      );
      const node: LocalNode<P> = { name, uuid, address, pool, mountRoot, config, log: '', groups: [] };
      this.nodes.push(node);
      made(node);
    }
  }

  /** Starts n's agent (env added to this process's), in a process group of its own, its output in n.log. */
  start(n: LocalNode<P>, env: Record<string, string> = {}): void {
    n.log = '';
    const child = spawn(process.execPath, [AGENT_MAIN, '--config', n.config], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
      detached: true,
    });
    if (child.pid !== undefined) n.groups.push(child.pid);
    n.pid = child.pid;
    child.stdout?.on('data', (c: Buffer) => (n.log += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (n.log += c.toString()));
  }

  readonly logs = (): string =>
    this.nodes.map((n) => `--- ${n.name}\n${n.log.split('\n').slice(-25).join('\n')}`).join('\n');

  /** Waits for probe (every intervalMs, up to timeoutMs), failing with the agents' logs. */
  waitFor<T>(
    what: string,
    probe: () => Promise<T | undefined | false> | T | undefined | false,
    timeoutMs: number,
    intervalMs: number,
  ): Promise<T> {
    return waitFor(what, probe, { timeoutMs, intervalMs, context: this.logs });
  }

  waitBothReport(): Promise<boolean> {
    return this.waitFor(
      'both agents to report',
      async () => ((await this.admin.listNodes()).length === 2 ? true : undefined),
      30_000,
      100,
    );
  }

  /**
   * Every agent's process group killed (a stopped one continued first) and waited for, the control service closed,
   * mounts left at or under a node's mount root (an agent killed midway) let go of, the pools and the directory
   * removed; throws if an agent process outlived SIGKILL.
   */
  async close(): Promise<void> {
    for (const n of this.nodes) for (const g of n.groups) if (processState(g) === 'T') process.kill(-g, 'SIGCONT');
    const survivors = await killProcessGroups(this.nodes.flatMap((n) => n.groups));
    await this.controlService?.close();
    for (const n of this.nodes) {
      for (const m of mountsAt(n.mountRoot)) execFileSync('umount', ['-l', m]);
      for (const e of fs.existsSync(n.mountRoot) ? fs.readdirSync(n.mountRoot) : [])
        for (const m of mountsAt(path.join(n.mountRoot, e))) execFileSync('umount', ['-l', m]);
      n.pool.destroy();
    }
    removeTree(this.dir);
    if (survivors.length > 0) throw new Error(`agent processes still alive after SIGKILL: ${survivors.join(' ')}`);
  }

  snap() {
    return this.admin.waitForCluster(undefined, 0);
  }

  /** The dataset's path if node is its primary and reports it mounted. */
  async mountedAt(datasetId: string, node: LocalNode<P>): Promise<string | undefined> {
    const state = (await this.admin.listDatasetState()).find((d) => d.dataset_id === datasetId);
    return state?.primary === node.uuid && state.path !== undefined ? state.path : undefined;
  }

  /** Waits (every 100 ms) until the dataset is mounted on node, its primary; its path. */
  waitMounted(what: string, datasetId: string, node: LocalNode<P>, timeoutMs = 30_000): Promise<string> {
    return this.waitFor(what, () => this.mountedAt(datasetId, node), timeoutMs, 100);
  }

  async errorsOf(node: LocalNode<P>, datasetId: string) {
    return (
      (await this.snap()).nodes.find((n) => n.uuid === node.uuid)?.errors.filter((e) => e.dataset_id === datasetId) ??
      []
    );
  }

  /** Waits (every 200 ms, up to 30 s) for node's refusal of the dataset; it. */
  waitRefusal(what: string, node: LocalNode<P>, datasetId: string) {
    return this.waitFor(
      what,
      async () => (await this.errorsOf(node, datasetId)).find((e) => e.action === 'refuse'),
      30_000,
      200,
    );
  }

  /** Waits (every 200 ms, up to 30 s) until neither node reports an error of the dataset. */
  waitNoErrors(datasetId: string, what = 'no errors left'): Promise<boolean> {
    const [a, b] = this.ab;
    return this.waitFor(
      what,
      async () =>
        (await this.errorsOf(a, datasetId)).length === 0 && (await this.errorsOf(b, datasetId)).length === 0
          ? true
          : undefined,
      30_000,
      200,
    );
  }

  /** Waits until neither pool holds anything of the dataset. */
  waitNothingLeft(datasetId: string, timeoutMs = 30_000, intervalMs = 200): Promise<boolean> {
    return this.waitFor(
      'nothing of the dataset left on either pool',
      () => (this.nodes.every((n) => !n.pool.anything(datasetId)) ? true : undefined),
      timeoutMs,
      intervalMs,
    );
  }

  /** kill -9 of n's agent (its process group), waited for (up to 10 s). */
  async kill9(n: LocalNode<P>, what = `${n.name}'s agent gone`): Promise<void> {
    const pid = n.pid ?? 0;
    process.kill(-pid, 'SIGKILL');
    await this.waitFor(what, () => (processState(pid) === undefined ? true : undefined), 10_000, 50);
  }

  /**
   * The double fault's first half: the dataset moved from a (its agent started with FLOCKER_TEST_STOP_AFTER_PROMOTE,
   * so it stops itself once b has promoted and mounted, before retiring its own copy) to b, and a's agent killed
   * (kill -9) there. B's path.
   */
  async moveKillingSourceAfterPromote(datasetId: string): Promise<string> {
    const [a, b] = this.ab;
    await this.admin.updateDataset(datasetId, { primary: b.uuid });
    const pathB = await this.waitMounted('moved to B and mounted there', datasetId, b, 60_000);
    const pidA = a.pid ?? 0;
    await this.waitFor(
      'A stopped after the promote',
      () => (processState(pidA) === 'T' ? true : undefined),
      30_000,
      50,
    );
    await this.kill9(a, 'A gone');
    return pathB;
  }

  /** Waits for node's decision on the dataset: its copy mounted on node's host (whatever the state shows), or its refusal. */
  decision(
    node: LocalNode<P>,
    datasetId: string,
    timeoutMs: number,
  ): Promise<{ mounted: string; refused?: undefined } | { refused: string; mounted?: undefined }> {
    const at = path.join(node.mountRoot, datasetId);
    return this.waitFor(
      `${node.name.toUpperCase()}'s decision`,
      async () => {
        if (fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${at} `)) return { mounted: at };
        const refusal = (await this.errorsOf(node, datasetId)).find((e) => e.action === 'refuse');
        return refusal !== undefined ? { refused: refusal.message } : undefined;
      },
      timeoutMs,
      100,
    );
  }
}

/**
 * In a describe: the bed (a temp directory named from prefix) with A's agent started with
 * FLOCKER_TEST_STOP_AFTER_PROMOTE (it stops itself right after a move's promote, before its retire: the kill of
 * the double fault lands there) and B's, both reporting; closed after the describe's tests. The bed, in a test.
 */
export function useDoubleFaultAgents(
  prefix: string,
  engine: 'btrfs' | 'zfs',
  makePool: (dir: string, name: string) => LocalPool,
): () => TwoLocalAgents {
  let bed: TwoLocalAgents | undefined;
  beforeAll(async () => {
    bed = new TwoLocalAgents(prefix);
    await bed.startControl();
    await bed.addNodes(engine, makePool);
    const [a, b] = bed.ab;
    bed.start(a, { FLOCKER_TEST_STOP_AFTER_PROMOTE: '1' });
    bed.start(b);
    await bed.waitBothReport();
  });
  afterAll(() => bed?.close());
  return () => {
    if (bed === undefined) throw new Error('the agents are not set up');
    return bed;
  };
}
