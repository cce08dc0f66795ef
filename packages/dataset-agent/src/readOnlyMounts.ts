/**
 * Mounted volumes whose file system stopped taking writes (review T3 finding 2): when a loopback pool's file system
 * fills up, the loop device fails writes, ext4 aborts its journal and goes read-only, and the container gets EIO and
 * EROFS — while the volume still showed "mounted" and `flocker status` "converged". The mount table says so: the
 * file system's own options turn "ro" (kernels before 6.12) or carry "emergency_ro" / "shutdown" (6.12 on, where the
 * mount's own options stay "rw"). The agent reports it as the dataset's error, with the way out. The mount table says
 * so from the first write (or atime update) that starts a journal handle after the journal aborted: until then it
 * shows "rw" (measured on 6.18: 16 s by hand until an ls, 30 s in an e2e run), and a write whose handle was open when
 * the journal aborted fails with EROFS without marking it. Nothing the agent can read without writing to the volume
 * tells that window apart (errors_count in /sys/fs/ext4 stays 0 too).
 *
 * What recovers it (measured on 6.18 with a full tmpfs pool): `mount -o remount,rw` does not (emergency_ro stays);
 * an unmount and a new mount does, once space is free: ext4 replays its journal, and writes acknowledged before the
 * error are there. The new mount gets a fresh file system instance only once nothing holds the old one, so the
 * containers using the volume must be stopped first (each holds its own mount of it), and a mount namespace made
 * while it was mounted (unshare, a service with PrivateTmp=) holds a copy too.
 */
import type { ActionError } from '@flocker/api';

export interface MountOptions {
  /** The mount's own options (mountinfo field 6). */
  readonly options?: string;
  /** The file system's options (mountinfo's last field). */
  readonly superOptions?: string;
}

/** error: gone read-only after an error; shutdown: shut down after one; mount: this mount made read-only. */
export type ReadOnlyCause = 'error' | 'shutdown' | 'mount';

/** Why writes to a mount fail, read from its options; undefined when it takes writes. Pure. */
export function readOnlyCause(m: MountOptions): ReadOnlyCause | undefined {
  const fs = (m.superOptions ?? '').split(',');
  if (fs.includes('shutdown')) return 'shutdown';
  if (fs.includes('emergency_ro')) return 'error';
  // A mount made read-only (by hand: the agent mounts read-write) makes its file system's options "ro" too.
  if ((m.options ?? '').split(',').includes('ro')) return 'mount';
  if (fs.includes('ro')) return 'error';
  return undefined;
}

export const READ_ONLY_CODES: Record<ReadOnlyCause, string> = {
  error: 'FILESYSTEM_READ_ONLY',
  shutdown: 'FILESYSTEM_SHUT_DOWN',
  mount: 'MOUNTED_READ_ONLY',
};

/** What the dataset's error says: what happened, and what recovers it. Pure. */
export function readOnlyMessage(cause: ReadOnlyCause, path: string): string {
  // A mount namespace made while it was mounted keeps a copy, and with it the broken file system (measured: a new
  // mount then gets the same read-only one back): the way to find it, for when the first unmount was not enough.
  const remount =
    `stop the containers that use the volume, then unmount it (umount ${path}): the agent mounts it again, ` +
    'which replays its journal (writes acknowledged before the error are kept). Read-only again after that: ' +
    `a process in another mount namespace still holds it (grep ${path} /proc/*/mountinfo); unmount again once it is gone`;
  switch (cause) {
    case 'error':
      return (
        `its file system (mounted at ${path}) went read-only after a write error, most often because the node's ` +
        `storage is full (flocker status says so; the kernel log says why): writes to it fail. Free space there, ` +
        remount
      );
    case 'shutdown':
      return `its file system (mounted at ${path}) was shut down after an error: reads and writes fail. See the kernel log, then ${remount}`;
    case 'mount':
      return `it is mounted read-only at ${path} (not by Flocker): writes to it fail. Unmount it (umount ${path}): the agent mounts it again read-write`;
  }
}

/**
 * The read-only mounts of the latest mount table, each with when it was first seen so. The agent feeds it every
 * mount table it reads and reports an error for each dataset mounted at one of them.
 */
export class ReadOnlyMounts {
  private byPath = new Map<string, { cause: ReadOnlyCause; since: string }>();

  /** A new mount table: the mount points that turned read-only since the last one (the agent logs them). */
  saw(mounts: readonly (MountOptions & { mountPoint: string })[], nowIso: string): string[] {
    const next = new Map<string, { cause: ReadOnlyCause; since: string }>();
    const turned: string[] = [];
    for (const m of mounts) {
      const cause = readOnlyCause(m);
      if (cause === undefined) continue;
      const before = this.byPath.get(m.mountPoint);
      if (before?.cause === cause) next.set(m.mountPoint, before);
      else {
        next.set(m.mountPoint, { cause, since: nowIso });
        turned.push(m.mountPoint);
      }
    }
    this.byPath = next;
    return turned;
  }

  causeAt(path: string): ReadOnlyCause | undefined {
    return this.byPath.get(path)?.cause;
  }

  /** One error per dataset mounted at a read-only mount. */
  errors(mounted: readonly { datasetId: string; path: string }[]): ActionError[] {
    return mounted.flatMap(({ datasetId, path }): ActionError[] => {
      const r = this.byPath.get(path);
      if (r === undefined) return [];
      return [
        {
          dataset_id: datasetId,
          action: 'observe',
          code: READ_ONLY_CODES[r.cause],
          message: readOnlyMessage(r.cause, path),
          attempts: 1,
          since: r.since,
        },
      ];
    });
  }
}
