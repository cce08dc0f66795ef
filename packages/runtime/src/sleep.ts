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
    // AbortSignal.reason is typed any: pass it on as the unknown it is.
    const reason = (): unknown => signal.reason;
    if (signal.aborted) {
      reject(reason());
      return;
    }
    const onAbort = () => {
      timer.cancel();
      reject(reason());
    };
    const timer = clock.setTimer(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
