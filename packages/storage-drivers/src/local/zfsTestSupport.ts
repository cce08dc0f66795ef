/**
 * Test support for the ZFS engine, run for real: the kernel's zfs where it has the module, else
 * zfs-fuse (userspace ZFS over FUSE; Debian's 0.7, pool version 23; scripts/host-setup.sh installs
 * it). zfs-fuse has one daemon per machine, started here when none answers and left running for the
 * next test (others may be using it); each test pool lives on its own sparse file, with a unique name.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type ZfsReady = { readonly ok: true; readonly how: string } | { readonly ok: false; readonly reason: string };

const PID_FILE = '/run/zfs-fuse.pid';

function zpoolAnswers(): { ok: boolean; stderr: string } {
  const r = spawnSync('zpool', ['list', '-H', '-o', 'name'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { ok: r.status === 0, stderr: r.error !== undefined ? r.error.message : r.stderr.trim() };
}

/** Whether pid is a zfs-fuse process that has not exited. */
function zfsFuseRuns(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "<pid> (<comm>) <state> …"
    const m = /^\d+ \((.*)\) (\S)/.exec(stat);
    return m?.[1] === 'zfs-fuse' && m[2] !== 'Z';
  } catch {
    return false;
  }
}

const sleepSync = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

/**
 * Makes zfs answer: nothing to do where `zpool list` works already; else starts the zfs-fuse daemon
 * (it puts itself in the background with a pid file) and waits up to 20 s for it. Not ok, with the
 * reason, where neither can run (no zfs-fuse, no /dev/fuse, not root).
 */
export function ensureZfs(): ZfsReady {
  const first = zpoolAnswers();
  if (first.ok)
    return { ok: true, how: /\bzfs\b/.test(readFileSync('/proc/filesystems', 'utf8')) ? 'kernel zfs' : 'zfs-fuse' };
  const fuse = spawnSync('zfs-fuse', ['--help'], { stdio: 'ignore' });
  if (fuse.error !== undefined)
    return {
      ok: false,
      reason: `zfs does not answer (${first.stderr}) and there is no zfs-fuse to start (scripts/host-setup.sh installs it)`,
    };
  if (!existsSync('/dev/fuse')) return { ok: false, reason: 'zfs-fuse needs /dev/fuse, which this machine lacks' };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'starting zfs-fuse needs root' };
  // A pid file left by a daemon that is gone (or a zombie of it) stops a new one.
  if (existsSync(PID_FILE) && !zfsFuseRuns(Number(readFileSync(PID_FILE, 'utf8').trim())))
    rmSync(PID_FILE, { force: true });
  mkdirSync('/var/run/zfs', { recursive: true });
  mkdirSync('/var/lock/zfs', { recursive: true });
  // Two test files starting it at once: the second daemon cannot take the socket and exits; either answers.
  // No kstat mount: one mount less left behind by a daemon killed later.
  spawnSync('zfs-fuse', ['--pidfile', PID_FILE, '--no-kstat-mount'], { stdio: 'ignore' });
  let last = first;
  for (let waited = 0; waited < 20_000; waited += 200) {
    last = zpoolAnswers();
    if (last.ok) return { ok: true, how: 'zfs-fuse (started here)' };
    sleepSync(200);
  }
  return { ok: false, reason: `started zfs-fuse, but zpool list still fails: ${last.stderr}` };
}

export interface ZfsFilePool {
  /** The pool's name (unique: flk-<name>-<random>). */
  readonly pool: string;
  readonly image: string;
  destroy(): void;
}

const run = (file: string, args: string[]): string =>
  execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

/**
 * A new pool of `size` bytes on a sparse file under dir (zfs must answer: ensureZfs). Not in the
 * pool cache (cachefile=none): a daemon started later does not look for it; nothing of it mounted.
 */
export function makeZfsFilePool(dir: string, name: string, size = 512 * 1024 * 1024): ZfsFilePool {
  const pool = `flk-${name}-${randomUUID().slice(0, 8)}`;
  const image = join(dir, `${pool}.img`);
  writeFileSync(image, '', { flag: 'wx' });
  run('truncate', ['-s', String(size), image]);
  run('zpool', ['create', '-o', 'cachefile=none', '-m', 'none', pool, image]);
  return {
    pool,
    image,
    destroy: () => {
      // Whatever the test left mounted of it first (deepest first), then the pool.
      const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .map((l) => l.split(' '))
        .filter((f) => {
          const sep = f.indexOf('-', 6);
          const source = f[sep + 2] ?? '';
          return sep > 0 && (source === pool || source.startsWith(`${pool}/`));
        })
        .map((f) => f[4] ?? '')
        .reverse();
      for (const m of mounts) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
      spawnSync('zpool', ['destroy', '-f', pool], { stdio: 'ignore' });
      rmSync(image, { force: true });
    },
  };
}
