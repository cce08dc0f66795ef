/** The node plugin's mount operations: bind mounts of the agent's mount, read from /proc/self/mountinfo. */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { parseMountInfo, type MountInfoEntry } from './mapping';
import { errorMessage } from '@flocker/runtime';

const run = promisify(execFile);

export interface Mounter {
  /** The mount table of this process's mount namespace. */
  mounts(): Promise<MountInfoEntry[]>;
  /** Bind-mounts `source` onto `target` (an existing directory), read-only when asked. */
  bind(source: string, target: string, readOnly: boolean): Promise<void>;
  unmount(target: string): Promise<void>;
}

/** The topmost mount at `path` (the last in mountinfo order), if any. */
export function mountAt(mounts: readonly MountInfoEntry[], path: string): MountInfoEntry | undefined {
  let found: MountInfoEntry | undefined;
  for (const m of mounts) if (m.mountPoint === path) found = m;
  return found;
}

/** Whether two mount entries show the same directory of the same file system. */
export function sameSource(a: MountInfoEntry, b: MountInfoEntry): boolean {
  return a.device === b.device && a.root === b.root;
}

export function isReadOnly(m: MountInfoEntry): boolean {
  return m.options.includes('ro');
}

async function exec(cmd: string, args: string[]): Promise<void> {
  try {
    await run(cmd, args, { timeout: 60_000 });
  } catch (err) {
    const stderr = typeof err === 'object' && err !== null && 'stderr' in err ? String(err.stderr).trim() : '';
    throw new Error(`${cmd} ${args.join(' ')} failed: ${stderr || errorMessage(err)}`, { cause: err });
  }
}

export class SystemMounter implements Mounter {
  async mounts(): Promise<MountInfoEntry[]> {
    return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
  }

  async bind(source: string, target: string, readOnly: boolean): Promise<void> {
    await exec('mount', ['--bind', source, target]);
    if (readOnly) {
      try {
        await exec('mount', ['-o', 'remount,bind,ro', target]);
      } catch (err) {
        await exec('umount', [target]).catch(() => undefined);
        throw err;
      }
    }
  }

  async unmount(target: string): Promise<void> {
    await exec('umount', [target]);
  }
}
