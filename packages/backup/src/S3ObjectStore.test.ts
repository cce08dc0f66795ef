/**
 * Integration: the engine against moto's S3 server over real HTTP through @aws-sdk/client-s3.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { startMoto, type MotoServer } from '@flocker/storage-drivers/testing';
import { backupVolume } from './backup';
import { collectGarbage, deleteBackup, latestBackup, listBackups, pruneBackups } from './catalog';
import { isBackupError, type BackupErrorCode } from './errors';
import { chunkKey } from './layout';
import { readManifest, restoreVolume } from './restore';
import { S3ObjectStore } from './S3ObjectStore';
import { makeSparseImage, mutateImage, sha256File } from './testing';

jest.setTimeout(180_000);

const KiB = 1024;
const MiB = 1024 * KiB;
const CREDENTIALS = { accessKeyId: 'testing', secretAccessKey: 'testing' };

let moto: MotoServer;
let dir: string;

beforeAll(async () => {
  moto = await startMoto();
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flocker-backup-s3-'));
});

afterAll(async () => {
  await moto?.stop();
  if (dir !== undefined) await fs.rm(dir, { recursive: true, force: true });
});

let buckets = 0;
async function newStore(prefix = 'flocker/backups'): Promise<S3ObjectStore> {
  const bucket = `backups-${++buckets}`;
  const store = new S3ObjectStore({
    url: `s3://${bucket}/${prefix}`,
    endpoint: moto.endpoint,
    region: 'us-east-1',
    credentials: CREDENTIALS,
  });
  await store.s3.send(new CreateBucketCommand({ Bucket: bucket }));
  return store;
}

async function expectCode(p: Promise<unknown>, code: BackupErrorCode, text: string): Promise<void> {
  const caught = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isBackupError(caught) ? caught.code : caught).toBe(code);
  expect((caught as Error).message).toContain(text);
}

describe('backups on moto S3', () => {
  const SIZE = 64 * MiB;
  // The default 4 MiB chunks: 1% of 64 MiB (640 KiB) is less than one chunk, and travels as a delta.
  const CHUNK = 4 * MiB;
  let store: S3ObjectStore;
  let image: string;
  let dataAt: number;

  beforeAll(async () => {
    store = await newStore();
    image = path.join(dir, 'volume.img');
    // 12 regions of 1 MiB of random data in a 64 MiB sparse file.
    const regions = await makeSparseImage(image, { size: SIZE, regions: 12, regionSize: MiB, seed: 5 });
    dataAt = (regions[0]?.offset ?? 0) + 12_345; // not chunk-aligned, inside data: the old bytes become garbage
  });

  it('backs up a 64 MiB sparse volume, restores it byte-identical, and an incremental after 1% uploads ≤ 2× the change', async () => {
    const first = await backupVolume(image, store, { volumeId: 'vol-1', snapshotId: 'snap-1', chunkSize: CHUNK });
    expect(first.stats.holeChunks).toBeGreaterThan(0);
    // Random data does not compress; holes are never sent.
    expect(first.stats.uploadedBytes).toBeLessThan(first.stats.dataBytes * 1.01);
    expect(first.stats.uploadedBytes).toBeLessThan(16 * MiB);

    const restored = path.join(dir, 'restored-1.img');
    await restoreVolume(store, first.backupId, restored);
    expect(await sha256File(restored)).toBe(await sha256File(image));

    const changed = SIZE / 100;
    await mutateImage(image, { bytes: changed, regions: 1, offsets: [dataAt] });
    const second = await backupVolume(image, store, {
      volumeId: 'vol-1',
      snapshotId: 'snap-2',
      chunkSize: CHUNK,
      previous: first,
    });
    expect(second.stats.uploadedBytes).toBeLessThanOrEqual(2 * changed);
    expect(second.stats.deltaChunks).toBeGreaterThan(0);
    expect(second.stats.uploadedBytes).toBeGreaterThanOrEqual(changed * 0.99);

    const restored2 = path.join(dir, 'restored-2.img');
    await restoreVolume(store, second.backupId, restored2);
    expect(await sha256File(restored2)).toBe(await sha256File(image));
    // The first backup still restores its own point in time.
    expect(await sha256File(restored)).not.toBe(await sha256File(image));
    expect((await listBackups(store, 'vol-1')).map((b) => b.backupId)).toEqual([second.backupId, first.backupId]);
  });

  it('a corrupted object makes the restore fail with CHUNK_CORRUPT; a deleted one with CHUNK_MISSING', async () => {
    const m = await backupVolume(image, store, { volumeId: 'vol-1', snapshotId: 'snap-3', chunkSize: CHUNK });
    const [a, b] = [...new Set(m.chunks.filter((c): c is string => c !== null))];
    if (a === undefined || b === undefined) throw new Error('need two data chunks');
    const bucket = store.bucket;
    const full = (key: string) => `flocker/backups/${key}`;
    const original = await store.get(chunkKey(a));
    if (original === undefined) throw new Error('chunk not in moto');
    const flipped = Buffer.from(original);
    const middle = Math.floor(flipped.length / 2);
    flipped.writeUInt8(flipped.readUInt8(middle) ^ 0x01, middle);
    await store.s3.send(new PutObjectCommand({ Bucket: bucket, Key: full(chunkKey(a)), Body: flipped }));
    expect(await store.get(chunkKey(a))).toEqual(flipped); // moto holds the damaged bytes
    const target = path.join(dir, 'never.img');
    await expectCode(restoreVolume(store, m.backupId, target), 'CHUNK_CORRUPT', chunkKey(a));
    await expect(fs.stat(target)).rejects.toThrow(/ENOENT/);

    await store.put(chunkKey(a), original);
    await store.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: full(chunkKey(b)) }));
    await expectCode(restoreVolume(store, m.backupId, target), 'CHUNK_MISSING', chunkKey(b));
    await expect(fs.stat(target)).rejects.toThrow(/ENOENT/);

    // A later backup of the same data finds the chunk missing and stores it again: restorable again.
    const again = await backupVolume(image, store, { volumeId: 'vol-1', snapshotId: 'snap-4', chunkSize: CHUNK });
    expect(again.stats.uploadedChunks).toBe(1);
    await restoreVolume(store, m.backupId, target);
    expect(await sha256File(target)).toBe(await sha256File(image));
  });

  it('prune keeps the newest backup and collects the chunks only older ones used', async () => {
    const before = await listBackups(store, 'vol-1');
    expect(before.length).toBeGreaterThan(1);
    const result = await pruneBackups(store, 'vol-1', 1, { graceMs: 0 });
    expect(result.kept).toEqual([before[0]?.backupId]);
    expect(result.gc?.deferred).toBe(false);
    expect(result.gc?.deletedChunks).toBeGreaterThan(0);
    const target = path.join(dir, 'after-prune.img');
    await restoreVolume(store, before[0]?.backupId ?? '', target);
    expect(await sha256File(target)).toBe(await sha256File(image));
  });
});

describe('kill -9 of a backup', () => {
  it('leaves no backup; the re-run completes with what is left, and collection waits for the marker to expire', async () => {
    const store = await newStore('killed');
    const image = path.join(dir, 'kill.img');
    await makeSparseImage(image, { size: 32 * MiB, regions: 8, regionSize: 2 * MiB, seed: 13 });
    const options = { volumeId: 'vol-k', snapshotId: 'snap-1', chunkSize: 256 * KiB };
    // A separate process doing the backup one chunk at a time, reporting each upload, killed after the fifth.
    const child = spawn(
      process.execPath,
      [
        '-e',
        `const { backupVolume, S3ObjectStore } = require(${JSON.stringify(path.join(__dirname, 'index.js'))});
         const a = JSON.parse(process.env.BACKUP_ARGS);
         const store = new S3ObjectStore({ url: a.url, endpoint: a.endpoint, credentials: a.credentials });
         backupVolume(a.image, store, { ...a.options, concurrency: 1,
           onProgress: (p) => process.stdout.write(p.uploadedChunks + '\\n') });`,
      ],
      {
        env: {
          ...process.env,
          BACKUP_ARGS: JSON.stringify({
            url: store.location,
            endpoint: moto.endpoint,
            credentials: CREDENTIALS,
            image,
            options,
          }),
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.once('exit', (_code, signal) => resolve(signal)),
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        if (
          d
            .toString()
            .split('\n')
            .some((n) => Number(n) >= 5)
        ) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.once('exit', () => reject(new Error('the backup finished before it could be killed')));
    });
    expect(await exited).toBe('SIGKILL');

    expect(await listBackups(store)).toEqual([]);
    const left = [];
    for await (const o of store.list('chunks/')) left.push(o.key);
    expect(left.length).toBeGreaterThanOrEqual(5);
    // The killed backup's marker is fresh: collection waits; once it expires, collection removes it.
    expect(await collectGarbage(store, { graceMs: 0 })).toMatchObject({ deferred: true, deletedChunks: 0 });

    const m = await backupVolume(image, store, options);
    const distinct = new Set(m.chunks.filter((c) => c !== null)).size;
    expect(m.stats.uploadedChunks).toBe(distinct - left.length);
    const target = path.join(dir, 'after-kill.img');
    await restoreVolume(store, m.backupId, target);
    expect(await sha256File(target)).toBe(await sha256File(image));
    const gc = await collectGarbage(store, { graceMs: 0, pendingTtlMs: 0 });
    expect(gc).toMatchObject({ deferred: false, stalePendingRemoved: 1, deletedChunks: 0, referencedChunks: distinct });
  });
});

describe('S3ObjectStore against moto', () => {
  it('lists past a page of 1000 keys, under its prefix only', async () => {
    const store = await newStore('p');
    const other = new S3ObjectStore({
      url: `${store.location.replace(/\/p$/, '')}/pp`,
      endpoint: moto.endpoint,
      credentials: CREDENTIALS,
    });
    await other.put('x/1', Buffer.from('other prefix'));
    const keys = Array.from({ length: 1005 }, (_, i) => `x/${String(i).padStart(4, '0')}`);
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(keys.slice(i, i + 50).map((k) => store.put(k, Buffer.from(k))));
    }
    const listed: string[] = [];
    for await (const o of store.list('x/')) listed.push(o.key);
    expect(listed).toEqual(keys);
    expect(await store.get('x/0007')).toEqual(Buffer.from('x/0007'));
    expect(await store.get('x/none')).toBeUndefined();
    expect(await store.head('x/none')).toBeUndefined();
    expect(await store.head('x/0007')).toMatchObject({ key: 'x/0007', size: 6 });
    await store.delete('x/0007');
    await store.delete('x/0007'); // deleting what is gone is fine
    expect(await store.get('x/0007')).toBeUndefined();
  });

  it('retries throttling and 5xx answers, then succeeds', async () => {
    const store = await newStore();
    let injected = 0;
    store.s3.middlewareStack.add(
      (next) => async (args) => {
        if (injected++ < 2)
          throw new S3ServiceException({ name: 'SlowDown', $fault: 'server', $metadata: { httpStatusCode: 503 } });
        return next(args);
      },
      { step: 'initialize', name: 'testSlowDown' },
    );
    const fast = new S3ObjectStore({
      url: store.location,
      client: store.s3,
      backoff: { initialMs: 1, maxMs: 5, jitter: false },
    });
    await fast.put('k', Buffer.from('v'));
    expect(injected).toBe(3);
    expect(await fast.get('k')).toEqual(Buffer.from('v'));
  });

  it('a store that does not answer is STORE_UNREACHABLE; a missing bucket is STORE_DENIED', async () => {
    const dead = new S3ObjectStore({
      url: 's3://backups-1/x',
      endpoint: 'http://127.0.0.1:9', // discard port: nothing listens
      credentials: CREDENTIALS,
      maxAttempts: 2,
      backoff: { initialMs: 1, maxMs: 5, jitter: false },
    });
    await expectCode(dead.put('k', Buffer.from('v')), 'STORE_UNREACHABLE', 'no answer after 2 tries');
    const missing = new S3ObjectStore({
      url: 's3://no-such-bucket/x',
      endpoint: moto.endpoint,
      credentials: CREDENTIALS,
    });
    await expectCode(missing.put('k', Buffer.from('v')), 'STORE_DENIED', 's3://no-such-bucket/x/k');
  });

  it('PUT sends the SHA-256 and HEAD answers what S3 recorded: a chunk damaged in place (same size) is stored again (T5 F4)', async () => {
    const store = await newStore('rot');
    const body = randomBytes(1000);
    await store.put('k', body);
    expect((await store.head('k'))?.sha256).toBe(createHash('sha256').update(body).digest('base64'));

    const image = path.join(dir, 'rot.img');
    await fs.writeFile(image, randomBytes(2 * MiB));
    const first = await backupVolume(image, store, { volumeId: 'vol-r', snapshotId: 's1', chunkSize: MiB });
    const victim = chunkKey(first.chunks[0] ?? '');
    await store.put(victim, randomBytes(first.objects?.[victim]?.size ?? 0)); // same size, other bytes
    const previous = await latestBackup(store, 'vol-r');
    const second = await backupVolume(image, store, { volumeId: 'vol-r', snapshotId: 's2', previous: previous! });
    expect(second.stats.uploadedChunks).toBe(1);
    await restoreVolume(store, second.backupId, path.join(dir, 'rot.out'));
    expect(await sha256File(path.join(dir, 'rot.out'))).toBe(await sha256File(image));
  });

  describe('an aborted signal ends a call at once (T5 F2)', () => {
    let frozen: Server;
    let frozenEndpoint: string;
    beforeAll(async () => {
      // An endpoint that accepts and never answers: a hung S3, a SIGSTOPped moto.
      frozen = createServer(() => undefined);
      await new Promise<void>((r) => frozen.listen(0, '127.0.0.1', r));
      frozenEndpoint = `http://127.0.0.1:${(frozen.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      frozen.closeAllConnections();
      await new Promise<void>((r) => frozen.close(() => r()));
    });
    const hung = () => new S3ObjectStore({ url: 's3://frozen/x', endpoint: frozenEndpoint, credentials: CREDENTIALS });
    const abortedIn = async (ms: number, run: (signal: AbortSignal) => Promise<unknown>): Promise<number> => {
      const controller = new AbortController();
      const t0 = Date.now();
      setTimeout(() => controller.abort(new Error('agent stopping')), ms);
      await expect(run(controller.signal)).rejects.toThrow('agent stopping');
      return Date.now() - t0;
    };

    it('every store call held by a frozen endpoint', async () => {
      const store = hung();
      const calls: ((signal: AbortSignal) => Promise<unknown>)[] = [
        (signal) => store.put('k', Buffer.from('v'), { signal }),
        (signal) => store.get('k', { signal }),
        (signal) => store.head('k', { signal }),
        (signal) => store.delete('k', { signal }),
        (signal) => store.list('', { signal })[Symbol.asyncIterator]().next(),
      ];
      for (const call of calls) expect(await abortedIn(200, call)).toBeLessThan(2000);
    });

    it('a retry pause', async () => {
      const refused = new S3ObjectStore({
        url: 's3://backups-1/x',
        endpoint: 'http://127.0.0.1:9',
        credentials: CREDENTIALS,
        backoff: { initialMs: 60_000, maxMs: 60_000, jitter: false },
      });
      expect(await abortedIn(300, (signal) => refused.put('k', Buffer.from('v'), { signal }))).toBeLessThan(2000);
    });

    it('a backup, a restore, a listing and a prune on a frozen store', async () => {
      const store = hung();
      const image = path.join(dir, 'frozen.img');
      await fs.writeFile(image, randomBytes(MiB));
      const took = [
        await abortedIn(300, (signal) => backupVolume(image, store, { volumeId: 'v', snapshotId: 's', signal })),
        await abortedIn(300, (signal) =>
          restoreVolume(store, 'v/20261206T000000000Z-s', path.join(dir, 'x'), { signal }),
        ),
        await abortedIn(300, (signal) => listBackups(store, 'v', { signal })),
        await abortedIn(300, (signal) => latestBackup(store, 'v', { signal })),
        await abortedIn(300, (signal) => pruneBackups(store, 'v', 1, { signal })),
        await abortedIn(300, (signal) => readManifest(store, 'v/20261206T000000000Z-s', { signal })),
      ];
      for (const ms of took) expect(ms).toBeLessThan(2000);
    });
  });

  it('no credentials anywhere: STORE_DENIED at once naming what to set, not retried as an outage (T5 F6)', async () => {
    let pauses = 0;
    const client = new S3Client({
      region: 'us-east-1',
      endpoint: moto.endpoint,
      forcePathStyle: true,
      credentials: () =>
        Promise.reject(
          Object.assign(new Error('Could not load credentials from any providers'), {
            name: 'CredentialsProviderError',
          }),
        ),
    });
    const store = new S3ObjectStore({
      url: 's3://backups-1/x',
      client,
      sleep: async () => {
        pauses++;
      },
    });
    await expectCode(store.head('k'), 'STORE_DENIED', 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
    expect(pauses).toBe(0);
  });

  it('deleteBackup in a bucket that does not exist says so (STORE_DENIED), not that the backup is gone (T5 F6)', async () => {
    const missing = new S3ObjectStore({
      url: 's3://no-such-bucket/x',
      endpoint: moto.endpoint,
      credentials: CREDENTIALS,
    });
    await expectCode(deleteBackup(missing, 'v/20261206T000000000Z-s'), 'STORE_DENIED', 'bucket does not exist');
    const store = await newStore();
    await expectCode(deleteBackup(store, 'v/20261206T000000000Z-s'), 'BACKUP_NOT_FOUND', 'no backup');
  });
});
