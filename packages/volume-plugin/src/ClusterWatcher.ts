/**
 * Keeps the latest cluster snapshot, so List/Get answer from memory and Mount waits on events
 * instead of polling on a timer. Two ways, the best the control service offers first:
 *  - a watch of the whole cluster (issue 23, `GET /v1/agent/cluster/watch` without `node`): the
 *    whole snapshot, then one delta per change on one long-lived answer, merged here
 *    (applyClusterDelta). Each change costs the service one shared line per plugin, not a whole
 *    snapshot (18 MB at 100,000 datasets) and a request. A cut watch is asked again from the
 *    generation it held (the change made meanwhile comes as one delta; from a restarted service
 *    or another replica, the whole snapshot); a delta that does not merge, from scratch;
 *  - long-polls of the whole snapshot: a control service that refuses the watch (400/404/405:
 *    older, docs/compatibility.md) is followed so until a poll fails (it may be restarting,
 *    upgraded), when the watch is asked for again.
 */
import {
  applyClusterDelta,
  type ClusterAnswer,
  type ClusterSnapshot,
  isClusterDelta,
  watchRefusedStatus,
} from '@flocker/api';
import { Backoff, errorMessage, followLongPoll, sleep } from '@flocker/runtime';
import type { Logger } from 'winston';

export type FetchSnapshot = (since?: string, timeoutMs?: number) => Promise<ClusterSnapshot>;
/** The whole cluster as a stream (FlockerClient.watchCluster without node): a snapshot or a delta per line. */
export type WatchCluster = (since: string | undefined, signal: AbortSignal) => AsyncIterable<ClusterAnswer>;

/** A service that does not offer the whole cluster's watch (an older one): 400 (node required), 404, 405. */
export function watchRefused(e: unknown): boolean {
  const status = typeof e === 'object' && e !== null && 'status' in e ? e.status : undefined;
  return typeof status === 'number' && watchRefusedStatus(status);
}

/**
 * Whether generation `a` is older than `b` of the same service process (`instance.cv.sg`, both
 * counters monotonic there): older in both, or behind in the configuration whatever its state (a
 * stream line written before a refresh's answer that carries a later node report: shown, it would
 * take back the configuration change the refresh showed; the stream's next line has both). False
 * when they cannot be compared.
 */
export function olderGeneration(a: string, b: string): boolean {
  const x = /^([^.]+)\.(\d+)\.(\d+)$/.exec(a);
  const y = /^([^.]+)\.(\d+)\.(\d+)$/.exec(b);
  if (x === null || y === null || x[1] !== y[1] || a === b) return false;
  const [acv, bcv] = [Number(x[2]), Number(y[2])];
  return acv < bcv || (acv === bcv && Number(x[3]) <= Number(y[3]));
}

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
    /** The whole cluster's watch, when the client offers it; without it, long-polls only. */
    private readonly watch?: WatchCluster,
  ) {}

  current(): ClusterSnapshot | undefined {
    return this.snapshot;
  }

  /** The snapshot while the long-poll keeps it current (the control service pushes each change), else undefined. */
  followed(): ClusterSnapshot | undefined {
    return this.following ? this.snapshot : undefined;
  }

  start(): void {
    this.running ??= this.watch !== undefined ? this.followWatch(this.watch) : this.followPolls(this.closing.signal);
  }

  /** Long-polls until `signal` aborts; `onFailure` hears of each failed poll. */
  private followPolls(signal: AbortSignal, onFailure?: () => void): Promise<void> {
    return followLongPoll({
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
        onFailure?.();
      },
      backoff: { initialMs: this.retryMs, maxMs: 5 * this.retryMs, jitter: true },
      spinPauseMs: this.retryMs / 10,
      signal,
    });
  }

  /**
   * Follows the whole cluster over watches until closed. The stream's own view is the base of its
   * deltas (a refresh may hold a newer snapshot: not what the stream's next delta applies to).
   */
  private async followWatch(watch: WatchCluster): Promise<void> {
    const signal = this.closing.signal;
    const backoff = new Backoff({ initialMs: this.retryMs, maxMs: 5 * this.retryMs, jitter: true });
    let view: ClusterSnapshot | undefined;
    let pause = false;
    while (!signal.aborted) {
      if (pause) await sleep(backoff.next(), { signal }).catch(() => undefined);
      if (signal.aborted) return;
      let lines = 0;
      let unmerged = false;
      try {
        for await (const line of watch(view?.generation, signal)) {
          const next = isClusterDelta(line) ? (view !== undefined ? applyClusterDelta(view, line) : undefined) : line;
          if (next === undefined) {
            this.logger.info('the watch sent a delta for another view: watching the whole cluster again', {
              held: view?.generation,
            });
            view = undefined;
            unmerged = true;
            break;
          }
          lines++;
          view = next;
          backoff.reset();
          this.following = true;
          // A line written before a refresh's answer may arrive after it: never step back.
          if (this.snapshot === undefined || !olderGeneration(next.generation, this.snapshot.generation))
            this.update(next);
        }
        // Ended by the service (closing: its successor or another replica answers), or to start again whole: at
        // once, unless nothing came (no loop against a service that ends every watch).
        this.following = false;
        pause = lines === 0 && !unmerged;
      } catch (err) {
        this.following = false;
        if (signal.aborted) return;
        if (watchRefused(err)) {
          this.logger.info('the control service does not offer the watch of the whole cluster: following long-polls', {
            error: errorMessage(err),
          });
          // Until a poll fails (the service may be restarting, upgraded): then the watch is asked for again.
          const polls = new AbortController();
          const stop = (): void => polls.abort();
          signal.addEventListener('abort', stop, { once: true });
          await this.followPolls(polls.signal, stop);
          signal.removeEventListener('abort', stop);
          view = undefined;
          pause = true;
          continue;
        }
        // Cut after it had answered (its replica restarted): again at once, through another replica if need be.
        this.logger.warn('cannot reach the control service; retrying', { error: errorMessage(err) });
        pause = lines === 0;
      }
    }
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
