/**
 * The container agent's memory of containers it failed to create or start, pure: which
 * error to report (a stable code and Docker's message), and when to try again. Retries
 * back off per container (the runtime's backoffDelay: exponential, bounded, jittered)
 * instead of every turn; a changed configuration (another spec hash) is tried at once.
 * Kept in memory only: a restarted agent simply tries again.
 */
import type { ContainerError, ContainerErrorCode } from '@flocker/api';
import { backoffDelay, type BackoffPolicy, type Random } from '@flocker/runtime';

export interface Failure {
  /** The spec (hash) that failed: another one is a new configuration, tried at once. */
  hash: string;
  image: string;
  error: ContainerError;
  /** Epoch ms before which the change is not tried again. */
  retryAt: number;
}

export type Failures = ReadonlyMap<string, Failure>;

export const DEFAULT_FAILURE_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 60_000, jitter: true };

/** Docker's refusal → a stable code. `status` is Docker's HTTP status, if it answered. */
export function classifyDockerError(status: number | undefined, message: string): ContainerErrorCode {
  if (/no such image/i.test(message)) return 'IMAGE_NOT_FOUND';
  if (/port is already allocated|address already in use/i.test(message)) return 'PORT_IN_USE';
  if (status === 409 && /is already in use by container/i.test(message)) return 'NAME_IN_USE';
  if (/volume|mount/i.test(message)) return 'VOLUME_UNAVAILABLE';
  if (status === 400) return 'INVALID_CONTAINER_SPEC';
  return 'DOCKER_ERROR';
}

/** Should the change for container `name` (wanting spec `hash`) be tried now? */
export function isDue(failures: Failures, name: string, hash: string, now: number): boolean {
  const f = failures.get(name);
  return f === undefined || f.hash !== hash || now >= f.retryAt;
}

/**
 * One more failure of `name`: counted (same spec, same code) or started afresh, and its next try scheduled. `now`: the
 * timers' (monotonic) clock; `what.at`: the wall-clock time of the failure for `since`, a time people read (default now).
 */
export function recordFailure(
  failures: Failures,
  what: { name: string; hash: string; image: string; code: ContainerErrorCode; message: string; at?: number },
  now: number,
  policy: BackoffPolicy = DEFAULT_FAILURE_BACKOFF,
  random?: Random,
): Map<string, Failure> {
  const previous = failures.get(what.name);
  const same = previous !== undefined && previous.hash === what.hash;
  const attempts = same ? previous.error.attempts + 1 : 1;
  const error: ContainerError = {
    code: what.code,
    message: what.message,
    attempts,
    since: same ? previous.error.since : new Date(what.at ?? now).toISOString(),
  };
  const next = new Map(failures);
  next.set(what.name, {
    hash: what.hash,
    image: what.image,
    error,
    retryAt: now + backoffDelay(attempts - 1, policy, random),
  });
  return next;
}

/** Only the containers still wanted on this node (a deleted or moved container's failure is forgotten). */
export function keepFailures(failures: Failures, wanted: ReadonlySet<string>): Map<string, Failure> {
  return new Map([...failures].filter(([name]) => wanted.has(name)));
}

export function clearFailure(failures: Failures, name: string): Failures {
  if (!failures.has(name)) return failures;
  const next = new Map(failures);
  next.delete(name);
  return next;
}

/** Milliseconds until the earliest retry is due (0 if one is overdue); undefined without failures. */
export function nextRetryIn(failures: Failures, now: number): number | undefined {
  let soonest: number | undefined;
  for (const f of failures.values()) soonest = Math.min(soonest ?? Infinity, Math.max(0, f.retryAt - now));
  return soonest;
}
