/** Streaming processes (send, receive) and this host's mounts, as the local engines use them. */
import { spawn } from 'node:child_process';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { formatCommand } from '../exec';
import { LocalStorageError } from './engine';

/** A running program whose stdin and stdout carry a stream. */
export interface StreamProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  /** Resolves when it exited 0; rejects with TRANSFER_FAILED and its stderr otherwise. */
  readonly done: Promise<void>;
  readonly kill: () => void;
}

/** Injected where the engines spawn, so unit tests can assert the argv. */
export type SpawnFn = (file: string, args: readonly string[]) => StreamProcess;

export const spawnProcess: SpawnFn = (file, args) => {
  const child = spawn(file, [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    if (stderr.length < 64 * 1024) stderr += d;
  });
  // EPIPE when the program exits before reading everything: its exit status says why.
  child.stdin.on('error', () => undefined);
  const done = new Promise<void>((resolve, reject) => {
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

/**
 * The mounts of every mount namespace on this host (one process per namespace read): a
 * container's mounts are in its own namespace, invisible in /proc/self/mountinfo.
 */
export const readAllNamespaceMounts: ReadMounts = async () => {
  const seen = new Set<string>();
  const out: MountInfoEntry[] = [];
  for (const pid of (await readdir('/proc')).filter((e) => /^\d+$/.test(e))) {
    try {
      const ns = await readlink(`/proc/${pid}/ns/mnt`);
      if (seen.has(ns)) continue;
      seen.add(ns);
      out.push(...parseMountInfoWithRoot(await readFile(`/proc/${pid}/mountinfo`, 'utf8')));
    } catch {
      // The process ended meanwhile, or is not ours to read.
    }
  }
  return out;
};
