/**
 * The kernel's mount table under the agent's mount root, followed without polling (issue 23): one
 * `findmnt --poll` child (util-linux; it waits on /proc/self/mountinfo for the kernel's change
 * notice and prints each mount and umount as a line). A new volume's first Mount can then be
 * answered when the agent's mount of it appears in the kernel, not one report and one push later
 * (FlockerVolumeBackend.doMount says when that is safe).
 *
 * Only ever a shortcut: whatever goes wrong here (no findmnt, the child dies, a line not understood)
 * leaves the Mount to the cluster snapshot, as without it.
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

/** Where the mount events come from (real: findmnt --poll; tests: a fake). */
export interface MountEventSource {
  /** Starts following: each event to onEvent; onEnd once the source stops (it may not be restarted). */
  start(onEvent: (e: MountEvent) => void, onEnd: (reason: string) => void): { stop(): void };
  /** Whether `target` is a mount point now (one read of the mount table). */
  isMountPoint(target: string): boolean;
}

export const findmntSource: MountEventSource = {
  start(onEvent, onEnd) {
    const child = spawn('findmnt', ['--poll=mount,umount,move', '-n', '-r', '-o', 'ACTION,TARGET'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
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
    return {
      stop() {
        ended = true;
        child.kill('SIGTERM');
      },
    };
  },
  isMountPoint(target) {
    return mountPointsOf(fs.readFileSync('/proc/self/mountinfo', 'utf8')).includes(target);
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

/** How long the findmnt child runs before its following counts (its own start: the first read of the table). */
export const SOURCE_READY_MS = 200;

interface Tracked {
  target: string;
  fresh: boolean;
  isMounted: boolean;
  wake: Array<() => void>;
}

export class MountTable {
  private readonly tracked = new Map<string, Tracked>();
  private running: { stop(): void } | undefined;
  /** When the running source counts as following (undefined: none running). */
  private readyAt: number | undefined;
  private closed = false;
  /** Where the agent's mount root is seen in this mount namespace (a managed plugin: --host-mount-seen-at). */
  readonly root: string;

  constructor(
    root: string,
    private readonly logger: Logger,
    private readonly source: MountEventSource = findmntSource,
    private readonly now: () => number = Date.now,
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

  start(): void {
    if (this.closed || this.running !== undefined) return;
    this.readyAt = this.now() + SOURCE_READY_MS;
    this.running = this.source.start(
      (e) => this.onEvent(e),
      (reason) => {
        // Events may be missed from now on: no tracker can prove anything any more.
        this.running = undefined;
        this.readyAt = undefined;
        for (const t of this.tracked.values()) this.spoil(t);
        if (!this.closed)
          this.logger.warn('not following the mount table any more; Mounts wait for the cluster state', {
            reason,
            code: 'MOUNT_TABLE_LOST',
          });
      },
    );
  }

  /** Whether the source follows now, since long enough that a tracker begun now misses nothing. */
  following(): boolean {
    return this.running !== undefined && this.readyAt !== undefined && this.now() >= this.readyAt;
  }

  /**
   * Tracks the dataset's mount path from now on; undefined when the table is not followed. A path
   * already mounted when tracking begins is not fresh (not a mount made since).
   */
  track(datasetId: string): MountTracker | undefined {
    if (!this.following() || datasetId.includes('/') || datasetId === '' || datasetId.startsWith('.')) return undefined;
    this.untrack(datasetId);
    const target = path.posix.join(this.root, datasetId);
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

  close(): void {
    this.closed = true;
    this.running?.stop();
    this.running = undefined;
    for (const id of [...this.tracked.keys()]) this.untrack(id);
  }

  private onEvent(e: MountEvent): void {
    if (path.posix.dirname(e.target) !== this.root) return;
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
  }
}
