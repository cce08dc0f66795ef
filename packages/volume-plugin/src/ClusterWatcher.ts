/**
 * Keeps the latest cluster snapshot by long-polling the control service, so List/Get
 * answer from memory and Mount waits on events instead of polling on a timer.
 */
import type { ClusterSnapshot } from '@flocker/api';
import { errorMessage, followLongPoll } from '@flocker/runtime';
import type { Logger } from 'winston';

export type FetchSnapshot = (since?: string, timeoutMs?: number) => Promise<ClusterSnapshot>;

export class WaitTimeoutError extends Error {
  constructor(readonly last: ClusterSnapshot | undefined) {
    super('timed out');
  }
}

/** A wait given up by its caller (its signal aborted): it answered the question another way. */
export class WaitAbortedError extends Error {
  constructor() {
    super('wait given up');
  }
}

interface Waiter {
  check: (s: ClusterSnapshot) => boolean;
}

export class ClusterWatcher {
  private snapshot: ClusterSnapshot | undefined;
  /** The last long-poll answered and the next is waiting: the snapshot lags only by the push. */
  private following = false;
  private readonly waiters = new Set<Waiter>();
  private readonly listeners = new Set<(s: ClusterSnapshot) => void>();
  private readonly closing = new AbortController();
  private running: Promise<void> | undefined;
  private resolveFirst: ((s: ClusterSnapshot) => void) | undefined;
  /** Resolves with the first snapshot that arrives. */
  readonly first: Promise<ClusterSnapshot> = new Promise((resolve) => (this.resolveFirst = resolve));

  constructor(
    private readonly fetch: FetchSnapshot,
    private readonly logger: Logger,
    private readonly pollMs = 25_000,
    /** First pause after a failed long-poll; failures in a row back off (jittered) up to 5x. */
    private readonly retryMs = 1_000,
  ) {}

  current(): ClusterSnapshot | undefined {
    return this.snapshot;
  }

  /** The snapshot while the long-poll keeps it current (the control service pushes each change), else undefined. */
  followed(): ClusterSnapshot | undefined {
    return this.following ? this.snapshot : undefined;
  }

  start(): void {
    this.running ??= followLongPoll({
      wait: (since, timeoutMs) => this.fetch(since, timeoutMs),
      waitMs: this.pollMs,
      // A refresh() may have brought a newer snapshot than the last long-poll.
      since: () => this.snapshot?.generation,
      onSnapshot: (s) => {
        this.following = true;
        this.update(s);
      },
      onError: (err) => {
        this.following = false;
        this.logger.warn('cannot reach the control service; retrying', { error: errorMessage(err) });
      },
      backoff: { initialMs: this.retryMs, maxMs: 5 * this.retryMs, jitter: true },
      spinPauseMs: this.retryMs / 10,
      signal: this.closing.signal,
    });
  }

  /** Call `listener` with every snapshot from now on (long-poll or refresh); returns the unsubscribe. */
  onSnapshot(listener: (s: ClusterSnapshot) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Fetch the snapshot now (after our own writes, so readers see them at once). */
  async refresh(): Promise<ClusterSnapshot> {
    const s = await this.fetch(undefined, 0);
    this.update(s);
    return s;
  }

  /** The snapshot if we have one, else a fresh one. */
  async latest(): Promise<ClusterSnapshot> {
    return this.snapshot ?? this.refresh();
  }

  /**
   * Resolve with the first non-undefined value `select` gives for the current or a later
   * snapshot; reject with WaitTimeoutError after `timeoutMs`, or with WaitAbortedError once `signal` aborts (the
   * waiter and its timer go at once). With `recheckMs`, the current snapshot is also put to `select` again that
   * often (a select that looks beyond the snapshot, e.g. at the kernel's table, may change its answer on its own).
   */
  waitFor<T>(
    select: (s: ClusterSnapshot) => T | undefined,
    timeoutMs: number,
    signal?: AbortSignal,
    recheckMs?: number,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = {
        check: (s) => {
          const v = select(s);
          if (v === undefined) return false;
          done();
          resolve(v);
          return true;
        },
      };
      const timer = setTimeout(() => {
        done();
        reject(new WaitTimeoutError(this.snapshot));
      }, timeoutMs);
      const onAbort = () => {
        done();
        reject(new WaitAbortedError());
      };
      const recheck =
        recheckMs !== undefined
          ? setInterval(() => {
              if (this.snapshot) waiter.check(this.snapshot);
            }, recheckMs)
          : undefined;
      const done = () => {
        clearTimeout(timer);
        clearInterval(recheck);
        this.waiters.delete(waiter);
        signal?.removeEventListener('abort', onAbort);
      };
      if (signal?.aborted === true) return onAbort();
      if (this.snapshot && waiter.check(this.snapshot)) return;
      this.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async close(): Promise<void> {
    this.closing.abort();
    this.following = false;
    for (const w of this.waiters) this.waiters.delete(w);
  }

  private update(s: ClusterSnapshot): void {
    this.logger.debug('cluster snapshot', { generation: s.generation, waiters: this.waiters.size });
    this.snapshot = s;
    this.resolveFirst?.(s);
    for (const w of [...this.waiters]) w.check(s);
    for (const listener of [...this.listeners]) {
      try {
        listener(s);
      } catch (err) {
        this.logger.error('cluster snapshot listener failed', { error: errorMessage(err) });
      }
    }
  }
}
