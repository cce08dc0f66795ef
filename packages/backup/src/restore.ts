/** restoreVolume: a backup back into a file or block device, every byte verified before it is written. */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { openChunk, openDelta } from './chunks';
import { BackupError } from './errors';
import { chunkKey, deltaKey, parseEntry, resolveManifestKey } from './layout';
import { chunkLength, parseManifest, type Manifest } from './manifest';
import { forEachIndex } from './pool';
import { describePath } from './source';
import type { ObjectStore } from './store';
import { DEFAULT_CONCURRENCY } from './backup';

export interface RestoreProgress {
  readonly backupId: string;
  readonly chunksDone: number;
  readonly chunksTotal: number;
  /** Plain bytes written so far (holes excluded). */
  readonly bytesWritten: number;
  readonly bytesTotal: number;
}

export interface RestoreOptions {
  /** Chunks fetched and verified at once (default 4). */
  readonly concurrency?: number;
  /** Replace an existing non-empty target file (default: refuse). Block devices are always written over. */
  readonly overwrite?: boolean;
  /**
   * A block device target is known to read as zeros (freshly created volume): holes are skipped instead of
   * written as zeros. Files are always sparse: holes are never written to them.
   */
  readonly assumeZeroed?: boolean;
  readonly onProgress?: (progress: RestoreProgress) => void;
  readonly signal?: AbortSignal;
}

export interface RestoreResult {
  readonly manifest: Manifest;
  readonly bytesWritten: number;
  readonly chunksWritten: number;
  readonly holeChunks: number;
}

/** Reads and verifies a backup's manifest: BACKUP_NOT_FOUND if absent, MANIFEST_CORRUPT if it fails its checks. */
export async function readManifest(
  store: ObjectStore,
  ref: string,
  options: { signal?: AbortSignal } = {},
): Promise<Manifest> {
  const key = resolveManifestKey(ref);
  const bytes = await store.get(key, options);
  if (bytes === undefined) throw new BackupError('BACKUP_NOT_FOUND', `no backup ${ref} in ${store.location}`, key);
  return parseManifest(bytes, key);
}

const ZEROS_CACHE = new Map<number, Buffer>();
function zeros(length: number): Buffer {
  let z = ZEROS_CACHE.get(length);
  if (z === undefined) ZEROS_CACHE.set(length, (z = Buffer.alloc(length)));
  return z;
}

async function writeAll(handle: fs.FileHandle, target: string, data: Buffer, position: number): Promise<void> {
  try {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
      done += bytesWritten;
    }
  } catch (e) {
    throw new BackupError(
      'TARGET_UNUSABLE',
      `writing ${target}: ${e instanceof Error ? e.message : String(e)}`,
      target,
      {
        cause: e,
      },
    );
  }
}

/**
 * Restores backup `ref` (backup id or manifest key) into `target`:
 * - a block device at least as large as the volume: written in place (holes written as zeros unless assumeZeroed);
 * - a file path: written to a temporary file beside it, which replaces `target` only once every chunk verified
 *   (so the file either is the whole volume or is not changed at all); holes stay holes.
 * Every chunk is checked against its SHA-256 before it is written; a missing or corrupt chunk fails the restore
 * with CHUNK_MISSING / CHUNK_CORRUPT naming the object.
 */
export async function restoreVolume(
  store: ObjectStore,
  ref: string,
  target: string,
  options: RestoreOptions = {},
): Promise<RestoreResult> {
  const call = options.signal === undefined ? {} : { signal: options.signal };
  const manifest = await readManifest(store, ref, call);
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const existing = await fs.stat(target).catch(() => undefined);
  const isDevice = existing?.isBlockDevice() === true;
  if (isDevice) {
    const { size } = await describePath(target, 'target');
    if (size < manifest.size)
      throw new BackupError('TARGET_UNUSABLE', `${target} holds ${size} bytes, the backup ${manifest.size}`, target);
  } else if (existing !== undefined) {
    if (!existing.isFile())
      throw new BackupError('TARGET_UNUSABLE', `${target} is neither a file nor a block device`, target);
    if (existing.size > 0 && options.overwrite !== true)
      throw new BackupError('TARGET_UNUSABLE', `${target} already holds data (pass overwrite to replace it)`, target);
  }
  const tempPrefix = `.${path.basename(target)}.restore-`;
  if (!isDevice) {
    // Temporary files of restores to this target that were killed: one restore per target at a time.
    const siblings = await fs.readdir(path.dirname(target)).catch(() => []);
    for (const name of siblings.filter((n) => n.startsWith(tempPrefix)))
      await fs.rm(path.join(path.dirname(target), name), { force: true });
  }
  const writePath = isDevice
    ? target
    : path.join(path.dirname(target), `${tempPrefix}${randomBytes(4).toString('hex')}`);
  const handle = await fs.open(writePath, isDevice ? 'r+' : 'wx').catch((e: unknown) => {
    throw new BackupError(
      'TARGET_UNUSABLE',
      `opening ${writePath}: ${e instanceof Error ? e.message : String(e)}`,
      target,
    );
  });
  let done = false;
  let bytesWritten = 0;
  let chunksWritten = 0;
  let chunksDone = 0;
  const holeChunks = manifest.chunks.filter((c) => c === null).length;
  try {
    if (!isDevice) await handle.truncate(manifest.size);
    const writeZeros = isDevice && options.assumeZeroed !== true;
    await forEachIndex(manifest.chunks.length, concurrency, async (i) => {
      options.signal?.throwIfAborted();
      const entry = manifest.chunks[i] ?? null;
      const length = chunkLength(manifest.size, manifest.chunkSize, i);
      if (entry === null) {
        if (writeZeros) await writeAll(handle, target, zeros(length), i * manifest.chunkSize);
      } else {
        const fetch = async (key: string) => {
          const stored = await store.get(key, call);
          if (stored === undefined)
            throw new BackupError(
              'CHUNK_MISSING',
              `backup ${manifest.backupId} is incomplete: chunk ${key} (volume offset ${i * manifest.chunkSize}) is missing from ${store.location}`,
              key,
            );
          return stored;
        };
        const { hash, base } = parseEntry(entry);
        let plain: Buffer;
        if (base === undefined) {
          plain = await openChunk(await fetch(chunkKey(hash)), hash, length, chunkKey(hash));
        } else {
          const basePlain = await openChunk(await fetch(chunkKey(base)), base, length, chunkKey(base));
          plain = await openDelta(await fetch(deltaKey(hash, base)), basePlain, hash, deltaKey(hash, base));
        }
        await writeAll(handle, target, plain, i * manifest.chunkSize);
        bytesWritten += length;
        chunksWritten++;
      }
      chunksDone++;
      options.onProgress?.({
        backupId: manifest.backupId,
        chunksDone,
        chunksTotal: manifest.chunks.length,
        bytesWritten,
        bytesTotal: manifest.size,
      });
    });
    await handle.sync();
    done = true;
  } finally {
    await handle.close();
    if (!done && !isDevice) await fs.rm(writePath, { force: true });
  }
  if (!isDevice) {
    await fs.rename(writePath, target);
    // The rename is durable only once the directory is synced.
    const dir = await fs.open(path.dirname(target), 'r');
    await dir.sync().finally(() => dir.close());
  }
  return { manifest, bytesWritten, chunksWritten, holeChunks };
}
