/** Listing, deleting and pruning backups, and garbage-collecting the chunks no backup needs. */
import { BackupError, isBackupError, type BackupErrorCode } from './errors';
import {
  backupIdOfKey,
  checkId,
  CHUNKS_PREFIX,
  CLOCK_KEY,
  DELTAS_PREFIX,
  keysOfEntry,
  manifestKey,
  MANIFESTS_PREFIX,
  parseBackupId,
  PENDING_PREFIX,
  resolveManifestKey,
  timeOfStamp,
} from './layout';
import { parseManifest, type Manifest } from './manifest';
import { forEachIndex } from './pool';
import { livePending, newestFirst, planGarbage, planRetention } from './retention';
import type { CallOptions, ObjectInfo, ObjectStore } from './store';

export interface BackupSummary {
  readonly backupId: string;
  readonly volumeId: string;
  readonly snapshotId: string;
  /** ISO 8601, from the backup id. */
  readonly createdAt: string;
  readonly manifestKey: string;
  /** The verified manifest; absent when it could not be read (then `problem` says why). */
  readonly manifest?: Manifest;
  readonly problem?: { readonly code: BackupErrorCode; readonly message: string };
}

async function collect(store: ObjectStore, prefix: string, call: CallOptions = {}): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of store.list(prefix, call)) out.push(o);
  return out;
}

async function manifestIds(store: ObjectStore, volumeId?: string, call: CallOptions = {}): Promise<string[]> {
  const prefix = volumeId === undefined ? MANIFESTS_PREFIX : `${MANIFESTS_PREFIX}${checkId('volume id', volumeId)}/`;
  const ids = (await collect(store, prefix, call)).map((o) => backupIdOfKey(o.key)).filter((id) => id !== undefined);
  return newestFirst(ids);
}

const callOf = (signal: AbortSignal | undefined): CallOptions => (signal === undefined ? {} : { signal });

/**
 * The finished backups in the store (of one volume, or all), newest first, each with its verified manifest.
 * A manifest that cannot be read is listed with its problem rather than failing the whole listing.
 */
export async function listBackups(
  store: ObjectStore,
  volumeId?: string,
  options: { concurrency?: number; signal?: AbortSignal } = {},
): Promise<BackupSummary[]> {
  const call = callOf(options.signal);
  const ids = await manifestIds(store, volumeId, call);
  const out: BackupSummary[] = new Array<BackupSummary>(ids.length);
  await forEachIndex(ids.length, options.concurrency ?? 8, async (i) => {
    const backupId = ids[i] ?? '';
    const parts = parseBackupId(backupId);
    const key = manifestKey(backupId);
    const base = {
      backupId,
      volumeId: parts?.volumeId ?? '',
      snapshotId: parts?.snapshotId ?? '',
      createdAt: new Date(timeOfStamp(parts?.stamp ?? '')).toISOString(),
      manifestKey: key,
    };
    try {
      const bytes = await store.get(key, call);
      if (bytes === undefined) throw new BackupError('BACKUP_NOT_FOUND', `backup ${backupId} was deleted`, key);
      out[i] = { ...base, manifest: parseManifest(bytes, key) };
    } catch (e) {
      if (!isBackupError(e) || e.code === 'STORE_UNREACHABLE' || e.code === 'STORE_DENIED' || e.code === 'STORE_ERROR')
        throw e;
      out[i] = { ...base, problem: { code: e.code, message: e.message } };
    }
  });
  // A manifest deleted between listing and reading is simply gone.
  return out.filter((s) => s.problem?.code !== 'BACKUP_NOT_FOUND');
}

/**
 * The newest backup of a volume whose manifest verifies (older ones are not read), for `previous` of the next
 * backup; undefined when the volume has none.
 */
export async function latestBackup(
  store: ObjectStore,
  volumeId: string,
  options: { signal?: AbortSignal } = {},
): Promise<Manifest | undefined> {
  const call = callOf(options.signal);
  for (const id of await manifestIds(store, volumeId, call)) {
    const key = manifestKey(id);
    const bytes = await store.get(key, call);
    if (bytes === undefined) continue;
    try {
      return parseManifest(bytes, key);
    } catch (e) {
      if (!isBackupError(e, 'MANIFEST_CORRUPT')) throw e;
    }
  }
  return undefined;
}

/**
 * Deletes a backup's manifest (its chunks go at the next garbage collection: collectGarbage, or a prune).
 * BACKUP_NOT_FOUND if there is none; STORE_DENIED if the bucket itself does not exist.
 */
export async function deleteBackup(
  store: ObjectStore,
  ref: string,
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  const call = callOf(options.signal);
  const key = resolveManifestKey(ref);
  if ((await store.head(key, call)) === undefined) {
    // A HEAD answers a bare 404 for a missing bucket as for a missing key; a listing names NoSuchBucket.
    await store.list(key, call)[Symbol.asyncIterator]().next();
    throw new BackupError('BACKUP_NOT_FOUND', `no backup ${ref} in ${store.location}`, key);
  }
  await store.delete(key, call);
}

export interface GcOptions {
  /** A chunk younger than this is never deleted, referenced or not (default 24 hours). */
  readonly graceMs?: number;
  /** A pending marker rewritten within this counts as a running backup (default 30 minutes). */
  readonly pendingTtlMs?: number;
  /**
   * Wall-clock milliseconds on the store's clock (injectable for tests), compared with the store's LastModified times.
   * By default read from the store (storeClock), not this host's clock.
   */
  readonly now?: () => number;
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
}

export interface GcResult {
  /** True when a backup was running: no chunk was deleted this time. */
  readonly deferred: boolean;
  readonly deletedChunks: number;
  readonly deletedBytes: number;
  readonly referencedChunks: number;
  readonly youngChunks: number;
  /** Markers of backups that died without finishing, removed. */
  readonly stalePendingRemoved: number;
}

export const DEFAULT_GRACE_MS = 24 * 3600_000;
export const DEFAULT_PENDING_TTL_MS = 30 * 60_000;
const DELETE_BATCH = 100;

/**
 * The store's clock (FR19-6): the ages of pending markers and chunks are LastModified times, the store's, so judged on
 * this host's clock a host 30+ min fast (an operator's laptop running `flocker backup gc`) would take a running
 * backup's marker for a dead one's and collect under it. Writes a few bytes (CLOCK_KEY), lists their LastModified, and
 * counts on from it with this host's monotonic clock. LastModified is no later than the put's answer (S3's is also
 * truncated to the second), so it never runs ahead of the store's time: markers and chunks can only look younger than
 * they are (kept a little longer), never older. Two collections at once may read each other's write (seconds apart).
 */
export async function storeClock(store: ObjectStore, call: CallOptions = {}): Promise<() => number> {
  await store.put(CLOCK_KEY, Buffer.from('flocker backup gc clock\n'), call);
  const answered = performance.now();
  // Listed, not headed: dated as listings date markers and chunks (a HEAD's Last-Modified is to the second where some
  // stores list to the millisecond: a chunk written in the same second would look written after "now").
  const info = (await collect(store, CLOCK_KEY, call)).find((o) => o.key === CLOCK_KEY);
  if (info === undefined)
    throw new BackupError('STORE_ERROR', `${CLOCK_KEY} was written but cannot be read back`, CLOCK_KEY);
  const at = info.lastModified.getTime();
  return () => at + (performance.now() - answered);
}

/**
 * Deletes chunks that no manifest references and that are older than the grace period. Safe against a backup
 * running at the same time: a live pending marker defers the whole collection (checked before the manifests are
 * read and again before every batch of deletes), the grace period protects chunks a backup has just uploaded,
 * and the backup itself re-lists the chunks it references before writing its manifest.
 * A manifest that cannot be read stops the collection (MANIFEST_CORRUPT): its chunks cannot be told apart.
 */
export async function collectGarbage(store: ObjectStore, options: GcOptions = {}): Promise<GcResult> {
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  const ttlMs = options.pendingTtlMs ?? DEFAULT_PENDING_TTL_MS;
  const call = callOf(options.signal);
  const now = options.now ?? (await storeClock(store, call));
  const empty = { deletedChunks: 0, deletedBytes: 0, referencedChunks: 0, youngChunks: 0 };
  const markers = await collect(store, PENDING_PREFIX, call);
  const live = livePending(markers, now(), ttlMs);
  const stale = markers.filter((m) => !live.includes(m));
  for (const m of stale) await store.delete(m.key, call);
  if (live.length > 0) return { deferred: true, ...empty, stalePendingRemoved: stale.length };
  const running = async () => livePending(await collect(store, PENDING_PREFIX, call), now(), ttlMs).length > 0;

  const referenced = new Set<string>();
  for (const id of await manifestIds(store, undefined, call)) {
    const key = manifestKey(id);
    const bytes = await store.get(key, call);
    if (bytes === undefined) continue; // deleted meanwhile
    for (const c of parseManifest(bytes, key).chunks) if (c !== null) for (const k of keysOfEntry(c)) referenced.add(k);
  }
  const chunks = [...(await collect(store, CHUNKS_PREFIX, call)), ...(await collect(store, DELTAS_PREFIX, call))];
  const plan = planGarbage(chunks, referenced, now(), graceMs);
  const sizes = new Map(chunks.map((c) => [c.key, c.size]));
  let deletedChunks = 0;
  let deletedBytes = 0;
  for (let start = 0; start < plan.remove.length; start += DELETE_BATCH) {
    if (await running()) {
      return {
        deferred: true,
        deletedChunks,
        deletedBytes,
        referencedChunks: plan.referenced,
        youngChunks: plan.young,
        stalePendingRemoved: stale.length,
      };
    }
    const batch = plan.remove.slice(start, start + DELETE_BATCH);
    await forEachIndex(batch.length, options.concurrency ?? 8, async (i) => {
      const key = batch[i] ?? '';
      await store.delete(key, call);
      deletedChunks++;
      deletedBytes += sizes.get(key) ?? 0;
    });
  }
  return {
    deferred: false,
    deletedChunks,
    deletedBytes,
    referencedChunks: plan.referenced,
    youngChunks: plan.young,
    stalePendingRemoved: stale.length,
  };
}

export interface PruneResult {
  /** Backup ids kept (whose manifests verify), newest first. */
  readonly kept: string[];
  /** Backup ids whose manifests were deleted. */
  readonly deleted: string[];
  /** Manifests that could not be read: neither counted nor deleted (see warnings). */
  readonly unreadable: string[];
  /** The garbage collection after the deletes; absent when it could not run (see warnings). */
  readonly gc?: GcResult;
  /**
   * What the caller should show the user (the backup itself is fine): unreadable manifests, a backup stamped in
   * the future of this clock, a garbage collection that could not run. Empty when all went well.
   */
  readonly warnings: string[];
}

export interface PruneOptions extends GcOptions {
  /** Backup ids never deleted, whatever their stamps say (the backup just stored: another node's clock may run ahead). */
  readonly protect?: readonly string[];
}

/**
 * Keeps the newest `keep` backups of a volume whose manifests verify (plus any in `protect`), deletes the older
 * ones, then collects garbage store-wide. A manifest that cannot be read is not counted (so it never pushes a
 * restorable backup out) and is not deleted (an operator decides); it is named in `warnings`, as is a garbage
 * collection it stopped. Store failures throw.
 */
export async function pruneBackups(
  store: ObjectStore,
  volumeId: string,
  keep: number,
  options: PruneOptions = {},
): Promise<PruneResult> {
  if (!Number.isInteger(keep) || keep < 1)
    throw new BackupError(
      'INVALID_ARGUMENT',
      `keep ${keep} must be an integer ≥ 1 (deleteBackup removes the last one)`,
    );
  const call = callOf(options.signal);
  const now = options.now ?? (await storeClock(store, call));
  const warnings: string[] = [];
  const summaries = await listBackups(store, volumeId, { signal: options.signal });
  const unreadable = summaries.filter((b) => b.problem !== undefined);
  for (const b of unreadable)
    warnings.push(
      `backup ${b.backupId} cannot be read, so it is not counted as one of the ${keep} kept: ${b.problem?.message}`,
    );
  const readable = summaries.filter((b) => b.problem === undefined).map((b) => b.backupId);
  for (const id of readable) {
    const t = timeOfStamp(parseBackupId(id)?.stamp ?? '');
    if (t > now() + 60_000)
      warnings.push(
        `backup ${id} is stamped ${new Date(t).toISOString()}, in the future of the store's clock: a node's clock runs ahead (it counts as the newest)`,
      );
  }
  const plan = planRetention(readable, keep, options.protect ?? []);
  for (const id of plan.remove) await store.delete(manifestKey(id), call);
  let gc: GcResult | undefined;
  try {
    gc = await collectGarbage(store, { ...options, now });
  } catch (e) {
    if (!isBackupError(e, 'MANIFEST_CORRUPT')) throw e;
    warnings.push(`no chunk collected: ${e.message} (delete or repair it)`);
  }
  return {
    kept: plan.keep,
    deleted: plan.remove,
    unreadable: unreadable.map((b) => b.backupId),
    ...(gc === undefined ? {} : { gc }),
    warnings,
  };
}
