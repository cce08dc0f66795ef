/**
 * Takes off the machine what a test's loopback pools left there: mounts and loop devices of the
 * images under a test directory. One implementation for every e2e harness (LocalAgentBed, the
 * netns cluster's teardown, the etcd, CSI and snapshot e2e files).
 *
 * A file system frozen by an agent killed mid-snapshot (between fsfreeze -f and -u) is the trap:
 * `umount -l` detaches it but the kernel keeps the frozen superblock, unreachable, for ever, so
 * its loop device stays bound (autoclear set by `losetup -d`, never cleared) to an image that is
 * then deleted with the directory. Hence: thaw before unmounting, and for a device that stays
 * busy with no mount left (frozen in a host mount namespace that is gone), mount it once more —
 * the kernel hands back the same superblock — thaw it there and unmount it.
 *
 * A mount of such a device may also live in another mount namespace than the test's: one a process
 * copied (unshare -m), or that of a killed agent whose last thread is still exiting (its leader a zombie).
 * It is thawed and unmounted there (nsenter). A device still bound after all that is reported with
 * what holds it (describeHolds).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loopBindingOf, parseMountInfo } from '@flocker/storage-drivers';
import { namespaceDirsOf } from './cluster/processes';

/** Mounts whose mount point lies under root, as the kernel lists them. */
export function mountsUnder(root: string): { device: string; mountPoint: string }[] {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) =>
    m.mountPoint.startsWith(root + '/'),
  );
}

export interface LoopDevice {
  /** /dev/loopN */
  readonly name: string;
  /** The backing file as the kernel names it, without its " (deleted)" suffix. */
  readonly backFile: string;
  readonly deleted: boolean;
}

/** Every loop device bound to a file under dir (deleted ones too), read from sysfs. */
export function loopDevicesUnder(dir: string): LoopDevice[] {
  const prefix = resolve(dir) + '/';
  const out: LoopDevice[] = [];
  for (const name of readdirSync('/sys/block').filter((n) => /^loop\d+$/.test(n))) {
    const bound = loopBindingOf(`/dev/${name}`); // null: not bound, or unbound meanwhile
    if (bound?.backingFile.startsWith(prefix) === true) {
      out.push({ name: bound.device, backFile: bound.backingFile, deleted: bound.deleted });
    }
  }
  return out;
}

function quiet(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** "major:minor" of a loop device, as mountinfo names it (/sys/block/loopN/dev). */
function devNumber(device: string): string | undefined {
  try {
    return readFileSync(`/sys/block/${device.replace(/^\/dev\//, '')}/dev`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Thaws (a no-op unless frozen) and unmounts; lazily only when a plain umount is refused. In nsFile's mount namespace if given. */
function thawAndUnmount(mountPoint: string, nsFile?: string): void {
  const run = (cmd: string, args: string[]): boolean =>
    nsFile === undefined ? quiet(cmd, args) : quiet('nsenter', [`--mount=${nsFile}`, '--', cmd, ...args]);
  run('fsfreeze', ['-u', mountPoint]);
  if (!run('umount', [mountPoint])) run('umount', ['-l', mountPoint]);
}

function linkOf(file: string): string | undefined {
  try {
    return readlinkSync(file);
  } catch {
    return undefined;
  }
}

function readOr(file: string, fallback: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

interface MountNamespace {
  /** "mnt:[inode]" */
  readonly id: string;
  /** A /proc path of it (a thread's, when the leader is a zombie whose own links read as gone). */
  readonly nsFile: string;
  readonly mountInfo: string;
  /** One of its processes: "pid comm". */
  readonly process: string;
}

/** Every mount namespace some thread lives in, but the test's own. */
function otherMountNamespaces(): MountNamespace[] {
  const own = linkOf('/proc/self/ns/mnt');
  const seen = new Map<string, MountNamespace>();
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    for (const d of namespaceDirsOf(pid)) {
      const id = linkOf(`${d}/ns/mnt`);
      if (id === undefined || id === own || seen.has(id)) continue;
      const process = `${pid} ${readOr(`/proc/${pid}/comm`, '?').trim()}`;
      seen.set(id, { id, nsFile: `${d}/ns/mnt`, mountInfo: readOr(`${d}/mountinfo`, ''), process });
    }
  }
  return [...seen.values()];
}

/** Mounts of the devices numbered `numbers` (or, when underDir, any under root) in other mount namespaces. */
function mountsElsewhere(
  root: string,
  numbers: ReadonlySet<string>,
  underDir: boolean,
): { ns: MountNamespace; mountPoint: string }[] {
  return otherMountNamespaces().flatMap((ns) =>
    (ns.mountInfo === '' ? [] : parseMountInfo(ns.mountInfo))
      .filter((m) => numbers.has(m.majorMinor) || (underDir && m.mountPoint.startsWith(root + '/')))
      .map((m) => ({ ns, mountPoint: m.mountPoint })),
  );
}

/**
 * What keeps a loop device bound, for a failure message: its autoclear flag, its mounts in any mount
 * namespace (with one process of each), the processes holding it open, its sysfs holders.
 */
export function describeHolds(device: string): string {
  const name = device.replace(/^\/dev\//, '');
  const number = devNumber(device);
  const mounts =
    number === undefined
      ? []
      : [
          ...parseMountInfo(readOr('/proc/self/mountinfo', ''))
            .filter((m) => m.majorMinor === number)
            .map((m) => `${m.mountPoint} (here)`),
          ...mountsElsewhere('/', new Set([number]), false).map(
            (m) => `${m.mountPoint} in ${m.ns.id} of ${m.ns.process}`,
          ),
        ];
  const openers: string[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    if (fds.some((fd) => linkOf(`/proc/${pid}/fd/${fd}`) === device)) {
      openers.push(`${pid} ${readOr(`/proc/${pid}/comm`, '?').trim()}`);
    }
  }
  let holders: string[] = [];
  try {
    holders = readdirSync(`/sys/block/${name}/holders`);
  } catch {
    // unbound meanwhile
  }
  return [
    `autoclear=${readOr(`/sys/block/${name}/loop/autoclear`, '-').trim()}`,
    `mounts=[${mounts.join('; ')}]`,
    `open by=[${openers.join('; ')}]`,
    `holders=[${holders.join(' ')}]`,
  ].join(' ');
}

/**
 * A device still bound though detached: if its file system lives on without a mount (lazily
 * unmounted while frozen), mount it once more, thaw and unmount it so the deferred detach happens.
 */
function rescueBusy(device: string): void {
  const at = mkdtempSync(join(tmpdir(), 'flocker-e2e-thaw-'));
  try {
    if (quiet('mount', [device, at])) thawAndUnmount(at);
  } finally {
    try {
      rmdirSync(at);
    } catch {
      // still mounted (a lazy unmount pending): the directory stays, empty
    }
  }
  quiet('losetup', ['-d', device]);
}

/**
 * Unmounts every mount under dir (unless `underDir` is false) and every root-namespace mount of a loop
 * device backed under dir (thawed first, deepest first), detaches those devices, and waits up to timeoutMs
 * for the kernel to let them go; from the second round, their mounts in other mount namespaces go too.
 * Answers the devices still bound ("/dev/loopN (file) <what holds it>"): empty when all went.
 */
export function releaseMountsAndLoops(
  dir: string,
  { timeoutMs = 10_000, underDir = true }: { timeoutMs?: number; underDir?: boolean } = {},
): string[] {
  const deadline = Date.now() + timeoutMs;
  const root = resolve(dir);
  for (let round = 0; ; round++) {
    const loops = loopDevicesUnder(root);
    const numbers = new Set(loops.map((l) => devNumber(l.name)).filter((n) => n !== undefined));
    const mounts = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter(
      (m) => (underDir && m.mountPoint.startsWith(root + '/')) || numbers.has(m.majorMinor),
    );
    for (const m of mounts.reverse()) thawAndUnmount(m.mountPoint);
    if (loops.length === 0) return [];
    // Still bound after a detach: a copy of a mount elsewhere holds it (looked for only then: costly).
    if (round > 0) {
      for (const m of mountsElsewhere(root, numbers, underDir).reverse()) thawAndUnmount(m.mountPoint, m.ns.nsFile);
    }
    for (const l of loops) {
      // Detached rounds ago and still bound: something holds it (see the top of the file).
      if (round % 5 === 3) rescueBusy(l.name);
      else quiet('losetup', ['-d', l.name]);
    }
    if (Date.now() > deadline) {
      return loopDevicesUnder(root).map(
        (l) => `${l.name} (${l.backFile}${l.deleted ? ', deleted' : ''}) ${describeHolds(l.name)}`,
      );
    }
    sleepSync(100);
  }
}

/** releaseMountsAndLoops, failing when a device stays bound (a leak must fail the test, not pass unnoticed). */
export function releaseMountsAndLoopsOrThrow(dir: string): void {
  if (!existsSync(dir)) return;
  const left = releaseMountsAndLoops(dir);
  if (left.length > 0) throw new Error(`loop devices still bound after the teardown of ${dir}: ${left.join(', ')}`);
}
