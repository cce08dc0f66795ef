/**
 * What a killed harness run (harness.ts) leaves: its temporary root (/tmp/flocker-xio-…) and the loop devices the
 * iscsiadm stand-in bound to LUN files under it (kill -9 runs no cleanup; four such loops were once found by hand).
 * Each root's name says which process made it (pid namespace, pid, and the process's start time, so a reused pid is
 * not taken for it); the next harness start removes the roots whose process is gone. Never anything else: a name
 * of another form (another tool, an older harness) or of another pid namespace (its pids mean nothing here) is left
 * alone, and a loop device is detached only while it still serves the file under the root it was seen serving.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { listMounts } from '../../blockdev';
import { execFileExec } from '../../exec';
import { listLoopBindings, loopBindingOf, LoopIoctls } from '../../losetup';

/** The process a root belongs to. */
export interface RootOwner {
  /** The pid namespace's inode (/proc/self/ns/pid). */
  readonly ns: string;
  readonly pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks after boot. */
  readonly start: string;
}

export const ROOT_PREFIX = 'flocker-xio-';

/** The mkdtemp prefix of a root `owner` makes (mkdtemp adds six characters). */
export function rootPrefix(owner: RootOwner): string {
  return `${ROOT_PREFIX}${owner.ns}-${owner.pid}-${owner.start}-`;
}

/** The owner a root's name records, or undefined for a name of another form (never ours to remove). */
export function ownerOfRoot(name: string): RootOwner | undefined {
  const m = /^flocker-xio-(\d+)-(\d+)-(\d+)-[A-Za-z0-9]{6}$/.exec(name);
  if (m === null) return undefined;
  return { ns: m[1], pid: Number(m[2]), start: m[3] };
}

/**
 * Whether the root's process is known to be gone: of this pid namespace, and no process has its pid with its start
 * time (`startOf`: a pid's start time now, undefined when there is none). Pure.
 */
export function ownerGone(owner: RootOwner, self: RootOwner, startOf: (pid: number) => string | undefined): boolean {
  if (owner.ns !== self.ns) return false;
  if (owner.pid === self.pid && owner.start === self.start) return false;
  return startOf(owner.pid) !== owner.start;
}

/** A process's start time from /proc/<pid>/stat, or undefined when there is no such process. */
export function processStart(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) is in parentheses and may hold spaces: count from the last ')'. Field 3 is the first after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[22 - 3];
}

/** This process as a root owner. */
export function selfOwner(): RootOwner {
  const ns = /^pid:\[(\d+)\]$/.exec(readlinkSync('/proc/self/ns/pid'))?.[1];
  const start = processStart(process.pid);
  if (ns === undefined || start === undefined)
    throw new Error('cannot read this process’s pid namespace or start time');
  return { ns, pid: process.pid, start };
}

/**
 * Removes the roots under `tmp` whose process is gone (ownerGone), with their mounts and loop devices. Each is first
 * claimed by a rename into a new root of this process: two harnesses starting at once never both sweep one, and a
 * sweep killed in turn leaves a root the next start sweeps. Answers the roots removed (their names before the claim).
 */
export async function sweepDeadRoots(tmp: string, self: RootOwner = selfOwner()): Promise<string[]> {
  const swept: string[] = [];
  let ioctls: LoopIoctls | undefined;
  for (const name of await fs.readdir(tmp)) {
    const owner = ownerOfRoot(name);
    if (owner === undefined || !ownerGone(owner, self, processStart)) continue;
    // Moved into a new root of this process's (rename never replaces there: nothing else writes in it).
    const claimed = await fs.mkdtemp(path.join(tmp, rootPrefix(self)));
    try {
      await fs.rename(path.join(tmp, name), path.join(claimed, name));
    } catch (e) {
      await fs.rmdir(claimed);
      // Claimed by another sweep first: not ours.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    ioctls ??= new LoopIoctls();
    await destroyClaimedRoot(claimed, ioctls);
    swept.push(name);
  }
  return swept;
}

/**
 * destroyTempRoot (testing/testSupport.ts) for a root no live harness holds, with checked detaches: after a lazy
 * unmount a device's detach deferred by its mount completes at any time, its number is free, and another process
 * may bind it before our detach. The helper detaches only while the device serves the file seen (LoopIoctls.detach);
 * without it, the device is looked at again just before losetup -d (a narrower window, not none).
 */
async function destroyClaimedRoot(root: string, ioctls: LoopIoctls): Promise<void> {
  // The kernel prints the backing file's path as it is now (d_path): the claimed name.
  const ours = ((await listLoopBindings()) ?? []).filter((b) => b.backingFile.startsWith(`${root}/`));
  const devices = new Set(ours.map((b) => b.device));
  const mounts = (await listMounts()).filter((m) => m.mountPoint.startsWith(`${root}/`) || devices.has(m.device));
  for (const m of mounts.reverse()) await execFileExec('umount', ['-l', m.mountPoint]);
  for (const b of ours) {
    const serving = { file: b.backingFile, ...(b.deleted ? { deleted: true } : {}) };
    const done = await ioctls.detach(b.device, undefined, serving);
    if (done !== null) continue;
    const now = loopBindingOf(b.device);
    if (now?.backingFile === b.backingFile && now.deleted === b.deleted)
      await execFileExec('losetup', ['-d', b.device]);
  }
  await execFileExec('chattr', ['-R', '-f', '-i', root]);
  await fs.rm(root, { recursive: true, force: true });
}
