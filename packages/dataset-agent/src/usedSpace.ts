/**
 * Bytes used on each mounted dataset's file system, for the node report (issue 21: disk usage per volume).
 * statfs is cheap but the report is built often (every progress report, every scrape): one measurement per
 * mount point is reused for `maxAgeMs`, so neither the reporter nor the convergence loop pays for it more.
 */
import { statfsSync } from 'node:fs';

/** How long one measurement of a mount point is reused. */
export const USED_BYTES_MAX_AGE_MS = 5_000;

const MiB = 1024 * 1024;

/**
 * `bytes` rounded down to a step of at least 1 MiB and about 1/64 of itself (a power of two): within 1.6 %.
 * A changed report is a new cluster generation that wakes every long-poll; a database writing all day must
 * not turn each few-second measurement into one, so the value moves only when the usage really does.
 */
export function coarseUsedBytes(bytes: number): number {
  let step = MiB;
  while (step * 2 <= bytes / 64) step *= 2;
  return Math.floor(bytes / step) * step;
}

/** Bytes used on the file system mounted at `path` (blocks in use × block size, coarsened); undefined when unreadable. */
export function statfsUsedBytes(path: string): number | undefined {
  try {
    const s = statfsSync(path);
    return coarseUsedBytes(Math.max(0, (s.blocks - s.bfree) * s.bsize));
  } catch {
    return undefined;
  }
}

export class UsedBytesCache {
  private readonly measured = new Map<string, { readonly at: number; readonly bytes: number | undefined }>();

  constructor(
    private readonly measure: (path: string) => number | undefined = statfsUsedBytes,
    private readonly now: () => number = Date.now,
    private readonly maxAgeMs = USED_BYTES_MAX_AGE_MS,
  ) {}

  /** The used bytes at `path`, measured at most every maxAgeMs. */
  usedBytes(path: string): number | undefined {
    const t = this.now();
    const last = this.measured.get(path);
    if (last !== undefined && t - last.at < this.maxAgeMs) return last.bytes;
    const bytes = this.measure(path);
    this.measured.set(path, { at: t, bytes });
    return bytes;
  }

  /** Forgets mount points not in `paths` (unmounted datasets), so the cache never grows beyond this node's mounts. */
  retain(paths: ReadonlySet<string>): void {
    for (const p of this.measured.keys()) if (!paths.has(p)) this.measured.delete(p);
  }
}
