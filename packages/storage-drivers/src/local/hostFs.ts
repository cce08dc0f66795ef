/** The few file system calls the local engines make besides commands (injected in unit tests). */
import { constants } from 'node:fs';
import { access, mkdir, readFile, readdir, realpath, rm, rmdir, stat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileDurable } from '@flocker/api';

export interface HostFs {
  mkdirp(path: string): Promise<void>;
  exists(path: string): Promise<boolean>;
  /** Entry names; [] for a missing directory. */
  list(path: string): Promise<string[]>;
  /** Removes an empty directory; a missing or non-empty one is left. */
  removeEmptyDir(path: string): Promise<void>;
  realpath(path: string): Promise<string>;
  /** A small file's text; undefined when missing. Optional: a unit test's fake may leave it out. */
  readText?(path: string): Promise<string | undefined>;
  /** Writes a small file whole and durably (a temp file synced, renamed, the directory synced). Optional. */
  writeTextDurably?(path: string, text: string): Promise<void>;
  /** Removes a file; missing: done. Optional. */
  removeFile?(path: string): Promise<void>;
  /**
   * Whether this process may write path (access W_OK): false also where the kernel says EROFS (a
   * read-only btrfs subvolume or file system) or on any failure; never rejects. Optional.
   */
  writable?(path: string): Promise<boolean>;
  /** Free bytes of the file system holding path (statfs: blocks available to a non-root writer). Optional. */
  freeBytes?(path: string): Promise<number>;
}

export const realHostFs: HostFs = {
  mkdirp: async (path) => {
    await mkdir(path, { recursive: true });
  },
  exists: async (path) => {
    try {
      await stat(path);
      return true;
    } catch {
      return false;
    }
  },
  list: async (path) => {
    try {
      return (await readdir(path)).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  },
  removeEmptyDir: async (path) => {
    try {
      await rmdir(path);
    } catch {
      // not empty or gone: left as it is
    }
  },
  realpath: (path) => realpath(path),
  readText: async (path) => {
    try {
      return await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  },
  // A temp name no other writer uses, removed when the write fails; readers and a crash see the old or the new content.
  writeTextDurably: async (path, text) => {
    await mkdir(dirname(path), { recursive: true });
    await writeFileDurable(path, text);
  },
  removeFile: (path) => rm(path, { force: true }),
  writable: (path) =>
    access(path, constants.W_OK).then(
      () => true,
      () => false,
    ),
  freeBytes: async (path) => {
    const s = await statfs(path);
    return s.bavail * s.bsize;
  },
};
