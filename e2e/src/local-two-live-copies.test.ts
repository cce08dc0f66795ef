/**
 * Two live copies of a local dataset after a double fault (issue 24; review RL, session 14): a move
 * A -> B whose source agent is killed (kill -9) between B's promote and its own retire, B's users
 * write, the primary is moved back to A before A's agent restarts. Before: A mounted its older copy
 * and B retired its newer one (B's acknowledged writes lost). Now: while A is down B refuses
 * (TWO_LIVE_COPIES: the order of the copies is not known) and keeps its copy; A, back, finds its copy
 * older than B's (B's is made from A's final snapshot, A's unchanged since), retires it and B pushes
 * its copy to A. Two real agents on btrfs loop pools, then on ZFS file pools (the kernel's zfs, else
 * zfs-fuse; skipped with the reason where neither runs), a control service over mutual TLS. Needs root.
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

jest.setTimeout(180_000);

const AGENT_MAIN = path.join(REPO_ROOT, 'packages/dataset-agent/dist/main.js');
const silent = winston.createLogger({ silent: true });
const MiB = 1024 * 1024;

/** A node's pool as the test sees it: the engine's own layout. */
interface Pool {
  readonly pool: string;
  destroy(): void;
  /** Whether the dataset has a live copy here (btrfs: its subvolume; ZFS: its file system writable). */
  live(id: string): boolean;
  /** Whether anything of the dataset is left here (a copy, snapshots, a retired file system). */
  anything(id: string): boolean;
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

const zfsReady = ensureZfs();
const ENGINES: ReadonlyArray<{
  readonly engine: 'btrfs' | 'zfs';
  readonly skip?: string;
  readonly makePool: (dir: string, name: string) => Pool;
}> = [
  {
    engine: 'btrfs',
    makePool: (dir, name) => {
      const p = makeBtrfsLoopPool(dir, name, 512 * MiB);
      return {
        pool: p.pool,
        destroy: () => p.destroy(),
        live: (id) => fs.existsSync(path.join(p.pool, 'flocker', 'datasets', id)),
        anything: (id) =>
          fs.existsSync(path.join(p.pool, 'flocker', 'datasets', id)) ||
          fs.existsSync(path.join(p.pool, 'flocker', 'snapshots', id)),
      };
    },
  },
  {
    engine: 'zfs',
    ...(zfsReady.ok ? {} : { skip: zfsReady.reason }),
    makePool: (dir, name) => {
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
    },
  },
];

interface Node {
  readonly name: string;
  readonly uuid: string;
  readonly address: string;
  readonly pool: Pool;
  readonly mountRoot: string;
  readonly config: string;
  pid?: number;
  /** The process group of every agent process started for the node (each its own), exited ones too. */
  readonly groups: number[];
  log: string;
}

function sha256(file: string): string {
  return execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0] ?? '';
}

/** Every file under dir (relative path -> sha256). */
function digests(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(dir).sort()) out[name] = sha256(path.join(dir, name));
  return out;
}

/** The state letter of a process (/proc/<pid>/stat): 'T' stopped. */
function processState(pid: number): string | undefined {
  try {
    return /\) (\S)/.exec(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

describe.each(ENGINES)(
  'two live copies after a source killed between the promote and its retire ($engine)',
  ({ engine, skip, makePool }) => {
    if (skip !== undefined) {
      it('cannot run on this machine (the reason is printed)', () => {
        console.log(`two live copies e2e (${engine}) skipped: ${skip}`);
      });
      return;
    }
    let dir: string;
    let pki: ClusterPki;
    let control: ControlService;
    let admin: FlockerClient;
    const nodes: Node[] = [];
    const transferPort = randomInt(20_000, 30_000);

    const start = (n: Node, env: Record<string, string> = {}): void => {
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
    };
    const logs = (): string => nodes.map((n) => `--- ${n.name}\n${n.log.split('\n').slice(-25).join('\n')}`).join('\n');

    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-e2e-two-live-'));
      pki = await ClusterPki.create(path.join(dir, 'pki'), ['127.0.0.1']);
      control = await startControlService({
        port: 0,
        host: '127.0.0.1',
        dataDir: path.join(dir, 'control'),
        logger: silent,
        nodeTimeoutSeconds: 5,
        tls: pki.serverCredentials(),
      });
      admin = new FlockerClient({ baseUrl: control.url, dispatcher: await pki.userDispatcher('admin') });
      for (const [name, address] of [
        ['a', '127.0.0.2'],
        ['b', '127.0.0.3'],
      ] as const) {
        const configDir = path.join(dir, name);
        fs.mkdirSync(configDir, { recursive: true, mode: 0o700 });
        const uuid = await pki.installNode(configDir);
        const pool = makePool(dir, `${name}-pool`);
        const mountRoot = path.join(configDir, 'mnt');
        const config = path.join(configDir, 'agent.yml');
        fs.writeFileSync(
          config,
          [
            'version: 1',
            `control-service: {hostname: 127.0.0.1, port: ${control.port}}`,
            `dataset: {backend: local, engine: ${engine}, pool: ${pool.pool}, transfer_port: ${transferPort}}`,
            `node: {state_dir: ${path.join(configDir, 'state')}, mount_root: ${mountRoot}, host: ${address}}`,
            'agent: {resync_interval_seconds: 1, backoff_initial_seconds: 0.2, backoff_max_seconds: 2}',
            '',
          ].join('\n'),
        );
        nodes.push({ name, uuid, address, pool, mountRoot, config, log: '', groups: [] });
      }
      const [a, b] = nodes as [Node, Node];
      // A's agent stops itself right after a move's promote (before its retire): the kill lands there.
      start(a, { FLOCKER_TEST_STOP_AFTER_PROMOTE: '1' });
      start(b);
      await waitFor('both agents to report', async () => ((await admin.listNodes()).length === 2 ? true : undefined), {
        timeoutMs: 30_000,
        intervalMs: 100,
        context: logs,
      });
    });

    afterAll(async () => {
      for (const n of nodes) if (n.pid !== undefined && processState(n.pid) === 'T') process.kill(n.pid, 'SIGCONT');
      const survivors = await killProcessGroups(nodes.flatMap((n) => n.groups));
      await control?.close();
      for (const n of nodes) n.pool.destroy();
      if (dir !== undefined) removeTree(dir);
      if (survivors.length > 0) throw new Error(`agent processes still alive after SIGKILL: ${survivors.join(' ')}`);
    });

    const mountedAt = async (datasetId: string, node: Node): Promise<string | undefined> => {
      const state = (await admin.listDatasetState()).find((d) => d.dataset_id === datasetId);
      return state?.primary === node.uuid && state.path !== undefined ? state.path : undefined;
    };
    const errorsOf = async (node: Node, datasetId: string) =>
      (await admin.waitForCluster(undefined, 0)).nodes
        .find((n) => n.uuid === node.uuid)
        ?.errors.filter((e) => e.dataset_id === datasetId) ?? [];
    const live = (n: Node, id: string): boolean => n.pool.live(id);
    const dd = (file: string, mib: number, flags: string[] = []): void => {
      execFileSync('dd', [
        'if=/dev/urandom',
        `of=${file}`,
        'bs=1M',
        `count=${mib}`,
        'conv=fsync',
        'status=none',
        ...flags,
      ]);
    };

    it("B's writes after the promote end up live on A, every byte; no copy lost; both agents converge", async () => {
      const [a, b] = nodes as [Node, Node];
      const { dataset_id: id } = await admin.createDataset({ primary: a.uuid, maximum_size: 256 * MiB });
      const pathA = await waitFor('mounted on A', () => mountedAt(id, a), {
        timeoutMs: 30_000,
        intervalMs: 100,
        context: logs,
      });
      dd(path.join(pathA, 'before'), 32);

      // The move to B: A's agent stops itself once B has promoted (and mounted), before retiring its own copy; killed there.
      await admin.updateDataset(id, { primary: b.uuid });
      const pathB = await waitFor('moved to B and mounted there', () => mountedAt(id, b), {
        timeoutMs: 60_000,
        intervalMs: 100,
        context: logs,
      });
      const pidA = a.pid ?? 0;
      await waitFor('A stopped after the promote', () => (processState(pidA) === 'T' ? true : undefined), {
        timeoutMs: 30_000,
        intervalMs: 50,
        context: logs,
      });
      process.kill(-pidA, 'SIGKILL');
      await waitFor('A gone', () => (processState(pidA) === undefined ? true : undefined), {
        timeoutMs: 10_000,
        intervalMs: 50,
        context: logs,
      });
      // The double fault's state: A's older live copy is still there, unmounted.
      expect(live(a, id)).toBe(true);

      // B's users write (acknowledged: fsync'd): a new file, and the old one changed.
      dd(path.join(pathB, 'after'), 16);
      dd(path.join(pathB, 'before'), 1, ['conv=notrunc,fsync', 'seek=5']);
      const expected = digests(pathB);
      expect(Object.keys(expected)).toEqual(['after', 'before']);

      // The primary moved back to A while A's agent is down: B cannot tell which copy is newer (A does
      // not answer), so it keeps its copy, refusing with TWO_LIVE_COPIES naming A.
      await admin.updateDataset(id, { primary: a.uuid });
      const refusal = await waitFor(
        "B's refusal",
        async () => (await errorsOf(b, id)).find((e) => e.action === 'refuse'),
        { timeoutMs: 30_000, intervalMs: 200, context: logs },
      );
      expect(refusal).toMatchObject({ code: 'TWO_LIVE_COPIES' });
      expect(refusal.message).toContain(a.uuid);
      expect(live(b, id)).toBe(true);
      expect(digests(pathB)).toEqual(expected);

      // A's agent back (no hook): its copy is the older one (B's is made from its final snapshot), so it
      // retires it and B pushes its copy to A (incremental from that snapshot).
      start(a);
      const back = await waitFor("moved back to A with B's writes", () => mountedAt(id, a), {
        timeoutMs: 90_000,
        intervalMs: 100,
        context: logs,
      });
      expect(digests(back)).toEqual(expected);
      await waitFor('B to let go of its copy', () => (!live(b, id) ? true : undefined), {
        timeoutMs: 30_000,
        intervalMs: 100,
        context: logs,
      });
      // Converged: no error of the dataset on either node; A retired its older copy (never mounted it: the data is B's).
      await waitFor(
        'no errors left',
        async () => ((await errorsOf(a, id)).length === 0 && (await errorsOf(b, id)).length === 0 ? true : undefined),
        { timeoutMs: 30_000, intervalMs: 200, context: logs },
      );
      expect(a.log).toMatch(/"kind":"retire".*"message":"local action"/);
      expect(digests(back)).toEqual(expected);

      await admin.deleteDataset(id);
      await waitFor(
        'nothing of the dataset left on either pool',
        () => (nodes.every((n) => !n.pool.anything(id)) ? true : undefined),
        { timeoutMs: 30_000, intervalMs: 200, context: logs },
      );
    });

    it("the source killed after the promote and restarted, the primary still B: its older copy retired (made from nothing newer), B's writes untouched", async () => {
      const [a, b] = nodes as [Node, Node];
      // A's agent again with the hook (the first case restarted it without).
      if (a.pid !== undefined) process.kill(-a.pid, 'SIGKILL');
      start(a, { FLOCKER_TEST_STOP_AFTER_PROMOTE: '1' });
      const { dataset_id: id } = await admin.createDataset({ primary: a.uuid, maximum_size: 256 * MiB });
      const pathA = await waitFor('mounted on A', () => mountedAt(id, a), {
        timeoutMs: 30_000,
        intervalMs: 100,
        context: logs,
      });
      dd(path.join(pathA, 'before'), 16);
      await admin.updateDataset(id, { primary: b.uuid });
      const pathB = await waitFor('moved to B and mounted there', () => mountedAt(id, b), {
        timeoutMs: 60_000,
        intervalMs: 100,
        context: logs,
      });
      const pidA = a.pid ?? 0;
      await waitFor('A stopped after the promote', () => (processState(pidA) === 'T' ? true : undefined), {
        timeoutMs: 30_000,
        intervalMs: 50,
        context: logs,
      });
      process.kill(-pidA, 'SIGKILL');
      await waitFor('A gone', () => (processState(pidA) === undefined ? true : undefined), {
        timeoutMs: 10_000,
        intervalMs: 50,
        context: logs,
      });
      expect(live(a, id)).toBe(true);
      dd(path.join(pathB, 'after'), 8);
      const expected = digests(pathB);
      // A back: B's copy is made from A's final snapshot, A's unchanged since: A's is the older one.
      start(a);
      await waitFor('A to retire its older copy', () => (!live(a, id) ? true : undefined), {
        timeoutMs: 60_000,
        intervalMs: 100,
        context: logs,
      });
      expect(a.log).toMatch(/"kind":"retire".*"message":"local action"/);
      expect(await mountedAt(id, b)).toBe(pathB);
      expect(digests(pathB)).toEqual(expected);
      await waitFor(
        'no errors left',
        async () => ((await errorsOf(a, id)).length === 0 && (await errorsOf(b, id)).length === 0 ? true : undefined),
        { timeoutMs: 30_000, intervalMs: 200, context: logs },
      );
      await admin.deleteDataset(id);
      await waitFor(
        'nothing of the dataset left on either pool',
        () => (nodes.every((n) => !n.pool.anything(id)) ? true : undefined),
        {
          timeoutMs: 30_000,
          intervalMs: 200,
          context: logs,
        },
      );
    });
  },
);
