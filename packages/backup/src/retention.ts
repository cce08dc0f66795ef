/** Pure decisions of retention and garbage collection (the I/O is in catalog.ts). */
import { parseBackupId } from './layout';
import type { ObjectInfo } from './store';

/** Newest first: stamps sort as time does; ties (same millisecond) by snapshot id, for a stable order. */
export function newestFirst(backupIds: readonly string[]): string[] {
  return [...backupIds].sort((a, b) => {
    const pa = parseBackupId(a);
    const pb = parseBackupId(b);
    const ka = `${pa?.stamp ?? ''}-${pa?.snapshotId ?? ''}`;
    const kb = `${pb?.stamp ?? ''}-${pb?.snapshotId ?? ''}`;
    return ka < kb ? 1 : ka > kb ? -1 : 0;
  });
}

/**
 * Which of one volume's backups `keep: N` keeps (the newest N, plus every protected one) and deletes (the rest).
 * Pass only backups that verify: one that cannot be restored must not take a kept place.
 */
export function planRetention(
  backupIds: readonly string[],
  keep: number,
  protect: readonly string[] = [],
): { keep: string[]; remove: string[] } {
  const sorted = newestFirst(backupIds);
  const kept = new Set([...sorted.slice(0, keep), ...protect]);
  return { keep: sorted.filter((id) => kept.has(id)), remove: sorted.filter((id) => !kept.has(id)) };
}

/** Pending markers that still count as a running backup: rewritten within ttlMs (backups refresh theirs). */
export function livePending(markers: readonly ObjectInfo[], nowMs: number, ttlMs: number): ObjectInfo[] {
  return markers.filter((m) => nowMs - m.lastModified.getTime() < ttlMs);
}

export interface GarbagePlan {
  /** Chunk keys to delete: referenced by no manifest and older than the grace period. */
  readonly remove: string[];
  readonly referenced: number;
  /** Unreferenced but younger than the grace period: perhaps uploaded by a backup that has not written its manifest. */
  readonly young: number;
}

/** `chunks`: every chunk and delta object; `referenced`: the keys some manifest needs (see keysOfEntry). */
export function planGarbage(
  chunks: readonly ObjectInfo[],
  referenced: ReadonlySet<string>,
  nowMs: number,
  graceMs: number,
): GarbagePlan {
  const remove: string[] = [];
  let refs = 0;
  let young = 0;
  for (const info of chunks) {
    if (referenced.has(info.key)) refs++;
    else if (nowMs - info.lastModified.getTime() < graceMs) young++;
    else remove.push(info.key);
  }
  return { remove, referenced: refs, young };
}
