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
import type { LocalEngine } from './engine';
import { makeBtrfsLoopPool } from './testSupport';
import { ZfsEngine } from './zfs';
import { ensureZfs, makeZfsFilePool } from './zfsTestSupport';

const MiB = 1024 * 1024;

/**
 * A real pool for a describe's tests, in a temp directory, its engine prepared; destroyed after them.
 * Read `dir`, `pool` and `engine` inside the tests (set in beforeAll).
 */
function onRealPool<P extends { readonly pool: string; destroy(): void }, E extends LocalEngine>(
  prefix: string,
  makePool: (dir: string) => P,
  makeEngine: (pool: P) => E,
): { readonly dir: string; readonly pool: P; readonly engine: E } {
  const on: { dir?: string; pool?: P; engine?: E } = {};
  beforeAll(async () => {
    on.dir = mkdtempSync(join(tmpdir(), prefix));
    on.pool = makePool(on.dir);
    on.engine = makeEngine(on.pool);
    await on.engine.prepare();
  }, 60_000);
  afterAll(() => {
    on.pool?.destroy();
    if (on.dir !== undefined) rmSync(on.dir, { recursive: true, force: true });
  });
  return {
    get dir(): string {
      return defined(on.dir);
    },
    get pool(): P {
      return defined(on.pool);
    },
    get engine(): E {
      return defined(on.engine);
    },
  };
}

function defined<T>(v: T | undefined): T {
  if (v === undefined) throw new Error('the real pool is not set up (read inside a test)');
  return v;
}

/** A dataset with snapshot move-000001 and a file written after it, left mounted at <dir>/mnt/<id>. */
async function writtenAfterSnapshot(engine: LocalEngine, dir: string): Promise<{ id: string; mnt: string }> {
  const id = randomUUID();
  const mnt = join(dir, 'mnt', id);
  await engine.createDataset(id, 64 * MiB);
  await engine.createSnapshot(id, 'move-000001');
  await engine.mount(id, mnt);
  writeFileSync(join(mnt, 'later'), 'written after the replica');
  return { id, mnt };
}

describe('keepAside and the free bytes on a real btrfs pool', () => {
  const on = onRealPool(
    'flocker-keep-aside-',
    (dir) => makeBtrfsLoopPool(dir, 'p', 256 * MiB),
    (pool) => new BtrfsEngine({ pool: pool.pool }),
  );

  it("kept aside read-only (idempotent), out of the dataset's snapshots and lineage; retired: retained; destroyed with the dataset", async () => {
    const { id, mnt } = await writtenAfterSnapshot(on.engine, on.dir);
    await on.engine.unmount(mnt);
    const aside = await on.engine.keepAside(id);
    expect(aside).toMatch(new RegExp(`/flocker/diverged/${id}-[0-9a-f-]{36}$`));
    // Again (a crash before the retire): the same copy, no second one.
    expect(await on.engine.keepAside(id)).toBe(aside);
    expect(readdirSync(join(on.pool.pool, 'flocker', 'diverged')).filter((n) => n.startsWith(id))).toHaveLength(1);
    expect(readFileSync(join(aside, 'later'), 'utf8')).toBe('written after the replica');
    expect(execFileSync('btrfs', ['property', 'get', aside, 'ro'], { encoding: 'utf8' }).trim()).toBe('ro=true');
    // Never one of the dataset's snapshots (sent, pruned, promoted, compared).
    expect((await on.engine.listSnapshots(id)).map((s) => s.name)).toEqual(['move-000001']);
    expect((await on.engine.lineage(id))?.snapshots).toHaveLength(1);
    await on.engine.retire(id);
    expect(existsSync(on.engine.datasetPath(id))).toBe(false);
    expect(readFileSync(join(aside, 'later'), 'utf8')).toBe('written after the replica');
    // Retired, no live copy: after keepAside again nothing more is made.
    expect(await on.engine.keepAside(id)).toBe(join(on.pool.pool, 'flocker', 'diverged'));
    expect(await on.engine.listRetained()).toContain(id);
    // Its snapshots gone too (keep_source_snapshots 0), the copy aside still makes the dataset retained.
    await on.engine.destroySnapshot(id, 'move-000001');
    expect(await on.engine.listRetained()).toContain(id);
    await on.engine.destroyDataset(id);
    expect(existsSync(aside)).toBe(false);
    expect(await on.engine.listRetained()).not.toContain(id);
  }, 60_000);

  it('in use (a container still holding the copy): refused, nothing kept aside (review RT2 finding 1)', async () => {
    const id = randomUUID();
    const mnt = join(on.dir, 'mnt-in-use', id);
    await on.engine.createDataset(id, 16 * MiB);
    await on.engine.mount(id, mnt);
    await expect(on.engine.keepAside(id)).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
    expect(
      existsSync(join(on.pool.pool, 'flocker', 'diverged'))
        ? readdirSync(join(on.pool.pool, 'flocker', 'diverged')).filter((n) => n.startsWith(id))
        : [],
    ).toEqual([]);
    await on.engine.unmount(mnt);
    await on.engine.retire(id);
    await on.engine.destroyDataset(id);
  }, 60_000);

  it("another dataset's copy aside is not touched by a destroy", async () => {
    const [one, two] = [randomUUID(), randomUUID()];
    await on.engine.createDataset(one, 16 * MiB);
    await on.engine.createDataset(two, 16 * MiB);
    const asideTwo = await on.engine.keepAside(two);
    await on.engine.destroyDataset(one);
    expect(existsSync(asideTwo)).toBe(true);
    await on.engine.retire(two);
    await on.engine.destroyDataset(two);
    expect(existsSync(asideTwo)).toBe(false);
  }, 60_000);

  it("the free bytes: the pool file system's, less what is written", async () => {
    const before = await on.engine.availableBytes();
    expect(before).toBeGreaterThan(64 * MiB);
    expect(before).toBeLessThanOrEqual(256 * MiB);
    const id = randomUUID();
    const mnt = join(on.dir, 'mnt', id);
    await on.engine.createDataset(id, 128 * MiB);
    await on.engine.mount(id, mnt);
    execFileSync('dd', ['if=/dev/urandom', `of=${join(mnt, 'f')}`, 'bs=1M', 'count=48', 'conv=fsync', 'status=none']);
    execFileSync('btrfs', ['filesystem', 'sync', on.pool.pool]);
    expect(await on.engine.availableBytes()).toBeLessThan(before - 40 * MiB);
    await on.engine.unmount(mnt);
    await on.engine.destroyDataset(id);
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
  const on = onRealPool(
    'flocker-keep-aside-zfs-',
    (dir) => makeZfsFilePool(dir, 'z', 256 * MiB),
    (pool) => new ZfsEngine({ pool: pool.pool }),
  );

  it('renamed out of <pool>/flocker with its snapshots, read-only: no live copy, no snapshots listed, retained; destroyed with the dataset', async () => {
    const { id, mnt } = await writtenAfterSnapshot(on.engine, on.dir);
    // Mounted: refused (as retire), nothing renamed.
    await expect(on.engine.keepAside(id)).rejects.toMatchObject({ code: 'DEVICE_BUSY' });
    await on.engine.unmount(mnt);
    const aside = await on.engine.keepAside(id);
    expect(aside).toMatch(new RegExp(`^${on.pool.pool}/flocker-diverged/${id}-\\d+$`));
    expect(zfsGet('readonly', aside)).toBe('on');
    expect(zfsGet('referenced', aside)).not.toBe('0');
    expect(
      execFileSync('zfs', ['list', '-H', '-t', 'snapshot', '-o', 'name', '-r', aside], { encoding: 'utf8' }),
    ).toContain(`${aside}@move-000001`);
    // Done again (a crash after the rename): nothing more.
    expect(await on.engine.keepAside(id)).toBe(`${on.pool.pool}/flocker-diverged`);
    expect((await on.engine.listDatasets()).map((d) => d.datasetId)).not.toContain(id);
    expect(await on.engine.listSnapshots(id)).toEqual([]);
    await on.engine.retire(id);
    expect(await on.engine.listRetained()).toContain(id);
    await on.engine.destroyDataset(id);
    expect(await on.engine.listRetained()).not.toContain(id);
    expect(
      execFileSync('zfs', ['list', '-H', '-o', 'name', '-r', `${on.pool.pool}/flocker-diverged`], { encoding: 'utf8' }),
    ).not.toContain(id);
  }, 120_000);

  it('a destroy with keepAsides (a let-go, not a delete: review RT2 finding 3) leaves the copy aside; the delete removes it', async () => {
    const id = randomUUID();
    await on.engine.createDataset(id, 64 * MiB);
    const aside = await on.engine.keepAside(id);
    // The dataset live here again (moved back; here made anew), then let go of with keep_source_snapshots 0.
    await on.engine.createDataset(id, 64 * MiB);
    await on.engine.createSnapshot(id, 'move-000002');
    await on.engine.destroyDataset(id, { keepAsides: true });
    expect((await on.engine.listDatasets()).map((d) => d.datasetId)).not.toContain(id);
    expect(zfsGet('readonly', aside)).toBe('on');
    expect(await on.engine.listRetained()).toContain(id);
    await on.engine.destroyDataset(id);
    expect(await on.engine.listRetained()).not.toContain(id);
  }, 120_000);

  it("the free bytes: the pool's available", async () => {
    const free = await on.engine.availableBytes();
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
