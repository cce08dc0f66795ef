/** Streaming processes (send, receive) and this host's mounts, as the local engines use them. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { debuglog, promisify } from 'node:util';
import { errorMessage } from '@flocker/runtime';
import { formatCommand } from '../exec';
import { BufferPool, FRAME_HEADROOM, markPooled } from './bufferPool';
import { LocalStorageError } from './engine';

/** A running program whose stdin and stdout carry a stream. */
export interface StreamProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  /** Resolves when it exited 0; rejects with TRANSFER_FAILED and its stderr otherwise. */
  readonly done: Promise<void>;
  readonly kill: () => void;
}

export interface SpawnOptions {
  /**
   * A sender (btrfs send): no stdin, and stdout is read into pooled 1-MiB buffers (see
   * spawnPooledOutput); the stream is marked pooled, its consumer releases each chunk once written.
   */
  readonly pooledStdout?: boolean;
}

/** Injected where the engines spawn, so unit tests can assert the argv. */
export type SpawnFn = (file: string, args: readonly string[], options?: SpawnOptions) => StreamProcess;

export const spawnProcess: SpawnFn = (file, args, options) => {
  if (options?.pooledStdout === true) return spawnPooledOutput(file, args);
  const child = spawn(file, [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  // EPIPE when the program exits before reading everything: its exit status says why.
  child.stdin.on('error', () => undefined);
  const done = exitOf(child, file, args);
  // Node resumes (discards) a child's unread stdout when the child exits: what it wrote is kept here
  // until the caller reads it (with backpressure on the child meanwhile).
  const stdout = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
  child.stdout.pipe(stdout);
  const kill = (): void => {
    child.kill('SIGKILL');
    // 'close' (and so `done`) waits for stdout to end: unread and paused (a peer that stopped taking
    // the stream), it never would, and a caller awaiting `done` after the kill would wait forever.
    child.stdout.destroy();
    stdout.destroy();
  };
  return { stdin: child.stdin, stdout, done, kill };
};

/** Resolves when the program exited 0; rejects with its stderr otherwise. */
function exitOf(child: ChildProcess, file: string, args: readonly string[]): Promise<void> {
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    if (stderr.length < 64 * 1024) stderr += d;
  });
  return new Promise<void>((resolve, reject) => {
    child.once('error', (e) =>
      reject(new LocalStorageError('POOL_UNAVAILABLE', `cannot run ${file}: ${e.message} (is it installed?)`)),
    );
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new LocalStorageError(
            'TRANSFER_FAILED',
            `\`${formatCommand(file, args)}\` ${signal !== null ? `was killed by ${signal}` : `exited with ${code}`}: ${stderr.trim() || 'no output'}`,
          ),
        );
    });
  });
}

const execFileAsync = promisify(execFile);
/** A pipe read returns at most this much (the pipe's default capacity): a buffer with less room left is passed on. */
const PIPE_READ = 64 * 1024;
/** What the sender's FIFO is grown to hold (a pooled buffer's worth): fewer, larger reads, fewer wake-ups of both sides. */
export const FIFO_BYTES = 1024 * 1024;
/** fcntl(2) F_SETPIPE_SZ on Linux (F_LINUX_SPECIFIC_BASE + 7). */
const F_SETPIPE_SZ = 1031;

/**
 * Grows a pipe we hold open to `bytes` (F_SETPIPE_SZ), not awaited: Node has no fcntl(2), so perl
 * reopens it through /proc and sets the size, which belongs to the pipe, not to an open file. The
 * sender may already be writing (a larger size only adds room). Where perl is missing or the size
 * is refused (fs.pipe-max-size), the pipe keeps its 64 KiB: the transfer is only slower. Resolves
 * with perl's exit code (tests), or null when it could not run.
 */
export function growPipe(fd: number, bytes = FIFO_BYTES): Promise<number | null> {
  return new Promise((resolve) => {
    const p = spawn(
      'perl',
      [
        '-e',
        `open(my $f, '+<', $ARGV[0]) or exit 1; fcntl($f, ${F_SETPIPE_SZ}, $ARGV[1] + 0) or exit 2`,
        `/proc/${process.pid}/fd/${fd}`,
        String(bytes),
      ],
      { stdio: 'ignore' },
    );
    p.once('error', () => resolve(null));
    p.once('exit', (code) => resolve(code));
  });
}

/**
 * Runs a sender with its stdout on a FIFO that is read straight into pooled 1-MiB buffers (a
 * socket's onread: no fresh buffer per read, one chunk per MiB instead of ~30). A chunk is passed
 * on when its buffer is (nearly) full or the program's output ended; the buffer goes back to the
 * pool only when the consumer releases it (releaserOf(stdout)) after its write completed. Node
 * cannot make a pipe with a chosen read buffer, so a FIFO is made (in a private temporary
 * directory, removed at once); its read end is opened first (non-blocking), so opening the write
 * end for the program never waits.
 */
function spawnPooledOutput(file: string, args: readonly string[]): StreamProcess {
  const pool = new BufferPool();
  let source: Socket | null = null;
  let child: ChildProcess | null = null;
  let killed = false;
  const stdout = markPooled(
    new Readable({
      // Two chunks queued (1 MiB each) before the FIFO is paused.
      highWaterMark: 2 * pool.size,
      read: () => source?.resume(),
    }),
    (chunk) => pool.release(chunk),
    FRAME_HEADROOM,
  );
  let current = pool.acquire();
  /** Bytes read into current, after its headroom. */
  let filled = 0;
  const passOn = (): boolean => {
    const chunk = current.subarray(FRAME_HEADROOM, FRAME_HEADROOM + filled);
    current = pool.acquire();
    filled = 0;
    return stdout.push(chunk);
  };
  const start = async (): Promise<void> => {
    const dir = await mkdtemp(join(tmpdir(), 'flocker-send-'));
    let readFd: number;
    let writeFd: number;
    try {
      const fifo = join(dir, 'out');
      await execFileAsync('mkfifo', ['-m', '600', fifo]);
      readFd = openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
      writeFd = openSync(fifo, fsConstants.O_WRONLY);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    if (killed) {
      closeSync(readFd);
      closeSync(writeFd);
      throw new LocalStorageError('TRANSFER_FAILED', `\`${formatCommand(file, args)}\` was stopped before it ran`);
    }
    void growPipe(readFd);
    const proc = spawn(file, [...args], { stdio: ['ignore', writeFd, 'pipe'] });
    child = proc;
    closeSync(writeFd);
    const exited = exitOf(proc, file, args);
    source = new Socket({
      fd: readFd,
      readable: true,
      writable: false,
      onread: {
        buffer: () => current.subarray(FRAME_HEADROOM + filled),
        callback: (n: number) => {
          filled += n;
          // false pauses the FIFO until the stream is read again (read() resumes it).
          return current.length - FRAME_HEADROOM - filled >= PIPE_READ || passOn();
        },
      },
    });
    let readFailure: Error | null = null;
    source.once('end', () => {
      if (filled > 0) passOn();
      stdout.push(null);
    });
    source.once('error', (e) => {
      readFailure = e;
      stdout.push(null);
    });
    await exited;
    if (readFailure !== null)
      throw new LocalStorageError('TRANSFER_FAILED', `reading the output of ${file}: ${errorMessage(readFailure)}`);
  };
  const done = start();
  // As with a piped stdout: the stream only ends (never an 'error' nobody may listen for any more);
  // `done` says whether what it carried is complete, and only then is it sent as such.
  done.catch(() => {
    if (child === null) stdout.push(null);
  });
  const kill = (): void => {
    killed = true;
    child?.kill('SIGKILL');
    source?.destroy();
    stdout.destroy();
  };
  const stdin = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  return { stdin, stdout, done, kill };
}

/** One line of /proc/self/mountinfo, with the root of the mount inside its file system (bind mounts). */
export interface MountInfoEntry {
  readonly majorMinor: string;
  /** The directory of the file system that is mounted (a subvolume's path for a bind mount of it). */
  readonly root: string;
  readonly mountPoint: string;
  readonly fstype: string;
  readonly source: string;
}

const unescape = (s: string): string =>
  s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));

export function parseMountInfoWithRoot(text: string): MountInfoEntry[] {
  const entries: MountInfoEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const sep = fields.indexOf('-', 6);
    if (sep < 0 || fields.length < sep + 3) continue;
    entries.push({
      majorMinor: fields[2] ?? '',
      root: unescape(fields[3] ?? ''),
      mountPoint: unescape(fields[4] ?? ''),
      fstype: fields[sep + 1] ?? '',
      source: unescape(fields[sep + 2] ?? ''),
    });
  }
  return entries;
}

export type ReadMounts = () => Promise<MountInfoEntry[]>;

export const readMounts: ReadMounts = async () =>
  parseMountInfoWithRoot(await readFile('/proc/self/mountinfo', 'utf8'));

/** What the scan of every mount namespace reads of /proc (a seam for tests). */
export interface ProcReader {
  readonly pids: () => Promise<string[]>;
  /** The thread ids of a process (/proc/<pid>/task). */
  readonly tasks: (pid: string) => Promise<string[]>;
  /** The link naming the mount namespace of a process, or of one of its threads (/proc/<pid>/task/<tid>/ns/mnt). */
  readonly mountNamespace: (pid: string, tid?: string) => Promise<string>;
  readonly mountInfo: (pid: string, tid?: string) => Promise<string>;
  /** Its root directory (/proc/<pid>/root): "/" unless chrooted, also in another mount namespace. */
  readonly root: (pid: string, tid?: string) => Promise<string>;
  /**
   * The whole mount table of the namespace of a process, read from inside it (setns: root at the
   * namespace's "/"), with the link of the namespace entered; for a namespace whose processes are all chrooted.
   */
  readonly enterMountInfo: (pid: string, tid?: string) => Promise<{ namespace: string; text: string }>;
  /** Why this process cannot see every process of the host (see namespaceBlindness), null when it can. */
  readonly blindness: () => Promise<string | null>;
}

/** What one scan met, logged (debug) after each. */
export interface ScanStats {
  readonly processes: number;
  /** Namespaces read (by their link). */
  readonly namespaces: number;
  /** Processes whose namespace link was refused (EACCES, EPERM) and whose mounts were read without it. */
  readonly linkUnreadable: number;
  /** Processes (and all their threads) that ended before they could be read. */
  readonly gone: number;
  /** Listings of /proc (more than one when processes ended before their namespace was read). */
  readonly passes: number;
  /** Namespaces whose every process read was chrooted, read by entering them. */
  readonly entered: number;
}

/**
 * The scan could not read every mount namespace, so "no mount of the dataset" would be a guess: a
 * move's release and a retire are refused (the caller fails, the agent tries again later).
 */
export class NamespaceScanError extends Error {
  readonly code = 'NAMESPACE_SCAN_INCOMPLETE';
  constructor(message: string) {
    super(message);
    this.name = 'NamespaceScanError';
  }
}

/**
 * Why a process with these /proc/self/uid_map and /proc/self/status cannot see every container, or
 * null. In a user namespace other than the initial one, the processes of the host and of other user
 * namespaces refuse their namespace links (EACCES) and more; in a PID namespace of its own (NSpid with
 * more than one id), the processes outside are not listed at all.
 */
export function namespaceBlindness(uidMap: string, status: string): string | null {
  const map = uidMap
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  if (map.length !== 1 || map[0]?.split(/\s+/).join(' ') !== '0 0 4294967295')
    return `this agent runs in a user namespace (uid_map ${JSON.stringify(map.join('; '))}): the mounts of other containers cannot all be read, so whether a dataset is still mounted in one cannot be known; run the agent in the host's user namespace`;
  const nspid = /^NSpid:\s*(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/);
  if (nspid === undefined || nspid.length !== 1)
    return `this agent runs in a PID namespace of its own (NSpid ${nspid === undefined ? 'not given' : nspid.join(' ')}): the processes of other containers are not listed, so whether a dataset is still mounted in one cannot be known; run the agent in the host's PID namespace`;
  return null;
}

/** Read once per agent process (the namespaces a process runs in do not change under it); a failed read is tried again. */
let blindnessOnce: Promise<string | null> | undefined;

/** setns(2) by architecture (Node has no setns: perl's syscall() makes it). */
const SETNS: Partial<Record<string, number>> = {
  x64: 308,
  arm64: 268,
  riscv64: 268,
  arm: 375,
  ia32: 346,
  ppc64: 350,
  s390x: 339,
};

/**
 * Enters the mount namespace of $ARGV[0] (setns puts root and cwd at its "/", LOOKUP_DOWN), then reads
 * /proc/self through the host's /proc opened before (the namespace may have no /proc, and nothing is
 * run inside it). Prints the link of the namespace entered, then its whole table. Exit 11: the link
 * could not be opened (3 when the process ended).
 */
const ENTER_SCRIPT = `use strict;
my ($ns, $nr) = @ARGV;
opendir(my $proc, '/proc') or exit 10;
open(my $f, '<', $ns) or exit(($!{ENOENT} || $!{ESRCH}) ? 3 : 11);
syscall($nr + 0, fileno($f), 0x20000) == 0 or exit 12;
chdir($proc) or exit 13;
my $link = readlink('self/ns/mnt');
defined($link) or exit 14;
open(my $m, '<', 'self/mountinfo') or exit 15;
local $/;
my $t = <$m>;
print "$link\\n$t";
`;

/** Exit status of ENTER_SCRIPT when the process ended before its namespace could be opened. */
const ENTER_GONE = 3;

/**
 * What a failed ENTER_SCRIPT run is to the scan: the process gone (ENOENT, as a /proc read of it), or
 * the scan incomplete, saying what to do where that is known (no perl).
 */
export function enterFailure(pid: string, e: unknown): Error {
  const code = (e as { code?: unknown }).code;
  if (code === ENTER_GONE) return Object.assign(new Error(`${pid} ended`), { code: 'ENOENT' });
  // The spawn's own ENOENT (perl's exit codes are numbers): not "spawn perl ENOENT" but what to do.
  if (code === 'ENOENT')
    return new NamespaceScanError(
      `perl is not installed: the local agent reads the mount namespace of process ${pid}, whose processes are all chrooted, ` +
        'from inside it with perl; install it (Debian/Ubuntu: perl-base)',
    );
  return new NamespaceScanError(
    `cannot read the mount namespace of process ${pid} from inside it (perl): ${errorMessage(e)}`,
  );
}

async function enterMountInfo(pid: string, tid?: string): Promise<{ namespace: string; text: string }> {
  const nr = SETNS[process.arch];
  if (nr === undefined)
    throw new NamespaceScanError(`cannot enter a mount namespace on ${process.arch} (no setns number)`);
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync('perl', ['-e', ENTER_SCRIPT, `${procDir(pid, tid)}/ns/mnt`, String(nr)], {
      maxBuffer: 64 * 1024 * 1024,
    }));
  } catch (e) {
    throw enterFailure(pid, e);
  }
  const nl = stdout.indexOf('\n');
  return { namespace: stdout.slice(0, nl), text: stdout.slice(nl + 1) };
}

/** /proc as the scan reads it. */
export const hostProc: ProcReader = {
  pids: async () => (await readdir('/proc')).filter((e) => /^\d+$/.test(e)),
  tasks: (pid) => readdir(`/proc/${pid}/task`),
  mountNamespace: (pid, tid) => readlink(`${procDir(pid, tid)}/ns/mnt`),
  mountInfo: (pid, tid) => readFile(`${procDir(pid, tid)}/mountinfo`, 'utf8'),
  root: (pid, tid) => readlink(`${procDir(pid, tid)}/root`),
  enterMountInfo,
  blindness: () => {
    blindnessOnce ??= Promise.all([readFile('/proc/self/uid_map', 'utf8'), readFile('/proc/self/status', 'utf8')]).then(
      ([uidMap, status]) => namespaceBlindness(uidMap, status),
    );
    blindnessOnce.catch(() => {
      blindnessOnce = undefined;
    });
    return blindnessOnce;
  },
};

const procDir = (pid: string, tid?: string): string =>
  tid === undefined ? `/proc/${pid}` : `/proc/${pid}/task/${tid}`;

/** Reads of one process whose namespace link changed under them before the scan gives up (pid reuse, setns). */
const LINK_TRIES = 3;
/** Listings of /proc before a scan that keeps meeting processes ending before their namespace was read gives up. */
export const SCAN_PASSES = 5;

/**
 * 'gone': ended before its namespace link was read; 'ended': after (the namespace is known, and
 * recorded unread); 'unseen': chrooted, recorded unread.
 */
type ProcessRead = 'read' | 'seen' | 'gone' | 'ended' | 'unseen';

/**
 * The mounts of every mount namespace, one process (not chrooted) read per namespace. A process's
 * mountinfo lists only the mounts reachable from its root: a chrooted process's table is taken but
 * does not stand for its namespace (RV3 1); a namespace whose processes read were all chrooted is
 * entered and read whole. /proc is listed again while processes ended before their namespace was
 * read (the namespace may live on in a child not listed, RV3 2): a pass reads only the pids new in
 * its listing (a number is reused only after the allocator wrapped pid_max, not within a scan).
 * Fails (NamespaceScanError) rather than miss a namespace.
 */
export async function readNamespaceMounts(
  proc: ProcReader,
  onScan?: (stats: ScanStats) => void,
): Promise<MountInfoEntry[]> {
  const blind = await proc.blindness();
  if (blind !== null) throw new NamespaceScanError(blind);
  const seen = new Set<string>();
  /** Mount tables already taken (the same table read twice, e.g. through a refused link, is taken once). */
  const tables = new Set<string>();
  const out: MountInfoEntry[] = [];
  let linkUnreadable = 0;
  let gone = 0;
  let entered = 0;
  const take = (text: string, entries?: MountInfoEntry[]): void => {
    if (tables.has(text)) return;
    tables.add(text);
    out.push(...(entries ?? parseMountInfoWithRoot(text)));
  };
  /** Per namespace not read yet: its chrooted processes (to enter it through), and whether one ended unread. */
  const unread = new Map<string, { chrooted: { pid: string; tid?: string; root: string }[]; ended: boolean }>();
  const unreadOf = (ns: string) => {
    let u = unread.get(ns);
    if (u === undefined) unread.set(ns, (u = { chrooted: [], ended: false }));
    return u;
  };

  /** One process (or one thread of it): its namespace read, already seen, or not (ended, or chrooted). */
  const readProcess = async (pid: string, tid?: string): Promise<ProcessRead> => {
    const who = tid === undefined ? `process ${pid}` : `thread ${tid} of process ${pid}`;
    /** A mount table that could not be read: ended (gone), or fails the scan (EACCES, EMFILE, EIO). */
    const mountInfo = async (): Promise<string | null> => {
      try {
        return await proc.mountInfo(pid, tid);
      } catch (e) {
        if (ended(e)) return null;
        if (denied(e)) throw new NamespaceScanError(`the mounts of ${who} cannot be read: ${errorMessage(e)}`);
        throw e;
      }
    };
    for (let attempt = 0; attempt < LINK_TRIES; attempt++) {
      let ns: string;
      try {
        ns = await proc.mountNamespace(pid, tid);
      } catch (e) {
        if (ended(e)) return 'gone';
        if (!denied(e)) throw e;
        // The link needs ptrace access (the sandbox's pid 1 refuses it even to root), the mount table
        // does not: read, not deduplicated by namespace. Both refused fails the scan (mountInfo).
        const text = await mountInfo();
        if (text === null) return 'gone';
        linkUnreadable++;
        take(text);
        return 'read';
      }
      if (seen.has(ns)) return 'seen';
      // Read before marked: a process that ends between its reads (a container's short-lived child)
      // must not leave its namespace unread, its other processes skipped (U2 finding 1).
      const text = await mountInfo();
      if (text === null) {
        unreadOf(ns).ended = true;
        return 'ended';
      }
      // Marked read only if the link is unchanged after the table was read: the pid may have been
      // reused (RV 5). The table is some process's at this pid, so taken whatever the link says (more
      // mounts never hide one), parsed while the link is read again. The root is read after the
      // table too: the table is whole only if the root was the namespace's "/" when it was read.
      const relink = Promise.allSettled([proc.mountNamespace(pid, tid), proc.root(pid, tid)]);
      const entries = parseMountInfoWithRoot(text);
      take(text, entries);
      const [again, root] = await relink;
      if (again.status === 'rejected') {
        if (ended(again.reason)) {
          unreadOf(ns).ended = true;
          return 'ended';
        }
        if (denied(again.reason)) continue;
        throw again.reason;
      }
      if (again.value !== ns) continue;
      // A chrooted process reads "/" only if its root is a detached mount's (its table then lists no
      // mount at "/"): a table without "/" never stands for its namespace.
      const whole = root.status === 'fulfilled' && root.value === '/' && entries.some((m) => m.mountPoint === '/');
      if (whole) {
        seen.add(ns);
        unread.delete(ns);
        return 'read';
      }
      if (root.status === 'rejected' && ended(root.reason)) {
        unreadOf(ns).ended = true;
        return 'ended';
      }
      // Chrooted (or its root refused): its namespace is read through another process, or entered.
      unreadOf(ns).chrooted.push({
        pid,
        tid,
        root: root.status === 'fulfilled' ? root.value : `unreadable (${errorMessage(root.reason)})`,
      });
      return 'unseen';
    }
    throw new NamespaceScanError(`the mount namespace of ${who} changed under ${LINK_TRIES} reads of its mounts`);
  };

  /** A namespace whose processes read were all chrooted: read whole from inside, through one of them. */
  const enter = async (
    ns: string,
    chrooted: readonly { pid: string; tid?: string; root: string }[],
  ): Promise<boolean> => {
    for (const c of chrooted) {
      let got: { namespace: string; text: string };
      try {
        got = await proc.enterMountInfo(c.pid, c.tid);
      } catch (e) {
        if (ended(e)) continue;
        throw e instanceof NamespaceScanError
          ? new NamespaceScanError(
              `every process of mount namespace ${ns} read is chrooted (process ${c.pid}, root ${c.root}), so its mount table is partial, and it could not be read whole: ${e.message}`,
            )
          : e;
      }
      // Another namespace (the pid reused): its table is taken all the same, ns stays unread.
      take(got.text);
      if (got.namespace === ns) {
        seen.add(ns);
        entered++;
        return true;
      }
    }
    return false;
  };

  /** Pids listed by an earlier pass: read (or gone) already. */
  const listed = new Set<string>();
  let processes = 0;
  for (let pass = 1; ; pass++) {
    const pids = (await proc.pids()).filter((pid) => !listed.has(pid));
    processes += pids.length;
    /** Processes of this pass that ended before their namespace link was read (namespace unknown). */
    let endedUnknown = 0;
    for (const pid of pids) {
      listed.add(pid);
      let result = await readProcess(pid);
      if (result !== 'gone' && result !== 'ended') continue;
      // /proc lists thread-group ids only: a leader that called pthread_exit is a zombie (its link and
      // table fail) while its other threads run on, maybe the namespace's only ones (RV 5).
      let unknown = result === 'gone';
      for (const tid of await liveTasks(proc, pid)) {
        result = await readProcess(pid, tid);
        if (result !== 'gone' && result !== 'ended') break;
        unknown &&= result === 'gone';
      }
      if (result === 'gone' || result === 'ended') {
        gone++;
        if (unknown) endedUnknown++;
      }
    }
    let endedUnread = 0;
    for (const [ns, u] of unread) {
      if (seen.has(ns) || (await enter(ns, u.chrooted))) {
        unread.delete(ns);
        continue;
      }
      if (u.chrooted.length > 0 || u.ended) endedUnread++;
      // The processes that could enter it ended: only a later listing can find the namespace again.
      unread.delete(ns);
    }
    if (endedUnknown === 0 && endedUnread === 0) {
      onScan?.({ processes, namespaces: seen.size, linkUnreadable, gone, passes: pass, entered });
      return out;
    }
    if (pass === SCAN_PASSES)
      throw new NamespaceScanError(
        `processes kept ending before their mount namespace was read (${gone} in ${SCAN_PASSES} listings of /proc): a namespace they left to a child may be unread`,
      );
  }
}

/** The threads of a process other than its leader; none once it is gone. */
async function liveTasks(proc: ProcReader, pid: string): Promise<string[]> {
  try {
    return (await proc.tasks(pid)).filter((tid) => tid !== pid);
  } catch (e) {
    if (ended(e)) return [];
    throw e;
  }
}

/** The process (or thread) ended meanwhile: ENOENT, ESRCH, EINVAL (a zombie's mount table). */
function ended(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'ENOENT' || code === 'ESRCH' || code === 'EINVAL';
}

/** Not ours to read. Anything that is neither this nor ended (EMFILE, EIO) fails the scan as it is. */
function denied(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'EACCES' || code === 'EPERM';
}

const scanLog = debuglog('flocker-scan');

/**
 * The mounts of every mount namespace on this host (one process per namespace read): a
 * container's mounts are in its own namespace, invisible in /proc/self/mountinfo. Fails
 * (NamespaceScanError) rather than miss one: see readNamespaceMounts.
 */
export const readAllNamespaceMounts: ReadMounts = () =>
  readNamespaceMounts(hostProc, (s) => {
    scanLog('namespace scan: %j', s);
  });
