/** verifyBackup: read every object a backup needs and check it, writing nothing (the operator's `backup verify`). */
import { DEFAULT_CONCURRENCY } from './backup';
import { openChunk, openDelta } from './chunks';
import { BackupError, isBackupError, type BackupErrorCode } from './errors';
import { chunkKey, deltaKey, parseEntry } from './layout';
import { chunkLength, type Manifest } from './manifest';
import { forEachIndex } from './pool';
import { readManifest } from './restore';
import type { ObjectStore } from './store';

export interface VerifyProblem {
  /** The first chunk (volume order) that needs the object. */
  readonly index: number;
  readonly key: string;
  readonly code: Extract<BackupErrorCode, 'CHUNK_MISSING' | 'CHUNK_CORRUPT'>;
  readonly message: string;
}

export interface VerifyResult {
  readonly manifest: Manifest;
  /** Data chunks read and checked (holes need nothing). */
  readonly chunksChecked: number;
  /** Compressed bytes read. */
  readonly bytesRead: number;
  /** Empty when every chunk restores. */
  readonly problems: VerifyProblem[];
}

export interface VerifyOptions {
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (chunksDone: number, chunksTotal: number) => void;
}

/**
 * Reads every chunk backup `ref` needs and checks it as a restore would (decompresses, hashes), without writing
 * anything. A missing or damaged object is listed (once, at the first chunk needing it) rather than thrown, so one
 * run names them all; store failures and a bad manifest throw. The next backup of the volume stores such a chunk
 * again (if the volume still holds that data), which repairs every backup referencing it.
 */
export async function verifyBackup(
  store: ObjectStore,
  ref: string,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  const call = options.signal === undefined ? {} : { signal: options.signal };
  const manifest = await readManifest(store, ref, call);
  const problems = new Map<string, VerifyProblem>();
  let chunksChecked = 0;
  let bytesRead = 0;
  let done = 0;
  const fetch = async (key: string): Promise<Buffer> => {
    const bytes = await store.get(key, call);
    if (bytes === undefined) throw new BackupError('CHUNK_MISSING', `${key} is missing from ${store.location}`, key);
    bytesRead += bytes.length;
    return bytes;
  };
  await forEachIndex(manifest.chunks.length, options.concurrency ?? DEFAULT_CONCURRENCY, async (i) => {
    const entry = manifest.chunks[i] ?? null;
    if (entry !== null) {
      const length = chunkLength(manifest.size, manifest.chunkSize, i);
      const { hash, base } = parseEntry(entry);
      try {
        if (base === undefined) await openChunk(await fetch(chunkKey(hash)), hash, length, chunkKey(hash));
        else {
          const basePlain = await openChunk(await fetch(chunkKey(base)), base, length, chunkKey(base));
          await openDelta(await fetch(deltaKey(hash, base)), basePlain, hash, deltaKey(hash, base));
        }
        chunksChecked++;
      } catch (e) {
        if (!isBackupError(e) || (e.code !== 'CHUNK_MISSING' && e.code !== 'CHUNK_CORRUPT')) throw e;
        const key = e.key ?? chunkKey(hash);
        const seen = problems.get(key);
        if (seen === undefined || seen.index > i)
          problems.set(key, { index: i, key, code: e.code, message: e.message });
      }
    }
    options.onProgress?.(++done, manifest.chunks.length);
  });
  return {
    manifest,
    chunksChecked,
    bytesRead,
    problems: [...problems.values()].sort((a, b) => a.index - b.index),
  };
}
