/**
 * For tests: a disk that runs full. Every byte written through it uses up `free`;
 * a write larger than what is left writes what fits and returns the short count
 * (as write(2) does at ENOSPC), and a write when nothing is left fails with ENOSPC.
 * Set `free = Infinity` to "free space". Wraps real files (node:fs underneath).
 */
import * as fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { DurableFileOps, DurableSyncOps } from '../durableFiles';

export function enospc(syscall = 'write'): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOSPC: no space left on device, ${syscall}`), {
    code: 'ENOSPC',
    errno: -28,
    syscall,
  });
}

export class FakeFullDisk {
  /** Bytes that can still be written. */
  free: number;
  /** Writes that came back short. */
  shortWrites = 0;
  /** Writes refused with ENOSPC. */
  refused = 0;
  /** Makes the next fsync/datasync fail (EIO), as a lost writeback would. */
  failNextSync = false;

  constructor(free = Infinity) {
    this.free = free;
  }

  /** How much of a `length`-byte write fits; throws ENOSPC when nothing does. */
  take(length: number): number {
    if (length === 0) return 0;
    if (this.free <= 0) {
      this.refused += 1;
      throw enospc();
    }
    const n = Math.min(length, this.free);
    if (n < length) this.shortWrites += 1;
    this.free -= n;
    return n;
  }

  private checkSync(): void {
    if (!this.failNextSync) return;
    this.failNextSync = false;
    throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO', syscall: 'fsync' });
  }

  /**
   * A FileHandle whose writes go through this disk (other methods are the real handle's). `dsync`: opened O_DSYNC,
   * so each write is also its sync: an armed failNextSync fails it (EIO) after the bytes reached the file, as a
   * lost writeback would.
   */
  wrap(handle: FileHandle, dsync = false): FileHandle {
    const write = async (
      buffer: Uint8Array,
      offset = 0,
      length = buffer.length - offset,
      position: number | null = null,
    ) => {
      const n = this.take(length);
      const r = await handle.write(buffer, offset, n, position);
      if (dsync) this.checkSync();
      return { bytesWritten: r.bytesWritten, buffer };
    };
    return new Proxy(handle, {
      // An arrow function, so `this` stays the disk.
      get: (target, prop, receiver) => {
        if (prop === 'write') return write;
        if (prop === 'writeFile' || prop === 'appendFile') {
          return async (data: string | Uint8Array) => {
            const bytes = typeof data === 'string' ? Buffer.from(data) : data;
            let done = 0;
            while (done < bytes.length) done += (await write(bytes, done, bytes.length - done, null)).bytesWritten;
          };
        }
        if (prop === 'sync' || prop === 'datasync') {
          return async () => {
            this.checkSync();
            await (prop === 'sync' ? target.sync() : target.datasync());
          };
        }
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /** fs.promises.open through this disk. */
  readonly open = async (file: string, flags: string | number, mode?: number): Promise<FileHandle> =>
    this.wrap(
      await fs.promises.open(file, flags, mode),
      typeof flags === 'number' && (flags & fs.constants.O_DSYNC) !== 0,
    );

  /** Async operations for writeFileDurable. */
  get ops(): DurableFileOps {
    return { open: this.open, rename: (a, b) => fs.promises.rename(a, b), rm: (f, o) => fs.promises.rm(f, o) };
  }

  /** Synchronous operations for writeFileDurableSync / writeAllSync. */
  get syncOps(): DurableSyncOps {
    return {
      openSync: (f, flags, mode) => fs.openSync(f, flags, mode),
      writeSync: (fd, buffer, offset, length, position) =>
        fs.writeSync(fd, buffer, offset, this.take(length), position),
      fsyncSync: (fd) => {
        this.checkSync();
        fs.fsyncSync(fd);
      },
      closeSync: (fd) => fs.closeSync(fd),
      renameSync: (a, b) => fs.renameSync(a, b),
      rmSync: (f, o) => fs.rmSync(f, o),
    };
  }
}
