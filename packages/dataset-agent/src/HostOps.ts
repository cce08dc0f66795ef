/**
 * What the agent does to this host's kernel besides the storage backend:
 * filesystems and mounts. An interface so the executor can be tested with a fake.
 */
import { promises as fs } from 'node:fs';
import {
  hasFilesystem,
  listMounts,
  makeFilesystem,
  mount,
  resizeFilesystem,
  unmount,
} from '@flocker/storage-drivers';

export interface HostMount {
  readonly device: string;
  readonly mountPoint: string;
  /** "major:minor" of the mounted device. */
  readonly majorMinor: string;
}

export interface HostOps {
  listMounts(): Promise<HostMount[]>;
  /** "major:minor" of a block device node, or null if it does not exist. */
  deviceNumber(devicePath: string): Promise<string | null>;
  hasFilesystem(devicePath: string): Promise<boolean>;
  /** Fails with FILESYSTEM_EXISTS rather than formatting over data. */
  makeFilesystem(devicePath: string): Promise<void>;
  mkdirp(path: string): Promise<void>;
  mount(devicePath: string, mountPoint: string): Promise<void>;
  unmount(mountPoint: string): Promise<void>;
  resizeFilesystem(devicePath: string): Promise<void>;
}

/** Linux dev_t -> major:minor (glibc's gnu_dev_major/minor). */
export function majorMinorOf(rdev: bigint): string {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

export const linuxHostOps: HostOps = {
  listMounts: async () => (await listMounts()).map((m) => ({ device: m.device, mountPoint: m.mountPoint, majorMinor: m.majorMinor })),
  deviceNumber: async (devicePath) => {
    try {
      const st = await fs.stat(devicePath, { bigint: true });
      return st.isBlockDevice() ? majorMinorOf(st.rdev) : null;
    } catch {
      return null;
    }
  },
  hasFilesystem: (devicePath) => hasFilesystem(devicePath),
  makeFilesystem: (devicePath) => makeFilesystem(devicePath, { type: 'ext4' }),
  mkdirp: async (path) => {
    await fs.mkdir(path, { recursive: true });
  },
  mount: (devicePath, mountPoint) => mount(devicePath, mountPoint, { fstype: 'ext4' }),
  unmount: (mountPoint) => unmount(mountPoint),
  resizeFilesystem: (devicePath) => resizeFilesystem(devicePath),
};
