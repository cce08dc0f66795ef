import { systemClock, type Clock } from './clock';

export interface SleepOptions {
  readonly clock?: Clock;
  /** Ends the sleep early: it then rejects with the signal's reason and its timer is cancelled. */
  readonly signal?: AbortSignal;
}

/** Resolves after ms on the clock; rejects with signal.reason as soon as the signal aborts. */
export function sleep(ms: number, options: SleepOptions = {}): Promise<void> {
  const { clock = systemClock, signal } = options;
  if (signal === undefined) return clock.sleep(ms);
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      timer.cancel();
      reject(signal.reason);
    };
    const timer = clock.setTimer(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
