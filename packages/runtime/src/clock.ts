/**
 * Time as a process sees it. Timers go through a Clock so timing logic
 * (self-fencing, heartbeats, backoff, debouncing, long-poll retries) can be
 * tested deterministically on a ManualClock (`@flocker/runtime/testing`).
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /**
   * Milliseconds for intervals and deadlines: monotonic in production (a step of the
   * wall clock, say by NTP, must never look like minutes without contact and fence a
   * healthy node).
   */
  now(): number;
  /** Wall-clock milliseconds, for timestamps people read (ISO "since" fields). */
  wallNow(): number;
  /** Runs fn once after ms (never before now() + ms). */
  setTimer(fn: () => void, ms: number): TimerHandle;
  /** Resolves after ms. */
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  // performance.now() is monotonic; the origin only makes its values look like epoch ms.
  now: () => performance.timeOrigin + performance.now(),
  wallNow: () => Date.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, Math.max(0, ms));
    return { cancel: () => clearTimeout(t) };
  },
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms))),
};

/** Wall-clock milliseconds of the system clock (for timestamps people read, never for deadlines). */
export function wallNow(): number {
  return systemClock.wallNow();
}
