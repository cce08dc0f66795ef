/**
 * What the agent does to this host's kernel besides the storage backend:
 * filesystems and mounts. An interface so the executor can be tested with a fake.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import {
  StorageError,
  hasFilesystem,
  isLoopDeviceNeverWritten,
  listMounts,
  majorMinorOf,
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
  /** Bytes the ext4 filesystem on the device spans, or null if it is not ext4. */
  filesystemSize(devicePath: string): Promise<number | null>;
  /** Grows an unmounted filesystem to its device (e2fsck -f, then resize2fs). */
  growUnmountedFilesystem(devicePath: string): Promise<void>;
}

/** Reads the ext4 superblock (at byte 1024): block count x block size. */
export function ext4SizeFromSuperblock(sb: Buffer): number | null {
  if (sb.length < 0x158 || sb.readUInt16LE(0x38) !== 0xef53) return null;
  const blockSize = 1024 * 2 ** sb.readUInt32LE(0x18);
  const incompat = sb.readUInt32LE(0x60);
  const hi = incompat & 0x80 ? sb.readUInt32LE(0x150) : 0; // INCOMPAT_64BIT
  return (hi * 2 ** 32 + sb.readUInt32LE(0x04)) * blockSize;
}

function run(file: string, args: string[], okCodes: number[] = [0]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: 'utf8' }, (error, _stdout, stderr) => {
      const code = error === null ? 0 : (error as NodeJS.ErrnoException).code;
      // An Error at run time, typed through Omit<> as a type that is not one (String() gives "Error: message").
      const failure: Error | null = error;
      if (typeof code === 'number' && okCodes.includes(code)) resolve();
      else
        reject(
          new StorageError(
            'BACKEND_ERROR',
            `\`${[file, ...args].join(' ')}\` failed: ${stderr.trim() || String(failure)}`,
          ),
        );
    });
  });
}

async function readExt4Size(devicePath: string): Promise<number | null> {
  const handle = await fs.open(devicePath, 'r');
  try {
    const sb = Buffer.alloc(1024);
    const { bytesRead } = await handle.read(sb, 0, 1024, 1024);
    return bytesRead === 1024 ? ext4SizeFromSuperblock(sb) : null;
  } finally {
    await handle.close();
  }
}

export const linuxHostOps: HostOps = {
  listMounts: async () =>
    (await listMounts()).map((m) => ({ device: m.device, mountPoint: m.mountPoint, majorMinor: m.majorMinor })),
  deviceNumber: async (devicePath) => {
    try {
      const st = await fs.stat(devicePath, { bigint: true });
      return st.isBlockDevice() ? majorMinorOf(st.rdev) : null;
    } catch {
      return null;
    }
  },
  hasFilesystem: async (devicePath) => {
    // Fast paths without running blkid: an ext4 superblock means "yes"; a loop
    // device over a file without a single allocated block means a certain "no".
    // Anything else asks blkid, which knows every signature (a "no" must be certain).
    if ((await readExt4Size(devicePath)) !== null) return true;
    if (await isLoopDeviceNeverWritten(devicePath)) return false;
    return hasFilesystem(devicePath);
  },
  makeFilesystem: (devicePath) =>
    makeFilesystem(devicePath, { type: 'ext4', neverWritten: (d) => isLoopDeviceNeverWritten(d) }),
  mkdirp: async (path) => {
    await fs.mkdir(path, { recursive: true });
  },
  mount: (devicePath, mountPoint) => mount(devicePath, mountPoint, { fstype: 'ext4' }),
  unmount: (mountPoint) => unmount(mountPoint),
  resizeFilesystem: (devicePath) => resizeFilesystem(devicePath),
  filesystemSize: (devicePath) => readExt4Size(devicePath),
  growUnmountedFilesystem: async (devicePath) => {
    // e2fsck exits 1 when it fixed something, which is fine before a resize.
    await run('e2fsck', ['-f', '-p', devicePath], [0, 1]);
    await run('resize2fs', [devicePath]);
  },
};
