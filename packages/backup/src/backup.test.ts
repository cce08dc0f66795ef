import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backupVolume, type BackupProgress } from './backup';
import { collectGarbage, deleteBackup, latestBackup, listBackups, pruneBackups } from './catalog';
import { isBackupError, type BackupErrorCode } from './errors';
import { chunkKey, keysOfEntry, manifestKey, PENDING_PREFIX } from './layout';
import { Manifest } from './manifest';
import { readManifest, restoreVolume } from './restore';
import { verifyBackup } from './verify';
import { makeSparseImage, MemoryObjectStore, mutateImage, sha256File } from './testing';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;
const SIZE = 16 * MiB;

let dir: string;
let image: string;
let clock: number;
let store: MemoryObjectStore;
const now = () => clock;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flocker-backup-'));
  image = path.join(dir, 'volume.img');
  // 8 regions of 512 KiB: about a quarter of the volume holds data.
  await makeSparseImage(image, { size: SIZE, regions: 8, regionSize: 512 * KiB, seed: 7 });
  clock = Date.UTC(2026, 11, 4, 6, 0, 0);
  store = new MemoryObjectStore(now);
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function backup(snapshotId: string, extra: { previous?: Manifest; source?: string } = {}): Promise<Manifest> {
  clock += 1000;
  return backupVolume(extra.source ?? image, store, {
    volumeId: 'vol-1',
    snapshotId,
    chunkSize: CHUNK,
    now,
    ...(extra.previous === undefined ? {} : { previous: extra.previous }),
  });
}

async function expectCode(p: Promise<unknown>, code: BackupErrorCode, text: string): Promise<Error> {
  const caught = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isBackupError(caught)).toBe(true);
  expect((caught as { code: string }).code).toBe(code);
  expect((caught as Error).message).toContain(text);
  return caught as Error;
}

describe('backupVolume and restoreVolume', () => {
  it('stores data chunks once, compressed, records holes, and restores the same bytes as a sparse file', async () => {
    const progress: BackupProgress[] = [];
    clock += 1000;
    const m = await backupVolume(image, store, {
      volumeId: 'vol-1',
      snapshotId: 'snap-1',
      label: 'first',
      chunkSize: CHUNK,
      now,
      onProgress: (p) => progress.push(p),
    });
    expect(m.size).toBe(SIZE);
    expect(m.chunks).toHaveLength(SIZE / CHUNK);
    expect(m.stats.holeChunks).toBeGreaterThan(m.stats.dataChunks);
    const distinct = new Set(m.chunks.filter((c) => c !== null));
    expect(store.keys('chunks/')).toHaveLength(distinct.size);
    expect(m.stats.uploadedChunks).toBe(distinct.size);
    expect(store.keys('manifests/')).toEqual([manifestKey(m.backupId)]);
    expect(store.keys(PENDING_PREFIX)).toEqual([]);
    expect(progress.at(-1)).toMatchObject({ phase: 'done', chunksDone: m.chunks.length, bytesRead: SIZE });

    const target = path.join(dir, 'restored.img');
    const r = await restoreVolume(store, m.backupId, target);
    expect(r.bytesWritten).toBe(m.stats.dataBytes);
    expect(await sha256File(target)).toBe(await sha256File(image));
    const st = await fs.stat(target);
    expect(st.size).toBe(SIZE);
    // Holes stay holes: allocated blocks cover the data, not the whole volume.
    expect(st.blocks * 512).toBeLessThan(m.stats.dataBytes + 64 * CHUNK);
  });

  it('an all-zero volume uploads nothing but its manifest', async () => {
    const empty = path.join(dir, 'empty.img');
    await fs.writeFile(empty, '');
    await fs.truncate(empty, 4 * MiB);
    const m = await backup('snap-empty', { source: empty });
    expect(m.stats).toMatchObject({ dataChunks: 0, holeChunks: 64, uploadedChunks: 0, uploadedBytes: 0 });
    expect(store.keys('chunks/')).toEqual([]);
    const target = path.join(dir, 'empty-restored.img');
    await restoreVolume(store, m.backupId, target);
    expect(await sha256File(target)).toBe(await sha256File(empty));
  });

  it('identical chunks are stored once', async () => {
    const twin = path.join(dir, 'twin.img');
    const data = Buffer.alloc(CHUNK, 7);
    await fs.writeFile(twin, Buffer.concat([data, data, Buffer.alloc(CHUNK), data]));
    const m = await backup('snap-twin', { source: twin });
    expect(m.stats).toMatchObject({ dataChunks: 3, holeChunks: 1, uploadedChunks: 1 });
    expect(m.stats.uploadedBytes).toBeLessThan(CHUNK / 100); // constant bytes compress to almost nothing
  });

  it('incremental: after changing 1% the second backup uploads about 1%', async () => {
    const first = await backup('snap-1');
    const changed = SIZE / 100;
    await mutateImage(image, { bytes: changed, regions: 2, seed: 11 });
    store.resetCounts();
    const second = await backup('snap-2', { previous: first });
    // Random data does not compress: each changed region dirties at most ceil(len/chunk)+1 chunks.
    expect(second.stats.uploadedPlainBytes).toBeLessThanOrEqual(2 * changed);
    expect(second.stats.uploadedBytes).toBeLessThanOrEqual(2 * changed + 4 * KiB);
    expect(second.stats.uploadedChunks).toBeLessThanOrEqual(6);
    expect(second.previous).toBe(first.backupId);
    // Chunks known from the previous manifest are looked up once (just before the manifest is written), the
    // changed ones once more; the store is never listed (the work is this volume's, not the bucket's).
    const objects = new Set(second.chunks.flatMap((c) => (c === null ? [] : keysOfEntry(c)))).size;
    expect(store.counts.head).toBeLessThanOrEqual(objects + 6);
    expect(store.counts.list).toBe(0);
    const target = path.join(dir, 'second.img');
    await restoreVolume(store, second.backupId, target);
    expect(await sha256File(target)).toBe(await sha256File(image));
  });

  it('scattered 4 KiB writes travel as deltas: about the changed bytes, not whole chunks', async () => {
    const first = await backup('snap-1');
    const dataIndexes = first.chunks.flatMap((c, i) => (c === null ? [] : [i]));
    // 1% of the volume as 40 page writes, each in a different data chunk (database-like).
    const pages = 40;
    const offsets = dataIndexes.slice(0, pages).map((i) => i * CHUNK + 8192);
    await mutateImage(image, { bytes: pages * 4096, regions: pages, offsets });
    const second = await backup('snap-2', { previous: first });
    expect(second.stats.deltaChunks).toBe(pages);
    expect(second.stats.uploadedBytes).toBeLessThanOrEqual(2 * pages * 4096);
    // A delta is always against a whole chunk: changing the same pages again deltas against the first backup's.
    await mutateImage(image, { bytes: pages * 4096, regions: pages, offsets });
    const third = await backup('snap-3', { previous: second });
    const i0 = dataIndexes[0] ?? 0;
    expect(third.chunks[i0]).toMatch(new RegExp(`\\.${first.chunks[i0] ?? ''}$`));
    expect(third.stats.uploadedBytes).toBeLessThanOrEqual(2 * pages * 4096);
    for (const m of [second, third]) {
      const target = path.join(dir, `${m.snapshotId}.img`);
      await restoreVolume(store, m.backupId, target);
      if (m === third) expect(await sha256File(target)).toBe(await sha256File(image));
    }
  });

  it('without a previous manifest, chunks the store holds are found by HEAD and not uploaded', async () => {
    await backup('snap-1');
    store.resetCounts();
    const again = await backup('snap-2');
    expect(again.stats.uploadedChunks).toBe(0);
    expect(store.bytesPut).toBeLessThan(64 * KiB); // the manifest and the pending marker only
  });

  it('gzip chunks restore too (readers tell codecs apart by magic bytes)', async () => {
    clock += 1000;
    const m = await backupVolume(image, store, {
      volumeId: 'vol-1',
      snapshotId: 'gz',
      chunkSize: CHUNK,
      compression: 'gzip',
      now,
    });
    expect(m.compression).toBe('gzip');
    const first = m.chunks.find((c) => c !== null) ?? '';
    expect(store.objects.get(chunkKey(first))?.body.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    const target = path.join(dir, 'gz.img');
    await restoreVolume(store, m.backupId, target);
    expect(await sha256File(target)).toBe(await sha256File(image));
  });

  it('a crash mid-backup leaves no manifest, and a re-run completes uploading only what is missing', async () => {
    let chunkPuts = 0;
    store.beforeOperation = (op, key) => {
      if (op === 'put' && key.startsWith('chunks/') && ++chunkPuts > 5) throw new Error('simulated crash');
    };
    await expect(backup('snap-1')).rejects.toThrow('simulated crash');
    expect(await listBackups(store)).toEqual([]);
    expect(store.keys('manifests/')).toEqual([]);
    expect(store.keys(PENDING_PREFIX)).toEqual([]); // a failure (not a kill) also takes its marker away
    const stored = store.keys('chunks/').length;
    expect(stored).toBe(5);
    store.beforeOperation = undefined;
    const m = await backup('snap-1');
    expect(m.stats.uploadedChunks).toBe(new Set(m.chunks.filter((c) => c !== null)).size - stored);
    expect((await listBackups(store)).map((b) => b.backupId)).toEqual([m.backupId]);
    const target = path.join(dir, 'after-crash.img');
    await restoreVolume(store, m.backupId, target);
    expect(await sha256File(target)).toBe(await sha256File(image));
  });

  it('re-uploads a chunk trusted from the previous manifest that vanished meanwhile', async () => {
    const first = await backup('snap-1');
    const victim = first.chunks.find((c) => c !== null) ?? '';
    store.objects.delete(chunkKey(victim)); // e.g. a garbage collection that raced us
    const second = await backup('snap-2', { previous: first });
    expect(store.objects.has(chunkKey(victim))).toBe(true);
    expect(second.stats.uploadedChunks).toBe(1);
    await restoreVolume(store, second.backupId, path.join(dir, 'r.img'));
  });

  describe('a chunk damaged in the store after it was written (review T5 F4)', () => {
    const restores = async (m: Manifest) => {
      const out = path.join(dir, `r-${m.snapshotId}.img`);
      await restoreVolume(store, m.backupId, out);
      expect(await sha256File(out)).toBe(await sha256File(image));
    };
    const damage = (key: string, body: Buffer) => store.objects.set(key, { body, lastModified: new Date(clock) });

    it('the manifest records each object it needs: stored size and SHA-256', async () => {
      const m = await backup('snap-1');
      const keys = [...new Set(m.chunks.flatMap((c) => (c === null ? [] : keysOfEntry(c))))].sort();
      expect(Object.keys(m.objects ?? {})).toEqual(keys);
      const k = keys[0] ?? '';
      expect(m.objects?.[k]).toEqual({
        size: store.objects.get(k)?.body.length,
        sha256: (await store.head(k))?.sha256,
      });
    });

    it('overwritten with other bytes (another size): the next backup sees it by HEAD, stores it again, and both restore', async () => {
      const first = await backup('snap-1');
      const victim = first.chunks.find((c) => c !== null) ?? '';
      damage(chunkKey(victim), randomBytes(3000));
      store.resetCounts();
      const second = await backup('snap-2', { previous: first });
      expect(second.stats.uploadedChunks).toBe(1);
      expect(store.counts.get).toBe(0); // a HEAD per reused object, nothing read
      await restores(second);
      await restores(first); // content-addressed: the PUT repaired the older backup too
    });

    it('damaged in place (same size): the checksum the store recorded tells it', async () => {
      const first = await backup('snap-1');
      const victim = chunkKey(first.chunks.find((c) => c !== null) ?? '');
      const body = Buffer.from(store.objects.get(victim)?.body ?? Buffer.alloc(0));
      body.writeUInt8((body.readUInt8(body.length >> 1) ^ 0xff) & 0xff, body.length >> 1);
      damage(victim, body);
      const second = await backup('snap-2', { previous: first });
      expect(second.stats.uploadedChunks).toBe(1);
      await restores(second);
    });

    it("with no record (a manifest of an older version, another volume's chunk): read once, checked, stored again if bad", async () => {
      const first = await backup('snap-1');
      const { objects: _recorded, ...older } = first;
      const victim = chunkKey(first.chunks.find((c) => c !== null) ?? '');
      const body = Buffer.from(store.objects.get(victim)?.body ?? Buffer.alloc(0));
      body.writeUInt8((body.readUInt8(body.length >> 1) ^ 0xff) & 0xff, body.length >> 1);
      damage(victim, body);
      const reused = new Set(first.chunks.filter((c) => c !== null)).size;
      store.resetCounts();
      const second = await backup('snap-2', { previous: older });
      expect(store.counts.get).toBe(reused);
      expect(second.stats.uploadedChunks).toBe(1);
      await restores(second);
      // Now recorded: the third backup trusts a HEAD again.
      store.resetCounts();
      await backup('snap-3', { previous: second });
      expect(store.counts.get).toBe(0);
    });

    it('full reads back every reused object; an intact store uploads nothing', async () => {
      const first = await backup('snap-1');
      store.resetCounts();
      clock += 1000;
      const second = await backupVolume(image, store, {
        volumeId: 'vol-1',
        snapshotId: 'snap-2',
        chunkSize: CHUNK,
        now,
        previous: first,
        full: true,
      });
      expect(store.counts.get).toBe(new Set(first.chunks.filter((c) => c !== null)).size);
      expect(second.stats.uploadedChunks).toBe(0);
    });

    it('verifyBackup reads every chunk and names each missing or damaged object', async () => {
      const m = await backup('snap-1');
      expect((await verifyBackup(store, m.backupId)).problems).toEqual([]);
      const data = m.chunks.flatMap((c, i) => (c === null ? [] : [{ c, i }]));
      const [a, b] = [data[1], data[3]];
      damage(chunkKey(a?.c ?? ''), randomBytes(100));
      store.objects.delete(chunkKey(b?.c ?? ''));
      const r = await verifyBackup(store, m.backupId);
      expect(r.problems.map((p) => [p.index, p.code, p.key])).toEqual([
        [a?.i, 'CHUNK_CORRUPT', chunkKey(a?.c ?? '')],
        [b?.i, 'CHUNK_MISSING', chunkKey(b?.c ?? '')],
      ]);
      expect(r.chunksChecked).toBe(data.length - 2);
      // The next backup of the volume repairs both.
      await backup('snap-2', { previous: m });
      expect((await verifyBackup(store, m.backupId)).problems).toEqual([]);
    });
  });

  it('backs up from a block device and restores onto another, zeroing its holes', async () => {
    const losetup = (args: string[]) => execFileSync('losetup', args, { encoding: 'utf8' }).trim();
    const devices: string[] = [];
    try {
      const source = losetup(['--find', '--show', '--read-only', image]);
      devices.push(source);
      const m = await backup('snap-dev', { source });
      expect(m.size).toBe(SIZE);
      // The target device holds old data everywhere: holes must be written as zeros there.
      const targetImage = path.join(dir, 'target-dev.img');
      await fs.writeFile(targetImage, Buffer.alloc(SIZE + CHUNK, 0xaa));
      const target = losetup(['--find', '--show', targetImage]);
      devices.push(target);
      await restoreVolume(store, m.backupId, target);
      const small = path.join(dir, 'small.img');
      await fs.writeFile(small, Buffer.alloc(CHUNK));
      const tooSmall = losetup(['--find', '--show', small]);
      devices.push(tooSmall);
      await expectCode(restoreVolume(store, m.backupId, tooSmall), 'TARGET_UNUSABLE', `holds ${CHUNK} bytes`);
      for (const d of devices.splice(0)) losetup(['-d', d]);
      const restored = (await fs.readFile(targetImage)).subarray(0, SIZE);
      expect(restored.equals(await fs.readFile(image))).toBe(true);
    } finally {
      for (const d of devices) losetup(['-d', d]);
    }
  });

  it('size backs up only the first bytes of a larger source, and cannot exceed it', async () => {
    clock += 1000;
    const half = await backupVolume(image, store, {
      volumeId: 'vol-1',
      snapshotId: 'half',
      chunkSize: CHUNK,
      now,
      size: SIZE / 2,
    });
    expect(half.chunks).toHaveLength(SIZE / 2 / CHUNK);
    const target = path.join(dir, 'half.img');
    await restoreVolume(store, half.backupId, target);
    expect((await fs.readFile(target)).equals((await fs.readFile(image)).subarray(0, SIZE / 2))).toBe(true);
    await expectCode(
      backupVolume(image, store, { volumeId: 'vol-1', snapshotId: 'x', chunkSize: CHUNK, size: SIZE * 2 }),
      'SOURCE_UNREADABLE',
      'fewer than',
    );
  });

  it('keeps its pending marker fresh while it runs', async () => {
    let markerPuts = 0;
    store.beforeOperation = async (op, key) => {
      if (op === 'put' && key.startsWith(PENDING_PREFIX)) markerPuts++;
      if (op === 'put' && key.startsWith('chunks/')) await new Promise((r) => setTimeout(r, 5));
    };
    clock += 1000;
    await backupVolume(image, store, {
      volumeId: 'vol-1',
      snapshotId: 's',
      chunkSize: CHUNK,
      now,
      pendingRefreshMs: 10,
    });
    expect(markerPuts).toBeGreaterThan(2);
    expect(store.keys(PENDING_PREFIX)).toEqual([]);
  });

  it('refuses bad options with INVALID_ARGUMENT and an unreadable source with SOURCE_UNREADABLE', async () => {
    await expectCode(
      backupVolume(image, store, { volumeId: 'a/b', snapshotId: 's' }),
      'INVALID_ARGUMENT',
      'volume id "a/b"',
    );
    await expectCode(
      backupVolume(image, store, { volumeId: 'v', snapshotId: 's', chunkSize: 1000 }),
      'INVALID_ARGUMENT',
      'chunk size',
    );
    await expectCode(
      backupVolume(image, store, { volumeId: 'v', snapshotId: 's', concurrency: 0 }),
      'INVALID_ARGUMENT',
      'concurrency 0',
    );
    const other = await backup('snap-other');
    await expectCode(
      backupVolume(image, store, { volumeId: 'v', snapshotId: 's', previous: other }),
      'INVALID_ARGUMENT',
      'is of volume vol-1, not v',
    );
    await expectCode(
      backupVolume(path.join(dir, 'nope.img'), store, { volumeId: 'v', snapshotId: 's' }),
      'SOURCE_UNREADABLE',
      'nope.img',
    );
    await expectCode(backupVolume(dir, store, { volumeId: 'v', snapshotId: 's' }), 'SOURCE_UNREADABLE', 'neither');
  });
});

describe('restore verification', () => {
  let m: Manifest;
  let target: string;
  beforeEach(async () => {
    m = await backup('snap-1');
    target = path.join(dir, 'target.img');
  });

  it('a corrupt chunk fails with CHUNK_CORRUPT naming the object, and the target is not created', async () => {
    const hash = m.chunks.find((c) => c !== null) ?? '';
    const o = store.objects.get(chunkKey(hash));
    if (o === undefined) throw new Error('chunk not stored');
    o.body.writeUInt8(o.body.readUInt8(o.body.length - 5) ^ 0xff, o.body.length - 5);
    const e = await expectCode(restoreVolume(store, m.backupId, target), 'CHUNK_CORRUPT', chunkKey(hash));
    expect(e).toMatchObject({ key: chunkKey(hash) });
    await expect(fs.stat(target)).rejects.toThrow(/ENOENT/);
    expect((await fs.readdir(dir)).filter((n) => n.includes('restore'))).toEqual([]);
  });

  it('a chunk whose bytes decompress to other data fails with CHUNK_CORRUPT', async () => {
    const [a, b] = [...new Set(m.chunks.filter((c): c is string => c !== null))];
    const other = store.objects.get(chunkKey(b ?? ''));
    if (a === undefined || other === undefined) throw new Error('need two chunks');
    store.objects.set(chunkKey(a), { ...other });
    await expectCode(restoreVolume(store, m.backupId, target), 'CHUNK_CORRUPT', 'hashes to');
  });

  it('a missing chunk fails with CHUNK_MISSING naming the object', async () => {
    const hash = m.chunks.find((c) => c !== null) ?? '';
    store.objects.delete(chunkKey(hash));
    await expectCode(restoreVolume(store, m.backupId, target), 'CHUNK_MISSING', chunkKey(hash));
    await expect(fs.stat(target)).rejects.toThrow(/ENOENT/);
  });

  it("a delta's corrupt base or missing delta object fails the restore naming that object", async () => {
    const index = m.chunks.findIndex((c) => c !== null);
    const h = await fs.open(image, 'r+');
    await h.write(Buffer.from('a small change'), 0, undefined, index * CHUNK + 100);
    await h.close();
    const second = await backup('snap-2', { previous: m });
    const [hash, base] = (second.chunks[index] ?? '').split('.');
    expect(base).toBe(m.chunks[index]);
    const baseKey = chunkKey(base ?? '');
    const original = store.objects.get(baseKey);
    if (original === undefined) throw new Error('base not stored');
    store.objects.set(baseKey, { ...original, body: Buffer.from('not zstd') });
    await expectCode(restoreVolume(store, second.backupId, target), 'CHUNK_CORRUPT', baseKey);
    store.objects.set(baseKey, original);
    const delta = `deltas/${(hash ?? '').slice(0, 2)}/${hash ?? ''}.${base ?? ''}`;
    store.objects.delete(delta);
    await expectCode(restoreVolume(store, second.backupId, target), 'CHUNK_MISSING', delta);
    await expect(fs.stat(target)).rejects.toThrow(/ENOENT/);
  });

  it('a tampered manifest fails with MANIFEST_CORRUPT before anything is written', async () => {
    const key = manifestKey(m.backupId);
    const o = store.objects.get(key);
    if (o === undefined) throw new Error('no manifest');
    const json = Manifest.parse(JSON.parse(o.body.toString()));
    store.objects.set(key, { ...o, body: Buffer.from(JSON.stringify({ ...json, size: json.size * 2 })) });
    await expectCode(restoreVolume(store, m.backupId, target), 'MANIFEST_CORRUPT', key);
    await expect(fs.stat(target)).rejects.toThrow(/ENOENT/);
  });

  it('a restore killed midway leaves a temporary file that the next restore to that target removes', async () => {
    const orphan = path.join(dir, '.target.img.restore-deadbeef');
    await fs.writeFile(orphan, 'half a volume');
    await restoreVolume(store, m.backupId, target);
    expect(await sha256File(target)).toBe(await sha256File(image));
    expect((await fs.readdir(dir)).filter((n) => n.includes('.restore-'))).toEqual([]);
  });

  it('an unknown backup is BACKUP_NOT_FOUND; a target holding data is refused unless overwrite', async () => {
    await expectCode(restoreVolume(store, 'vol-1/20200101T000000000Z-x', target), 'BACKUP_NOT_FOUND', 'no backup');
    await fs.writeFile(target, 'precious');
    await expectCode(restoreVolume(store, m.backupId, target), 'TARGET_UNUSABLE', 'already holds data');
    expect(await fs.readFile(target, 'utf8')).toBe('precious');
    await restoreVolume(store, manifestKey(m.backupId), target, { overwrite: true });
    expect(await sha256File(target)).toBe(await sha256File(image));
  });
});

describe('listing, deleting, pruning and garbage collection', () => {
  const HOUR = 3600_000;

  it('lists newest first, per volume, and reports an unreadable manifest instead of failing', async () => {
    const a = await backup('snap-a');
    const b = await backup('snap-b');
    clock += 1000;
    const other = await backupVolume(image, store, { volumeId: 'vol-2', snapshotId: 'x', chunkSize: CHUNK, now });
    expect((await listBackups(store, 'vol-1')).map((s) => s.backupId)).toEqual([b.backupId, a.backupId]);
    expect((await listBackups(store)).map((s) => s.backupId)).toEqual([other.backupId, b.backupId, a.backupId]);
    store.objects.set(manifestKey(a.backupId), { body: Buffer.from('garbage'), lastModified: new Date(clock) });
    const listed = await listBackups(store, 'vol-1');
    expect(listed[0]?.manifest?.label).toBe('');
    expect(listed[1]).toMatchObject({ backupId: a.backupId, problem: { code: 'MANIFEST_CORRUPT' } });
    expect(listed[1]?.manifest).toBeUndefined();
  });

  it('deleteBackup removes the manifest only; a second delete is BACKUP_NOT_FOUND', async () => {
    const a = await backup('snap-a');
    const chunks = store.keys('chunks/').length;
    await deleteBackup(store, a.backupId);
    expect(await listBackups(store)).toEqual([]);
    expect(store.keys('chunks/')).toHaveLength(chunks);
    await expectCode(deleteBackup(store, a.backupId), 'BACKUP_NOT_FOUND', a.backupId);
  });

  it('prune keeps the newest N and collects chunks only the deleted backups used, after the grace period', async () => {
    // Rewrites the start of a data chunk (a small change: stored as a delta), or all of it (stored whole).
    const overwrite = async (m: Manifest, nth: number, whole: boolean) => {
      const index = m.chunks.findIndex((c, i) => c !== null && i >= nth);
      const h = await fs.open(image, 'r+');
      await h.write(whole ? randomBytes(CHUNK) : Buffer.from(`changed ${m.backupId}`), 0, undefined, index * CHUNK);
      await h.close();
    };
    const first = await backup('snap-1');
    await overwrite(first, 0, false);
    await overwrite(first, 100, true);
    const second = await backup('snap-2', { previous: first });
    expect(second.stats.deltaChunks).toBe(1);
    await overwrite(second, 0, false); // the same chunk again: the second backup's delta becomes garbage
    const third = await backup('snap-3', { previous: second });
    expect(third.stats.deltaChunks).toBe(1);
    const needed = new Set(third.chunks.flatMap((c) => (c === null ? [] : keysOfEntry(c))));
    const stale = [...store.keys('chunks/'), ...store.keys('deltas/')].filter((k) => !needed.has(k));
    // The first backup's chunk 100 (rewritten whole) and the second backup's delta of chunk 0.
    expect(stale).toHaveLength(2);

    // Within the grace period nothing is collected, even though the manifests go.
    const early = await pruneBackups(store, 'vol-1', 1, { now, graceMs: HOUR });
    expect(early.kept).toEqual([third.backupId]);
    expect(early.deleted).toEqual([second.backupId, first.backupId]);
    expect(early.gc).toMatchObject({ deferred: false, deletedChunks: 0, youngChunks: stale.length });

    clock += 2 * HOUR;
    const later = await pruneBackups(store, 'vol-1', 1, { now, graceMs: HOUR });
    expect(later.deleted).toEqual([]);
    expect(later.gc).toMatchObject({ deferred: false, deletedChunks: stale.length, referencedChunks: needed.size });
    expect([...store.keys('chunks/'), ...store.keys('deltas/')].sort()).toEqual([...needed].sort());
    await restoreVolume(store, third.backupId, path.join(dir, 'kept.img'));
    expect(await sha256File(path.join(dir, 'kept.img'))).toBe(await sha256File(image));
    await expectCode(pruneBackups(store, 'vol-1', 0), 'INVALID_ARGUMENT', 'keep 0');
  });

  it('keep 1 never deletes a protected backup (the one just stored) when a node with a fast clock stamped a later one (T5 F1)', async () => {
    clock += 1000;
    const skewed = await backupVolume(image, store, {
      volumeId: 'vol-1',
      snapshotId: 'snap-a',
      chunkSize: CHUNK,
      now: () => clock + 2 * HOUR,
    });
    const b = await backup('snap-b');
    const r = await pruneBackups(store, 'vol-1', 1, { now, protect: [b.backupId] });
    expect(r).toMatchObject({ kept: [skewed.backupId, b.backupId], deleted: [] });
    expect(r.warnings.join('\n')).toContain(`backup ${skewed.backupId} is stamped`);
    const c = await backup('snap-c');
    const r2 = await pruneBackups(store, 'vol-1', 1, { now, protect: [c.backupId] });
    expect(r2).toMatchObject({ kept: [skewed.backupId, c.backupId], deleted: [b.backupId] });
  });

  it('keep N counts only manifests that verify, deletes no unreadable one, and says so; the collection it stops is a warning (T5 F1b)', async () => {
    const b1 = await backup('snap-1');
    clock += 1000;
    const s2 = `vol-1/${new Date(clock).toISOString().replace(/[-:.]/g, '')}-snap-2`;
    store.objects.set(manifestKey(s2), {
      body: Buffer.from('{"format":"flocker-volume-bac'),
      lastModified: new Date(clock),
    });
    const b3 = await backup('snap-3');
    const r = await pruneBackups(store, 'vol-1', 2, { now, protect: [b3.backupId] });
    expect(r).toMatchObject({ kept: [b3.backupId, b1.backupId], deleted: [], unreadable: [s2] });
    expect(r.gc).toBeUndefined();
    expect(r.warnings).toHaveLength(2);
    expect(r.warnings[0]).toContain(`backup ${s2} cannot be read`);
    expect(r.warnings[1]).toContain(`no chunk collected: backup manifest ${manifestKey(s2)} is corrupt`);
    expect(store.objects.has(manifestKey(s2))).toBe(true);
  });

  it('a running backup (fresh pending marker) defers collection; a stale marker is removed', async () => {
    const first = await backup('snap-1');
    await deleteBackup(store, first.backupId);
    clock += 48 * HOUR;
    await store.put(`${PENDING_PREFIX}vol-1/20261206T060000000Z-running.json`, Buffer.from('{}'));
    const deferred = await collectGarbage(store, { now });
    expect(deferred).toMatchObject({ deferred: true, deletedChunks: 0 });
    expect(store.keys('chunks/').length).toBeGreaterThan(0);

    clock += 1 * HOUR; // the marker was not refreshed: its backup died
    const done = await collectGarbage(store, { now });
    expect(done).toMatchObject({ deferred: false, stalePendingRemoved: 1 });
    expect(done.deletedChunks).toBeGreaterThan(0);
    expect(store.keys()).toEqual([]);
  });

  it('stops (MANIFEST_CORRUPT) rather than collect when a manifest cannot be read', async () => {
    const a = await backup('snap-a');
    store.objects.set(manifestKey(a.backupId), { body: Buffer.from('{}'), lastModified: new Date(clock) });
    clock += 48 * HOUR;
    await expectCode(collectGarbage(store, { now }), 'MANIFEST_CORRUPT', manifestKey(a.backupId));
    expect(store.keys('chunks/').length).toBeGreaterThan(0);
  });

  it("latestBackup answers the newest manifest that verifies, for the next backup's previous", async () => {
    expect(await latestBackup(store, 'vol-1')).toBeUndefined();
    const a = await backup('snap-a');
    const b = await backup('snap-b');
    expect(await latestBackup(store, 'vol-1')).toEqual(b);
    store.objects.set(manifestKey(b.backupId), { body: Buffer.from('{}'), lastModified: new Date(clock) });
    expect(await latestBackup(store, 'vol-1')).toEqual(a);
  });

  it('an aborted backup stops and writes no manifest', async () => {
    const controller = new AbortController();
    clock += 1000;
    const run = backupVolume(image, store, {
      volumeId: 'vol-1',
      snapshotId: 'snap-x',
      chunkSize: CHUNK,
      now,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.chunksDone === 10) controller.abort(new Error('operator cancelled'));
      },
    });
    await expect(run).rejects.toThrow('operator cancelled');
    expect(store.keys('manifests/')).toEqual([]);
  });

  it('readManifest verifies what it returns', async () => {
    const a = await backup('snap-a');
    expect(await readManifest(store, a.backupId)).toEqual(a);
  });
});
