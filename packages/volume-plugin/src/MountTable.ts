/**
 * The kernel's mount table under the agent's mount root, followed without polling (issue 23): one
 * `findmnt --poll` child (util-linux; it waits on /proc/self/mountinfo for the kernel's change
 * notice and prints each mount and umount as a line). A new volume's first Mount can then be
 * answered when the agent's mount of it appears in the kernel, not one report and one push later
 * (FlockerVolumeBackend.doMount says when that is safe).
 *
 * Only ever a shortcut: whatever goes wrong here (no findmnt, the child dies, a line not understood)
 * leaves the Mount to the cluster snapshot, as without it.
 *
 * Paused while idle: IDLE_PAUSE_MS after the last tracker went, the child is stopped (SIGSTOP), so a quiet plugin
 * is not woken by every mount-table change on the host (~0.5 ms of CPU each); a Create resumes it (SIGCONT). A
 * stopped findmnt misses nothing: its open table keeps the kernel's change count, and resumed it reports every
 * change since as a line, so it follows throughout and a Mount needs no start-up. It runs under `setpriv
 * --pdeathsig SIGKILL` (a stopped child must not outlive the plugin); where setpriv is missing it is never paused.
 * A started child counts as following once it is blocked in poll(2) on the table (its baseline read;
 * /proc/<pid>/syscall), a millisecond or two after the spawn, else SOURCE_READY_MS after it.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { errorMessage } from '@flocker/runtime';
import type { Logger } from 'winston';

export interface MountEvent {
  action: 'mount' | 'umount' | 'remount' | 'move';
  target: string;
}

/** `findmnt -r` writes unsafe characters of a field as \xHH. */
function unescapeRaw(s: string): string {
  return s.replace(/\\x([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** One line of `findmnt --poll -n -r -o ACTION,TARGET`; undefined if not one. */
export function parsePollLine(line: string): MountEvent | undefined {
  const m = /^(mount|umount|remount|move) (\S+)$/.exec(line.trim());
  if (m === null || m[1] === undefined || m[2] === undefined) return undefined;
  return { action: m[1] as MountEvent['action'], target: unescapeRaw(m[2]) };
}

/** The mount points of /proc/self/mountinfo's text (field 5, octal escapes undone). */
export function mountPointsOf(mountinfo: string): string[] {
  return mountinfo
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => m !== undefined && m !== '')
    .map((m) => m.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

/** The two stats mountPointByStat makes (tests inject theirs). */
export interface StatOps {
  lstatSync(p: string): { dev: number; ino?: number };
  statSync(p: string): { dev: number };
}

/** A btrfs subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID): on its own st_dev whether mounted or not. */
const BTRFS_SUBVOLUME_ROOT_INO = 256;

/**
 * Whether `target` is a mount point, from two stats where they can tell (microseconds; the table's read and parse
 * cost ~55 µs p50 here, ~1 ms p99 and up to 11 ms under load, on a Mount's path): a path on another device than its
 * parent directory is the root of a mount (true; the last component is not followed, so a symlink shows its own
 * directory's device); a path that does not exist is no mount point (false). undefined where only the table can
 * tell: on its parent's device (not mounted, or a bind mount from the same file system), a btrfs subvolume's root
 * (inode 256: another device than its parent even when nothing is mounted there), or any other error.
 */
export function mountPointByStat(target: string, ops: StatOps = fs): boolean | undefined {
  try {
    const st = ops.lstatSync(target);
    if (st.dev === ops.statSync(path.posix.dirname(target)).dev) return undefined;
    return st.ino === BTRFS_SUBVOLUME_ROOT_INO ? undefined : true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? false : undefined;
  }
}

/** Whether `target` is a mount point now: the stats where they tell (mountPointByStat), else the kernel's table. */
export function isMountPointNow(
  target: string,
  ops: StatOps = fs,
  table: () => string = () => fs.readFileSync('/proc/self/mountinfo', 'utf8'),
): boolean {
  return mountPointByStat(target, ops) ?? mountPointsOf(table()).includes(target);
}

/** A running source: stop() ends it (no onEnd then); ready() once it has its baseline and misses no change since. */
export interface MountEventRun {
  stop(): void;
  /** Whether the source is known to follow by now (its baseline taken); absent: only time says (SOURCE_READY_MS). */
  ready?(): boolean;
  /** Stops waking up for changes; resume() reports every change made meanwhile (absent: it cannot pause). */
  pause?(): void;
  resume?(): void;
}

/** Where the mount events come from (real: findmnt --poll; tests: a fake). */
export interface MountEventSource {
  /** Starts following: each event to onEvent; onEnd once the source stops by itself. Each start is a new run. */
  start(onEvent: (e: MountEvent) => void, onEnd: (reason: string) => void): MountEventRun;
  /** Whether `target` is a mount point now (the kernel's answer at this instant: stats, or one read of the table). */
  isMountPoint(target: string): boolean;
}

/** poll(2)/ppoll(2)'s numbers in /proc/<pid>/syscall, per architecture (x64: poll 7, ppoll 271; arm64: ppoll 73). */
const POLL_SYSCALLS: Readonly<Record<string, readonly number[]>> = { x64: [7, 271], arm64: [73] };

/**
 * Whether the process is blocked in poll(2) now, from /proc/<pid>/syscall's first field ("running" while on a CPU)
 * or, where the number is not known, /proc/<pid>/wchan. findmnt --poll reads its baseline table, opens the table
 * again (the kernel's change count is taken at that open) and polls it: blocked in poll, it misses no later change.
 */
export function blockedInPoll(syscallText: string, wchanText: string, arch: string = process.arch): boolean {
  const nr = Number(syscallText.trim().split(' ')[0]);
  const known = POLL_SYSCALLS[arch];
  if (known !== undefined && Number.isInteger(nr)) return known.includes(nr);
  return /poll/.test(wchanText);
}

/** The executable's path if it is on PATH. */
function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export const findmntSource: MountEventSource = {
  start(onEvent, onEnd) {
    const findmnt = ['findmnt', '--poll=mount,umount,move', '-n', '-r', '-o', 'ACTION,TARGET'];
    // Killed with the plugin even while stopped (SIGKILL ends a stopped process; a SIGTERM would wait for a SIGCONT).
    const setpriv = onPath('setpriv');
    const argv = setpriv !== undefined ? [setpriv, '--pdeathsig', 'SIGKILL', ...findmnt] : findmnt;
    const child = spawn(argv[0] ?? 'findmnt', argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
    let ended = false;
    const end = (reason: string) => {
      if (ended) return;
      ended = true;
      onEnd(reason);
    };
    child.on('error', (err) => end(errorMessage(err)));
    child.on('exit', (code, signal) => end(`findmnt exited (${signal ?? code ?? '?'})`));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const e = parsePollLine(line);
      if (e !== undefined) onEvent(e);
    });
    child.unref();
    let polling = false;
    const signal = (s: NodeJS.Signals) => {
      if (!ended) child.kill(s);
    };
    return {
      stop() {
        if (ended) return;
        child.kill('SIGTERM');
        child.kill('SIGCONT'); // a paused one handles the SIGTERM only once continued
        ended = true;
      },
      ready() {
        if (polling || ended || child.pid === undefined) return polling;
        polling = blockedInPoll(readOr(`/proc/${child.pid}/syscall`), readOr(`/proc/${child.pid}/wchan`));
        return polling;
      },
      ...(setpriv !== undefined ? { pause: () => signal('SIGSTOP'), resume: () => signal('SIGCONT') } : {}),
    };
  },
  isMountPoint(target) {
    return isMountPointNow(target);
  },
};

/**
 * What the kernel showed at one dataset's mount path since tracking began: `fresh` while nothing
 * but mounts was seen there by an event source that followed the whole time; `mounted` once one
 * of them is.
 */
export interface MountTracker {
  readonly datasetId: string;
  /** Resolves when the path is seen mounted while still fresh; never rejects (a spoiled tracker just never resolves). */
  mounted(): Promise<void>;
  /** Nothing but mounts seen at the path, by a source that followed throughout, and it did not start out mounted. */
  fresh(): boolean;
  close(): void;
}

/** How long the findmnt child runs before its following counts when it cannot be seen polling (ready()). */
export const SOURCE_READY_MS = 200;

/** How long the source runs on after the last tracker went before it is paused (a burst of new volumes keeps it on). */
export const IDLE_PAUSE_MS = 30_000;

/** After the source ended by itself (findmnt missing, killed): no new start before this (no spawn per Create). */
export const RESTART_AFTER_MS = 10_000;

interface Tracked {
  target: string;
  fresh: boolean;
  isMounted: boolean;
  wake: Array<() => void>;
}

export class MountTable {
  private readonly tracked = new Map<string, Tracked>();
  private running: MountEventRun | undefined;
  /** When the running source counts as following (undefined: none running). */
  private readyAt: number | undefined;
  private closed = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private paused = false;
  /** When the last run ended by itself (not stopped here): restarts wait RESTART_AFTER_MS. */
  private endedAt: number | undefined;
  /** Where the agent's mount root is seen in this mount namespace (a managed plugin: --host-mount-seen-at). */
  readonly root: string;
  /** A mount under the root was seen here: this namespace shows the agent's mounts (so an absent one is absent). */
  private seesAgentMounts = false;

  constructor(
    root: string,
    private readonly logger: Logger,
    private readonly source: MountEventSource = findmntSource,
    private readonly now: () => number = Date.now,
    private readonly idlePauseMs: number = IDLE_PAUSE_MS,
  ) {
    // The kernel's table names mount points with symlinks resolved (a mount root under a symlinked directory).
    let resolved = path.posix.resolve(root);
    try {
      resolved = fs.realpathSync(resolved);
    } catch {
      // Not there yet (the agent makes it): as given.
    }
    this.root = resolved;
  }

  /** Starts the source now if it is not running (and did not end by itself within RESTART_AFTER_MS). */
  start(): void {
    if (this.closed || this.running !== undefined) return;
    if (this.endedAt !== undefined && this.now() - this.endedAt < RESTART_AFTER_MS) return;
    this.readyAt = this.now() + SOURCE_READY_MS;
    const run = this.source.start(
      (e) => this.onEvent(e),
      (reason) => {
        if (this.running !== run) return;
        // Events may be missed from now on: no tracker can prove anything any more.
        this.running = undefined;
        this.readyAt = undefined;
        this.paused = false;
        this.endedAt = this.now();
        for (const t of this.tracked.values()) this.spoil(t);
        if (!this.closed)
          this.logger.warn('not following the mount table any more; Mounts wait for the cluster state', {
            reason,
            code: 'MOUNT_TABLE_LOST',
          });
      },
    );
    this.running = run;
    this.paused = false;
    this.pauseWhenIdle();
  }

  /**
   * A new volume may be mounted soon (a Create): the source resumes if paused (or starts if not running) so that it
   * wakes for the agent's mount; paused again once idle. A paused source still follows: nothing was missed.
   */
  warm(): void {
    if (this.running === undefined) this.start();
    else if (this.paused) {
      this.paused = false;
      this.running.resume?.();
    }
    this.pauseWhenIdle();
  }

  /** Whether the source follows now, since long enough that a tracker begun now misses nothing. */
  following(): boolean {
    if (this.running === undefined || this.readyAt === undefined) return false;
    if (this.now() >= this.readyAt) return true;
    if (this.running.ready?.() !== true) return false;
    this.readyAt = this.now();
    return true;
  }

  /**
   * Tracks the dataset's mount path from now on (resuming a paused source); undefined when the table is not
   * followed. A path already mounted when tracking begins is not fresh (not a mount made since).
   */
  track(datasetId: string): MountTracker | undefined {
    const target = this.targetOf(datasetId);
    if (target === undefined) return undefined;
    this.warm();
    if (!this.following()) return undefined;
    this.untrack(datasetId);
    const t: Tracked = { target, fresh: true, isMounted: false, wake: [] };
    this.tracked.set(datasetId, t);
    try {
      // After the tracker is in place: a mount from now on is an event, one before it shows here.
      if (this.source.isMountPoint(target)) this.spoil(t);
    } catch {
      this.spoil(t);
    }
    return {
      datasetId,
      mounted: () =>
        new Promise<void>((resolve) => {
          if (t.fresh && t.isMounted) resolve();
          else t.wake.push(resolve);
        }),
      fresh: () => t.fresh && this.tracked.get(datasetId) === t,
      close: () => {
        if (this.tracked.get(datasetId) === t) this.untrack(datasetId);
      },
    };
  }

  /**
   * Whether the dataset's mount path is a mount point in the kernel's table now (one read of it); undefined when
   * that cannot tell: the table unreadable, or no mount under the root ever seen from this namespace (the agent's
   * mounts may not propagate here), so an absent mount proves nothing.
   */
  isMounted(datasetId: string): boolean | undefined {
    const target = this.targetOf(datasetId);
    if (target === undefined) return undefined;
    let mounted: boolean;
    try {
      mounted = this.source.isMountPoint(target);
    } catch {
      return undefined;
    }
    if (mounted) this.seesAgentMounts = true;
    return mounted || this.seesAgentMounts ? mounted : undefined;
  }

  /** The dataset's mount path under the root; undefined for an id that is no single path component. */
  private targetOf(datasetId: string): string | undefined {
    if (datasetId.includes('/') || datasetId === '' || datasetId.startsWith('.')) return undefined;
    return path.posix.join(this.root, datasetId);
  }

  close(): void {
    this.closed = true;
    this.stopSource();
    for (const id of [...this.tracked.keys()]) this.untrack(id);
  }

  /** Pauses the source idlePauseMs from now unless a tracker is open then (asked again at its untrack). */
  private pauseWhenIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.running?.pause === undefined || this.tracked.size > 0) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.tracked.size > 0 || this.running === undefined || this.paused) return;
      this.paused = true;
      this.running.pause?.();
    }, this.idlePauseMs);
    this.idleTimer.unref();
  }

  private stopSource(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const run = this.running;
    this.running = undefined;
    this.readyAt = undefined;
    this.paused = false;
    run?.stop();
  }

  private onEvent(e: MountEvent): void {
    if (path.posix.dirname(e.target) !== this.root) return;
    if (e.action === 'mount') this.seesAgentMounts = true;
    const t = this.tracked.get(path.posix.basename(e.target));
    if (t === undefined || t.target !== e.target) return;
    if (e.action !== 'mount') {
      // An umount (or a move away) at the path: whatever mounts there next is not the first mount.
      this.spoil(t);
      return;
    }
    if (!t.fresh) return;
    t.isMounted = true;
    for (const w of t.wake.splice(0)) w();
  }

  private spoil(t: Tracked): void {
    t.fresh = false;
    t.wake.length = 0;
  }

  private untrack(datasetId: string): void {
    const t = this.tracked.get(datasetId);
    if (t === undefined) return;
    this.spoil(t);
    this.tracked.delete(datasetId);
    if (this.tracked.size === 0) this.pauseWhenIdle();
  }
}
