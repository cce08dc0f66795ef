import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { StorageError } from './BlockDeviceApi';

export interface PoolLockOptions {
  /** Give up (BACKEND_ERROR) after waiting this long for another holder. */
  readonly timeoutMs?: number;
  /**
   * How the kernel lock is taken: 'helper' (default) keeps one long-lived perl
   * process per lock that takes and drops flock(2) on request; 'flock' spawns
   * flock(1) for every critical section. 'helper' falls back to 'flock' when
   * perl cannot be run.
   */
  readonly mode?: 'helper' | 'flock';
}

/**
 * The helper: holds the lock file open and answers each "lock <seconds>" /
 * "unlock" line on stdin with one line. It exits at end of input, which is
 * also what happens when we are killed with SIGKILL, and the kernel drops the
 * flock with its last descriptor. A blocked "lock" is bounded by alarm(2).
 */
const HELPER_SCRIPT = `
use strict; use Fcntl qw(:flock);
open(my $fh, '>>', $ARGV[0]) or die "cannot open $ARGV[0]: $!\\n";
$| = 1;
while (my $line = <STDIN>) {
  if ($line =~ /^lock (\\d+)/) {
    my $seconds = $1;
    my $ok = eval { local $SIG{ALRM} = sub { die "timeout\\n" }; alarm $seconds; my $r = flock($fh, LOCK_EX); alarm 0; $r };
    alarm 0;
    print $ok ? "locked\\n" : "timeout\\n";
  } elsif ($line =~ /^unlock/) {
    flock($fh, LOCK_UN);
    print "unlocked\\n";
  }
}
`;

interface Helper {
  readonly child: ChildProcessWithoutNullStreams;
  /** One resolver per command sent, answered in order. */
  readonly replies: Array<(line: string | Error) => void>;
  stderr: string;
}

/**
 * A cross-process exclusive lock on a file, shared by every agent that uses the
 * same pool directory (simulated hosts on one kernel, or hosts on a shared
 * filesystem that supports flock).
 *
 * Node has no flock(2), so a helper process takes the kernel lock for us and
 * keeps it while it waits on a pipe from us. The kernel drops the lock when the
 * helper exits, and the helper exits as soon as the pipe closes, which also
 * happens when we are killed with SIGKILL. So a dead holder can never leave the
 * pool locked, and there is no pid file to go stale. One long-lived helper per
 * lock makes a critical section cost a pipe round trip instead of a process.
 */
export class PoolLock {
  private queue: Promise<void> = Promise.resolve();
  private readonly timeoutMs: number;
  private mode: 'helper' | 'flock';
  /** The helper process (being started, or running); forgotten when it dies. */
  private helper: Promise<Helper> | undefined;

  constructor(
    readonly path: string,
    options: PoolLockOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.mode = options.mode ?? 'helper';
  }

  /** Runs fn while holding the lock. */
  async withLock<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      await release();
    }
  }

  /**
   * Takes the kernel lock; resolves with a function that releases it. Callers
   * within one process queue here first, so only one of them waits in the kernel.
   */
  acquire(): Promise<() => Promise<void>> {
    const before = this.queue;
    let done!: () => void;
    this.queue = new Promise<void>((resolve) => (done = resolve));
    return before.then(() => this.take()).then(
      (release) => {
        let released = false;
        return async () => {
          if (released) return;
          released = true;
          try {
            await release();
          } finally {
            done();
          }
        };
      },
      (e: unknown) => {
        done();
        throw e;
      },
    );
  }

  private async take(): Promise<() => Promise<void>> {
    // Create the lock file ourselves so a missing directory gives a clear error.
    try {
      closeSync(openSync(this.path, 'a'));
    } catch (e) {
      throw new StorageError('BACKEND_ERROR', `cannot open lock file ${this.path}: ${(e as Error).message}`);
    }
    if (this.mode === 'helper') {
      try {
        return await this.acquireWithHelper();
      } catch (e) {
        if (!(e instanceof HelperUnavailable)) throw e;
        this.mode = 'flock';
      }
    }
    return this.acquireWithFlock();
  }

  private waitSeconds(): number {
    return Math.max(1, Math.ceil(this.timeoutMs / 1000));
  }

  private async acquireWithHelper(): Promise<() => Promise<void>> {
    const helper = await (this.helper ?? this.startHelper());
    const answer = await this.send(helper, `lock ${this.waitSeconds()}`);
    if (answer !== 'locked') {
      throw new StorageError('BACKEND_ERROR', `timed out after ${this.waitSeconds()}s waiting for the storage pool lock ${this.path}`);
    }
    return async () => {
      // Not awaited: the next command queues behind it in the pipe, and if the
      // helper died instead, its lock died with it.
      this.send(helper, 'unlock').catch(() => undefined);
    };
  }

  /** Sends one command line; resolves with the helper's one-line answer. */
  private send(helper: Helper, command: string): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      helper.replies.push((line) => (line instanceof Error ? reject(line) : resolve(line)));
      this.setRef(helper, true);
      helper.child.stdin.write(`${command}\n`);
    });
  }

  /** An idle helper must not keep the process alive; a waiting one must. */
  private setRef(helper: Helper, ref: boolean): void {
    if (ref) helper.child.ref();
    else helper.child.unref();
    // The pipes are sockets; they hold the event loop too.
    for (const pipe of [helper.child.stdin, helper.child.stdout, helper.child.stderr]) {
      if (!(pipe instanceof Socket)) continue;
      if (ref) pipe.ref();
      else pipe.unref();
    }
  }

  private startHelper(): Promise<Helper> {
    const child = spawn('perl', ['-e', HELPER_SCRIPT, this.path], { stdio: ['pipe', 'pipe', 'pipe'] });
    const helper: Helper = { child, replies: [], stderr: '' };
    const started = new Promise<Helper>((resolve, reject) => {
      child.once('spawn', () => resolve(helper));
      child.once('error', (e: NodeJS.ErrnoException) => {
        forget();
        if (e.code === 'ENOENT') reject(new HelperUnavailable());
        else reject(new StorageError('BACKEND_ERROR', `cannot run the lock helper for ${this.path}: ${e.message}`));
      });
    });
    const forget = (): void => {
      if (this.helper === started) this.helper = undefined;
    };
    this.helper = started;
    let buffered = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (helper.stderr += d));
    child.stdin.on('error', () => undefined); // EPIPE after the helper died: 'close' reports it
    child.stdout.on('data', (d: string) => {
      buffered += d;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        helper.replies.shift()?.(line);
      }
      if (helper.replies.length === 0) this.setRef(helper, false);
    });
    child.once('close', (code) => {
      forget();
      const failure = new StorageError('BACKEND_ERROR', `the lock helper for ${this.path} exited with ${code}: ${helper.stderr.trim() || 'no output'}`);
      for (const reply of helper.replies.splice(0)) reply(failure);
    });
    return started;
  }

  private acquireWithFlock(): Promise<() => Promise<void>> {
    const waitSeconds = this.waitSeconds();
    return new Promise((resolve, reject) => {
      const child = spawn(
        'flock',
        ['--exclusive', '--wait', String(waitSeconds), '--conflict-exit-code', '75', this.path, 'sh', '-c', 'echo locked; read _'],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      let locked = false;
      const exited = new Promise<void>((done) => child.once('close', () => done()));
      child.stdout.setEncoding('utf8');
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (d: string) => (stderr += d));
      // EPIPE when the helper already went away: nothing to release then.
      child.stdin.on('error', () => undefined);
      child.stdout.on('data', (d: string) => {
        stdout += d;
        if (!locked && stdout.includes('locked')) {
          locked = true;
          resolve(async () => {
            child.stdin.end();
            await exited;
          });
        }
      });
      child.once('error', (e) => {
        reject(new StorageError('BACKEND_ERROR', `cannot run flock(1) for ${this.path}: ${e.message} (util-linux needed)`));
      });
      child.once('close', (code) => {
        if (locked) return;
        reject(
          new StorageError(
            'BACKEND_ERROR',
            code === 75
              ? `timed out after ${waitSeconds}s waiting for the storage pool lock ${this.path}`
              : `flock(1) on ${this.path} exited with ${code}: ${stderr.trim() || 'no output'}`,
          ),
        );
      });
    });
  }
}

class HelperUnavailable extends Error {}
