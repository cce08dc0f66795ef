import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { StorageError } from './BlockDeviceApi';
import { HelperUnavailable, runChecked, type ExecFn } from './exec';
import { isUnsupported, SysHelper, type SysHelperOptions } from './syshelper';

/** Loop device names in `losetup -j <file>` output, e.g. "/dev/loop0: [64769]:1234 (/pool/x.img)". */
export function parseLosetupAssociations(stdout: string): string[] {
  const devices: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^(\/dev\/loop\d+):/.exec(line.trim());
    if (m) devices.push(m[1]);
  }
  return devices;
}

/**
 * The loop devices currently backed by this file. Asks the kernel every time
 * (losetup matches by device and inode), because /dev/loopN names change with
 * every attach and any remembered name may now be someone else's device.
 */
export async function findLoopDevices(exec: ExecFn, file: string): Promise<string[]> {
  return parseLosetupAssociations(await runChecked(exec, 'losetup', ['-j', file], `listing loop devices of ${file}`));
}

export interface AttachLoopOptions {
  /**
   * Whether the new device is read-only (null: unknown). Given, a writable
   * device skips the `blockdev --setrw` process; the loopback driver passes
   * isReadOnly (sysfs).
   */
  readonly readOnly?: (device: string) => Promise<boolean | null>;
  /** Attach with ioctls in flocker-syshelper instead of a losetup process (falls back to losetup where it cannot run). */
  readonly ioctls?: LoopIoctls;
}

export async function attachLoop(
  exec: ExecFn,
  file: string,
  blockdeviceId?: string,
  options: AttachLoopOptions = {},
): Promise<string> {
  const attached = options.ioctls === undefined ? null : await options.ioctls.attach(file, blockdeviceId);
  const device = attached ?? (await attachWithLosetup(exec, file, blockdeviceId));
  // A read-only flag set with BLKROSET (blockdev --setro) outlives the detach and
  // would be inherited by whoever gets /dev/loopN next; clear it.
  if (options.readOnly !== undefined && (await options.readOnly(device)) === false) return device;
  await runChecked(exec, 'blockdev', ['--setrw', device], `making ${device} writable`, 'BACKEND_ERROR', blockdeviceId);
  return device;
}

async function attachWithLosetup(exec: ExecFn, file: string, blockdeviceId?: string): Promise<string> {
  const out = await runChecked(
    exec,
    'losetup',
    ['--find', '--show', file],
    `attaching ${file} to a loop device`,
    'BACKEND_ERROR',
    blockdeviceId,
  );
  const device = out.trim();
  if (!/^\/dev\/loop\d+$/.test(device)) {
    throw new Error(`losetup --find --show printed ${JSON.stringify(out)}, not a loop device`);
  }
  return device;
}

/**
 * What a loop device was seen serving when the caller looked: a path to the file, or (deleted: true) the path the
 * kernel printed for an unlinked or replaced one (LoopBinding). A detach given it leaves the device alone unless it
 * still serves that file (the number may have been freed, by a deferred detach say, and bound by someone else since).
 */
export interface LoopServing {
  readonly file: string;
  readonly deleted?: boolean;
}

/**
 * Detaches `device` (deferred by the kernel while it is in use). With `options.serving` and the helper, only if it
 * still serves that file, checked while the helper holds it: 'gone' then, nothing done. losetup -d (no helper here)
 * cannot check: it detaches whatever the number serves.
 */
export async function detachLoop(
  exec: ExecFn,
  device: string,
  blockdeviceId?: string,
  options: { ioctls?: LoopIoctls; serving?: LoopServing } = {},
): Promise<'detached' | 'gone'> {
  if (options.ioctls !== undefined) {
    const done = await options.ioctls.detach(device, blockdeviceId, options.serving);
    if (done !== null) return done;
  }
  await runChecked(exec, 'losetup', ['-d', device], `detaching ${device}`, 'BACKEND_ERROR', blockdeviceId);
  return 'detached';
}

/** Makes the kernel re-read the backing file's size after it grew. */
export async function refreshLoopCapacity(exec: ExecFn, device: string, blockdeviceId?: string): Promise<void> {
  await runChecked(exec, 'losetup', ['-c', device], `refreshing the size of ${device}`, 'BACKEND_ERROR', blockdeviceId);
}

/** One bound loop device as sysfs shows it. */
export interface LoopBinding {
  readonly device: string;
  /** The backing file's path as the kernel prints it (d_path), without the " (deleted)" mark. */
  readonly backingFile: string;
  /** The backing file was unlinked or replaced since the attach (the kernel's " (deleted)" suffix). */
  readonly deleted: boolean;
}

/** Parses the content of /sys/block/loopN/loop/backing_file. */
export function parseBackingFile(device: string, content: string): LoopBinding {
  const text = content.endsWith('\n') ? content.slice(0, -1) : content;
  const deleted = text.endsWith(' (deleted)');
  return { device, backingFile: deleted ? text.slice(0, -' (deleted)'.length) : text, deleted };
}

/** Synchronous on purpose: sysfs answers from kernel memory, and a scan of a hundred
 * devices costs well under a millisecond that way instead of a hundred thread-pool hops. */
export interface SysfsReader {
  readdir(dir: string): string[];
  /** The file's content, or null if it does not exist (an unbound device has no loop/). */
  readFile(file: string): string | null;
  /**
   * readFile of a file that almost always exists (/proc/partitions, and the backing_file of a device it lists: bound):
   * without the look first, a sysfs path walk per device; a rare miss costs a thrown ENOENT. Absent: readFile.
   */
  readExpected?(file: string): string | null;
}

function readExpected(reader: SysfsReader, file: string): string | null {
  return reader.readExpected !== undefined ? reader.readExpected(file) : reader.readFile(file);
}

const realSysfs: SysfsReader = {
  readdir: (dir) => readdirSync(dir),
  readFile: (file) => {
    // existsSync first: a thrown ENOENT per unbound device costs more than the read.
    if (!existsSync(file)) return null;
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return null; // unbound between the two calls
    }
  },
  readExpected: (file) => {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return null; // unbound since /proc/partitions listed it
    }
  },
};

/**
 * Every bound loop device with its backing file, read from sysfs instead of
 * spawning losetup (the kernel keeps /sys/block/loopN/loop/ only while bound).
 * Null when sysfs cannot be read at all, so callers can fall back to losetup.
 */
export async function listLoopBindings(
  sysBlock = '/sys/block',
  reader: SysfsReader = realSysfs,
): Promise<LoopBinding[] | null> {
  let names: string[];
  try {
    names = reader.readdir(sysBlock);
  } catch {
    return null;
  }
  const bindings: LoopBinding[] = [];
  for (const name of names) {
    if (!/^loop\d+$/.test(name)) continue;
    const content = reader.readFile(`${sysBlock}/${name}/loop/backing_file`);
    if (content !== null) bindings.push(parseBackingFile(`/dev/${name}`, content));
  }
  return bindings;
}

/**
 * The loop devices /proc/partitions lists: the kernel leaves out every disk of capacity zero, so these are the
 * bound loop devices whose backing file has at least one sector (an unbound device has none).
 */
export function parseSizedLoops(partitions: string): string[] {
  const names: string[] = [];
  for (const line of partitions.split('\n')) {
    // major minor #blocks name; #blocks counts KiB, so a one-sector device shows 0 and is listed all the same.
    const m = /^\s*\d+\s+\d+\s+\d+\s+(loop\d+)\s*$/.exec(line);
    if (m) names.push(m[1]);
  }
  return names;
}

/**
 * listLoopBindings of the loop devices that can hold data: bound to a file of at least one sector. One read of
 * /proc/partitions (see parseSizedLoops) and one sysfs read per such device, instead of a look at every
 * /sys/block/loopN (a stat each: 0.5 ms for the hundred-odd devices of a host, 1 ms under load). A device bound
 * to a file shorter than a sector has nothing to read or write, so it serves no volume. Without /proc/partitions:
 * listLoopBindings.
 */
export async function listSizedLoopBindings(
  sysBlock = '/sys/block',
  reader: SysfsReader = realSysfs,
  partitionsFile = '/proc/partitions',
): Promise<LoopBinding[] | null> {
  const partitions = readExpected(reader, partitionsFile);
  if (partitions === null) return listLoopBindings(sysBlock, reader);
  const bindings: LoopBinding[] = [];
  for (const name of parseSizedLoops(partitions)) {
    const content = readExpected(reader, `${sysBlock}/${name}/loop/backing_file`);
    if (content !== null) bindings.push(parseBackingFile(`/dev/${name}`, content));
  }
  return bindings;
}

/** The backing file of one loop device, or null if it is not bound (or not a loop device). */
export function loopBindingOf(
  device: string,
  sysBlock = '/sys/block',
  reader: SysfsReader = realSysfs,
): LoopBinding | null {
  const m = /^\/dev\/(loop\d+)$/.exec(device);
  if (!m) return null;
  const content = reader.readFile(`${sysBlock}/${m[1]}/loop/backing_file`);
  return content === null ? null : parseBackingFile(device, content);
}

/** Whether the kernel marks the block device read-only (/sys/block/<name>/ro); null if unknown. */
export async function isReadOnly(
  device: string,
  sysBlock = '/sys/block',
  reader: SysfsReader = realSysfs,
): Promise<boolean | null> {
  const content = reader.readFile(`${sysBlock}/${device.replace(/^\/dev\//, '')}/ro`);
  return content === null ? null : content.trim() === '1';
}

/**
 * What `losetup --find --show FILE` and `losetup -d DEV` do, as ioctls in
 * flocker-syshelper (see syshelper.ts), without a process per call (a losetup
 * process costs 5-10 ms on a loaded host): LOOP_CTL_GET_FREE on
 * /dev/loop-control, then LOOP_SET_FD on the free device (EBUSY: someone took
 * it first, try the next); LOOP_CLR_FD (on a device in use the kernel defers
 * it, exactly as for losetup -d). Also FS_IOC_GETFLAGS / FS_IOC_SETFLAGS for a
 * file's immutable flag (FS_IMMUTABLE_FL, what chattr ±i does), for fencing.
 * Answers null / false when the helper cannot run here, and the caller runs
 * losetup (chattr, lsattr) instead.
 */
export class LoopIoctls {
  private readonly helper: SysHelper;
  private unavailable = false;

  constructor(options: SysHelperOptions = {}) {
    this.helper = new SysHelper('loop device helper', options);
  }

  /** Ends the helper process once it has answered what was sent; a later request starts another. */
  close(): Promise<void> {
    return this.helper.close();
  }

  /** The new device, or null: use losetup. */
  async attach(file: string, blockdeviceId?: string): Promise<string | null> {
    const answer = await this.ask(`attach ${file}`, file);
    if (answer === null) return null;
    const device = answer.slice('ok '.length);
    if (!answer.startsWith('ok ') || !/^\/dev\/loop\d+$/.test(device)) {
      throw new StorageError(
        'BACKEND_ERROR',
        `attaching ${file} to a loop device failed: ${answer.replace(/^err /, '')}`,
        blockdeviceId,
      );
    }
    return device;
  }

  /**
   * LOOP_CLR_FD (deferred while the device is in use). With `serving`, only if the device serves that file, compared
   * while the helper holds it open: 'gone' (unbound, or serving another file) and nothing done, so a number freed
   * and bound by another process since the caller looked is never detached. Null: no helper here, use losetup.
   */
  async detach(device: string, blockdeviceId?: string, serving?: LoopServing): Promise<'detached' | 'gone' | null> {
    const file =
      serving === undefined ? undefined : serving.deleted === true ? `${serving.file} (deleted)` : serving.file;
    // Tab-separated (the protocol's one line): a name with a tab is left to losetup, as one with a newline is.
    if (file?.includes('\t') === true) return null;
    const arg = file === undefined ? device : `${device}\t${file}`;
    const answer = await this.ask(`detach ${arg}`, arg);
    if (answer === null) return null;
    if (answer === 'gone' && file !== undefined) return 'gone';
    if (answer !== 'ok')
      throw new StorageError(
        'BACKEND_ERROR',
        `detaching ${device} failed: ${answer.replace(/^err /, '')}`,
        blockdeviceId,
      );
    return 'detached';
  }

  /**
   * Detaches the device if it serves `file` and is not claimed exclusively (mounted anywhere on this kernel, or held
   * O_EXCL): the helper opens it O_EXCL itself, so the busy check (blockdev.isDeviceBusy) and the detach are one
   * request, and compares what it serves while holding it, so a device whose number was freed and bound by another
   * process since the caller looked is never detached. 'busy' or 'gone' (unbound, or serving another file): nothing
   * done; null: no helper here, check and detach otherwise.
   */
  async detachIdle(device: string, file: string, blockdeviceId?: string): Promise<'detached' | 'busy' | 'gone' | null> {
    // Tab-separated (the protocol's one line): a name with a tab is left to losetup, as one with a newline is.
    if (`${device}${file}`.includes('\t')) return null;
    const answer = await this.ask(`detachidle ${device}\t${file}`, `${device}${file}`);
    if (answer === null) return null;
    if (answer === 'busy' || answer === 'gone') return answer;
    if (answer !== 'ok')
      throw new StorageError(
        'BACKEND_ERROR',
        `detaching ${device} failed: ${answer.replace(/^err /, '')}`,
        blockdeviceId,
      );
    return 'detached';
  }

  /**
   * Reads (`get`) or sets the immutable flag of a file with FS_IOC_GETFLAGS /
   * FS_IOC_SETFLAGS. Null: no helper here (or an architecture the helper has
   * no ioctl layout for), use chattr/lsattr.
   */
  async immutable(file: string, op: 'get' | 'set' | 'clear'): Promise<ImmutableAnswer | null> {
    const cmd = op === 'get' ? 'getimmutable' : op === 'set' ? 'immutable' : 'mutable';
    const answer = await this.ask(`${cmd} ${file}`, file);
    if (answer === null || isUnsupported(answer)) return null;
    if (answer === 'ok') return { ok: true, immutable: op === 'set' };
    if (answer === 'ok 0' || answer === 'ok 1') return { ok: true, immutable: answer === 'ok 1' };
    const m = /^err (E[A-Z0-9]+) (.*)$/.exec(answer);
    return { ok: false, errno: m?.[1] ?? 'EIO', message: m?.[2] ?? answer.replace(/^err /, '') };
  }

  /**
   * Opens the device exclusively and writes its dirty pages down (BLKFLSBUF, no disk flush): 'busy' while it is
   * mounted or held exclusively anywhere on this kernel, 'flushed' when done, null: no helper here (fsync instead).
   */
  async flushBuffers(device: string): Promise<'busy' | 'flushed' | null> {
    const answer = await this.ask(`flushbuf ${device}`, device);
    if (answer === null || isUnsupported(answer)) return null;
    if (answer === 'busy') return 'busy';
    if (answer === 'ok') return 'flushed';
    throw new StorageError('BACKEND_ERROR', `flushing ${device} failed: ${answer.replace(/^err /, '')}`);
  }

  private async ask(line: string, arg: string): Promise<string | null> {
    // The protocol is one line per request.
    if (this.unavailable || arg.includes('\n')) return null;
    try {
      return await this.helper.request(line);
    } catch (e) {
      if (!(e instanceof HelperUnavailable)) throw e;
      this.unavailable = true;
      return null;
    }
  }
}

export type ImmutableAnswer =
  | { readonly ok: true; readonly immutable: boolean }
  | { readonly ok: false; readonly errno: string; readonly message: string };
