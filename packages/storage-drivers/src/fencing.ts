/**
 * Pure decisions of the loopback driver's I/O fencing (force detach of a loop
 * device still in use). No I/O here: LoopbackDriver lists the pool directory
 * and the kernel's loop devices, and acts on what these functions answer.
 *
 * A fence of volume <id> goes through these on-disk states (all under the pool lock):
 *
 *   S0  <id>.img                                   nothing done yet
 *   S1  <id>.img.fenced-<seq>-<stamp>-<rand>       renamed aside (the old loop device follows the inode)
 *   S2  same, immutable (+ <id>.img.tmp-… copies)  the old device's writes now fail with EIO
 *   S3  <id>.img.fenced-… (immutable) + <id>.img   the frozen inode copied into a new <id>.img
 *
 * A crash in S1 or S2 leaves no <id>.img: the newest fenced file (the largest
 * <seq>, see fencedImageName; not the latest stamp) is the volume's data, and finishing the fence means (setting immutable if needed and) copying it
 * again. Copy temp files are never the truth and are simply removed.
 */
import * as path from 'node:path';
import type { LoopBinding } from './losetup';

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const IMAGE = new RegExp(`^(${UUID})\\.img$`);
/**
 * `<id>.img.fenced-<seq>-<stamp>-<rand>`; names written before the sequence
 * existed lack `<seq>-` and count as sequence 0 (older than any numbered one).
 */
const FENCED = new RegExp(`^(${UUID})\\.img\\.fenced-(?:(\\d{6,15})-)?(\\d{8}T\\d{9}Z)-([0-9a-f]{8})$`);
/** Our copy temps, and the temps of the earlier copy-only fence (`<id>.img.fence-<hex>`). */
const COPY_TEMP = new RegExp(`^(${UUID})\\.img\\.(?:tmp-\\d+-[0-9a-f]{8}|fence-[0-9a-f]{8})$`);

export type PoolFile =
  | { readonly kind: 'image'; readonly id: string }
  | { readonly kind: 'fenced'; readonly id: string }
  | { readonly kind: 'copyTemp'; readonly id: string };

/** What a file name in `<root>/volumes/` is, for fencing purposes (records and others: null). */
export function classifyPoolFile(name: string): PoolFile | null {
  let m = IMAGE.exec(name);
  if (m) return { kind: 'image', id: m[1] };
  m = FENCED.exec(name);
  if (m) return { kind: 'fenced', id: m[1] };
  m = COPY_TEMP.exec(name);
  if (m) return { kind: 'copyTemp', id: m[1] };
  return null;
}

/**
 * `<id>.img.fenced-<seq>-<UTC yyyymmddThhmmssmmmZ>-<8 hex>`. The order of a
 * volume's fences is `seq` (see nextFenceSequence), never the wall clock,
 * which may step back between two fences (NTP, a VM restored from a
 * snapshot); the stamp is for people, the random part for uniqueness.
 */
export function fencedImageName(id: string, seq: number, at: Date, rand: string): string {
  if (!/^[0-9a-f]{8}$/.test(rand)) throw new Error(`fence suffix must be 8 hex digits, got ${JSON.stringify(rand)}`);
  if (!Number.isSafeInteger(seq) || seq < 1 || seq > MAX_FENCE_SEQUENCE)
    throw new Error(`fence sequence must be an integer in 1..${MAX_FENCE_SEQUENCE}, got ${seq}`);
  const stamp = at.toISOString().replace(/[-:.]/g, '');
  const name = `${id}.img.fenced-${String(seq).padStart(6, '0')}-${stamp}-${rand}`;
  if (classifyPoolFile(name)?.kind !== 'fenced') throw new Error(`not a valid fenced image name: ${name}`);
  return name;
}

const MAX_FENCE_SEQUENCE = 999_999_999_999_999;

/** Sequence and stamp of a fenced file name (sequence 0: a name from before sequences); null if not one. */
function fenceOrderKey(name: string): { readonly seq: number; readonly stamp: string; readonly name: string } | null {
  const m = FENCED.exec(name);
  if (m === null) return null;
  return { seq: m[2] === undefined ? 0 : Number(m[2]), stamp: m[3], name };
}

/** Orders fenced file names of one volume oldest first: by sequence, then (old names) by stamp, then by name. */
export function compareFencedNames(x: string, y: string): number {
  const a = fenceOrderKey(x);
  const b = fenceOrderKey(y);
  if (a === null || b === null) throw new Error(`not fenced image names: ${x}, ${y}`);
  if (a.seq !== b.seq) return a.seq - b.seq;
  if (a.stamp !== b.stamp) return a.stamp < b.stamp ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * The sequence number for the next fence of volume `id`: one more than the
 * largest among its fenced files in the pool directory (`names`), 1 if there
 * are none. Read under the pool lock, like every fence, so two fences of one
 * volume never get the same number, and the newer always the larger one.
 */
export function nextFenceSequence(names: readonly string[], id: string): number {
  let max = 0;
  for (const name of names) {
    if (classifyPoolFile(name)?.id !== id) continue;
    const key = fenceOrderKey(name);
    if (key !== null && key.seq > max) max = key.seq;
  }
  return max + 1;
}

/** The copy temp for restoring `<id>.img` from a fenced file. */
export function copyTempName(id: string, pid: number, rand: string): string {
  return `${id}.img.tmp-${pid}-${rand}`;
}

export interface FenceRecovery {
  readonly id: string;
  /** The fenced file to copy into a new `<id>.img` (none exists), or null: the image is there. */
  readonly restoreFrom: string | null;
  /** Copy temps of interrupted fences: never the truth, remove them. */
  readonly removeTemps: readonly string[];
}

/**
 * What is left to do for interrupted fences, from the names in the pool
 * directory (optionally for one volume only). Only meaningful under the pool
 * lock, when no fence is running.
 */
export function planFenceRecovery(names: readonly string[], onlyId?: string): FenceRecovery[] {
  const byId = new Map<string, { image: boolean; fenced: string[]; temps: string[] }>();
  for (const name of names) {
    const f = classifyPoolFile(name);
    if (f === null || (onlyId !== undefined && f.id !== onlyId)) continue;
    let entry = byId.get(f.id);
    if (entry === undefined) byId.set(f.id, (entry = { image: false, fenced: [], temps: [] }));
    if (f.kind === 'image') entry.image = true;
    else if (f.kind === 'fenced') entry.fenced.push(name);
    else entry.temps.push(name);
  }
  const plans: FenceRecovery[] = [];
  for (const [id, e] of [...byId].sort(([x], [y]) => x.localeCompare(y))) {
    const restoreFrom = !e.image && e.fenced.length > 0 ? [...e.fenced].sort(compareFencedNames).at(-1)! : null;
    if (restoreFrom === null && e.temps.length === 0) continue;
    plans.push({ id, restoreFrom, removeTemps: [...e.temps].sort() });
  }
  return plans;
}

/**
 * Whether this loop device serves a fenced image of the pool, or one of its
 * images that was unlinked or replaced (" (deleted)", e.g. by the earlier
 * copy-only fence): never a volume's device, only something to release.
 * `volumeDirs`: the pool directory as configured and canonical (the kernel prints the latter).
 */
export function isFencedBinding(binding: LoopBinding, volumeDirs: readonly string[]): boolean {
  if (!volumeDirs.includes(path.dirname(binding.backingFile))) return false;
  const f = classifyPoolFile(path.basename(binding.backingFile));
  if (f === null) return false;
  return f.kind === 'fenced' || (binding.deleted && f.kind === 'image');
}

/**
 * Fenced images that can go: no loop device uses them any more (`inUse`: the
 * names of fenced files some bound loop device shows as its backing file), and
 * they are not the only copy of a volume's data (its `<id>.img` exists, or its
 * record is gone: the volume was destroyed).
 */
export function removableFencedImages(
  names: readonly string[],
  inUse: ReadonlySet<string>,
  records: ReadonlySet<string>,
): string[] {
  const images = new Set<string>();
  for (const name of names) {
    const f = classifyPoolFile(name);
    if (f?.kind === 'image') images.add(f.id);
  }
  return names
    .filter((name) => {
      const f = classifyPoolFile(name);
      return f?.kind === 'fenced' && !inUse.has(name) && (images.has(f.id) || !records.has(f.id));
    })
    .sort();
}

/**
 * The fenced files some loop device uses, taken from releaseFenced's first look at the pool's bindings (`firstLook`,
 * under the pool lock) without a second look, or null: look again. Under the lock no binding to a pool file is added
 * (every attach, claim and fence holds it), so the first look is a superset of what is bound at the readdir after it,
 * and a device that went away by itself since only leaves its file for the next release. A fenced binding in it,
 * though, may have been detached since (by the release itself): then a fresh look removes its file in the same call.
 */
export function fencedInUseFromFirstLook(
  firstLook: readonly LoopBinding[],
  volumeDirs: readonly string[],
): Set<string> | null {
  if (firstLook.some((b) => isFencedBinding(b, volumeDirs))) return null;
  return new Set(firstLook.filter((b) => !b.deleted).map((b) => path.basename(b.backingFile)));
}
