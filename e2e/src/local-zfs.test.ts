/**
 * Local storage that moves (issue 24), ZFS engine, for real: the kernel's zfs where it exists, else
 * zfs-fuse (userspace ZFS 0.7, pool version 23, installed by scripts/host-setup.sh; its daemon is
 * started here when zfs does not answer). Two simulated hosts, each with its own pool on its own
 * sparse file (one zfs-fuse daemon serves both, as one per machine does), moved between by the same
 * path as the btrfs e2e: the target's TLS listener (TransferServer) and the source's mover
 * (moveLocalDataset) with node certificates of one cluster CA; then two real dataset agents with
 * `engine: zfs` moving a dataset through the API. Needs root.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomInt, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import winston from 'winston';
import { FlockerClient } from '@flocker/api';
import { startControlService, type ControlService } from '@flocker/control-api';
import {
  moveLocalDataset,
  TransferClient,
  TransferServer,
  ZfsEngine,
  type MoveProgress,
  type NodeTlsCredentials,
} from '@flocker/storage-drivers';
import {
  ensureZfs,
  makeTestCluster,
  makeZfsFilePool,
  type TestCluster,
  type ZfsFilePool,
} from '@flocker/storage-drivers/testing';
import { ClusterPki } from './cluster/pki';
import { killProcessGroups } from './cluster/processes';
import { REPO_ROOT } from './cluster/Cluster';
import { waitFor } from './cluster/run';
import { removeTree } from './removeTree';

jest.setTimeout(150_000);

const MiB = 1024 * 1024;
const SIZE = 512 * MiB;

interface Host {
  readonly pool: ZfsFilePool;
  readonly engine: ZfsEngine;
  readonly credentials: NodeTlsCredentials & { nodeUuid: string };
  readonly mountRoot: string;
}

/** sha256 of every file in dir, by name. */
function checksums(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir).sort())
    out[f] = execFileSync('sha256sum', [join(dir, f)], { encoding: 'utf8' }).split(' ')[0] ?? '';
  return out;
}

function writeRandom(path: string, mib: number): void {
  execFileSync('dd', ['if=/dev/urandom', `of=${path}`, 'bs=1M', `count=${mib}`, 'conv=fsync', 'status=none']);
}

/** zfs-fuse answers "dataset is busy" a moment after the last file closed (FUSE releases come later): retried. */
function destroyWhenIdle(name: string): void {
  for (let attempt = 1; ; attempt++) {
    try {
      execFileSync('zfs', ['destroy', '-f', name], { stdio: 'pipe' });
      return;
    } catch (e) {
      if (attempt >= 20) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
    }
  }
}

const ready = ensureZfs();

describe('local ZFS storage moving between two hosts', () => {
  if (!ready.ok) {
    it('cannot run on this machine (the reason is printed)', () => {
      console.log(`local ZFS e2e skipped: ${ready.reason}`);
    });
    return;
  }
  let dir: string;
  let cluster: TestCluster;
  let a: Host;
  let b: Host;
  const servers: TransferServer[] = [];
  const procs: ChildProcess[] = [];
  /** Movers a failed test left running. */
  const aborts: AbortController[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flocker-e2e-local-zfs-'));
    cluster = makeTestCluster();
    const host = async (name: string): Promise<Host> => {
      const pool = makeZfsFilePool(dir, name, 1024 * MiB);
      const engine = new ZfsEngine({ pool: pool.pool });
      await engine.prepare();
      return { pool, engine, credentials: cluster.node(), mountRoot: join(dir, `${name}-mnt`) };
    };
    a = await host('a');
    b = await host('b');
  });

  afterEach(async () => {
    for (const c of aborts.splice(0)) c.abort();
    for (const p of procs.splice(0)) if (p.exitCode === null) p.kill('SIGKILL');
    for (const s of servers.splice(0)) await s.close();
  });

  afterAll(() => {
    b?.pool.destroy();
    a?.pool.destroy();
    cluster?.destroy();
    if (dir !== undefined) removeTree(dir);
  });

  const serve = async (h: Host, port = 0): Promise<number> => {
    const server = new TransferServer({
      engine: h.engine,
      credentials: h.credentials,
      mountPathFor: (datasetId) => join(h.mountRoot, datasetId),
    });
    servers.push(server);
    return server.listen(port, '127.0.0.1');
  };

  interface Sent {
    name: string;
    parent: string | null;
    bytes: number;
    released: boolean;
  }
  const move = (from: Host, to: Host, datasetId: string, port: number, progress: MoveProgress[], sent: Sent[]) =>
    moveLocalDataset({
      engine: from.engine,
      target: new TransferClient({ host: '127.0.0.1', port, nodeUuid: to.credentials.nodeUuid }, from.credentials),
      datasetId,
      size: SIZE,
      releasePollMs: 20,
      // A catch-up round every second while waiting for the release.
      catchUpMs: 1000,
      backoffInitialMs: 100,
      backoffMaxMs: 1000,
      progressIntervalMs: 100,
      onProgress: (p) => progress.push(p),
      onSent: (s) => sent.push(s),
    });

  /** The files of a snapshot on h, by a clone mounted for the look (zfs-fuse has no .zfs directory). */
  const snapshotChecksums = (h: Host, datasetId: string, name: string): Record<string, string> => {
    const clone = `${h.pool.pool}/verify-${randomUUID().slice(0, 8)}`;
    const at = join(dir, clone.replace(/\//g, '_'));
    execFileSync('zfs', ['clone', '-o', `mountpoint=${at}`, `${h.engine.fileSystem(datasetId)}@${name}`, clone]);
    try {
      const mounted = execFileSync('zfs', ['get', '-H', '-o', 'value', 'mounted', clone], { encoding: 'utf8' });
      if (mounted.trim() !== 'yes') execFileSync('zfs', ['mount', clone]);
      return checksums(at);
    } finally {
      destroyWhenIdle(clone);
    }
  };

  it('moves while a writer in its own mount namespace runs (phase 1), then the final delta once it lets go; every byte verified; and back', async () => {
    const id = randomUUID();
    await a.engine.createDataset(id, SIZE);
    const path = join(a.mountRoot, id);
    await a.engine.mount(id, path);
    writeRandom(join(path, 'initial'), 64);
    const port = await serve(b);
    // The writer, as a container would: its own mount namespace holding the volume, 1-MiB files fsynced until stopped.
    const writer = spawn('unshare', [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      `i=0; while :; do dd if=/dev/urandom of=${path}/w$i bs=1M count=1 conv=fsync status=none; i=$((i+1)); sleep 0.2; done`,
    ]);
    procs.push(writer);
    const progress: MoveProgress[] = [];
    const sent: Sent[] = [];
    const moving = move(a, b, id, port, progress, sent);
    let moveError: Error | undefined;
    moving.catch((e: unknown) => {
      moveError = e instanceof Error ? e : new Error(String(e));
    });
    // Phase 1 done: the full send and at least one incremental round while the writer ran.
    const until = async (what: string, ok: () => boolean, ms = 60_000): Promise<void> => {
      for (const end = Date.now() + ms; !ok();) {
        if (moveError !== undefined) throw moveError;
        if (Date.now() > end) throw new Error(`${what}: not in ${ms} ms (sent ${JSON.stringify(sent)})`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await until(
      'waiting for the release after two sends',
      () => sent.length >= 2 && progress.some((p) => p.phase === 'waitingForRelease'),
    );
    // The host lets go (the agent's unmount); the writer's namespace still holds the volume: no phase 2 yet.
    await a.engine.unmount(path);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await a.engine.inUse(id)).toBe(true);
    expect(sent.some((s) => s.released)).toBe(false);
    // The container stops: released, phase 2.
    writer.kill('SIGKILL');
    await new Promise((r) => writer.once('exit', r));
    const result = await moving;
    const final = sent[sent.length - 1]!;
    expect(final.released).toBe(true);
    expect(final.parent).not.toBeNull();
    expect(final.name).toBe(result.finalSnapshot);
    // The final delta is the writes since the last catch-up round (≤ 5 MiB/s), not the volume (64+ MiB, the full send).
    expect(final.bytes).toBeLessThan(sent[0]!.bytes / 2);
    console.log(
      `local ZFS move (${ready.how}): ${sent.length} sends (${sent.map((s) => `${Math.round(s.bytes / 1024)} KiB`).join(', ')}), unavailable ${Math.round(result.unavailableMs)} ms`,
    );
    // What the writer left, as A's final snapshot holds it, is what B has mounted.
    const expected = snapshotChecksums(a, id, result.finalSnapshot);
    expect(Object.keys(expected).length).toBeGreaterThan(2);
    const target = join(b.mountRoot, id);
    expect(await b.engine.mountPoints(id)).toEqual([target]);
    expect(checksums(target)).toEqual(expected);
    expect((await b.engine.listDatasets()).find((d) => d.datasetId === id)?.size).toBe(SIZE);
    // A keeps its copy retired (read-only, no live dataset) with the final snapshot: the base of a move back.
    expect((await a.engine.listDatasets()).some((d) => d.datasetId === id)).toBe(false);
    expect(await a.engine.listRetained()).toContain(id);
    expect((await a.engine.listSnapshots(id)).map((s) => s.name)).toEqual([result.finalSnapshot]);
    expect((await b.engine.listSnapshots(id)).map((s) => s.name)).toEqual([result.finalSnapshot]);

    // And back to A, incrementally from the snapshot both kept, into A's retired copy.
    writeRandom(join(target, 'on-b'), 4);
    const expectedBack = checksums(target);
    await b.engine.unmount(target);
    const backPort = await serve(a);
    const sentBack: Sent[] = [];
    await move(b, a, id, backPort, [], sentBack);
    expect(sentBack[0]?.parent).toBe(result.finalSnapshot);
    expect(sentBack.reduce((n, s) => n + s.bytes, 0)).toBeLessThan(16 * MiB);
    const back = join(a.mountRoot, id);
    expect(await a.engine.mountPoints(id)).toEqual([back]);
    expect(checksums(back)).toEqual(expectedBack);
    expect((await a.engine.listDatasets()).find((d) => d.datasetId === id)?.size).toBe(SIZE);
    await a.engine.unmount(back);
    await a.engine.destroyDataset(id);
    await b.engine.destroyDataset(id);
  });

  it('the connection cut in the final send (the target listener gone), back on the same port: resumed from the snapshot B holds, never from zero', async () => {
    const id = randomUUID();
    await a.engine.createDataset(id, SIZE);
    const path = join(a.mountRoot, id);
    await a.engine.mount(id, path);
    writeRandom(join(path, 'initial'), 8);
    const first = new TransferServer({
      engine: b.engine,
      credentials: b.credentials,
      mountPathFor: (datasetId) => join(b.mountRoot, datasetId),
    });
    const port = await first.listen(0, '127.0.0.1');
    const progress: MoveProgress[] = [];
    const sent: Sent[] = [];
    const retries: string[] = [];
    const stop = new AbortController();
    aborts.push(stop);
    // No catch-up rounds: the rounds are this test's to cause.
    const moving = moveLocalDataset({
      engine: a.engine,
      target: new TransferClient({ host: '127.0.0.1', port, nodeUuid: b.credentials.nodeUuid }, a.credentials),
      datasetId: id,
      size: SIZE,
      releasePollMs: 20,
      catchUpMs: 600_000,
      backoffInitialMs: 100,
      backoffMaxMs: 500,
      progressIntervalMs: 50,
      onProgress: (p) => progress.push(p),
      onSent: (x) => sent.push(x),
      onRetry: (error) => retries.push(error),
      signal: stop.signal,
    });
    let moveError: Error | undefined;
    moving.catch((e: unknown) => {
      moveError = e instanceof Error ? e : new Error(String(e));
    });
    const until = async (what: string, ok: () => boolean, ms = 60_000): Promise<void> => {
      for (const end = Date.now() + ms; !ok();) {
        if (moveError !== undefined) throw moveError;
        if (Date.now() > end) throw new Error(`${what}: not in ${ms} ms (sent ${JSON.stringify(sent)})`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await until('phase 1 done', () => progress.some((p) => p.phase === 'waitingForRelease'));
    const base = sent[sent.length - 1]!;
    // Much more data, sent as the final round once released; cut in the middle of it.
    writeRandom(join(path, 'big'), 96);
    const expected = checksums(path);
    await a.engine.unmount(path);
    await until('the final send under way', () =>
      progress.some((p) => p.phase === 'final' && p.currentSendBytes > 16 * MiB),
    );
    await first.close();
    await until('a retry after the cut', () => retries.length > 0);
    // Nothing half-received stays on B: its newest snapshot is the base from before.
    const held = (await b.engine.listSnapshots(id)).map((x) => x.name);
    expect(held[held.length - 1]).toBe(base.name);
    expect(held).not.toContain(sent.find((x) => x.released)?.name ?? 'none sent yet');
    const second = await serve(b, port);
    expect(second).toBe(port);
    const result = await moving;
    const finals = sent.filter((x) => x.released);
    // The final snapshot went once, whole, incrementally from the base B kept.
    expect(finals.map((x) => x.parent)).toEqual([base.name]);
    expect(finals[0]!.name).toBe(result.finalSnapshot);
    expect(sent.filter((x) => x.parent === null)).toHaveLength(1);
    console.log(`local ZFS move cut and resumed (${ready.how}): retried after ${retries[0]}`);
    const target = join(b.mountRoot, id);
    expect(checksums(target)).toEqual(expected);
    await b.engine.unmount(target);
    await a.engine.destroyDataset(id);
    await b.engine.destroyDataset(id);
  });

  it('a corrupt or truncated stream never becomes a snapshot (full or incremental); the intact one does', async () => {
    const id = randomUUID();
    await a.engine.createDataset(id, SIZE);
    const path = join(a.mountRoot, id);
    await a.engine.mount(id, path);
    writeRandom(join(path, 'base'), 8);
    const s1 = await a.engine.createSnapshot(id, 'move-000001');
    writeRandom(join(path, 'delta'), 8);
    const s2 = await a.engine.createSnapshot(id, 'move-000002');
    await a.engine.unmount(path);
    const stream = async (name: string, parent: string | null): Promise<Buffer> => {
      const chunks: Buffer[] = [];
      const send = a.engine.send(id, name, parent);
      for await (const c of send.stream as AsyncIterable<Buffer>) chunks.push(c);
      await send.done;
      return Buffer.concat(chunks);
    };
    const corrupted = (whole: Buffer): Buffer => {
      const c = Buffer.from(whole);
      c[Math.floor(c.length / 2)]! ^= 0xff;
      return c;
    };
    const full = await stream('move-000001', null);
    for (const bad of [corrupted(full), full.subarray(0, full.length - 1000)])
      await expect(b.engine.receive(id, 'move-000001', s1.identity, Readable.from([bad]))).rejects.toMatchObject({
        code: 'TRANSFER_FAILED',
      });
    expect(await b.engine.listSnapshots(id)).toEqual([]);
    expect((await b.engine.receive(id, 'move-000001', s1.identity, Readable.from([full]))).identity).toBe(s1.identity);
    // Cut off or corrupt in the incremental: B keeps exactly the last complete snapshot (a move resumes from it).
    const inc = await stream('move-000002', 'move-000001');
    for (const bad of [corrupted(inc), inc.subarray(0, Math.floor(inc.length / 2))])
      await expect(b.engine.receive(id, 'move-000002', s2.identity, Readable.from([bad]))).rejects.toMatchObject({
        code: 'TRANSFER_FAILED',
      });
    expect((await b.engine.listSnapshots(id)).map((s) => s.identity)).toEqual([s1.identity]);
    await b.engine.receive(id, 'move-000002', s2.identity, Readable.from([inc]));
    expect((await b.engine.listSnapshots(id)).map((s) => s.identity)).toEqual([s1.identity, s2.identity]);
    await a.engine.destroyDataset(id);
    await b.engine.destroyDataset(id);
  });

  it('the size is enforced by refquota', async () => {
    const id = randomUUID();
    await a.engine.createDataset(id, 16 * MiB);
    const path = join(a.mountRoot, id);
    await a.engine.mount(id, path);
    expect(() => writeRandom(join(path, 'too-big'), 32)).toThrow(/quota|Disk quota exceeded|No space left/i);
    await a.engine.unmount(path);
    await a.engine.destroyDataset(id);
    expect((await a.engine.listDatasets()).some((d) => d.datasetId === id)).toBe(false);
  });
});

describe('local ZFS datasets moved through the API between two agents', () => {
  if (!ready.ok) {
    it('cannot run on this machine (the reason is printed)', () => {
      console.log(`local ZFS agents e2e skipped: ${ready.reason}`);
    });
    return;
  }
  const AGENT_MAIN = join(REPO_ROOT, 'packages/dataset-agent/dist/main.js');
  interface Node {
    readonly name: string;
    readonly uuid: string;
    readonly pool: ZfsFilePool;
    readonly mountRoot: string;
    readonly child: ChildProcess;
    log: string;
  }
  let dir: string;
  let control: ControlService;
  let admin: FlockerClient;
  const nodes: Node[] = [];
  const logs = (): string => nodes.map((n) => `--- ${n.name}\n${n.log.split('\n').slice(-20).join('\n')}`).join('\n');
  /** Whether pool holds anything of the dataset (its file system, hence any snapshot of it). */
  const holds = (n: Node, id: string): boolean =>
    spawnSync('zfs', ['list', '-H', '-o', 'name', `${n.pool.pool}/flocker/${id}`], { stdio: 'ignore' }).status === 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flocker-e2e-local-zfs-agents-'));
    const pki = await ClusterPki.create(join(dir, 'pki'), ['127.0.0.1']);
    control = await startControlService({
      port: 0,
      host: '127.0.0.1',
      dataDir: join(dir, 'control'),
      logger: winston.createLogger({ silent: true }),
      nodeTimeoutSeconds: 5,
      tls: pki.serverCredentials(),
    });
    admin = new FlockerClient({ baseUrl: control.url, dispatcher: await pki.userDispatcher('admin') });
    const transferPort = randomInt(20_000, 30_000);
    for (const [name, address] of [
      ['a', '127.0.0.2'],
      ['b', '127.0.0.3'],
    ] as const) {
      const configDir = join(dir, name);
      mkdirSync(configDir, { recursive: true, mode: 0o700 });
      const uuid = await pki.installNode(configDir);
      const pool = makeZfsFilePool(dir, `${name}-agent`, 512 * MiB);
      const mountRoot = join(configDir, 'mnt');
      const config = join(configDir, 'agent.yml');
      writeFileSync(
        config,
        [
          'version: 1',
          `control-service: {hostname: 127.0.0.1, port: ${control.port}}`,
          `dataset: {backend: local, engine: zfs, pool: ${pool.pool}, transfer_port: ${transferPort}}`,
          `node: {state_dir: ${join(configDir, 'state')}, mount_root: ${mountRoot}, host: ${address}}`,
          'agent: {resync_interval_seconds: 1, backoff_initial_seconds: 0.2, backoff_max_seconds: 2}',
          '',
        ].join('\n'),
      );
      // In a process group of its own: afterAll ends it whole, with any zfs, mount or losetup it ran.
      const child = spawn(process.execPath, [AGENT_MAIN, '--config', config], {
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      const node: Node = { name, uuid, pool, mountRoot, child, log: '' };
      child.stdout?.on('data', (c: Buffer) => (node.log += c.toString()));
      child.stderr?.on('data', (c: Buffer) => (node.log += c.toString()));
      nodes.push(node);
    }
    await waitFor('both agents to report', async () => ((await admin.listNodes()).length === 2 ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 100,
      context: logs,
    });
  });

  afterAll(async () => {
    const survivors = await killProcessGroups(nodes.map((n) => n.child.pid));
    await control?.close();
    for (const n of nodes) n.pool.destroy();
    if (dir !== undefined) removeTree(dir);
    if (survivors.length > 0) throw new Error(`agent processes still alive after SIGKILL: ${survivors.join(' ')}`);
  });

  const mountedAt = async (datasetId: string, node: Node): Promise<string | undefined> => {
    const state = (await admin.listDatasetState()).find((d) => d.dataset_id === datasetId);
    return state?.primary === node.uuid && state.path !== undefined ? state.path : undefined;
  };

  it('creates the dataset on its node, moves it with its data when the primary changes, leaves nothing once deleted', async () => {
    const [a, b] = nodes as [Node, Node];
    const id = (await admin.createDataset({ primary: a.uuid, maximum_size: 256 * MiB, metadata: { name: 'zfs-e2e' } }))
      .dataset_id;
    const pathA = await waitFor('mounted on A', () => mountedAt(id, a), {
      timeoutMs: 30_000,
      intervalMs: 100,
      context: logs,
    });
    expect(pathA).toBe(join(a.mountRoot, id));
    writeRandom(join(pathA, 'data'), 32);
    const expected = checksums(pathA);
    await admin.updateDataset(id, { primary: b.uuid });
    const pathB = await waitFor('moved to B and mounted there', () => mountedAt(id, b), {
      timeoutMs: 60_000,
      intervalMs: 100,
      context: logs,
    });
    expect(pathB).toBe(join(b.mountRoot, id));
    const onB = checksums(pathB);
    if (JSON.stringify(onB) !== JSON.stringify(expected)) {
      // Seen once (ci15, loaded host): B's path empty as it was shown mounted. Say enough to tell a transient
      // zfs-fuse remount (the data there a moment later) from a wrong copy: the same look 1 s later, the mounts of
      // the dataset, both agents' whole logs.
      await new Promise((r) => setTimeout(r, 1_000));
      const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .filter((l) => l.includes(id));
      const full = nodes.map((n) => `--- ${n.name}\n${n.log}`).join('\n');
      throw new Error(
        `B's copy differs from A's: ${JSON.stringify(onB)}; 1 s later ${JSON.stringify(checksums(pathB))}; ` +
          `mounts of the dataset:\n${mounts.join('\n')}\n${full}`,
      );
    }
    // A lets go: no live copy reported; its file system stays, read-only, with the final snapshot (a move back's base).
    await waitFor(
      'A to let go of its copy',
      async () => {
        const nodeA = (await admin.waitForCluster(undefined, 0)).nodes.find((n) => n.uuid === a.uuid);
        return nodeA !== undefined && !nodeA.manifestations.some((m) => m.dataset_id === id) ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, context: logs },
    );
    const readonlyA = execFileSync('zfs', ['get', '-H', '-o', 'value', 'readonly', `${a.pool.pool}/flocker/${id}`], {
      encoding: 'utf8',
    });
    expect(readonlyA.trim()).toBe('on');
    // Deleted: the live copy on B and what the move left on A go.
    await admin.deleteDataset(id);
    await waitFor(
      'nothing of the dataset left on either pool',
      () => (nodes.some((n) => holds(n, id)) ? undefined : true),
      {
        timeoutMs: 30_000,
        intervalMs: 200,
        context: logs,
      },
    );
  });
});
