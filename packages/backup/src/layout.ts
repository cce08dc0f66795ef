/**
 * Where things live in the store (all keys relative to the store's prefix):
 *
 *   chunks/<first 2 hex>/<sha256 of the plain bytes>   compressed chunk (zstd or gzip, told apart by magic bytes)
 *   deltas/<first 2 hex>/<sha256>.<base sha256>         compressed XOR of the plain bytes with a full chunk (base)
 *   manifests/<volumeId>/<stamp>-<snapshotId>.json      one per finished backup, written last
 *   pending/<volumeId>/<stamp>-<snapshotId>.json        while a backup runs (garbage collection waits for it)
 *   clock/gc                                            a few bytes each garbage collection writes to read the store's clock
 *
 * A backup's id is `<volumeId>/<stamp>-<snapshotId>`; the stamp (UTC, millisecond, fixed width) makes keys sort
 * by creation time.
 */
import { BackupError } from './errors';

export const CHUNKS_PREFIX = 'chunks/';
export const DELTAS_PREFIX = 'deltas/';
export const MANIFESTS_PREFIX = 'manifests/';
export const PENDING_PREFIX = 'pending/';
/** Written (overwritten) by each garbage collection: its LastModified is the store's time (catalog.ts storeClock). */
export const CLOCK_KEY = 'clock/gc';

// Volume ids are UUIDs in Flocker; snapshot ids are driver ids (snap-…, UUIDs, names). Both become key segments.
const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const STAMP = /^\d{8}T\d{9}Z$/;
const HASH = /^[0-9a-f]{64}$/;

export function checkId(what: string, id: string): string {
  if (!ID.test(id)) {
    throw new BackupError(
      'INVALID_ARGUMENT',
      `${what} ${JSON.stringify(id)} must be 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit`,
    );
  }
  return id;
}

/** 2026-12-04T06:51:55.123Z -> 20261204T065155123Z (sorts as time does). */
export function stampOf(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:.]/g, '');
}

export function timeOfStamp(stamp: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z$/.exec(stamp);
  if (m === null) return NaN;
  const [, y, mo, d, h, mi, s, ms] = m.map(Number) as [number, number, number, number, number, number, number, number];
  return Date.UTC(y, mo - 1, d, h, mi, s, ms);
}

export interface BackupIdParts {
  readonly volumeId: string;
  readonly stamp: string;
  readonly snapshotId: string;
}

export function backupIdOf(parts: BackupIdParts): string {
  return `${parts.volumeId}/${parts.stamp}-${parts.snapshotId}`;
}

/** The parts of a backup id, or undefined if it is not one. */
export function parseBackupId(id: string): BackupIdParts | undefined {
  const slash = id.indexOf('/');
  if (slash < 0) return undefined;
  const volumeId = id.slice(0, slash);
  const rest = id.slice(slash + 1);
  const stamp = rest.slice(0, 19);
  const snapshotId = rest.slice(20);
  if (!ID.test(volumeId) || !STAMP.test(stamp) || rest[19] !== '-' || !ID.test(snapshotId)) return undefined;
  return { volumeId, stamp, snapshotId };
}

export function manifestKey(backupId: string): string {
  return `${MANIFESTS_PREFIX}${backupId}.json`;
}

export function pendingKey(backupId: string): string {
  return `${PENDING_PREFIX}${backupId}.json`;
}

/** The backup id a manifest (or pending) key names, or undefined for any other key. */
export function backupIdOfKey(key: string): string | undefined {
  for (const prefix of [MANIFESTS_PREFIX, PENDING_PREFIX]) {
    if (key.startsWith(prefix) && key.endsWith('.json')) {
      const id = key.slice(prefix.length, -'.json'.length);
      return parseBackupId(id) === undefined ? undefined : id;
    }
  }
  return undefined;
}

/** Accepts a backup id or its manifest key; answers the manifest key. */
export function resolveManifestKey(ref: string): string {
  if (parseBackupId(ref) !== undefined) return manifestKey(ref);
  if (ref.startsWith(MANIFESTS_PREFIX) && backupIdOfKey(ref) !== undefined) return ref;
  throw new BackupError(
    'INVALID_ARGUMENT',
    `${JSON.stringify(ref)} is neither a backup id (VOLUME/STAMP-SNAPSHOT) nor a manifest key (manifests/….json)`,
  );
}

export function chunkKey(hash: string): string {
  return `${CHUNKS_PREFIX}${hash.slice(0, 2)}/${hash}`;
}

export function deltaKey(hash: string, base: string): string {
  return `${DELTAS_PREFIX}${hash.slice(0, 2)}/${hash}.${base}`;
}

/** A manifest's chunk entry: `H` (a full chunk) or `H.B` (a delta of H against the full chunk B). */
export interface ChunkEntry {
  readonly hash: string;
  readonly base?: string;
}

export function parseEntry(entry: string): ChunkEntry {
  const dot = entry.indexOf('.');
  return dot < 0 ? { hash: entry } : { hash: entry.slice(0, dot), base: entry.slice(dot + 1) };
}

export function formatEntry(e: ChunkEntry): string {
  return e.base === undefined ? e.hash : `${e.hash}.${e.base}`;
}

/** The objects an entry needs: its chunk, or its delta and the delta's base. */
export function keysOfEntry(entry: string): string[] {
  const e = parseEntry(entry);
  return e.base === undefined ? [chunkKey(e.hash)] : [deltaKey(e.hash, e.base), chunkKey(e.base)];
}

/** The hash a chunk key names, or undefined for any other key. */
export function hashOfChunkKey(key: string): string | undefined {
  if (!key.startsWith(CHUNKS_PREFIX)) return undefined;
  const rest = key.slice(CHUNKS_PREFIX.length);
  const hash = rest.slice(3);
  return HASH.test(hash) && rest.slice(0, 3) === `${hash.slice(0, 2)}/` ? hash : undefined;
}
