import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { StorageError } from './BlockDeviceApi';

export interface PoolLockOptions {
  /** Give up (BACKEND_ERROR) after waiting this long for another holder. */
  readonly timeoutMs?: number;
}

/**
 * A cross-process exclusive lock on a file, shared by every agent that uses the
 * same pool directory (simulated hosts on one kernel, or hosts on a shared
 * filesystem that supports flock).
 *
 * Node has no flock(2), so a helper `flock(1)` process (util-linux) takes the
 * kernel lock and keeps it while it waits on a pipe from us. The kernel drops
 * the lock when the helper exits, and the helper exits as soon as the pipe
 * closes — which also happens when we are killed with SIGKILL. So a dead
 * holder can never leave the pool locked, and there is no pid file to go stale.
 */
export class PoolLock {
  private queue: Promise<void> = Promise.resolve();
  private readonly timeoutMs: number;

  constructor(
    readonly path: string,
    options: PoolLockOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 60_000;
  }

  /** Runs fn while holding the lock; calls within one process are queued first so only one helper waits at a time. */
  withLock<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      const release = await this.acquire();
      try {
        return await fn();
      } finally {
        await release();
      }
    });
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Takes the kernel lock; resolves with a function that releases it. */
  acquire(): Promise<() => Promise<void>> {
    // Create the lock file ourselves so a missing directory gives a clear error.
    try {
      closeSync(openSync(this.path, 'a'));
    } catch (e) {
      return Promise.reject(
        new StorageError('BACKEND_ERROR', `cannot open lock file ${this.path}: ${(e as Error).message}`),
      );
    }
    const waitSeconds = Math.max(1, Math.ceil(this.timeoutMs / 1000));
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
