/** Polling for a condition with a deadline: the one loop behind every "wait until the volume is …". */
import { backoffDelay, type BackoffPolicy, type Random } from './backoff';
import { systemClock, type Clock } from './clock';
import { sleep } from './sleep';

/** pollUntil ran out of time (callers usually turn it into their own error with onTimeout). */
export class PollTimeoutError extends Error {
  readonly code = 'POLL_TIMEOUT';

  constructor(readonly timeoutMs: number) {
    super(`condition not met within ${timeoutMs} ms`);
    this.name = 'PollTimeoutError';
  }
}

export interface PollOptions<R> {
  readonly timeoutMs: number;
  /** A fixed pause between checks… */
  readonly intervalMs?: number;
  /** …or a growing one (the runtime's backoff, attempt 0 after the first check). One of the two is required. */
  readonly backoff?: BackoffPolicy;
  readonly random?: Random;
  /** now() for the deadline and sleep() between checks. Default: the system clock. */
  readonly clock?: Clock;
  /** Stops polling: pollUntil then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** The result (or, by throwing, the error) when time runs out. Default: throw PollTimeoutError. */
  readonly onTimeout?: () => R;
}

/**
 * Calls check until it gives a value other than undefined and returns that value.
 * Between checks it sleeps the interval or backoff, never past the deadline, so
 * the last check happens at the deadline; then onTimeout decides. An error thrown
 * by check ends the polling with that error.
 */
export async function pollUntil<T, R = never>(
  check: (attempt: number) => Promise<T | undefined> | T | undefined,
  options: PollOptions<R>,
): Promise<T | R> {
  const { clock = systemClock, signal, backoff, intervalMs } = options;
  if (backoff === undefined && intervalMs === undefined) throw new TypeError('pollUntil needs intervalMs or backoff');
  const deadline = clock.now() + options.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    signal?.throwIfAborted();
    const value = await check(attempt);
    if (value !== undefined) return value;
    const left = deadline - clock.now();
    if (left <= 0) {
      if (options.onTimeout !== undefined) return options.onTimeout();
      throw new PollTimeoutError(options.timeoutMs);
    }
    const pause = backoff !== undefined ? backoffDelay(attempt, backoff, options.random) : (intervalMs ?? 0);
    await sleep(Math.min(left, pause), { clock, signal });
  }
}
