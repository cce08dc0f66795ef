/** Polls of EC2 state transitions, with the runtime's one backoff (jittered, bounded). */
import { backoffDelay } from '@flocker/runtime';
import { StorageError } from '../BlockDeviceApi';

export interface BackoffOptions {
  /** First delay ceiling; doubles with every attempt. */
  readonly baseMs: number;
  /** Ceiling of any single delay. */
  readonly maxMs: number;
  /** In [0, 1); injectable so tests are deterministic. */
  readonly random?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

export const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface PollOptions extends BackoffOptions {
  readonly timeoutMs: number;
  /** What we wait for, for the timeout message. */
  readonly what: string;
  readonly now?: () => number;
  readonly blockdeviceId?: string;
}

/**
 * Calls probe until it gives a value (not undefined), sleeping with backoff in
 * between; fails with BACKEND_ERROR after timeoutMs. Errors from probe end the wait.
 */
export async function pollUntil<T>(probe: () => Promise<T | undefined>, options: PollOptions): Promise<T> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? defaultSleep;
  const deadline = now() + options.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    const value = await probe();
    if (value !== undefined) return value;
    const left = deadline - now();
    if (left <= 0) {
      throw new StorageError('BACKEND_ERROR', `timed out after ${options.timeoutMs} ms waiting for ${options.what}`, options.blockdeviceId);
    }
    await sleep(Math.min(left, backoffDelay(attempt, { initialMs: options.baseMs, maxMs: options.maxMs, jitter: true }, options.random)));
  }
}
