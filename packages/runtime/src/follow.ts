/**
 * Following the cluster: the control service's long-poll (GET /v1/state/cluster?since=…)
 * turned into a stream of snapshots, with one retry policy for every process that
 * follows it (dataset agent, volume plugin, container agent, the CLI's web UI).
 */
import { Backoff, type BackoffPolicy, type Random } from './backoff';
import { systemClock, type Clock } from './clock';
import { sleep } from './sleep';

/** What a long-poll answers: anything with the cluster's generation (ClusterSnapshot). */
export interface Generational {
  readonly generation: string;
}

export interface FollowLongPollOptions<S extends Generational> {
  /**
   * One long-poll, e.g. `(since, ms) => client.waitForCluster(since, ms)`: answers at once
   * when `since` is undefined or the cluster's generation differs from it, else holds up
   * to timeoutMs and answers the (unchanged) snapshot. `signal` aborts when following stops.
   */
  wait(since: string | undefined, timeoutMs: number, signal: AbortSignal | undefined): Promise<S>;
  /** How long one long-poll may be held; a function is asked before each poll. */
  waitMs: number | (() => number);
  /**
   * Every answer, in order, unchanged generations included (an answer is also proof of
   * contact). `since` is what was asked (undefined: a fresh read), `askedAt` is clock.now()
   * when it was asked. The next poll starts when this returns (or its promise settles);
   * throwing counts as a failure.
   */
  onSnapshot(snapshot: S, info: { readonly since: string | undefined; readonly askedAt: number }): void | Promise<void>;
  /** A failed poll (or onSnapshot); `failures` in a row, from 1. The backoff pause follows. */
  onError(error: unknown, failures: number): void;
  /** Pause after each failure in a row (the runtime's backoff; reset by an answer). */
  backoff: BackoffPolicy;
  /** The generation to ask from; default: that of the last answer. */
  since?: () => string | undefined;
  /** Ends following: the promise resolves (no callback runs after the abort). */
  signal?: AbortSignal;
  clock?: Clock;
  random?: Random;
  /** Pause after an unchanged answer that came back in under half its wait (default 100 ms). */
  spinPauseMs?: number;
}

/**
 * Follows the cluster until `signal` aborts; never rejects.
 *
 * Policy (the best of the four loops it replaces):
 *  - each poll asks from the last generation seen, so the control service answers
 *    as soon as anything changes; a fresh read (`since` undefined, wait 0) starts
 *    following and follows every failure: after an outage the caller learns at once
 *    that contact is back and sees the current snapshot, instead of waiting out a
 *    long-poll that may hold for its whole timeout;
 *  - failures back off (bounded, jittered: the runtime's Backoff), so nodes that lost
 *    the control service together do not return in step; an answer resets it;
 *  - a server that answers an unchanged generation at once (not holding the poll)
 *    gets a short pause instead of a busy loop.
 */
export async function followLongPoll<S extends Generational>(o: FollowLongPollOptions<S>): Promise<void> {
  const clock = o.clock ?? systemClock;
  const signal = o.signal;
  const backoff = new Backoff(o.backoff, o.random);
  const spinPauseMs = o.spinPauseMs ?? 100;
  let last: string | undefined;
  let fresh = true;
  const pause = (ms: number) => sleep(ms, { clock, signal }).catch(() => undefined);
  // A function, not a narrowed property: the signal aborts while we await.
  const stopped = () => signal?.aborted === true;
  while (!stopped()) {
    const since = fresh ? undefined : (o.since?.() ?? last);
    const timeoutMs = since === undefined ? 0 : typeof o.waitMs === 'function' ? o.waitMs() : o.waitMs;
    const askedAt = clock.now();
    try {
      const snapshot = await o.wait(since, timeoutMs, signal);
      if (stopped()) return;
      last = snapshot.generation;
      fresh = false;
      await o.onSnapshot(snapshot, { since, askedAt });
      backoff.reset();
      if (since !== undefined && snapshot.generation === since && clock.now() - askedAt < timeoutMs / 2)
        await pause(spinPauseMs);
    } catch (e) {
      if (stopped()) return;
      fresh = true;
      const delay = backoff.next();
      o.onError(e, backoff.attempts);
      await pause(delay);
    }
  }
}
