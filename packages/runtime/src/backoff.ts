/**
 * The one backoff of every Flocker process (retries of failed calls, polls, the
 * long-poll's reconnects).
 *
 * Policy: bounded exponential with "equal jitter". Attempt n (counting from 0) has
 * the ceiling min(maxMs, initialMs · 2^n); with jitter the delay is drawn uniformly
 * from [ceiling/2, ceiling], without it the delay is the ceiling itself.
 *
 * Why equal jitter: many processes that failed together (a restarted control
 * service, EC2 throttling every agent of a cluster) spread over half the window,
 * yet none retries at once. Full jitter may draw ~0 ms and hit a service that
 * has just refused us again. `jitter: false` is for a lone caller whose exact
 * delays are part of its contract (the dataset agent's documented retry times).
 */
export interface BackoffPolicy {
  /** Ceiling of the first delay (attempt 0). */
  readonly initialMs: number;
  /** Ceiling of every delay. */
  readonly maxMs: number;
  readonly jitter: boolean;
}

/** A source of uniform numbers in [0, 1); injectable so tests are deterministic. */
export type Random = () => number;

/** The delay before retry number `attempt` + 1 (attempt counts failures from 0). */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: Random = Math.random): number {
  // 2^30 already exceeds any sane maxMs; the cap keeps the product finite.
  const ceiling = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(Math.max(0, attempt), 30));
  if (!policy.jitter) return ceiling;
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** Counts failures for a loop: next() gives the delay before the next try, reset() after a success. */
export class Backoff {
  private failures = 0;

  constructor(
    readonly policy: BackoffPolicy,
    private readonly random: Random = Math.random,
  ) {}

  /** Failures since the last reset(). */
  get attempts(): number {
    return this.failures;
  }

  /** The delay to wait after one more failure. */
  next(): number {
    return backoffDelay(this.failures++, this.policy, this.random);
  }

  reset(): void {
    this.failures = 0;
  }
}
