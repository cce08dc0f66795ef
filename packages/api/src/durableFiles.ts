/**
 * Writing files so that "done" means "on disk, whole": every byte written (a short
 * write is continued, never taken as done), flushed, and a replacement put in place
 * by rename only once it is complete. A failure (ENOSPC above all) throws and leaves
 * the previous file as it was and no temp file behind.
 *
 * The file operations are parameters (defaulting to node:fs) so tests can put a fake
 * disk under them that writes short and then fails with ENOSPC.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The part of a FileHandle a write loop needs. */
export interface PositionalWriter {
  write(buffer: Uint8Array, offset: number, length: number, position: number | null): Promise<{ bytesWritten: number }>;
}

/** The error a write that made no progress raises (a 0-byte write would otherwise loop forever). */
function noProgress(file: string | undefined): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(
    `ENOSPC: no space left on device, write${file !== undefined ? ` '${file}'` : ''} (0 bytes written)`,
  );
  err.code = 'ENOSPC';
  err.syscall = 'write';
  return err;
}

/**
 * Writes all of `data` at `position` (or at the current offset when null), continuing
 * after short writes. Throws the first error; then some prefix may be on disk.
 */
export async function writeAll(
  handle: PositionalWriter,
  data: Uint8Array,
  position: number | null,
  file?: string,
): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(
      data,
      done,
      data.length - done,
      position === null ? null : position + done,
    );
    if (bytesWritten <= 0) throw noProgress(file);
    done += bytesWritten;
  }
}

export interface SyncWriteOps {
  writeSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number | null): number;
}

/** writeAll for a file descriptor, synchronously. */
export function writeAllSync(
  fd: number,
  data: Uint8Array,
  position: number | null,
  ops: SyncWriteOps = fs,
  file?: string,
): void {
  let done = 0;
  while (done < data.length) {
    const n = ops.writeSync(fd, data, done, data.length - done, position === null ? null : position + done);
    if (n <= 0) throw noProgress(file);
    done += n;
  }
}

/** ENOSPC or EDQUOT: the disk (or the quota) is full; freeing space fixes it. */
export function isNoSpace(err: unknown): boolean {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** A temp file name beside `file` that no other writer (process or call) uses. */
export function tempNameFor(file: string): string {
  return `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** The handle operations writeFileDurable uses (a subset of FileHandle). */
export interface DurableHandle extends PositionalWriter {
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** The file system operations writeFileDurable uses; node:fs/promises by default. */
export interface DurableFileOps {
  open(file: string, flags: string, mode?: number): Promise<DurableHandle>;
  rename(from: string, to: string): Promise<void>;
  rm(file: string, options: { force: boolean }): Promise<void>;
}

export interface DurableWriteOptions {
  /** Mode of a new file (default 0o600). */
  mode?: number;
  /** fsync the directory after the rename, so the rename itself survives a power loss (default true). */
  syncDir?: boolean;
  /** The temp file's path (default: a unique name beside `file`). */
  tmp?: string;
  ops?: DurableFileOps;
}

const nodeOps: DurableFileOps = {
  open: (file, flags, mode) => fs.promises.open(file, flags, mode),
  rename: (from, to) => fs.promises.rename(from, to),
  rm: (file, options) => fs.promises.rm(file, options),
};

/**
 * Replaces `file` by `data`: temp file beside it, every byte written, fsync, rename,
 * fsync of the directory. Readers (and a crash) see the old or the new content, never
 * a part. On failure the temp file is removed and the old file is untouched.
 */
export async function writeFileDurable(
  file: string,
  data: string | Uint8Array,
  options: DurableWriteOptions = {},
): Promise<void> {
  const ops = options.ops ?? nodeOps;
  const tmp = options.tmp ?? tempNameFor(file);
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  try {
    const handle = await ops.open(tmp, 'w', options.mode ?? 0o600);
    try {
      await writeAll(handle, bytes, 0, tmp);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await ops.rename(tmp, file);
  } catch (err) {
    await ops.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  if (options.syncDir ?? true) await syncDirectory(path.dirname(file));
}

/** fsync a directory: a rename (or a new file) in it is only durable once its entry is. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.promises.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The synchronous file system operations writeFileDurableSync uses; node:fs by default. */
export interface DurableSyncOps extends SyncWriteOps {
  openSync(file: string, flags: string, mode?: number): number;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
  renameSync(from: string, to: string): void;
  rmSync(file: string, options: { force: boolean }): void;
}

export interface DurableWriteSyncOptions {
  mode?: number;
  syncDir?: boolean;
  tmp?: string;
  ops?: DurableSyncOps;
}

/** writeFileDurable, synchronously. */
export function writeFileDurableSync(
  file: string,
  data: string | Uint8Array,
  options: DurableWriteSyncOptions = {},
): void {
  const ops = options.ops ?? fs;
  const tmp = options.tmp ?? tempNameFor(file);
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  try {
    const fd = ops.openSync(tmp, 'w', options.mode ?? 0o600);
    try {
      writeAllSync(fd, bytes, 0, ops, tmp);
      ops.fsyncSync(fd);
    } finally {
      ops.closeSync(fd);
    }
    ops.renameSync(tmp, file);
  } catch (err) {
    try {
      ops.rmSync(tmp, { force: true });
    } catch {
      // The write's own error is the one to report.
    }
    throw err;
  }
  if (options.syncDir ?? true) {
    const dirFd = fs.openSync(path.dirname(file), 'r');
    try {
      fs.fsyncSync(dirFd);
    } finally {
      fs.closeSync(dirFd);
    }
  }
}
