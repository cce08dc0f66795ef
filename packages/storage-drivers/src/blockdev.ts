/**
 * Block device and filesystem helpers for the dataset agent. Every command runs
 * through an injectable ExecFn so tests can check the argv; failures become
 * StorageErrors whose message includes the command and its stderr.
 */
import { constants as fsc, promises as fs, readFileSync } from 'node:fs';
import { StorageError } from './BlockDeviceApi';
import { execFileExec, formatCommand, runChecked, type ExecFn } from './exec';
import { mountSyscalls, syscallMountData } from './mountHelper';

export interface BlockdevOptions {
  readonly exec?: ExecFn;
}

export interface MountEntry {
  /** The mount source as the kernel shows it, e.g. /dev/loop3. */
  readonly device: string;
  readonly mountPoint: string;
  readonly fstype: string;
  /** "major:minor" of the mounted device, which identifies it even when names differ. */
  readonly majorMinor: string;
  /** The mount's own options ("rw,relatime"). */
  readonly options: string;
  /**
   * The file system's (super block's) options: "ro" once ext4 remounted itself read-only after an error (kernels
   * before 6.12), "emergency_ro" or "shutdown" for the same on later ones, where the mount's options stay "rw".
   */
  readonly superOptions?: string;
}

/** mountinfo escapes space, tab, newline and backslash as octal (\040 …). */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses /proc/<pid>/mountinfo (see proc(5)); lines it cannot read are skipped. */
export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-', 6);
    if (sep < 0 || fields.length < sep + 3) continue;
    entries.push({
      majorMinor: fields[2],
      mountPoint: unescapeMountField(fields[4]),
      options: fields[5],
      fstype: fields[sep + 1],
      device: unescapeMountField(fields[sep + 2]),
      superOptions: fields[sep + 3] ?? '',
    });
  }
  return entries;
}

/**
 * The mounts of this process's mount namespace. Read synchronously by default: the kernel writes the table out
 * without a disk wait (0.05 ms median here for ~25 mounts), while an asynchronous read of a procfs file is five
 * thread-pool hops (0.28 ms median on a loaded 2-core host); an agent's mount step reads it once, an unmount twice.
 */
export async function listMounts(options: { readFile?: (p: string) => Promise<string> } = {}): Promise<MountEntry[]> {
  const text =
    options.readFile !== undefined
      ? await options.readFile('/proc/self/mountinfo')
      : readFileSync('/proc/self/mountinfo', 'utf8');
  return parseMountInfo(text);
}

/**
 * The filesystem type on a device, or null if blkid finds none. blkid exits 2
 * for "nothing found"; anything else non-zero is an error, never "empty" —
 * mistaking a read error for an empty device would lead to mkfs over data.
 */
export async function filesystemType(device: string, options: BlockdevOptions = {}): Promise<string | null> {
  const exec = options.exec ?? execFileExec;
  // Low-level probe without the cache; any signature (filesystem, RAID member,
  // partition table) counts as "something is there".
  const args = ['-p', '-o', 'export', device];
  const result = await exec('blkid', args);
  if (result.exitCode === 2) return null;
  if (result.exitCode !== 0) {
    throw new StorageError(
      'BACKEND_ERROR',
      `probing ${device} for a filesystem failed: \`${formatCommand('blkid', args)}\` exited with ${result.exitCode}: ${result.stderr.trim() || 'no output'}`,
    );
  }
  const fields = new Map<string, string>();
  for (const line of result.stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1).trim());
  }
  return fields.get('TYPE') ?? fields.get('PTTYPE') ?? 'unknown';
}

export async function hasFilesystem(device: string, options: BlockdevOptions = {}): Promise<boolean> {
  return (await filesystemType(device, options)) !== null;
}

/** File systems the agent makes on a dataset's volume. */
export type FilesystemKind = 'ext4' | 'xfs';

/** mkfs.xfs (xfsprogs >= 5.19) refuses devices below 300 MB. */
export const XFS_MINIMUM_DEVICE_SIZE = 300 * 1024 * 1024;

export interface MakeFilesystemOptions extends BlockdevOptions {
  readonly type: FilesystemKind;
  /** ext4 labels are at most 16 bytes, xfs labels 12. */
  readonly label?: string;
  /**
   * ext4 multi-mount protection: the kernel refuses a second mount of the same
   * filesystem through another device. A safety net against double attachment.
   */
  readonly multiMountProtection?: boolean;
  /**
   * A certain "nothing was ever written here" (see isLoopDeviceNeverWritten)
   * that replaces the blkid probe when it answers true; otherwise blkid decides.
   */
  readonly neverWritten?: (device: string) => Promise<boolean>;
  /** The device's size in bytes, or null if unknown (default: blockDeviceSize). */
  readonly deviceSize?: (device: string) => Promise<number | null>;
}

/**
 * How many times its size an ext4 filesystem made here can grow online in its
 * classic layout. mke2fs's default reserves group descriptor room for 1024x,
 * which for a 10 GiB volume means ~1,000 reserved blocks in each of ~10
 * backup groups: half of the time mkfs takes. Beyond 64x the kernel's online
 * resize converts the filesystem to meta_bg itself, and an offline resize
 * (resize2fs) is not limited by the reserve at all.
 */
export const ONLINE_GROWTH_FACTOR = 64;

const MiB = 1024 * 1024;

/**
 * mkfs.ext4 arguments for a device of `size` bytes: lazy inode table and
 * journal init, and a reserve for ONLINE_GROWTH_FACTOR growth. The reserve is
 * given in blocks, so the block size is pinned to the 4 KiB mke2fs picks from
 * 512 MiB up anyway; smaller or unknown sizes keep mke2fs's own choices.
 */
export function growthReserveArgs(size: number | null): string[] {
  const lazy = 'lazy_itable_init=1,lazy_journal_init=1';
  if (size === null || size < 512 * MiB) return ['-E', lazy];
  const blocks = Math.floor(size / 4096);
  const reserveFor = Math.min(blocks * ONLINE_GROWTH_FACTOR, 2 ** 32 - 1);
  return ['-b', '4096', '-E', `${lazy},resize=${reserveFor}`];
}

/** Linux dev_t -> major:minor (glibc's gnu_dev_major/minor). */
export function majorMinorOf(rdev: bigint): string {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/** A block device's size in bytes from sysfs (no process), or null when it is not one or cannot be read. */
export async function blockDeviceSize(device: string, sysfs = '/sys/dev/block'): Promise<number | null> {
  try {
    const st = await fs.stat(device, { bigint: true });
    if (!st.isBlockDevice()) return null;
    // sysfs counts 512-byte sectors whatever the device's own sector size.
    const sectors = Number((await fs.readFile(`${sysfs}/${majorMinorOf(st.rdev)}/size`, 'utf8')).trim());
    return Number.isSafeInteger(sectors) && sectors > 0 ? sectors * 512 : null;
  } catch {
    return null;
  }
}

/** Creates a filesystem; refuses (FILESYSTEM_EXISTS) if the device already has one. */
export async function makeFilesystem(device: string, options: MakeFilesystemOptions): Promise<void> {
  const exec = options.exec ?? execFileExec;
  if (options.type !== 'ext4' && options.type !== 'xfs') {
    throw new StorageError(
      'BACKEND_ERROR',
      `unsupported filesystem type ${String(options.type)}; ext4 and xfs are supported`,
    );
  }
  const existing =
    options.neverWritten !== undefined && (await options.neverWritten(device))
      ? null
      : await filesystemType(device, { exec });
  if (existing !== null) {
    throw new StorageError(
      'FILESYSTEM_EXISTS',
      `${device} already has a ${existing} filesystem; refusing to create a new one over it`,
    );
  }
  const maxLabel = options.type === 'xfs' ? 12 : 16;
  if (options.label !== undefined && Buffer.byteLength(options.label) > maxLabel) {
    throw new StorageError(
      'BACKEND_ERROR',
      `${options.type} label ${JSON.stringify(options.label)} is longer than ${maxLabel} bytes`,
    );
  }
  const size = await (options.deviceSize ?? blockDeviceSize)(device);
  if (options.type === 'xfs') {
    if (size !== null && size < XFS_MINIMUM_DEVICE_SIZE) {
      throw new StorageError(
        'INVALID_SIZE',
        `${device} is ${size} bytes; an xfs file system needs at least ${XFS_MINIMUM_DEVICE_SIZE} bytes (300 MiB)`,
      );
    }
    // No -f: mkfs.xfs itself also refuses to write over a signature it finds.
    const xfsArgs = ['-q', ...(options.label !== undefined ? ['-L', options.label] : []), device];
    await runChecked(exec, 'mkfs.xfs', xfsArgs, `creating an xfs filesystem on ${device}`);
    return;
  }
  const args = ['-q', ...growthReserveArgs(size)];
  if (options.label !== undefined) args.push('-L', options.label);
  if (options.multiMountProtection) args.push('-O', 'mmp');
  args.push(device);
  await runChecked(exec, 'mkfs.ext4', args, `creating an ext4 filesystem on ${device}`);
}

export interface MountOptions extends BlockdevOptions {
  readonly fstype: string;
  /** Extra -o options, e.g. ['noatime']. */
  readonly options?: readonly string[];
}

const EBUSY = 16;

export async function mount(device: string, mountPoint: string, options: MountOptions): Promise<void> {
  // The mount(2) call directly when nothing asks for mount(8)'s argv (tests inject exec) and the options are all
  // file-system data (discard, nouuid: no MS_* flag to translate).
  const data = options.exec === undefined ? syscallMountData(options.options ?? []) : null;
  if (data !== null) {
    const r = await mountSyscalls.mount(device, mountPoint, options.fstype, data);
    if (r?.ok) return;
    if (r)
      throw new StorageError(
        'BACKEND_ERROR',
        `mounting ${device} on ${mountPoint} (${[options.fstype, ...data].join(',')}) failed: ${r.message}`,
      );
  }
  const exec = options.exec ?? execFileExec;
  const args = ['-t', options.fstype];
  if (options.options && options.options.length > 0) args.push('-o', options.options.join(','));
  args.push(device, mountPoint);
  await runChecked(exec, 'mount', args, `mounting ${device} on ${mountPoint}`);
}

export async function unmount(mountPoint: string, options: BlockdevOptions = {}): Promise<void> {
  if (options.exec === undefined) {
    const r = await mountSyscalls.umount(mountPoint);
    if (r?.ok) return;
    // As with umount(8), any failure counts as busy: the caller retries or reports it.
    if (r)
      throw new StorageError(
        'DEVICE_BUSY',
        `unmounting ${mountPoint} failed: ${r.message}${r.errno === EBUSY ? ' (in use)' : ''}`,
      );
  }
  const exec = options.exec ?? execFileExec;
  await runChecked(exec, 'umount', [mountPoint], `unmounting ${mountPoint}`, 'DEVICE_BUSY');
}

const EINVAL = 22;

/**
 * Freezes the file system mounted at mountPoint (no writes reach it until thawed): FIFREEZE
 * through the syscall helper, else fsfreeze(8).
 */
export async function freezeFilesystem(mountPoint: string, options: BlockdevOptions = {}): Promise<void> {
  if (options.exec === undefined) {
    const r = await mountSyscalls.freeze(mountPoint);
    if (r?.ok) return;
    if (r) throw new StorageError('BACKEND_ERROR', `freezing ${mountPoint} failed: ${r.message}`);
  }
  const exec = options.exec ?? execFileExec;
  await runChecked(exec, 'fsfreeze', ['--freeze', mountPoint], `freezing ${mountPoint}`);
}

/** Thaws it; false when it was not frozen (EINVAL: thawed already is thawed). */
export async function thawFilesystem(mountPoint: string, options: BlockdevOptions = {}): Promise<boolean> {
  if (options.exec === undefined) {
    const r = await mountSyscalls.thaw(mountPoint);
    if (r?.ok) return true;
    if (r && r.errno === EINVAL) return false;
    if (r) throw new StorageError('BACKEND_ERROR', `thawing ${mountPoint} failed: ${r.message}`);
  }
  const exec = options.exec ?? execFileExec;
  const args = ['--unfreeze', mountPoint];
  const result = await exec('fsfreeze', args);
  if (result.exitCode === 0) return true;
  if (/Invalid argument/.test(result.stderr)) return false;
  throw new StorageError(
    'BACKEND_ERROR',
    `thawing ${mountPoint} failed: \`${formatCommand('fsfreeze', args)}\` exited with ${result.exitCode}: ${result.stderr.trim()}`,
  );
}

/** Reads an xfs superblock (at byte 0, big-endian): data blocks x block size, or null when it is not xfs. */
export function xfsSizeFromSuperblock(sb: Buffer): number | null {
  if (sb.length < 16 || sb.readUInt32BE(0) !== 0x58465342) return null;
  return Number(sb.readBigUInt64BE(8)) * sb.readUInt32BE(4);
}

/**
 * Grows an ext4 filesystem to fill its (already grown) device. Mounted: online
 * resize, which needs CAP_SYS_RESOURCE (resize2fs says "Permission denied"
 * without it). Not mounted: resize2fs insists on a forced check first.
 */
export async function resizeFilesystem(
  device: string,
  options: BlockdevOptions & { mounted?: boolean; fstype?: FilesystemKind; mountPoint?: string } = {},
): Promise<void> {
  const exec = options.exec ?? execFileExec;
  if (options.fstype === 'xfs') {
    // xfs grows only mounted (XFS_IOC_FSGROWFSDATA needs CAP_SYS_ADMIN, not CAP_SYS_RESOURCE).
    if (options.mountPoint === undefined) {
      throw new StorageError('BACKEND_ERROR', `growing the xfs filesystem on ${device} needs it mounted`);
    }
    await runChecked(exec, 'xfs_growfs', ['-d', options.mountPoint], `growing the xfs filesystem on ${device}`);
    return;
  }
  const mounted = options.mounted ?? (await isDeviceBusy(device));
  if (!mounted) {
    const args = ['-f', '-p', device];
    const check = await exec('e2fsck', args);
    // 1 = errors corrected; anything above that needs a human.
    if (check.exitCode > 1) {
      throw new StorageError(
        'BACKEND_ERROR',
        `checking the filesystem on ${device} before growing it failed: \`${formatCommand('e2fsck', args)}\` ` +
          `exited with ${check.exitCode}: ${check.stderr.trim() || check.stdout.trim() || 'no output'}`,
      );
    }
  }
  await runChecked(exec, 'resize2fs', [device], `growing the filesystem on ${device}`);
}

/**
 * Whether the kernel has the device claimed exclusively — mounted in any mount
 * namespace, or held by another exclusive opener. An O_EXCL open of a block
 * device fails with EBUSY then (see open(2)); unlike mountinfo this also sees
 * mounts made in other hosts' namespaces on the same kernel.
 */
export async function isDeviceBusy(device: string): Promise<boolean> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(device, fsc.O_RDONLY | fsc.O_EXCL);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EBUSY') return true;
    throw new StorageError(
      'BACKEND_ERROR',
      `cannot open ${device} to check whether it is in use: ${(e as Error).message}`,
    );
  }
  await handle.close();
  return false;
}

/** Local filesystems whose st_blocks counts every written (even delayed-allocation) block at once. */
const BLOCK_EXACT_FILESYSTEMS: ReadonlySet<number> = new Set([
  0xef53, // ext2/3/4
  0x58465342, // xfs
  0x9123683e, // btrfs
  0x01021994, // tmpfs
]);

export interface NeverWrittenProbe {
  readonly sysBlock?: string;
}

/**
 * True only when the device is a loop device whose backing file has no block
 * allocated at all: every byte reads as zero, so there is no filesystem, no
 * partition table, nothing blkid could find — without running it. Anything
 * uncertain (not a loop device, a replaced backing file, a network or unknown
 * filesystem, any error) answers false, so the caller asks blkid. The device
 * is flushed first so writes still cached above the loop driver count.
 */
export async function isLoopDeviceNeverWritten(device: string, probe: NeverWrittenProbe = {}): Promise<boolean> {
  const m = /^\/dev\/(loop\d+)$/.exec(device);
  if (!m) return false;
  try {
    const raw = await fs.readFile(`${probe.sysBlock ?? '/sys/block'}/${m[1]}/loop/backing_file`, 'utf8');
    const backingFile = raw.endsWith('\n') ? raw.slice(0, -1) : raw;
    if (backingFile.endsWith(' (deleted)') || !backingFile.startsWith('/')) return false;
    const handle = await fs.open(device, fsc.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    const [st, sfs] = await Promise.all([fs.stat(backingFile), fs.statfs(backingFile)]);
    return st.isFile() && st.size > 0 && st.blocks === 0 && BLOCK_EXACT_FILESYSTEMS.has(sfs.type);
  } catch {
    return false;
  }
}
