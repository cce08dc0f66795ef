import { randomBytes } from 'node:crypto';
import { closeSync, fsync, openSync, promises as fs, renameSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';

/** What the loopback pool keeps beside each backing file, `<id>.json`. */
export const VolumeRecord = z
  .object({
    version: z.literal(1),
    blockdevice_id: z.string().min(1),
    dataset_id: z.string().min(1),
    size: z.number().int().positive(),
    profile: z.string().optional(),
    attached_to: z.string().min(1).nullable(),
    created: z.string(),
  })
  .strict();
export type VolumeRecord = z.infer<typeof VolumeRecord>;

export interface AtomicWriteOptions {
  /**
   * Also fsync the directory, so that the rename itself survives a power loss
   * (default true). Without it a power loss may bring back the previous
   * content, but never a torn or empty file.
   */
  readonly durableRename?: boolean;
}

/** Writes a file so readers see either the old or the new content, even across a crash. */
export async function writeFileAtomic(file: string, content: string, options: AtomicWriteOptions = {}): Promise<void> {
  const tmp = await writeSyncedTemp(file, content);
  await commitTemp(tmp, file, options);
}

/**
 * First half of an atomic write: the content in a new temp file beside `file`
 * (writeFileSync writes every byte, continuing short writes; ENOSPC throws and
 * the temp file is removed, so a full pool keeps its old records and no litter),
 * flushed to disk (together with `alsoSync`, e.g. another new file of the same
 * step: concurrent fsyncs share one journal commit). Returns the temp path.
 *
 * The open and the write are synchronous: a record is a few hundred bytes into the page cache (tens of
 * microseconds), while each thread-pool hop waits for a thread and then the main thread to get a CPU (0.3 ms
 * median, several ms at the 90th percentile on a loaded host). Only the fsync, which waits for the disk, is not.
 */
export async function writeSyncedTemp(file: string, content: string, alsoSync?: () => Promise<void>): Promise<string> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      writeFileSync(fd, content, 'utf8');
      await Promise.all([fsyncFd(fd), alsoSync?.()]);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    // The write's error (ENOSPC) is the one to report; the old record is untouched.
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
  return tmp;
}

const fsyncFd = promisify(fsync);

/** Second half: the synced temp file replaces `file` in one rename (synchronous, as the temp's write). */
export async function commitTemp(tmp: string, file: string, options: AtomicWriteOptions = {}): Promise<void> {
  try {
    renameSync(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
  if (options.durableRename ?? true) await fsyncDir(path.dirname(file));
}

/**
 * fsync(2) of a directory. The open and the close are synchronous (no disk wait; a thread-pool hop each costs
 * more, see writeSyncedTemp); only the fsync waits in the thread pool.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = openSync(dir, 'r');
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}
