import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { StorageError } from './BlockDeviceApi';
import { HelperUnavailable, LineHelper, runChecked, type ExecFn } from './exec';

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
  /** Attach with ioctls in a long-lived helper instead of a losetup process (falls back to losetup without perl). */
  readonly ioctls?: LoopIoctls;
}

export async function attachLoop(exec: ExecFn, file: string, blockdeviceId?: string, options: AttachLoopOptions = {}): Promise<string> {
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

export async function detachLoop(exec: ExecFn, device: string, blockdeviceId?: string, options: { ioctls?: LoopIoctls } = {}): Promise<void> {
  if (options.ioctls !== undefined && (await options.ioctls.detach(device, blockdeviceId))) return;
  await runChecked(exec, 'losetup', ['-d', device], `detaching ${device}`, 'BACKEND_ERROR', blockdeviceId);
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
};

/**
 * Every bound loop device with its backing file, read from sysfs instead of
 * spawning losetup (the kernel keeps /sys/block/loopN/loop/ only while bound).
 * Null when sysfs cannot be read at all, so callers can fall back to losetup.
 */
export async function listLoopBindings(sysBlock = '/sys/block', reader: SysfsReader = realSysfs): Promise<LoopBinding[] | null> {
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

/** The backing file of one loop device, or null if it is not bound (or not a loop device). */
export function loopBindingOf(device: string, sysBlock = '/sys/block', reader: SysfsReader = realSysfs): LoopBinding | null {
  const m = /^\/dev\/(loop\d+)$/.exec(device);
  if (!m) return null;
  const content = reader.readFile(`${sysBlock}/${m[1]}/loop/backing_file`);
  return content === null ? null : parseBackingFile(device, content);
}

/** Whether the kernel marks the block device read-only (/sys/block/<name>/ro); null if unknown. */
export async function isReadOnly(device: string, sysBlock = '/sys/block', reader: SysfsReader = realSysfs): Promise<boolean | null> {
  const content = reader.readFile(`${sysBlock}/${device.replace(/^\/dev\//, '')}/ro`);
  return content === null ? null : content.trim() === '1';
}

/**
 * Shares sysfs scans among concurrent callers without ever handing a caller a
 * scan that began before its call (it may have to see its own losetup -d):
 * callers arriving during a scan share the next one.
 */
export class LoopScanner {
  private running: Promise<LoopBinding[] | null> | null = null;
  private next: Promise<LoopBinding[] | null> | null = null;

  constructor(private readonly scan: () => Promise<LoopBinding[] | null> = () => listLoopBindings()) {}

  get(): Promise<LoopBinding[] | null> {
    if (this.running === null) return this.start();
    this.next ??= this.running.then(
      () => {
        this.next = null;
        return this.start();
      },
      () => {
        this.next = null;
        return this.start();
      },
    );
    return this.next;
  }

  private start(): Promise<LoopBinding[] | null> {
    const p = this.scan();
    this.running = p;
    const clear = (): void => {
      if (this.running === p) this.running = null;
    };
    p.then(clear, clear);
    return p;
  }
}

/**
 * What `losetup --find --show FILE` and `losetup -d DEV` do, as ioctls:
 * LOOP_CTL_GET_FREE on /dev/loop-control, then LOOP_SET_FD on the free device
 * (EBUSY: someone took it first, try the next); LOOP_CLR_FD (on a device in use
 * the kernel defers it, exactly as for losetup -d). Also FS_IOC_GETFLAGS /
 * FS_IOC_SETFLAGS for a file's immutable flag (FS_IMMUTABLE_FL, what chattr ±i
 * does), for fencing; the ioctl numbers are computed for the generic _IOC
 * layout (see GENERIC_IOC_ARCHES). One answer line each; a failure is
 * "err <message>", for the flag commands "err <ERRNO NAME> <message>".
 */
const LOOP_HELPER_SCRIPT = `
use strict; use Errno qw(EBUSY); use Fcntl qw(O_RDONLY O_NONBLOCK O_NOFOLLOW);
$| = 1;
my $lsz = length(pack('l!', 0));
my $GETFLAGS = (2 << 30) | ($lsz << 16) | (ord('f') << 8) | 1;
my $SETFLAGS = (1 << 30) | ($lsz << 16) | (ord('f') << 8) | 2;
sub errname { my $n = (grep { $!{$_} } keys %!)[0]; return defined $n ? $n : 'EIO' }
while (my $line = <STDIN>) {
  chomp $line;
  my ($cmd, $arg) = split / /, $line, 2;
  my $res = eval {
    if ($cmd eq 'attach') {
      open(my $file, '+<', $arg) or die "cannot open $arg: $!\\n";
      for my $try (1 .. 50) {
        open(my $ctl, '<', '/dev/loop-control') or die "cannot open /dev/loop-control: $!\\n";
        my $n = ioctl($ctl, 0x4C82, 0);
        defined $n or die "LOOP_CTL_GET_FREE failed: $!\\n";
        close $ctl;
        $n = 0 if $n eq '0 but true';
        my $dev = "/dev/loop$n";
        open(my $loop, '+<', $dev) or die "cannot open $dev: $!\\n";
        return "ok $dev" if ioctl($loop, 0x4C00, fileno($file) + 0);
        die "LOOP_SET_FD on $dev failed: $!\\n" unless $! == EBUSY;
      }
      die "no free loop device (others took each one first)\\n";
    } elsif ($cmd eq 'detach') {
      open(my $loop, '<', $arg) or die "cannot open $arg: $!\\n";
      ioctl($loop, 0x4C01, 0) or die "LOOP_CLR_FD on $arg failed: $!\\n";
      return "ok";
    } elsif ($cmd eq 'getimmutable' || $cmd eq 'immutable' || $cmd eq 'mutable') {
      sysopen(my $fh, $arg, O_RDONLY | O_NONBLOCK | O_NOFOLLOW) or die errname() . " cannot open $arg: $!\\n";
      my $buf = pack('L x4', 0);
      ioctl($fh, $GETFLAGS, $buf) or die errname() . " FS_IOC_GETFLAGS on $arg failed: $!\\n";
      my $flags = unpack('L', $buf);
      return 'ok ' . (($flags & 0x10) ? 1 : 0) if $cmd eq 'getimmutable';
      my $want = $cmd eq 'immutable' ? ($flags | 0x10) : ($flags & ~0x10 & 0xffffffff);
      return 'ok' if $want == $flags;
      $buf = pack('L x4', $want);
      ioctl($fh, $SETFLAGS, $buf) or die errname() . " FS_IOC_SETFLAGS on $arg failed: $!\\n";
      return 'ok';
    }
    die "unknown command $cmd\\n";
  };
  if (defined $res) { print "$res\\n" } else { my $e = $@; $e =~ s/\\s+$//; $e =~ s/\\n/ /g; print "err $e\\n" }
}
`;

/**
 * Loop attach and detach without a process per call: a long-lived perl helper
 * does the ioctls (a losetup process costs ~10 ms on a loaded host). Answers
 * null / false when perl is missing, and the caller runs losetup instead.
 */
export class LoopIoctls {
  private readonly helper = new LineHelper('loop device helper', ['perl', '-e', LOOP_HELPER_SCRIPT]);
  private unavailable = false;

  /** The new device, or null: use losetup. */
  async attach(file: string, blockdeviceId?: string): Promise<string | null> {
    const answer = await this.ask(`attach ${file}`, file);
    if (answer === null) return null;
    const device = answer.slice('ok '.length);
    if (!answer.startsWith('ok ') || !/^\/dev\/loop\d+$/.test(device)) {
      throw new StorageError('BACKEND_ERROR', `attaching ${file} to a loop device failed: ${answer.replace(/^err /, '')}`, blockdeviceId);
    }
    return device;
  }

  /** True when detached; false: use losetup. */
  async detach(device: string, blockdeviceId?: string): Promise<boolean> {
    const answer = await this.ask(`detach ${device}`, device);
    if (answer === null) return false;
    if (answer !== 'ok') throw new StorageError('BACKEND_ERROR', `detaching ${device} failed: ${answer.replace(/^err /, '')}`, blockdeviceId);
    return true;
  }

  /**
   * Reads (`get`) or sets the immutable flag of a file with FS_IOC_GETFLAGS /
   * FS_IOC_SETFLAGS. Null: no helper here (or an architecture with another
   * ioctl layout), use chattr/lsattr.
   */
  async immutable(file: string, op: 'get' | 'set' | 'clear'): Promise<ImmutableAnswer | null> {
    if (!GENERIC_IOC_ARCHES.has(process.arch)) return null;
    const cmd = op === 'get' ? 'getimmutable' : op === 'set' ? 'immutable' : 'mutable';
    const answer = await this.ask(`${cmd} ${file}`, file);
    if (answer === null) return null;
    if (answer === 'ok') return { ok: true, immutable: op === 'set' };
    if (answer === 'ok 0' || answer === 'ok 1') return { ok: true, immutable: answer === 'ok 1' };
    const m = /^err (E[A-Z0-9]+) (.*)$/.exec(answer);
    return { ok: false, errno: m?.[1] ?? 'EIO', message: m?.[2] ?? answer.replace(/^err /, '') };
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

/** Architectures whose ioctl numbers follow the generic _IOC layout the helper computes (not powerpc, mips, sparc). */
const GENERIC_IOC_ARCHES: ReadonlySet<string> = new Set(['x64', 'arm64', 'arm', 'ia32', 'riscv64', 's390x', 'loong64']);

export type ImmutableAnswer =
  | { readonly ok: true; readonly immutable: boolean }
  | { readonly ok: false; readonly errno: string; readonly message: string };
