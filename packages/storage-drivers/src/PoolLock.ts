import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { StorageError } from './BlockDeviceApi';
import { HelperUnavailable } from './exec';
import { SysHelper, type SysHelperOptions } from './syshelper';

export interface PoolLockOptions {
  /** Give up (BACKEND_ERROR) after waiting this long for another holder. */
  readonly timeoutMs?: number;
  /**
   * How the kernel lock is taken: 'helper' (default) keeps one long-lived
   * flocker-syshelper process per lock (`--lock FILE`: it holds the file open
   * and takes and drops flock(2) on each "lock <seconds>" / "unlock" line, a
   * blocked "lock" bounded by alarm(2)); 'flock' spawns flock(1) for every
   * critical section. 'helper' falls back to 'flock' when the helper cannot run.
   */
  readonly mode?: 'helper' | 'flock';
  /** Which helper script, as seen from which architecture (tests). */
  readonly syshelper?: SysHelperOptions;
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
  private readonly helper: SysHelper;

  constructor(
    readonly path: string,
    options: PoolLockOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.mode = options.mode ?? 'helper';
    this.helper = new SysHelper(`lock helper for ${path}`, { ...options.syshelper, lockFile: path });
  }

  /** Runs fn while holding the lock. */
  /**
   * `whileWaiting` (issue 23, session 16): work to do once the lock's request is out, while the kernel lock is taken
   * (a record's temp file: its creation waits for the file system's journal, which the previous holder's rename and
   * fsync keep busy); called at most once, before `fn`, or never.
   */
  async withLock<T>(fn: () => Promise<T>, whileWaiting?: () => void): Promise<T> {
    const release = await this.acquire(whileWaiting);
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
  acquire(whileWaiting?: () => void): Promise<() => Promise<void>> {
    const before = this.queue;
    let done!: () => void;
    this.queue = new Promise<void>((resolve) => (done = resolve));
    let called = false;
    const once = (): void => {
      if (called) return;
      called = true;
      whileWaiting?.();
    };
    return before
      .then(() => this.take(once))
      .then(
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

  /**
   * Ends the lock helper once the critical sections queued so far are over (its flock goes with it). A later
   * withLock starts another, queued behind the close (review s27 F11): it runs once the old helper has exited, so a
   * lock has one helper at a time and no section is ever served by a helper being ended.
   */
  close(): Promise<void> {
    const closed = this.queue.then(() => this.helper.close());
    // A failed close (nothing to end) must not fail the sections queued after it.
    this.queue = closed.catch(() => undefined);
    return closed;
  }

  private async take(whileWaiting: () => void): Promise<() => Promise<void>> {
    // Create the lock file ourselves so a missing directory gives a clear error.
    try {
      closeSync(openSync(this.path, 'a'));
    } catch (e) {
      throw new StorageError('BACKEND_ERROR', `cannot open lock file ${this.path}: ${(e as Error).message}`);
    }
    if (this.mode === 'helper') {
      try {
        return await this.acquireWithHelper(whileWaiting);
      } catch (e) {
        if (!(e instanceof HelperUnavailable)) throw e;
        this.mode = 'flock';
      }
    }
    return this.acquireWithFlock(whileWaiting);
  }

  private waitSeconds(): number {
    return Math.max(1, Math.ceil(this.timeoutMs / 1000));
  }

  private async acquireWithHelper(whileWaiting: () => void): Promise<() => Promise<void>> {
    const answer = await this.helper.request(`lock ${this.waitSeconds()}`, whileWaiting);
    if (answer !== 'locked') {
      throw new StorageError(
        'BACKEND_ERROR',
        `timed out after ${this.waitSeconds()}s waiting for the storage pool lock ${this.path}`,
      );
    }
    return async () => {
      // Not awaited: the next request queues behind it in the pipe, and if the
      // helper died instead, its lock died with it.
      this.helper.request('unlock').catch(() => undefined);
    };
  }

  private acquireWithFlock(whileWaiting: () => void): Promise<() => Promise<void>> {
    const waitSeconds = this.waitSeconds();
    return new Promise((resolve, reject) => {
      const child = spawn(
        'flock',
        [
          '--exclusive',
          '--wait',
          String(waitSeconds),
          '--conflict-exit-code',
          '75',
          this.path,
          'sh',
          '-c',
          'echo locked; read _',
        ],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      );
      try {
        whileWaiting();
      } catch {
        // See LineHelper.request: the caller's work must not leave the lock unanswered.
      }
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
        reject(
          new StorageError('BACKEND_ERROR', `cannot run flock(1) for ${this.path}: ${e.message} (util-linux needed)`),
        );
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
