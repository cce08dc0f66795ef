/**
 * Finding and ending the harness's processes. Membership is decided by
 * namespace inode or cgroup, never by process name, so only processes that
 * run inside this cluster's own namespaces are ever signalled.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sleep } from './run';

/**
 * Variables that point a Flocker program at a control service or at TLS files: the CLI's (what `./dev cluster
 * status` prints for the operator to export) and a managed Docker plugin's settings (volume-plugin config.ts
 * PLUGIN_ENV, which the plugin takes over agent.yml). A simulated host's daemons find everything through their
 * agent.yml; given the operator's root-netns URL they cannot reach the control service (review T2 F2).
 */
export const OPERATOR_ONLY_ENV: readonly string[] = [
  'FLOCKER_CONTROL_URL',
  'FLOCKER_CA_CERT',
  'FLOCKER_CERT',
  'FLOCKER_KEY',
  'FLOCKER_AGENT_CONFIG',
  'FLOCKER_CA_FILE',
  'FLOCKER_CERT_FILE',
  'FLOCKER_KEY_FILE',
  'FLOCKER_STATE_DIR',
  'FLOCKER_DOCKER_SOCKET',
  'FLOCKER_PROPAGATED_MOUNT',
  'FLOCKER_HOST_MOUNT_SEEN_AT',
  'FLOCKER_HOST_MOUNT_ROOT',
];

/** The environment of a daemon in a simulated host: the caller's without OPERATOR_ONLY_ENV, plus `extra`. */
export function hostDaemonEnv(
  env: NodeJS.ProcessEnv = process.env,
  extra: Readonly<Record<string, string>> = {},
): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  for (const k of OPERATOR_ONLY_ENV) Reflect.deleteProperty(out, k);
  return { ...out, ...extra };
}

/** Starts a long-lived process in its own session, output appended to logFile. */
export function spawnDetached(argv: readonly string[], logFile: string, env?: NodeJS.ProcessEnv): number {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new RangeError('empty command line');
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const fd = fs.openSync(logFile, 'a');
  try {
    fs.writeSync(fd, `\n--- ${new Date().toISOString()} ${argv.join(' ')}\n`);
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env: env ?? process.env });
    child.unref();
    if (child.pid === undefined) throw new Error(`cannot start ${cmd}`);
    return child.pid;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Alive until every thread has exited. A killed process whose leader thread exited first shows as a zombie
 * while another thread is still in do_exit (e.g. blocked in I/O on a loaded host): that thread still holds
 * the process's mount namespace, hence its mounts and loop devices, so the process is not gone yet.
 */
export function isAlive(pid: number): boolean {
  try {
    // A zombie still answers kill(0); look at its state too.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'X') return false;
    return state !== 'Z' || threadCount(pid) > 1;
  } catch {
    return false;
  }
}

function threadCount(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/task`).length;
  } catch {
    return 0;
  }
}

/** Inode of a namespace file (a pin such as /run/netns/x, or /proc/<pid>/ns/mnt). */
export function namespaceInode(file: string): number | undefined {
  try {
    return fs.statSync(file).ino;
  } catch {
    return undefined;
  }
}

function allPids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((p) => p !== process.pid);
}

/**
 * Pids with a thread in the `kind` namespace pinned at nsFile. Threads are looked at too: a zombie leader's
 * own namespaces read as gone while its other threads still live in them (see isAlive).
 */
export function pidsInNamespace(kind: 'mnt' | 'net', nsFile: string): number[] {
  const ino = namespaceInode(nsFile);
  if (ino === undefined) return [];
  return allPids().filter((pid) => namespaceDirsOf(pid).some((d) => namespaceInode(`${d}/ns/${kind}`) === ino));
}

/**
 * The /proc directories whose ns/ links name a process's namespaces: its own; for a zombie leader, whose
 * own links read as gone, its threads' (see isAlive). Empty when the process is gone.
 */
export function namespaceDirsOf(pid: number | string): string[] {
  if (namespaceInode(`/proc/${pid}/ns/mnt`) !== undefined) return [`/proc/${pid}`];
  try {
    return fs.readdirSync(`/proc/${pid}/task`).map((tid) => `/proc/${pid}/task/${tid}`);
  } catch {
    return [];
  }
}

/** Every v1 controller directory of a cgroup (e.g. /fl0-a), deepest first not guaranteed. */
export function cgroupDirs(cgroupPath: string): string[] {
  let controllers: string[];
  try {
    controllers = fs.readdirSync('/sys/fs/cgroup');
  } catch {
    return [];
  }
  return controllers.map((c) => path.join('/sys/fs/cgroup', c, cgroupPath)).filter((d) => fs.existsSync(d));
}

function walkDirs(dir: string): string[] {
  const out: string[] = [];
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) if (e.isDirectory()) out.push(...walkDirs(path.join(dir, e.name)));
  out.push(dir); // children before parent: ready for rmdir
  return out;
}

export function pidsInCgroup(cgroupPath: string): number[] {
  const pids = new Set<number>();
  for (const top of cgroupDirs(cgroupPath)) {
    for (const d of walkDirs(top)) {
      try {
        for (const line of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) {
          if (/^\d+$/.test(line)) pids.add(Number(line));
        }
      } catch {
        // cgroup vanished meanwhile
      }
    }
  }
  return [...pids];
}

/** Removes a cgroup in every controller, children first. Fails silently on busy groups. */
export function removeCgroup(cgroupPath: string): void {
  for (const top of cgroupDirs(cgroupPath)) {
    for (const d of walkDirs(top)) {
      try {
        fs.rmdirSync(d);
      } catch {
        // still has tasks, or already gone
      }
    }
  }
}

export function signalPids(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Waits until none of pids is alive; returns the survivors after timeoutMs. */
export async function waitGone(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter(isAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await sleep(20);
    alive = alive.filter(isAlive);
  }
  return alive;
}

/**
 * The fields of /proc/<pid>/stat after the command name (which may hold spaces): [0] is the state
 * (field 3 of stat(5)), so field N of stat(5) is [N - 3]; undefined once the process is gone.
 */
export function procStat(pid: number | string): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // gone meanwhile
  }
}

/** Pids whose process group is pgid (field 5 of /proc/<pid>/stat), zombies too. */
export function pidsInProcessGroup(pgid: number): number[] {
  return allPids().filter((pid) => Number(procStat(pid)?.[2]) === pgid);
}

/**
 * SIGKILLs the process group pgid (a child spawned with `detached: true`: its pid) until no process of it
 * is alive, the leader too if it is still there; answers the survivors after timeoutMs. A tool the process
 * ran (losetup, mount, btrfs) dies with it instead of outliving the teardown that then removes its pool.
 * The group is read back before each signal, so a pid reused after the group is gone is never signalled.
 */
export async function killProcessGroup(pgid: number | undefined, timeoutMs = 15_000): Promise<number[]> {
  if (pgid === undefined) return [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const alive = pidsInProcessGroup(pgid).filter(isAlive);
    if (alive.length === 0) return [];
    if (Date.now() > deadline) return alive;
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // every member exited meanwhile
    }
    await waitGone(alive, Math.min(1_000, Math.max(0, deadline - Date.now())));
  }
}

/** killProcessGroup for each group at once (undefined ones skipped); answers all their survivors. */
export async function killProcessGroups(pgids: Iterable<number | undefined>, timeoutMs = 15_000): Promise<number[]> {
  const each = await Promise.all([...pgids].map((g) => killProcessGroup(g, timeoutMs)));
  return each.flat();
}

export function readPidFile(file: string): number | undefined {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** SIGTERM (or the given signal), then SIGKILL after graceMs; returns once the process is gone. */
export async function stopPid(
  pid: number | undefined,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 5_000,
): Promise<void> {
  if (pid === undefined || !isAlive(pid)) return;
  signalPids([pid], signal);
  if (signal === 'SIGKILL') {
    await waitGone([pid], 5_000);
    return;
  }
  const left = await waitGone([pid], graceMs);
  if (left.length > 0) {
    signalPids(left, 'SIGKILL');
    await waitGone(left, 5_000);
  }
}
