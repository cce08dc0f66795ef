/** The few file system calls the local engines make besides commands (injected in unit tests). */
import { mkdir, readdir, realpath, rmdir, stat } from 'node:fs/promises';

export interface HostFs {
  mkdirp(path: string): Promise<void>;
  exists(path: string): Promise<boolean>;
  /** Entry names; [] for a missing directory. */
  list(path: string): Promise<string[]>;
  /** Removes an empty directory; a missing or non-empty one is left. */
  removeEmptyDir(path: string): Promise<void>;
  realpath(path: string): Promise<string>;
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
};
