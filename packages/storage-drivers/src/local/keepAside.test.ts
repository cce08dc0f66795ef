/**
 * Session 15 (user U's reproductions 2 and 4, issue 24): an old primary back after its replica was
 * promoted elsewhere lets go of its copy, whose writes the new primary never got. btrfs keeps them
 * aside first (keepAside: a read-only snapshot under <pool>/flocker/diverged/, out of every listing of
 * the dataset's snapshots), then retires; the dataset's delete removes it. And the pool's free bytes,
 * which a local node reports as available_bytes (over-commit warnings read them).
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BtrfsEngine } from './btrfs';
import { makeBtrfsLoopPool, type BtrfsLoopPool } from './testSupport';
import { ZfsEngine } from './zfs';
import { ensureZfs, makeZfsFilePool, type ZfsFilePool } from './zfsTestSupport';

const MiB = 1024 * 1024;

describe('keepAside and the free bytes on a real btrfs pool', () => {
  let dir: string;
  let pool: BtrfsLoopPool;
  let engine: BtrfsEngine;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flocker-keep-aside-'));
    pool = makeBtrfsLoopPool(dir, 'p', 256 * MiB);
    engine = new BtrfsEngine({ pool: pool.pool });
    await engine.prepare();
  }, 60_000);
  afterAll(() => {
    pool?.destroy();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("kept aside read-only (idempotent), out of the dataset's snapshots and lineage; retired: retained; destroyed with the dataset", async () => {
    const id = randomUUID();
    const mnt = join(dir, 'mnt', id);
    await engine.createDataset(id, 64 * MiB);
    await engine.createSnapshot(id, 'move-000001');
    await engine.mount(id, mnt);
    writeFileSync(join(mnt, 'later'), 'written after the replica');
    await engine.unmount(mnt);
    const aside = await engine.keepAside(id);
    expect(aside).toMatch(new RegExp(`/flocker/diverged/${id}-[0-9a-f-]{36}$`));
    // Again (a crash before the retire): the same copy, no second one.
    expect(await engine.keepAside(id)).toBe(aside);
    expect(readdirSync(join(pool.pool, 'flocker', 'diverged')).filter((n) => n.startsWith(id))).toHaveLength(1);
    expect(readFileSync(join(aside, 'later'), 'utf8')).toBe('written after the replica');
    expect(execFileSync('btrfs', ['property', 'get', aside, 'ro'], { encoding: 'utf8' }).trim()).toBe('ro=true');
    // Never one of the dataset's snapshots (sent, pruned, promoted, compared).
    expect((await engine.listSnapshots(id)).map((s) => s.name)).toEqual(['move-000001']);
    expect((await engine.lineage(id))?.snapshots).toHaveLength(1);
    await engine.retire(id);
    expect(existsSync(engine.datasetPath(id))).toBe(false);
    expect(readFileSync(join(aside, 'later'), 'utf8')).toBe('written after the replica');
    // Retired, no live copy: after keepAside again nothing more is made.
    expect(await engine.keepAside(id)).toBe(join(pool.pool, 'flocker', 'diverged'));
    expect(await engine.listRetained()).toContain(id);
    // Its snapshots gone too (keep_source_snapshots 0), the copy aside still makes the dataset retained.
    await engine.destroySnapshot(id, 'move-000001');
    expect(await engine.listRetained()).toContain(id);
    await engine.destroyDataset(id);
    expect(existsSync(aside)).toBe(false);
    expect(await engine.listRetained()).not.toContain(id);
  }, 60_000);

  it('in use (a container still holding the copy): refused, nothing kept aside (review RT2 finding 1)', async () => {
    const id = randomUUID();
    const mnt = join(dir, 'mnt-in-use', id);
    await engine.createDataset(id, 16 * MiB);
    await engine.mount(id, mnt);
    await expect(engine.keepAside(id)).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
    expect(
      existsSync(join(pool.pool, 'flocker', 'diverged'))
        ? readdirSync(join(pool.pool, 'flocker', 'diverged')).filter((n) => n.startsWith(id))
        : [],
    ).toEqual([]);
    await engine.unmount(mnt);
    await engine.retire(id);
    await engine.destroyDataset(id);
  }, 60_000);

  it("another dataset's copy aside is not touched by a destroy", async () => {
    const [one, two] = [randomUUID(), randomUUID()];
    await engine.createDataset(one, 16 * MiB);
    await engine.createDataset(two, 16 * MiB);
    const asideTwo = await engine.keepAside(two);
    await engine.destroyDataset(one);
    expect(existsSync(asideTwo)).toBe(true);
    await engine.retire(two);
    await engine.destroyDataset(two);
    expect(existsSync(asideTwo)).toBe(false);
  }, 60_000);

  it("the free bytes: the pool file system's, less what is written", async () => {
    const before = await engine.availableBytes();
    expect(before).toBeGreaterThan(64 * MiB);
    expect(before).toBeLessThanOrEqual(256 * MiB);
    const id = randomUUID();
    const mnt = join(dir, 'mnt', id);
    await engine.createDataset(id, 128 * MiB);
    await engine.mount(id, mnt);
    execFileSync('dd', ['if=/dev/urandom', `of=${join(mnt, 'f')}`, 'bs=1M', 'count=48', 'conv=fsync', 'status=none']);
    execFileSync('btrfs', ['filesystem', 'sync', pool.pool]);
    expect(await engine.availableBytes()).toBeLessThan(before - 40 * MiB);
    await engine.unmount(mnt);
    await engine.destroyDataset(id);
  }, 60_000);
});

const zfsReady = ensureZfs();
const zfsGet = (prop: string, fs: string): string =>
  execFileSync('zfs', ['get', '-H', '-o', 'value', prop, fs], { encoding: 'utf8' }).trim();

describe('keepAside and the free bytes on a real ZFS pool', () => {
  if (!zfsReady.ok) {
    it('cannot run on this machine (the reason is printed)', () => {
      console.log(`ZFS keepAside tests skipped: ${zfsReady.reason}`);
    });
    return;
  }
  let dir: string;
  let pool: ZfsFilePool;
  let engine: ZfsEngine;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flocker-keep-aside-zfs-'));
    pool = makeZfsFilePool(dir, 'z', 256 * MiB);
    engine = new ZfsEngine({ pool: pool.pool });
    await engine.prepare();
  }, 60_000);
  afterAll(() => {
    pool?.destroy();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('renamed out of <pool>/flocker with its snapshots, read-only: no live copy, no snapshots listed, retained; destroyed with the dataset', async () => {
    const id = randomUUID();
    const mnt = join(dir, 'mnt', id);
    await engine.createDataset(id, 64 * MiB);
    await engine.createSnapshot(id, 'move-000001');
    await engine.mount(id, mnt);
    writeFileSync(join(mnt, 'later'), 'written after the replica');
    // Mounted: refused (as retire), nothing renamed.
    await expect(engine.keepAside(id)).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
    await engine.unmount(mnt);
    const aside = await engine.keepAside(id);
    expect(aside).toMatch(new RegExp(`^${pool.pool}/flocker-diverged/${id}-\\d+$`));
    expect(zfsGet('readonly', aside)).toBe('on');
    expect(zfsGet('referenced', aside)).not.toBe('0');
    expect(
      execFileSync('zfs', ['list', '-H', '-t', 'snapshot', '-o', 'name', '-r', aside], { encoding: 'utf8' }),
    ).toContain(`${aside}@move-000001`);
    // Done again (a crash after the rename): nothing more.
    expect(await engine.keepAside(id)).toBe(`${pool.pool}/flocker-diverged`);
    expect((await engine.listDatasets()).map((d) => d.datasetId)).not.toContain(id);
    expect(await engine.listSnapshots(id)).toEqual([]);
    await engine.retire(id);
    expect(await engine.listRetained()).toContain(id);
    await engine.destroyDataset(id);
    expect(await engine.listRetained()).not.toContain(id);
    expect(
      execFileSync('zfs', ['list', '-H', '-o', 'name', '-r', `${pool.pool}/flocker-diverged`], { encoding: 'utf8' }),
    ).not.toContain(id);
  }, 120_000);

  it('a destroy with keepAsides (a let-go, not a delete: review RT2 finding 3) leaves the copy aside; the delete removes it', async () => {
    const id = randomUUID();
    await engine.createDataset(id, 64 * MiB);
    const aside = await engine.keepAside(id);
    // The dataset live here again (moved back; here made anew), then let go of with keep_source_snapshots 0.
    await engine.createDataset(id, 64 * MiB);
    await engine.createSnapshot(id, 'move-000002');
    await engine.destroyDataset(id, { keepAsides: true });
    expect((await engine.listDatasets()).map((d) => d.datasetId)).not.toContain(id);
    expect(zfsGet('readonly', aside)).toBe('on');
    expect(await engine.listRetained()).toContain(id);
    await engine.destroyDataset(id);
    expect(await engine.listRetained()).not.toContain(id);
  }, 120_000);

  it("the free bytes: the pool's available", async () => {
    const free = await engine.availableBytes();
    expect(free).toBeGreaterThan(64 * MiB);
    expect(free).toBeLessThanOrEqual(256 * MiB);
  });
});

describe('ZFS free bytes (command sequence)', () => {
  it('zfs get -H -p available of the pool; a non-number is an error', async () => {
    const calls: string[] = [];
    let answer = '123456789\n';
    const engine = new ZfsEngine({
      pool: 'tank',
      exec: (file, args) => {
        calls.push([file, ...args].join(' '));
        return Promise.resolve({ exitCode: 0, stdout: answer, stderr: '' });
      },
    });
    expect(await engine.availableBytes()).toBe(123456789);
    expect(calls).toEqual(['zfs get -H -p -o value available tank']);
    answer = '-\n';
    await expect(engine.availableBytes()).rejects.toMatchObject({ code: 'POOL_UNAVAILABLE' });
  });
});
