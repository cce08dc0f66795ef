/**
 * End to end (issue 20): snapshots and clones through the API, with the control service
 * (in process) and real dataset agents (spawned processes) on a shared loopback pool: real
 * loop devices, ext4, fsfreeze and mounts. Write, snapshot, write more, clone, read both;
 * the snapshot outlives its source and clones again; deleted, it leaves the backend and the
 * configuration; agents killed with SIGKILL between the steps converge when restarted.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FlockerClient, SnapshotState } from '@flocker/api';
import { LocalAgentBed, mountsUnder, type AgentProc } from './localAgents';

jest.setTimeout(240_000);

const MiB = 1024 * 1024;
let bed: LocalAgentBed;
let client: FlockerClient;

beforeEach(async () => {
  bed = await LocalAgentBed.start('flocker-snapshots-e2e-');
  ({ client } = bed);
});
afterEach(() => bed.close());

const mountPath = (name: string, datasetId: string): string => join(bed.dir, name, 'mnt', datasetId);

async function waitMountedOn(name: string, datasetId: string): Promise<string> {
  const uuid = bed.nodeUuid(name);
  const path = mountPath(name, datasetId);
  await bed.waitFor(`${datasetId} mounted on ${name}`, async () => {
    const s = (await client.listDatasetState()).find((d) => d.dataset_id === datasetId);
    return s?.primary === uuid && s.path === path;
  });
  expect(mountsUnder(bed.dir).filter((m) => m.mountPoint === path)).toHaveLength(1);
  return path;
}

async function snapshotState(id: string): Promise<SnapshotState | undefined> {
  return (await client.listSnapshotState()).find((s) => s.snapshot_id === id);
}

async function kill9(agent: AgentProc): Promise<void> {
  agent.proc.kill('SIGKILL');
  await agent.exited;
}

/** Whether a write (and fsync) completes within `ms`, in a child process (a frozen file system blocks it). */
function writeCompletes(file: string, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', `echo x > '${file}' && sync -f '${file}'`], { stdio: 'ignore' });
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
  });
}

/** The snapshot images the shared pool holds (the loopback backend's snapshots/ directory). */
function snapshotImages(): string[] {
  const dir = join(bed.dir, 'pool', 'snapshots');
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.img')) : [];
}

describe('snapshots and clones on the loopback backend with real agents', () => {
  it('snapshot, write more, clone, read both; the snapshot outlives its source; kill -9 between steps converges', async () => {
    let a = bed.startAgent('a');
    const b = bed.startAgent('b');
    await bed.waitFor('both nodes to report', async () => {
      const known = (await client.listNodes()).map((n) => n.uuid);
      return ['a', 'b'].every(
        (n) => existsSync(join(bed.dir, n, 'state', 'node.json')) && known.includes(bed.nodeUuid(n)),
      );
    });
    const uuidA = bed.nodeUuid('a');
    const uuidB = bed.nodeUuid('b');

    const source = (await client.createDataset({ primary: uuidA, maximum_size: 64 * MiB, metadata: { name: 'src' } }))
      .dataset_id;
    const onA = await waitMountedOn('a', source);
    // Not fsynced on purpose: the freeze around the snapshot flushes it.
    writeFileSync(join(onA, 'first.txt'), 'before the snapshot\n');

    // kill -9 of the source's agent right after the snapshot is asked for; the restarted agent takes it.
    await kill9(a);
    const snap = await client.createSnapshot({ dataset_id: source, metadata: { name: 'snap-1' } });
    a = bed.startAgent('a');
    await bed.waitFor(
      'the snapshot in the backend',
      async () => (await snapshotState(snap.snapshot_id))?.status === 'ready',
    );
    expect(await snapshotState(snap.snapshot_id)).toMatchObject({ dataset_id: source, size: 64 * MiB });
    expect(readFileSync(join(bed.dir, 'a.log'), 'utf8')).toMatch(
      /file system frozen for a snapshot.*frozenMs|frozenMs.*file system frozen/,
    );
    // The file system is thawed: it takes writes.
    writeFileSync(join(onA, 'second.txt'), 'after the snapshot\n');

    // Clone onto b, 128 MiB: the clone has only what was there at the snapshot, grown to its size.
    const clone = await client.createDataset({
      primary: uuidB,
      maximum_size: 128 * MiB,
      source_snapshot_id: snap.snapshot_id,
    });
    expect(clone.source_snapshot_id).toBe(snap.snapshot_id);
    const onB = await waitMountedOn('b', clone.dataset_id);
    expect(readFileSync(join(onB, 'first.txt'), 'utf8')).toBe('before the snapshot\n');
    expect(existsSync(join(onB, 'second.txt'))).toBe(false);
    expect(readFileSync(join(onA, 'second.txt'), 'utf8')).toBe('after the snapshot\n');
    writeFileSync(join(onB, 'clone-only.txt'), 'written in the clone\n');
    expect(existsSync(join(onA, 'clone-only.txt'))).toBe(false);

    // The source goes; the snapshot stays and clones again (default size: the snapshot's).
    await client.deleteDataset(source);
    await bed.waitFor('the source volume gone', async () =>
      (await client.listDatasetState()).every((d) => d.dataset_id !== source),
    );
    expect(await snapshotState(snap.snapshot_id)).toMatchObject({ status: 'ready' });
    const again = await client.createDataset({ primary: uuidA, source_snapshot_id: snap.snapshot_id });
    expect(again.maximum_size).toBe(64 * MiB);
    const onA2 = await waitMountedOn('a', again.dataset_id);
    expect(readFileSync(join(onA2, 'first.txt'), 'utf8')).toBe('before the snapshot\n');
    expect(existsSync(join(onA2, 'second.txt'))).toBe(false);

    // Deleted with both agents killed: nothing happens until they are back; then it leaves the backend and the configuration.
    await kill9(a);
    await kill9(b);
    expect(snapshotImages()).toHaveLength(1);
    await client.deleteSnapshot(snap.snapshot_id);
    expect((await client.getSnapshot(snap.snapshot_id)).deleted).toBe(true);
    bed.startAgent('a');
    bed.startAgent('b');
    await bed.waitFor('the snapshot purged', async () => (await client.listSnapshots()).length === 0, 60_000);
    expect(await client.listSnapshotState()).toEqual([]);
    expect(snapshotImages()).toEqual([]);
    // The clones keep their data.
    await waitMountedOn('b', clone.dataset_id);
    expect(readFileSync(join(onB, 'clone-only.txt'), 'utf8')).toBe('written in the clone\n');
    expect(readFileSync(join(onA2, 'first.txt'), 'utf8')).toBe('before the snapshot\n');
  });

  it('a clone of a dataset (source_dataset_id) on another node holds its data at that moment', async () => {
    bed.startAgent('a');
    bed.startAgent('b');
    await bed.waitFor('both nodes to report', async () => (await client.listNodes()).length === 2);
    const source = (await client.createDataset({ primary: bed.nodeUuid('a'), maximum_size: 64 * MiB })).dataset_id;
    const onA = await waitMountedOn('a', source);
    writeFileSync(join(onA, 'data.txt'), 'in the source\n');
    const clone = await client.createDataset({ primary: bed.nodeUuid('b'), source_dataset_id: source });
    const [implicit] = await client.listSnapshots();
    expect(clone).toMatchObject({ source_snapshot_id: implicit?.snapshot_id, maximum_size: 64 * MiB });
    const onB = await waitMountedOn('b', clone.dataset_id);
    expect(readFileSync(join(onB, 'data.txt'), 'utf8')).toBe('in the source\n');
  });

  it('an agent killed mid-snapshot (file system left frozen) or right after one restarts with it thawed, the snapshot kept', async () => {
    let a = bed.startAgent('a');
    await bed.waitFor('the node to report', async () => (await client.listNodes()).length === 1);
    const id = (await client.createDataset({ primary: bed.nodeUuid('a'), maximum_size: 64 * MiB })).dataset_id;
    const path = await waitMountedOn('a', id);
    writeFileSync(join(path, 'data.txt'), 'kept\n');
    await kill9(a);
    a = bed.startAgent('a', { FLOCKER_AGENT_CRASH_AFTER: 'takeSnapshot:1' });
    const snap = await client.createSnapshot({ dataset_id: id });
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([a.exited, new Promise<null>((r) => (timer = setTimeout(() => r(null), 30_000)))]);
    clearTimeout(timer);
    if (exit === null) throw new Error(`agent did not crash after takeSnapshot\n${bed.logs()}`);
    expect(exit.signal).toBe('SIGKILL');
    // As if it had died between fsfreeze -f and -u: the file system is left frozen, writes block.
    execFileSync('fsfreeze', ['--freeze', path]);
    expect(await writeCompletes(join(path, 'blocked.txt'), 300)).toBe(false);
    a = bed.startAgent('a');
    await bed.waitFor('the snapshot reported', async () => (await snapshotState(snap.snapshot_id)) !== undefined);
    expect(await writeCompletes(join(path, 'after.txt'), 10_000)).toBe(true);
    expect(readFileSync(join(bed.dir, 'a.log'), 'utf8')).toContain('thawed file systems left frozen');
    expect(snapshotImages()).toHaveLength(1);
    // The snapshot, taken before the freeze by hand, holds the data written before it.
    const clone = await client.createDataset({ primary: bed.nodeUuid('a'), source_snapshot_id: snap.snapshot_id });
    expect(readFileSync(join(await waitMountedOn('a', clone.dataset_id), 'data.txt'), 'utf8')).toBe('kept\n');
    await kill9(a);
  });
});
