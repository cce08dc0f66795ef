/**
 * Local storage (issue 24) through the API: two real dataset agents with `dataset: {backend:
 * local, engine: btrfs}`, each on its own btrfs file system on its own loop device, a control
 * service over mutual TLS, and a move asked with the API (primary changed): the source agent pushes
 * the data to the new primary's transfer listener, which mounts it. Needs root.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import winston from 'winston';
import { FlockerClient } from '@flocker/api';
import { buildCli } from '@flocker/cli';
import { startControlService, type ControlService } from '@flocker/control-api';
import { makeBtrfsLoopPool, type BtrfsLoopPool } from '@flocker/storage-drivers/testing';
import { ClusterPki } from './cluster/pki';
import { killProcessGroups } from './cluster/processes';
import { REPO_ROOT } from './cluster/Cluster';
import { waitFor } from './cluster/run';
import { removeTree } from './removeTree';

jest.setTimeout(120_000);

const AGENT_MAIN = path.join(REPO_ROOT, 'packages/dataset-agent/dist/main.js');
const silent = winston.createLogger({ silent: true });
const MiB = 1024 * 1024;
const DATA_MIB = 128;

interface Node {
  readonly name: string;
  readonly uuid: string;
  readonly address: string;
  readonly pool: BtrfsLoopPool;
  readonly mountRoot: string;
  readonly config: string;
  /** How the agent follows its view (FLOCKER_AGENT_FOLLOW). */
  readonly follow: 'watch' | 'long-poll';
  child?: ChildProcess;
  /** The process group of every agent process started for the node (each its own), exited ones too. */
  readonly groups: number[];
  log: string;
}

function sha256(file: string): string {
  return execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0] ?? '';
}

describe('local btrfs datasets moved through the API between two agents', () => {
  let dir: string;
  let pki: ClusterPki;
  let control: ControlService;
  let admin: FlockerClient;
  const nodes: Node[] = [];
  const transferPort = randomInt(20_000, 30_000);

  const start = (n: Node): void => {
    n.log = '';
    // In a process group of its own: afterAll ends it whole, with any btrfs, mount or losetup it ran.
    const child = spawn(process.execPath, [AGENT_MAIN, '--config', n.config], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FLOCKER_AGENT_FOLLOW: n.follow },
      detached: true,
    });
    if (child.pid !== undefined) n.groups.push(child.pid);
    child.stdout?.on('data', (c: Buffer) => (n.log += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (n.log += c.toString()));
    n.child = child;
  };
  const logs = (): string => nodes.map((n) => `--- ${n.name}\n${n.log.split('\n').slice(-20).join('\n')}`).join('\n');

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-e2e-local-agents-'));
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
    // A follows its view over the watch (the default), B by long-polled deltas: a move either way
    // converges with either channel on either side.
    for (const [name, address, follow] of [
      ['a', '127.0.0.2', 'watch'],
      ['b', '127.0.0.3', 'long-poll'],
    ] as const) {
      const configDir = path.join(dir, name);
      fs.mkdirSync(configDir, { recursive: true, mode: 0o700 });
      const uuid = await pki.installNode(configDir);
      const pool = makeBtrfsLoopPool(dir, `${name}-pool`, 1024 * MiB);
      const mountRoot = path.join(configDir, 'mnt');
      const config = path.join(configDir, 'agent.yml');
      fs.writeFileSync(
        config,
        [
          'version: 1',
          `control-service: {hostname: 127.0.0.1, port: ${control.port}}`,
          `dataset: {backend: local, engine: btrfs, pool: ${pool.pool}, transfer_port: ${transferPort}}`,
          `node: {state_dir: ${path.join(configDir, 'state')}, mount_root: ${mountRoot}, host: ${address}}`,
          'agent: {resync_interval_seconds: 1, backoff_initial_seconds: 0.2, backoff_max_seconds: 2}',
          '',
        ].join('\n'),
      );
      const node: Node = { name, uuid, address, pool, mountRoot, config, follow, log: '', groups: [] };
      nodes.push(node);
      start(node);
    }
    await waitFor('both agents to report', async () => ((await admin.listNodes()).length === 2 ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 100,
      context: logs,
    });
  });

  afterAll(async () => {
    const survivors = await killProcessGroups(nodes.flatMap((n) => n.groups));
    await control?.close();
    for (const n of nodes) n.pool.destroy();
    if (dir !== undefined) removeTree(dir);
    if (survivors.length > 0) throw new Error(`agent processes still alive after SIGKILL: ${survivors.join(' ')}`);
  });

  /** The `flocker` CLI in this process on the admin's client: its exit code, stdout and stderr lines. */
  const cli = async (args: string[], interactive: boolean): Promise<{ code: number; out: string[]; err: string[] }> => {
    const out: string[] = [];
    const err: string[] = [];
    const before = process.exitCode;
    process.exitCode = undefined;
    try {
      await buildCli(args, { out: (t) => out.push(t), err: (t) => err.push(t), interactive }, () => admin).parseAsync();
      return { code: Number(process.exitCode ?? 0), out, err };
    } finally {
      process.exitCode = before;
    }
  };

  /** A node's log lines of actions that failed (or were refused) since it started. */
  const failedActions = (n: Node): string =>
    n.log
      .split('\n')
      .filter((l) => l.includes('"local action failed"') || l.includes('"local action refused"'))
      .join('\n');

  /** The errors a node reports for a dataset in the API state. */
  const errorsOf = async (node: Node, datasetId: string) =>
    (await admin.waitForCluster(undefined, 0)).nodes
      .find((n) => n.uuid === node.uuid)
      ?.errors.filter((e) => e.dataset_id === datasetId) ?? [];

  /**
   * A move of the dataset to `to` off its dead node: first `to` reports no error of it (an earlier
   * failure the decision no longer has is dropped), then the move is asked and the refusal waited for
   * as the refuse action's error, not as the first error shown (issue 24: a stale BACKEND_ERROR once
   * stood in its place). No other error of the dataset shows meanwhile (a refusal waits out no back-off).
   */
  const refusedMove = async (datasetId: string, to: Node) => {
    let shown: unknown[] = [];
    await waitFor(
      `no error of the dataset on ${to.name} before the move`,
      async () => {
        shown = await errorsOf(to, datasetId);
        return shown.length === 0 ? true : undefined;
      },
      // The stale error itself, and the actions that failed, if it stays.
      { timeoutMs: 15_000, intervalMs: 200, context: () => `errors: ${JSON.stringify(shown)}\n${failedActions(to)}` },
    );
    await admin.updateDataset(datasetId, { primary: to.uuid });
    const others: unknown[] = [];
    const error = await waitFor(
      `${to.name}'s refusal`,
      async () => {
        const errors = await errorsOf(to, datasetId);
        others.push(...errors.filter((e) => e.action !== 'refuse'));
        return errors.find((e) => e.action === 'refuse');
      },
      { timeoutMs: 30_000, intervalMs: 200, context: logs },
    );
    if (others.length > 0) console.log(`${to.name}'s failed actions:\n${failedActions(to)}`);
    expect(others).toEqual([]);
    return error;
  };

  const mountedAt = async (datasetId: string, node: Node): Promise<string | undefined> => {
    const state = (await admin.listDatasetState()).find((d) => d.dataset_id === datasetId);
    return state?.primary === node.uuid && state.path !== undefined ? state.path : undefined;
  };

  it('creates the dataset on its node, moves it with its data when the primary changes (its progress shown by flocker volumes move; used bytes reported), refuses a move off a dead node, leaves nothing once deleted', async () => {
    const [a, b] = nodes as [Node, Node];
    const created = await admin.createDataset({
      primary: a.uuid,
      maximum_size: 256 * MiB,
      metadata: { name: 'local-e2e' },
    });
    const id = created.dataset_id;
    const pathA = await waitFor('mounted on A', () => mountedAt(id, a), {
      timeoutMs: 30_000,
      intervalMs: 100,
      context: logs,
    });
    expect(pathA).toBe(path.join(a.mountRoot, id));
    execFileSync('dd', [
      'if=/dev/urandom',
      `of=${pathA}/data`,
      'bs=1M',
      `count=${DATA_MIB}`,
      'conv=fsync',
      'status=none',
    ]);
    const expected = sha256(path.join(pathA, 'data'));

    // The move's progress as the API state shows it (A's report), watched while it runs.
    const seen: string[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const snap = await admin.waitForCluster(undefined, 0);
        const move = snap.nodes.find((n) => n.uuid === a.uuid)?.moves?.find((m) => m.dataset_id === id);
        if (move !== undefined && move.to === b.uuid) seen.push(`${move.phase}:${move.bytes_sent}/${move.bytes_total}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const t0 = Date.now();
    // `flocker volumes move` (as on a terminal): the phase and bytes sent, from A's report, while it waits.
    const moved = await cli(['volumes', 'move', id, b.uuid, '--timeout', '60'], true);
    const pathB = await waitFor('moved to B and mounted there', () => mountedAt(id, b), {
      timeoutMs: 60_000,
      intervalMs: 100,
      context: logs,
    });
    console.log(`local dataset moved through the API in ${Date.now() - t0} ms; progress seen: ${seen.join(', ')}`);
    console.log(`flocker volumes move said:\n${[...moved.err, ...moved.out].join('\n')}`);
    watching = false;
    await watcher;
    // The move's progress was in the API state (a 128-MiB copy can be over between two looks: any phase).
    expect(seen.length).toBeGreaterThan(0);
    expect(moved.code).toBe(0);
    expect(moved.out.join('\n')).toContain(`is mounted on ${b.address}`);
    // Its progress line names the phase it saw: "copying from A to B" while A's copy is sent, but a source
    // released before the mover's first look goes straight to the final phase (no copying line then).
    expect(
      moved.err.some((l) =>
        /… (copying from 127\.0\.0\.2 to 127\.0\.0\.3|caught up with 127\.0\.0\.2; .*|sending the last changes to 127\.0\.0\.3|127\.0\.0\.3 is taking over): .*sent.*, \d+ rounds? done$/.test(
          l,
        ),
      ),
    ).toBe(true);
    // B reports the used bytes its engine counts for the mounted copy (coarsened: 128 MiB of data is 128 MiB).
    await waitFor(
      "B's report of the used bytes",
      async () => {
        const m = (await admin.waitForCluster(undefined, 0)).nodes
          .find((n) => n.uuid === b.uuid)
          ?.manifestations.find((x) => x.dataset_id === id);
        return m?.used_bytes !== undefined && m.used_bytes >= DATA_MIB * MiB ? true : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 200, context: logs },
    );
    expect(pathB).toBe(path.join(b.mountRoot, id));
    expect(sha256(path.join(pathB, 'data'))).toBe(expected);
    // A no longer holds a live copy (its final snapshot stays as the base of a move back).
    await waitFor(
      'A to let go of its copy',
      async () => {
        const snap = await admin.waitForCluster(undefined, 0);
        const nodeA = snap.nodes.find((n) => n.uuid === a.uuid);
        return nodeA !== undefined && !nodeA.manifestations.some((m) => m.dataset_id === id) ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, context: logs },
    );
    expect(fs.existsSync(path.join(a.pool.pool, 'flocker', 'datasets', id))).toBe(false);

    // B dies with the only copy: a move to A is refused with an error naming B, and A makes no blank dataset.
    b.child?.kill('SIGKILL');
    await waitFor(
      'B declared dead',
      async () => {
        const snap = await admin.waitForCluster(undefined, 0);
        return snap.nodes.find((n) => n.uuid === b.uuid)?.alive === false ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, context: logs },
    );
    const error = await refusedMove(id, a);
    expect(error).toMatchObject({ code: 'SOURCE_UNREACHABLE' }); // the whole error shown if not
    expect(error.message).toContain(b.uuid);
    expect(fs.existsSync(path.join(a.pool.pool, 'flocker', 'datasets', id))).toBe(false);

    // B comes back: the move to A goes through after all.
    start(b);
    const back = await waitFor('moved back to A', () => mountedAt(id, a), {
      timeoutMs: 60_000,
      intervalMs: 100,
      context: logs,
    });
    expect(sha256(path.join(back, 'data'))).toBe(expected);

    // Deleted: the live copy on A and what the moves left on both pools (their final snapshots) go.
    await admin.deleteDataset(id);
    await waitFor(
      'nothing of the dataset left on either pool',
      () =>
        nodes.every(
          (n) =>
            !fs.existsSync(path.join(n.pool.pool, 'flocker', 'datasets', id)) &&
            !fs.existsSync(path.join(n.pool.pool, 'flocker', 'snapshots', id)),
        )
          ? true
          : undefined,
      { timeoutMs: 30_000, intervalMs: 200, context: logs },
    );
  });

  it('standby replica (replicas: 1): kept up to date on the other node (turned off, that node destroys it), a move there sends only the last delta; the primary killed, the replica is promoted only with the opt-in, with the data up to its newest snapshot', async () => {
    const [a, b] = nodes as [Node, Node];
    const snap = () => admin.waitForCluster(undefined, 0);
    const replicaOf = async (id: string, primary: Node) =>
      (await snap()).nodes.find((n) => n.uuid === primary.uuid)?.replicas?.find((r) => r.dataset_id === id);
    /** The replica's newest snapshot, once one was taken after `since` (ms) on `holder`. */
    const replicaAfter = (id: string, primary: Node, holder: Node, since: number) =>
      waitFor(
        `a replica on ${holder.name} newer than ${new Date(since).toISOString()}`,
        async () => {
          const r = await replicaOf(id, primary);
          return r?.node_uuid === holder.uuid && r.taken_at !== null && Date.parse(r.taken_at) > since ? r : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 200, context: logs },
      );
    const write = (dir: string, file: string, mib: number): string => {
      execFileSync('dd', [
        'if=/dev/urandom',
        `of=${dir}/${file}`,
        'bs=1M',
        `count=${mib}`,
        'conv=fsync',
        'status=none',
      ]);
      return sha256(path.join(dir, file));
    };

    const created = await admin.createDataset({
      primary: a.uuid,
      maximum_size: 256 * MiB,
      metadata: {
        name: 'local-e2e-replica',
        'clusterhq:flocker:replicas': '1',
        'clusterhq:flocker:replica-interval': '2',
      },
    });
    const id = created.dataset_id;
    const pathA = await waitFor('mounted on A', () => mountedAt(id, a), {
      timeoutMs: 30_000,
      intervalMs: 100,
      context: logs,
    });
    const sum1 = write(pathA, 'one', 64);
    const first = await replicaAfter(id, a, b, Date.now());
    // `flocker describe volume`: the standby replica's node and age.
    const described = await cli(['describe', 'volume', id], false);
    expect(described.code).toBe(0);
    expect(described.out.join('\n')).toMatch(/^Replica: +replica on 127\.0\.0\.3, \d+ s old$/m);
    // Received on B, never promoted: no live copy there.
    expect(fs.existsSync(path.join(b.pool.pool, 'flocker', 'snapshots', id, first.snapshot ?? ''))).toBe(true);
    expect(fs.existsSync(path.join(b.pool.pool, 'flocker', 'datasets', id))).toBe(false);
    // Replicas turned off: B destroys the replica it holds (A is alive with the live copy); on again, a new one.
    await admin.updateDataset(id, { metadata: { 'clusterhq:flocker:replicas': '0' } });
    await waitFor(
      'B to destroy the replica nobody needs',
      () => (fs.readdirSync(path.join(b.pool.pool, 'flocker', 'snapshots')).includes(id) ? undefined : true),
      { timeoutMs: 30_000, intervalMs: 200, context: logs },
    );
    await admin.updateDataset(id, { metadata: { 'clusterhq:flocker:replicas': '1' } });
    await replicaAfter(id, a, b, Date.now());

    // A move to the replica node while A lives: every snapshot the mover sends is a small delta.
    const logFrom = a.log.length;
    await admin.updateDataset(id, { primary: b.uuid });
    const pathB = await waitFor('moved to B', () => mountedAt(id, b), {
      timeoutMs: 60_000,
      intervalMs: 100,
      context: logs,
    });
    expect(sha256(path.join(pathB, 'one'))).toBe(sum1);
    const sends = a.log
      .slice(logFrom)
      .split('\n')
      .filter((l) => l.includes('"sent a snapshot"') && l.includes(id))
      .map((l) => JSON.parse(l) as { parent: string | null; bytes: number });
    console.log(`move to the replica node: sends ${JSON.stringify(sends)}`);
    expect(sends.length).toBeGreaterThan(0);
    for (const sent of sends) {
      expect(sent.parent).not.toBeNull();
      expect(sent.bytes).toBeLessThan(8 * MiB);
    }

    // B is the primary now and keeps its replica on A. Data written, replicated; then no more rounds.
    const sum2 = write(pathB, 'two', 8);
    await replicaAfter(id, b, a, Date.now());
    await admin.updateDataset(id, { metadata: { 'clusterhq:flocker:replica-interval': '3600' } });
    // A round already under way ends first: the replica's age stays put from then on.
    let last = (await replicaOf(id, b))?.taken_at;
    await waitFor(
      'no more replica rounds',
      async () => {
        await new Promise((r) => setTimeout(r, 3_000));
        const now = (await replicaOf(id, b))?.taken_at;
        const stable = now === last;
        last = now;
        return stable ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 0, context: logs },
    );
    write(pathB, 'three', 4);
    b.child?.kill('SIGKILL');
    await waitFor(
      'B declared dead',
      async () => ((await snap()).nodes.find((n) => n.uuid === b.uuid)?.alive === false ? true : undefined),
      { timeoutMs: 30_000, intervalMs: 200, context: logs },
    );

    // A move to A is refused by default (naming the opt-in), then promotes the replica with it.
    const error = await refusedMove(id, a);
    expect(error).toMatchObject({ code: 'SOURCE_UNREACHABLE' }); // the whole error shown if not
    expect(error.message).toContain('clusterhq:flocker:accept-replica-loss');
    expect(fs.existsSync(path.join(a.pool.pool, 'flocker', 'datasets', id))).toBe(false);
    await admin.updateDataset(id, { metadata: { 'clusterhq:flocker:accept-replica-loss': 'true' } });
    const recovered = await waitFor('the replica promoted on A', () => mountedAt(id, a), {
      timeoutMs: 30_000,
      intervalMs: 100,
      context: logs,
    });
    expect(sha256(path.join(recovered, 'one'))).toBe(sum1);
    expect(sha256(path.join(recovered, 'two'))).toBe(sum2);
    // Written after the replica's newest snapshot: the loss window.
    expect(fs.existsSync(path.join(recovered, 'three'))).toBe(false);

    // B back: its stale copy is let go of; then the dataset is deleted from both pools.
    start(b);
    await waitFor(
      'B to let go of its stale copy',
      async () => {
        const nodeB = (await snap()).nodes.find((n) => n.uuid === b.uuid);
        return nodeB?.alive === true && !nodeB.manifestations.some((m) => m.dataset_id === id) ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, context: logs },
    );
    expect(sha256(path.join(recovered, 'two'))).toBe(sum2);
    await admin.deleteDataset(id);
    await waitFor(
      'nothing of the dataset left on either pool',
      () =>
        nodes.every(
          (n) =>
            !fs.existsSync(path.join(n.pool.pool, 'flocker', 'datasets', id)) &&
            !fs.existsSync(path.join(n.pool.pool, 'flocker', 'snapshots', id)),
        )
          ? true
          : undefined,
      { timeoutMs: 30_000, intervalMs: 200, context: logs },
    );
    // The agents followed their local views (issue 24), not whole snapshots: A over the watch, B by
    // long-polled deltas (FLOCKER_AGENT_FOLLOW=long-poll).
    // (A's refetches while watching may read a delta too, so A's "by deltas" line is not looked at.)
    const channels = nodes.map((n) => ({
      node: n.name,
      watch: n.log.includes("following this node's view over a watch"),
      ...(n.follow === 'long-poll' ? { deltas: n.log.includes("following this node's view by deltas") } : {}),
      whole: n.log.includes('following whole snapshots'),
    }));
    expect(channels).toEqual([
      { node: 'a', watch: true, whole: false },
      { node: 'b', watch: false, deltas: true, whole: false },
    ]);
  });
});
