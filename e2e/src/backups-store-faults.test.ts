/**
 * Backups against moto's S3 under store faults, at the library level (review T5 of session 19, findings F1, F1b,
 * F4): what the dataset agent does (latestBackup, backupVolume with previous, pruneBackups after a backup) when
 * another node's clock runs ahead, a manifest is unreadable, or a stored chunk is damaged.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backupVolume, latestBackup, listBackups, pruneBackups, restoreVolume, S3ObjectStore } from '@flocker/backup';
import { startMoto, type MotoServer } from '@flocker/storage-drivers/testing';
import { removeTree } from './removeTree';

jest.setTimeout(120_000);

const MiB = 1024 * 1024;
const BUCKET = 'backups-store-faults';
let moto: MotoServer;

beforeAll(async () => {
  moto = await startMoto();
  const res = await fetch(`${moto.endpoint}/${BUCKET}`, { method: 'PUT' });
  expect(res.status).toBe(200);
});
afterAll(() => moto.stop());

const direct = (url: string): S3ObjectStore =>
  new S3ObjectStore({
    url,
    endpoint: moto.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });

describe('backups under store faults (library against moto; review T5 F1, F1b, F4)', () => {
  it('keep 1 after a backup stamped by a node whose clock runs ahead: the backup just stored is not the one pruned', async () => {
    const dir = mkdtempSync(join(tmpdir(), 't5-skew-'));
    try {
      const image = join(dir, 'img');
      writeFileSync(image, randomBytes(1 * MiB));
      const store = direct(`s3://${BUCKET}/skew`);
      // Node a (clock 2 h ahead) backed the volume up; the volume then moved to node b (correct clock).
      await backupVolume(image, store, {
        volumeId: 'vol-1',
        snapshotId: 'snap-a',
        now: () => Date.now() + 2 * 3600_000,
      });
      writeFileSync(image, randomBytes(1 * MiB));
      const fresh = await backupVolume(image, store, { volumeId: 'vol-1', snapshotId: 'snap-b' });
      // What the agent does after storing a backup with keep 1 (BackupRunner.run): protects the backup it stored.
      const pruned = await pruneBackups(store, 'vol-1', 1, { protect: [fresh.backupId] });
      console.log(`prune warnings: ${JSON.stringify(pruned.warnings)}`);
      const left = (await listBackups(store, 'vol-1')).map((b) => b.backupId);
      console.log(`stored ${fresh.backupId}; after keep 1 the store holds ${JSON.stringify(left)}`);
      expect(left).toContain(fresh.backupId);
    } finally {
      removeTree(dir);
    }
  });

  it('a chunk damaged in the store after backup 1: the next (incremental) backup, reported done, still restores', async () => {
    const dir = mkdtempSync(join(tmpdir(), 't5-rot-'));
    try {
      const image = join(dir, 'img');
      writeFileSync(image, randomBytes(8 * MiB)); // two 4 MiB chunks
      const store = direct(`s3://${BUCKET}/rot`);
      const first = await backupVolume(image, store, { volumeId: 'vol-r', snapshotId: 's1' });
      const hash = first.chunks[0]!.split('.')[0]!;
      // Bit rot / a bad copy / a tool overwrote one object: chunk 0 damaged in the store.
      await store.put(`chunks/${hash.slice(0, 2)}/${hash}`, randomBytes(3000));
      // Only the second chunk changes; what the agent does next: previous = latestBackup, backupVolume.
      const fd = readFileSync(image);
      randomBytes(4 * MiB).copy(fd, 4 * MiB);
      writeFileSync(image, fd);
      const previous = await latestBackup(store, 'vol-r');
      const second = await backupVolume(image, store, { volumeId: 'vol-r', snapshotId: 's2', previous: previous! });
      console.log(`second backup done: ${second.backupId}, uploaded chunks ${second.stats.uploadedChunks}`);
      const out = join(dir, 'restored');
      await restoreVolume(store, second.backupId, out);
      expect(createHash('sha256').update(readFileSync(out)).digest('hex')).toBe(
        createHash('sha256').update(readFileSync(image)).digest('hex'),
      );
    } finally {
      removeTree(dir);
    }
  });

  it('keep 2 with one unreadable manifest among the newest: two restorable backups are kept', async () => {
    const dir = mkdtempSync(join(tmpdir(), 't5-keep-'));
    try {
      const image = join(dir, 'img');
      const store = direct(`s3://${BUCKET}/keep-unreadable`);
      writeFileSync(image, randomBytes(1 * MiB));
      const b1 = await backupVolume(image, store, { volumeId: 'vol-k', snapshotId: 's1' });
      // A manifest damaged in the store (truncated by a copy tool, say), newer than b1.
      const stamp = new Date(Date.now() + 5).toISOString().replace(/[-:.]/g, '');
      await store.put(`manifests/vol-k/${stamp}-s2.json`, Buffer.from('{"format":"flocker-volume-bac'));
      await new Promise((r) => setTimeout(r, 20));
      writeFileSync(image, randomBytes(1 * MiB));
      const b3 = await backupVolume(image, store, { volumeId: 'vol-k', snapshotId: 's3' });
      await pruneBackups(store, 'vol-k', 2).catch((e: unknown) => console.log(`prune: ${String(e)}`));
      const left = await listBackups(store, 'vol-k');
      console.log(`after keep 2: ${JSON.stringify(left.map((b) => [b.backupId, b.problem?.code ?? 'ok']))}`);
      expect(left.filter((b) => b.problem === undefined).map((b) => b.backupId)).toEqual([b3.backupId, b1.backupId]);
    } finally {
      removeTree(dir);
    }
  });
});
