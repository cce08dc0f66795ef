/**
 * What the agent does to this host's kernel besides the storage backend:
 * filesystems and mounts. An interface so the executor can be tested with a fake.
 */
import { execFile } from 'node:child_process';
import { existsSync, promises as fs, mkdirSync, rmdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  StorageError,
  filesystemType,
  freezeFilesystem,
  hasFilesystem,
  isDeviceBusy,
  isLoopDeviceNeverWritten,
  listMounts,
  majorMinorOf,
  makeFilesystem,
  mount,
  resizeFilesystem,
  thawFilesystem,
  unmount,
  xfsSizeFromSuperblock,
  type FilesystemKind,
} from '@flocker/storage-drivers';

export interface HostMount {
  readonly device: string;
  readonly mountPoint: string;
  /** "major:minor" of the mounted device. */
  readonly majorMinor: string;
  /** The mounted file system's type (mountinfo), e.g. "ext4", "xfs". */
  readonly fstype?: string;
  /** The mount's own options and its file system's (mountinfo): see readOnlyMounts. */
  readonly options?: string;
  readonly superOptions?: string;
}

/** A file system found on a device (HostOps.filesystemOf). */
export interface FilesystemFound {
  readonly fstype: 'ext4' | 'xfs';
  /** Bytes it spans. */
  readonly size: number;
  /**
   * It fills a device less than this many bytes larger (fillsDevice): what mke2fs and resize2fs leave off, read from
   * the ext4 superblock (ext4FromSuperblock). Absent (xfs): only a device of its size.
   */
  readonly fullWithin?: number;
}

export interface HostOps {
  listMounts(): Promise<HostMount[]>;
  /** "major:minor" of a block device node, or null if it does not exist. */
  deviceNumber(devicePath: string): Promise<string | null>;
  hasFilesystem(devicePath: string): Promise<boolean>;
  /** Fails with FILESYSTEM_EXISTS rather than formatting over data. ext4 unless told otherwise. */
  makeFilesystem(devicePath: string, filesystem?: FilesystemKind): Promise<void>;
  mkdirp(path: string): Promise<void>;
  /**
   * Removes an empty directory (a mount point left behind): true once it is gone (or was); false, left as it is, if
   * it is not empty, a mount point (busy) or not a directory. Anything else fails.
   */
  removeEmptyDir(path: string): Promise<boolean>;
  /** With `fstype` (filesystemOf's answer, say) the device is not read again to find it. */
  mount(devicePath: string, mountPoint: string, fstype?: string): Promise<void>;
  unmount(mountPoint: string): Promise<void>;
  /**
   * Grows the filesystem on the device to fill it: ext4 with resize2fs (online when mounted,
   * which needs CAP_SYS_RESOURCE), xfs with xfs_growfs on its mount point (xfs grows only
   * mounted: an unmounted one is left for its next mount).
   */
  resizeFilesystem(devicePath: string): Promise<void>;
  /** Bytes the ext4 or xfs filesystem on the device spans, or null if it is neither. */
  filesystemSize(devicePath: string): Promise<number | null>;
  /** The ext4 or xfs file system on the device, its type and the bytes it spans (one read); null if neither. */
  filesystemOf(devicePath: string): Promise<FilesystemFound | null>;
  /** fsfreeze -f: the mounted file system takes no writes until thaw (a snapshot's consistent instant). */
  freeze(mountPoint: string): Promise<void>;
  /** fsfreeze -u; true if it was frozen, false if it was not (no error then). */
  thaw(mountPoint: string): Promise<boolean>;
  /**
   * Whether the device is in use: an exclusive open fails while it is mounted in any mount namespace of this kernel
   * or held open. Optional: without it, no offline grow of a mounted file system (executeAction's growOffline).
   */
  deviceBusy?(devicePath: string): Promise<boolean>;
  /** Grows an unmounted filesystem to its device (ext4: e2fsck -f, then resize2fs; xfs: nothing, see resizeFilesystem). */
  growUnmountedFilesystem(devicePath: string): Promise<void>;
}

/** The lock file of a device's offline grow (/run/lock, which outlives the agent's process and its private /tmp). */
export function growLockPath(devicePath: string, dir = existsSync('/run/lock') ? '/run/lock' : tmpdir()): string {
  return join(dir, `flocker-fsgrow-${devicePath.replace(/[^A-Za-z0-9]/g, '_')}.lock`);
}

/** Reads the ext4 superblock (at byte 1024): block count x block size. */
export function ext4SizeFromSuperblock(sb: Buffer): number | null {
  return ext4FromSuperblock(sb)?.size ?? null;
}

/**
 * The ext4 superblock's (at byte 1024) size, and fullWithin: how much larger its device may be with the file system
 * still full size. mke2fs and resize2fs leave off a last block group of fewer than its metadata + 50 blocks (its
 * superblock and descriptor backups, reserved descriptor blocks, bitmaps and inode table; e2fsprogs' adjust_fs_info),
 * so mkfs.ext4 on 1025 MiB makes 1024 MiB, and resize2fs keeps it so. Taken as if the next group held a backup (the
 * most it can leave off), and never more than a group: a file system short by a whole group is smaller. One that
 * does not end on a group boundary was not cut: full within a block.
 */
export function ext4FromSuperblock(sb: Buffer): { size: number; fullWithin: number } | null {
  if (sb.length < 0x158 || sb.readUInt16LE(0x38) !== 0xef53) return null;
  const logBlock = sb.readUInt32LE(0x18);
  const blockSize = 1024 * 2 ** logBlock;
  const incompat = sb.readUInt32LE(0x60);
  const is64 = (incompat & 0x80) !== 0; // INCOMPAT_64BIT
  const blocks = (is64 ? sb.readUInt32LE(0x150) : 0) * 2 ** 32 + sb.readUInt32LE(0x04);
  const size = blocks * blockSize;
  const firstDataBlock = sb.readUInt32LE(0x14);
  const perGroup = sb.readUInt32LE(0x20);
  if (perGroup === 0 || (blocks - firstDataBlock) % perGroup !== 0) return { size, fullWithin: blockSize };
  const groups = (blocks - firstDataBlock) / perGroup;
  const inodeSize = sb.readUInt16LE(0x58) || 128; // 0: revision 0, 128-byte inodes
  const inodeTableBlocks = Math.ceil((sb.readUInt32LE(0x28) * inodeSize) / blockSize);
  const descSize = is64 ? Math.max(32, sb.readUInt16LE(0xfe)) : 32;
  const descBlocks = Math.ceil(((groups + 1) * descSize) / blockSize);
  const bigalloc = (sb.readUInt32LE(0x64) & 0x200) !== 0; // RO_COMPAT_BIGALLOC
  const clusterBlocks = bigalloc ? 2 ** Math.max(0, sb.readUInt32LE(0x1c) - logBlock) : 1;
  // superblock + descriptors + reserved descriptors + 2 bitmaps + inode table, then resize2fs's 50 (and a cluster).
  const leftOff = 1 + descBlocks + sb.readUInt16LE(0xce) + 2 + inodeTableBlocks + 50 + clusterBlocks;
  return { size, fullWithin: Math.min(perGroup, leftOff) * blockSize };
}

/** Whether the file system fills a device (or volume) of `deviceBytes`: short of it by less than its fullWithin. */
export function fillsDevice(fs: { size: number; fullWithin?: number }, deviceBytes: number): boolean {
  return deviceBytes - fs.size < (fs.fullWithin ?? 1);
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

/** The ext4 (byte 1024) and xfs (byte 0) superblocks' sizes, in one read. */
async function readSuperblocks(
  devicePath: string,
): Promise<{ ext4: { size: number; fullWithin: number } | null; xfs: number | null }> {
  const handle = await fs.open(devicePath, 'r');
  try {
    const buf = Buffer.alloc(2048);
    const { bytesRead } = await handle.read(buf, 0, 2048, 0);
    return {
      ext4: bytesRead === 2048 ? ext4FromSuperblock(buf.subarray(1024)) : null,
      xfs: bytesRead >= 16 ? xfsSizeFromSuperblock(buf) : null,
    };
  } finally {
    await handle.close();
  }
}

/** The ext4 or xfs file system the superblocks show (ext4 first, as mount would find it). */
async function superblockFilesystem(devicePath: string): Promise<FilesystemFound | null> {
  const sb = await readSuperblocks(devicePath);
  if (sb.ext4 !== null) return { fstype: 'ext4', ...sb.ext4 };
  if (sb.xfs !== null) return { fstype: 'xfs', size: sb.xfs };
  return null;
}

/** The filesystem type to mount the device with: from its superblock, else blkid's answer. */
async function mountType(devicePath: string): Promise<string> {
  return (await superblockFilesystem(devicePath))?.fstype ?? (await filesystemType(devicePath)) ?? 'ext4';
}

/**
 * The file system's mount options (data for mount(2)). A clone of an xfs volume carries its source's file system
 * UUID, and xfs refuses a second mount of a UUID on one kernel ("duplicate UUID"): `nouuid`, so a source and its
 * clones mount together (the agent's leases and attachment already keep one volume to one mount). `discard` (online
 * discard): each extent the file system frees is discarded at its journal commit, which a loop device turns into a
 * hole punched in its backing file, so a loopback volume's image holds its live data rather than every block ever
 * written (TN F10: a volume of 20 MiB live held 5.7 GB after minutes of rewrites, and a snapshot's sparse copy of
 * it froze the file system for 6 s). See HostOpsOptions.discard for the backends that ask for it. Both are file-system
 * data, so blockdev's mount passes them in the syshelper's mount(2) (syscallMountData): no fork+exec of mount(8).
 */
export function mountOptions(fstype: string, options: HostOpsOptions): string[] {
  const known = fstype === 'ext4' || fstype === 'xfs';
  return [...(fstype === 'xfs' ? ['nouuid'] : []), ...(options.discard && known ? ['discard'] : [])];
}

export interface HostOpsOptions {
  /**
   * Mount ext4 and xfs with online discard: the loopback backend's (createAgentDriver's mountDiscard), whose loop
   * devices give discarded blocks back to the pool's file system. Off for the cloud backends: AWS recommends a
   * periodic fstrim over online discard on EBS, and Cinder's backends vary; neither is changed here.
   */
  readonly discard: boolean;
}

function mountWith(options: HostOpsOptions): HostOps['mount'] {
  return async (devicePath, mountPoint, given) => {
    const fstype = given ?? (await mountType(devicePath));
    const data = mountOptions(fstype, options);
    return mount(devicePath, mountPoint, data.length > 0 ? { fstype, options: data } : { fstype });
  };
}

export const linuxHostOps: HostOps = {
  listMounts: async () =>
    (await listMounts()).map((m) => ({
      device: m.device,
      mountPoint: m.mountPoint,
      majorMinor: m.majorMinor,
      fstype: m.fstype,
      options: m.options,
      ...(m.superOptions !== undefined ? { superOptions: m.superOptions } : {}),
    })),
  // deviceNumber, mkdirp and removeEmptyDir are synchronous (issue 23: each is on a move's critical path): a stat of
  // a device node and a directory made or removed under the mount root are metadata work that waits for no disk
  // (tens of microseconds), while a thread-pool hop waits for a thread and then the main thread to get a CPU (0.3 ms
  // median, several ms on a loaded 2-core host), as the loopback driver's record reads (session 12).
  deviceNumber: async (devicePath) => {
    try {
      const st = statSync(devicePath, { bigint: true });
      return st.isBlockDevice() ? majorMinorOf(st.rdev) : null;
    } catch {
      return null;
    }
  },
  hasFilesystem: async (devicePath) => {
    // Fast paths without running blkid: an ext4 superblock means "yes"; a loop
    // device over a file without a single allocated block means a certain "no".
    // Anything else asks blkid, which knows every signature (a "no" must be certain).
    const sb = await readSuperblocks(devicePath);
    if (sb.ext4 !== null || sb.xfs !== null) return true;
    if (await isLoopDeviceNeverWritten(devicePath)) return false;
    return hasFilesystem(devicePath);
  },
  makeFilesystem: (devicePath, filesystem = 'ext4') =>
    makeFilesystem(devicePath, { type: filesystem, neverWritten: (d) => isLoopDeviceNeverWritten(d) }),
  removeEmptyDir: async (path) => {
    try {
      rmdirSync(path);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return true;
      if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'EBUSY' || code === 'ENOTDIR') return false;
      throw e;
    }
  },
  mkdirp: async (path) => {
    mkdirSync(path, { recursive: true });
  },
  mount: mountWith({ discard: false }),
  unmount: (mountPoint) => unmount(mountPoint),
  resizeFilesystem: async (devicePath) => {
    const sb = await readSuperblocks(devicePath);
    if (sb.xfs === null) return resizeFilesystem(devicePath);
    const st = await fs.stat(devicePath, { bigint: true });
    const number = majorMinorOf(st.rdev);
    const at = (await listMounts()).find((m) => m.majorMinor === number || m.device === devicePath);
    if (at === undefined) return; // grown after its next mount
    await resizeFilesystem(devicePath, { fstype: 'xfs', mountPoint: at.mountPoint });
  },
  filesystemSize: async (devicePath) => (await superblockFilesystem(devicePath))?.size ?? null,
  filesystemOf: superblockFilesystem,
  deviceBusy: (devicePath) => isDeviceBusy(devicePath),
  freeze: (mountPoint) => freezeFilesystem(mountPoint),
  thaw: (mountPoint) => thawFilesystem(mountPoint),
  growUnmountedFilesystem: async (devicePath) => {
    if ((await readSuperblocks(devicePath)).xfs !== null) return; // xfs grows only mounted
    // Each under a lock per device that flock(1) holds for as long as the tool runs: a tool of an agent killed
    // mid-grow lives on (execFile's children outlive it), and the grow of the agent started again must not write
    // the device at the same time (resize2fs opens it without O_EXCL, so e2fsck's exclusive open does not see it).
    const lock = growLockPath(devicePath);
    // e2fsck exits 1 when it fixed something, which is fine before a resize.
    await run('flock', [lock, 'e2fsck', '-f', '-p', devicePath], [0, 1]);
    await run('flock', [lock, 'resize2fs', devicePath]);
  },
};

/** The host's operations with the backend's mount options (linuxHostOps: none asked for). */
export function linuxHostOpsWith(options: HostOpsOptions): HostOps {
  return options.discard ? { ...linuxHostOps, mount: mountWith(options) } : linuxHostOps;
}
