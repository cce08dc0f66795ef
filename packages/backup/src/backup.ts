/** backupVolume: a volume image (snapshot file or block device) into content-addressed chunks and a manifest. */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import {
  compressChunk,
  DEFAULT_COMPRESSION,
  isAllZero,
  openChunk,
  sha256Hex,
  xorBuffers,
  type Compression,
} from './chunks';
import { BackupError } from './errors';
import {
  backupIdOf,
  checkId,
  chunkKey,
  deltaKey,
  formatEntry,
  hashOfChunkKey,
  keysOfEntry,
  manifestKey,
  parseEntry,
  pendingKey,
  stampOf,
} from './layout';
import {
  BACKUP_FORMAT,
  BACKUP_FORMAT_VERSION,
  chunkCount,
  chunkLength,
  DEFAULT_CHUNK_SIZE,
  MAX_CHUNK_SIZE,
  MIN_CHUNK_SIZE,
  sealManifest,
  serializeManifest,
  type Manifest,
  type StoredObject,
} from './manifest';
import { forEachIndex } from './pool';
import { describePath } from './source';
import type { ObjectStore } from './store';

export interface BackupProgress {
  readonly backupId: string;
  /** `chunks` while reading and uploading, `verify` while checking the store still holds what it reuses, `done`. */
  readonly phase: 'chunks' | 'verify' | 'done';
  readonly chunksDone: number;
  readonly chunksTotal: number;
  readonly bytesRead: number;
  readonly bytesTotal: number;
  readonly holeChunks: number;
  readonly uploadedChunks: number;
  readonly uploadedBytes: number;
}

export interface BackupOptions {
  /** The Flocker dataset id the data belongs to. */
  readonly volumeId: string;
  /** The snapshot the source is an image of (driver's snapshot id). */
  readonly snapshotId: string;
  /** Free text shown in listings. */
  readonly label?: string;
  /**
   * The volume's previous backup: its chunks are not looked up while reading, only checked once before the
   * manifest is written (HEAD: size and checksum against what that backup recorded; an object it recorded nothing
   * for is read and checked whole). One that fails is stored again.
   */
  readonly previous?: Manifest;
  /** Bytes per chunk (default 4 MiB; a multiple of 4096 in 64 KiB..64 MiB). Smaller finds smaller changes. */
  readonly chunkSize?: number;
  readonly compression?: Compression;
  /** Chunks read, compressed and uploaded at once (default 4): memory is about 2 × chunkSize × this. */
  readonly concurrency?: number;
  /** Back up only this many bytes of the source (default: its whole size). */
  readonly size?: number;
  readonly onProgress?: (progress: BackupProgress) => void;
  readonly signal?: AbortSignal;
  /** Wall-clock milliseconds, for createdAt and the backup id (injectable for tests). */
  readonly now?: () => number;
  /** How often the pending marker is rewritten while the backup runs (default 5 minutes); see pruneBackups. */
  readonly pendingRefreshMs?: number;
  /**
   * Read back and check the content of every object this backup reuses instead of trusting a HEAD (costs a
   * download of the whole volume's stored chunks): repairs damage a HEAD cannot see (same size, no checksum).
   */
  readonly full?: boolean;
}

export const DEFAULT_CONCURRENCY = 4;
export const DEFAULT_PENDING_REFRESH_MS = 5 * 60_000;

function checkOptions(o: BackupOptions): { chunkSize: number; concurrency: number } {
  checkId('volume id', o.volumeId);
  checkId('snapshot id', o.snapshotId);
  const chunkSize = o.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (
    !Number.isInteger(chunkSize) ||
    chunkSize % 4096 !== 0 ||
    chunkSize < MIN_CHUNK_SIZE ||
    chunkSize > MAX_CHUNK_SIZE
  )
    throw new BackupError('INVALID_ARGUMENT', `chunk size ${chunkSize} must be a multiple of 4096 in 64 KiB..64 MiB`);
  const concurrency = o.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64)
    throw new BackupError('INVALID_ARGUMENT', `concurrency ${concurrency} must be 1..64`);
  if (o.size !== undefined && (!Number.isSafeInteger(o.size) || o.size < 0))
    throw new BackupError('INVALID_ARGUMENT', `size ${o.size} must be a non-negative integer`);
  if (o.previous !== undefined && o.previous.volumeId !== o.volumeId)
    throw new BackupError(
      'INVALID_ARGUMENT',
      `previous backup ${o.previous.backupId} is of volume ${o.previous.volumeId}, not ${o.volumeId}`,
    );
  return { chunkSize, concurrency };
}

/** Reads exactly length bytes at position, or fails: the source must not shrink under us. */
async function readAt(handle: fs.FileHandle, source: string, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  try {
    while (done < length) {
      const { bytesRead } = await handle.read(buf, done, length - done, position + done);
      if (bytesRead === 0) throw new Error(`ends at byte ${position + done}, expected ${position + length}`);
      done += bytesRead;
    }
  } catch (e) {
    throw new BackupError(
      'SOURCE_UNREADABLE',
      `reading ${source}: ${e instanceof Error ? e.message : String(e)}`,
      source,
      {
        cause: e,
      },
    );
  }
  return buf;
}

/** A delta is stored only when it is at most this fraction of the whole chunk compressed (else the chunk, a new base). */
const DELTA_MAX_FRACTION = 0.5;

/**
 * Backs up `source` (a snapshot image file or a block device, read only) into `store`. Chunks that are all zeros
 * become holes; every other chunk is named by the SHA-256 of its plain bytes and stored once, compressed, only if
 * the store does not hold it yet. With `previous`, a chunk that changed is stored as the XOR with the previous
 * backup's full chunk at the same offset when that is much smaller (a few changed pages upload a few pages).
 * The manifest is written last: until then the backup does not exist (a crash leaves only chunks, which the next
 * run reuses and garbage collection eventually removes).
 */
export async function backupVolume(source: string, store: ObjectStore, options: BackupOptions): Promise<Manifest> {
  const { chunkSize, concurrency } = checkOptions(options);
  const compression = options.compression ?? DEFAULT_COMPRESSION;
  const now = options.now ?? Date.now;
  const info = await describePath(source, 'source');
  const size = options.size ?? info.size;
  if (size > info.size)
    throw new BackupError(
      'SOURCE_UNREADABLE',
      `${source} holds ${info.size} bytes, fewer than the ${size} asked for`,
      source,
    );
  const createdMs = now();
  const backupId = backupIdOf({
    volumeId: options.volumeId,
    stamp: stampOf(createdMs),
    snapshotId: options.snapshotId,
  });
  const total = chunkCount(size, chunkSize);
  const chunks: (string | null)[] = new Array<string | null>(total).fill(null);
  const previous = options.previous;
  const signal = options.signal;
  const call = signal === undefined ? {} : { signal };
  // Entries of the previous backup by hash: the store holds them (checked before the manifest is written).
  const known = new Map<string, string>();
  for (const e of previous?.chunks ?? []) if (e !== null) known.set(parseEntry(e).hash, e);
  // What the previous backup recorded of each object; what this one will record (see Manifest.objects).
  const expected = new Map<string, StoredObject>(Object.entries(previous?.objects ?? {}));
  const records = new Map<string, StoredObject>();
  const recordOf = (body: Uint8Array): StoredObject => ({
    size: body.length,
    sha256: createHash('sha256').update(body).digest('base64'),
  });
  const inFlight = new Map<string, Promise<string>>();
  const stats = { dataBytes: 0, holeChunks: 0, uploadedChunks: 0, uploadedBytes: 0, uploadedPlainBytes: 0 };
  let chunksDone = 0;
  let bytesRead = 0;
  const progress = (phase: BackupProgress['phase']) =>
    options.onProgress?.({
      backupId,
      phase,
      chunksDone,
      chunksTotal: total,
      bytesRead,
      bytesTotal: size,
      holeChunks: stats.holeChunks,
      uploadedChunks: stats.uploadedChunks,
      uploadedBytes: stats.uploadedBytes,
    });
  const uploaded = new Set<string>();
  const upload = async (key: string, body: Buffer, plainLength: number) => {
    await store.put(key, body, call);
    uploaded.add(key);
    records.set(key, recordOf(body));
    stats.uploadedChunks++;
    stats.uploadedBytes += body.length;
    stats.uploadedPlainBytes += plainLength;
  };

  // The full chunk the previous backup had at this index (for a delta), if it had one of the same length.
  const baseAt = (index: number, length: number): string | undefined => {
    const e = previous?.chunks[index];
    if (e === undefined || e === null || previous === undefined) return undefined;
    if (chunkLength(previous.size, previous.chunkSize, index) !== length || previous.chunkSize !== chunkSize)
      return undefined;
    const parsed = parseEntry(e);
    return parsed.base ?? parsed.hash;
  };

  // Stores chunk `index` (plain bytes hashing to `hash`) unless the store has it; answers its manifest entry.
  const store1 = async (index: number, hash: string, plain: Buffer, lookUp: boolean): Promise<string> => {
    if (lookUp && (await store.head(chunkKey(hash), call)) !== undefined) return hash;
    const whole = await compressChunk(plain, compression);
    const base = baseAt(index, plain.length);
    if (base !== undefined && base !== hash) {
      const baseStored = await store.get(chunkKey(base), call);
      // A base that is gone or damaged only means no delta: the chunk is stored whole.
      const basePlain =
        baseStored === undefined
          ? undefined
          : await openChunk(baseStored, base, plain.length, chunkKey(base)).catch(() => undefined);
      if (basePlain !== undefined) {
        const delta = await compressChunk(xorBuffers(plain, basePlain), compression);
        if (delta.length <= whole.length * DELTA_MAX_FRACTION) {
          await upload(deltaKey(hash, base), delta, plain.length);
          return formatEntry({ hash, base });
        }
      }
    }
    await upload(chunkKey(hash), whole, plain.length);
    return hash;
  };
  // One upload per hash even when chunks repeat; a failed one may be retried by a later chunk with the same bytes.
  const ensureStored = (index: number, hash: string, plain: Buffer, lookUp: boolean): Promise<string> => {
    let p = inFlight.get(hash);
    if (p === undefined) {
      p = store1(index, hash, plain, lookUp);
      inFlight.set(hash, p);
      p.catch(() => inFlight.delete(hash));
    }
    return p;
  };

  const marker = Buffer.from(JSON.stringify({ backupId, startedAt: new Date(createdMs).toISOString() }) + '\n');
  await store.put(pendingKey(backupId), marker, call);
  // Keeps the marker young while we run, so garbage collection keeps waiting for us (see pruneBackups).
  const refresh = setInterval(() => {
    store.put(pendingKey(backupId), marker, call).catch(() => undefined);
  }, options.pendingRefreshMs ?? DEFAULT_PENDING_REFRESH_MS);
  refresh.unref();
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(source, 'r').catch((e: unknown) => {
      throw new BackupError(
        'SOURCE_UNREADABLE',
        `opening ${source}: ${e instanceof Error ? e.message : String(e)}`,
        source,
      );
    });
    const h = handle;
    progress('chunks');
    await forEachIndex(total, concurrency, async (i) => {
      options.signal?.throwIfAborted();
      const length = chunkLength(size, chunkSize, i);
      const plain = await readAt(h, source, i * chunkSize, length);
      bytesRead += length;
      if (isAllZero(plain)) {
        stats.holeChunks++;
      } else {
        const hash = sha256Hex(plain);
        stats.dataBytes += length;
        chunks[i] = known.get(hash) ?? (await ensureStored(i, hash, plain, true));
      }
      chunksDone++;
      progress('chunks');
    });

    // Every object the manifest will name that this run did not write itself (trusted from `previous`, found by
    // HEAD, a delta's base) is checked now, before the manifest makes the backup exist: a concurrent garbage
    // collection may have removed it, and the store may have lost or damaged it since it was written (a HEAD
    // proving existence only would let one damaged chunk spoil every later backup). An object with a record is
    // HEADed and compared (size, and S3's checksum when it keeps one); one without (another volume's chunk, a
    // manifest of an older version), or every one with `full`, is read and its content checked once. A chunk
    // missing or failing any of its objects is read again from the source and stored whole (content-addressed:
    // the PUT replaces the damaged object, repairing older backups too). HEADs rather than a listing of the
    // store, so the work and memory stay proportional to this volume, not to everything the bucket holds.
    progress('verify');
    const entries = [...new Set(chunks)].filter((e): e is string => e !== null);
    const plainLength = new Map<string, number>();
    chunks.forEach((e, i) => {
      if (e !== null) for (const k of keysOfEntry(e)) plainLength.set(k, chunkLength(size, chunkSize, i));
    });
    const toCheck = [...new Set(entries.flatMap(keysOfEntry))].filter((k) => !uploaded.has(k));
    const missing = new Set<string>();
    const readAndCheck = async (key: string): Promise<StoredObject | undefined> => {
      const hash = hashOfChunkKey(key);
      // A delta is checked only against its record: without one, storing its chunk whole is as cheap as reading it.
      if (hash === undefined) return undefined;
      const bytes = await store.get(key, call);
      if (bytes === undefined) return undefined;
      const ok = await openChunk(bytes, hash, plainLength.get(key) ?? 0, key).then(
        () => true,
        () => false,
      );
      return ok ? recordOf(bytes) : undefined;
    };
    await forEachIndex(toCheck.length, Math.max(concurrency, 16), async (k) => {
      const key = toCheck[k] ?? '';
      const info = await store.head(key, call);
      const want = expected.get(key);
      let good: StoredObject | undefined;
      if (info === undefined) good = undefined;
      else if (options.full === true || want === undefined) good = await readAndCheck(key);
      else if (info.size === want.size && (info.sha256 === undefined || info.sha256 === want.sha256)) good = want;
      if (good === undefined) missing.add(key);
      else records.set(key, good);
    });
    const checked = new Set(toCheck);
    const present = (key: string) => uploaded.has(key) || (checked.has(key) && !missing.has(key));
    const broken = entries.filter((e) => keysOfEntry(e).some((k) => missing.has(k)));
    await forEachIndex(broken.length, concurrency, async (b) => {
      const entry = broken[b] ?? '';
      const { hash } = parseEntry(entry);
      const i = chunks.indexOf(entry);
      const plain = await readAt(h, source, i * chunkSize, chunkLength(size, chunkSize, i));
      if (sha256Hex(plain) !== hash)
        throw new BackupError('SOURCE_UNREADABLE', `${source} changed while it was backed up (chunk ${i})`, source);
      if (!present(chunkKey(hash))) await upload(chunkKey(hash), await compressChunk(plain, compression), plain.length);
      chunks.forEach((e, j) => {
        if (e === entry) chunks[j] = hash;
      });
    });

    const dataChunks = chunks.filter((c) => c !== null).length;
    const manifest = sealManifest({
      format: BACKUP_FORMAT,
      version: BACKUP_FORMAT_VERSION,
      backupId,
      volumeId: options.volumeId,
      snapshotId: options.snapshotId,
      label: options.label ?? '',
      createdAt: new Date(createdMs).toISOString(),
      size,
      chunkSize,
      compression,
      ...(previous === undefined ? {} : { previous: previous.backupId }),
      chunks,
      objects: Object.fromEntries(
        [...new Set(chunks.flatMap((e) => (e === null ? [] : keysOfEntry(e))))].sort().map((k) => {
          const r = records.get(k);
          if (r === undefined) throw new Error(`no record of ${k}, which the manifest needs`); // a bug, never data
          return [k, r];
        }),
      ),
      stats: {
        dataChunks,
        holeChunks: stats.holeChunks,
        deltaChunks: chunks.filter((c) => c !== null && parseEntry(c).base !== undefined).length,
        dataBytes: stats.dataBytes,
        uploadedChunks: stats.uploadedChunks,
        uploadedBytes: stats.uploadedBytes,
        uploadedPlainBytes: stats.uploadedPlainBytes,
      },
    });
    options.signal?.throwIfAborted();
    await store.put(manifestKey(backupId), serializeManifest(manifest), call);
    progress('done');
    return manifest;
  } finally {
    clearInterval(refresh);
    await handle?.close();
    // Done or failed, nothing of ours is left to protect: what we uploaded is young (the grace period) or
    // referenced by our manifest. A kill leaves the marker, which expires after pendingTtlMs.
    // Aborted (an agent stopping on a hung store): not waited for; the marker expires.
    if (signal?.aborted !== true) await store.delete(pendingKey(backupId)).catch(() => undefined);
  }
}
