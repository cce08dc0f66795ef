/**
 * Review RT2 (session 15), findings 1 and 3 (failed on d6b918d; real btrfs loop pool, root).
 *
 * 1. btrfs keepAside (d3b70a2) snapshots the live copy while a container still holds it (ZFS refuses in
 *    use; btrfs does not), and is idempotent by the live subvolume's UUID. The old primary back after a
 *    failover (510bc35): its agent unmounts the host's mount, keeps the copy aside, and the retire then
 *    fails (DEVICE_BUSY: the container's mount). The container goes on writing; once it stops, keepAside
 *    finds the aside by name (made before those writes) and the retire deletes the live subvolume: the
 *    writes after the first keepAside are in neither copy.
 * 3. A copy kept aside is removed by a later move's clean-up with keep_source_snapshots 0 (LocalMover
 *    cleanUp: engine.destroyDataset, which removes the dataset's copies aside too): the aside is documented
 *    as kept until the dataset is deleted (510bc35 avoided exactly this destroy in the keepAside retire).
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BtrfsEngine } from './btrfs';
import { moveLocalDataset } from './LocalMover';
import { makeBtrfsLoopPool, type BtrfsLoopPool } from './testSupport';
import type { StatusAnswer, TargetApi } from './transfer';

const MiB = 1024 * 1024;

describe('review RT2: a copy kept aside on btrfs', () => {
  let dir: string;
  let pool: BtrfsLoopPool;
  let engine: BtrfsEngine;
  const binds: string[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flocker-rt2-aside-'));
    pool = makeBtrfsLoopPool(dir, 'p', 256 * MiB);
    engine = new BtrfsEngine({ pool: pool.pool });
    await engine.prepare();
  }, 60_000);
  afterAll(() => {
    for (const b of binds) execFileSync('umount', ['-l', b], { stdio: 'ignore' });
    pool?.destroy();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('writes a container makes after a first keepAside (the retire refused while it holds the copy) are kept aside too', async () => {
    const id = randomUUID();
    const mnt = join(dir, 'mnt', id);
    const holder = join(dir, 'holder', id);
    await engine.createDataset(id, 64 * MiB);
    await engine.createSnapshot(id, 'move-000001');
    await engine.mount(id, mnt);
    writeFileSync(join(mnt, 'before'), 'written after the replica');
    // A container's mount of the copy (here a bind on the host: inUse sees it), the host's mount then let go of.
    mkdirSync(holder, { recursive: true });
    execFileSync('mount', ['--bind', mnt, holder]);
    binds.push(holder);
    await engine.unmount(mnt);
    // The agent's retire keepAside: kept aside (or refused while in use), the retire refused while in use.
    await engine.keepAside(id).catch(() => undefined);
    await expect(engine.retire(id)).rejects.toThrow();
    // The container writes on (acknowledged: fsync'd), then stops.
    writeFileSync(join(holder, 'after'), 'written while the retire waited');
    execFileSync('sync');
    execFileSync('umount', [holder]);
    binds.pop();
    // The next try (after the back-off): keepAside, retire.
    const aside = await engine.keepAside(id);
    await engine.retire(id);
    expect(existsSync(engine.datasetPath(id))).toBe(false);
    expect(readFileSync(join(aside, 'before'), 'utf8')).toBe('written after the replica');
    expect(existsSync(join(aside, 'after'))).toBe(true);
  }, 60_000);

  it("a later move away with keep_source_snapshots 0 leaves the dataset's copy aside in place", async () => {
    const id = randomUUID();
    await engine.createDataset(id, 64 * MiB);
    await engine.createSnapshot(id, 'move-000001');
    const mnt = join(dir, 'mnt2', id);
    await engine.mount(id, mnt);
    writeFileSync(join(mnt, 'diverged'), 'writes the primary never got');
    await engine.unmount(mnt);
    const aside = await engine.keepAside(id);
    await engine.retire(id);
    // The dataset live here again later (moved back; here made anew), then moved away with keep_source_snapshots 0.
    await engine.createDataset(id, 64 * MiB);
    const received: { name: string; identity: string }[] = [];
    const target: TargetApi = {
      status: (): Promise<StatusAnswer> =>
        Promise.resolve({
          ok: true as const,
          snapshots: received.map((r) => ({ name: r.name, identity: r.identity })),
          live: { exists: false, mountPoints: [], parent: null },
        }),
      receive: async (r, send) => {
        let bytes = 0;
        send.stream.on('data', (c: Buffer) => (bytes += c.length));
        await new Promise<void>((resolve, reject) => {
          send.stream.on('end', resolve);
          send.stream.on('error', reject);
        });
        await send.done;
        received.push({ name: r.name, identity: r.identity });
        return bytes;
      },
      promote: () => Promise.resolve(),
      prune: () => Promise.resolve(),
    };
    await moveLocalDataset({
      engine,
      target,
      datasetId: id,
      size: 64 * MiB,
      keepSourceSnapshots: 0,
      released: () => Promise.resolve(true),
    });
    expect(existsSync(engine.datasetPath(id))).toBe(false);
    expect(existsSync(aside)).toBe(true);
  }, 60_000);
});
