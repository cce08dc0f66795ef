/** Polls of EC2 state transitions and of the host's devices, on the runtime's pollUntil and backoff. */
import { pollUntil as poll, systemClock } from '@flocker/runtime';
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
export function pollUntil<T>(probe: () => Promise<T | undefined>, options: PollOptions): Promise<T> {
  return poll(probe, {
    timeoutMs: options.timeoutMs,
    backoff: { initialMs: options.baseMs, maxMs: options.maxMs, jitter: true },
    random: options.random,
    clock: { ...systemClock, now: options.now ?? (() => systemClock.now()), sleep: options.sleep ?? defaultSleep },
    onTimeout: () => {
      throw new StorageError(
        'BACKEND_ERROR',
        `timed out after ${options.timeoutMs} ms waiting for ${options.what}`,
        options.blockdeviceId,
      );
    },
  });
}
