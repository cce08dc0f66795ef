/** The few file system calls the local engines make besides commands (injected in unit tests). */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, realpath, rename, rm, rmdir, stat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';

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
  /** Free bytes of the file system holding path (statfs: blocks available to a non-root writer). Optional. */
  freeBytes?(path: string): Promise<number>;
}

async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
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
  // As @flocker/api's writeFileDurable (this package does not depend on it): a temp name no other
  // writer uses (a fixed one let two writers rename each other's half-written file), removed when the
  // write fails; readers and a crash see the old or the new content.
  writeTextDurably: async (path, text) => {
    await mkdir(dirname(path), { recursive: true });
    const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      const handle = await open(temp, 'wx', 0o600);
      try {
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, path);
    } catch (e) {
      await rm(temp, { force: true }).catch(() => undefined);
      throw e;
    }
    await syncPath(dirname(path));
  },
  removeFile: (path) => rm(path, { force: true }),
  freeBytes: async (path) => {
    const s = await statfs(path);
    return s.bavail * s.bsize;
  },
};
