/**
 * Long-poll fan-out: agents wait while the generation they saw is current; a change
 * wakes them, coalesced and in batches so a thousand waiters do not starve writes.
 */
import { controlMetrics, processRegistry, secondsSince } from '@flocker/metrics';

export const NOTIFY_COALESCE_MS = 25;
/** Long-polls answered per turn of the event loop during a fan-out. */
export const WAKE_BATCH = 64;

export class ChangeNotifier {
  private readonly waiters = new Map<() => void, string>();
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private pending = false;
  private closed = false;
  /** When the change being fanned out was first notified (flocker_longpoll_fanout_duration_seconds). */
  private changedAt: bigint | undefined;
  private readonly fanOut = controlMetrics(processRegistry('control-service')).fanOutSeconds;

  /** `generation`: the current generation token; a waiter is woken once it differs from what the waiter saw. */
  constructor(private readonly generation: () => string) {}

  /** Resolves when the generation differs from `since`, or after `timeoutMs`. */
  waitForChange(since: string, timeoutMs: number, abort?: AbortSignal): Promise<void> {
    if (since !== this.generation() || this.closed || timeoutMs <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        abort?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.set(done, since);
      abort?.addEventListener('abort', done);
    });
  }

  get waiting(): number {
    return this.waiters.size;
  }

  /**
   * Wakes the long-polls. An isolated change wakes them on the next turn of the
   * event loop (every hop of a create or move waits on this, so no fixed delay);
   * after a wake-up, further changes are coalesced until NOTIFY_COALESCE_MS has
   * passed: with a thousand agents each wake-up costs a thousand answers.
   */
  notify(): void {
    this.changedAt ??= process.hrtime.bigint();
    if (this.immediate !== undefined) return;
    // A few waiters are cheap to answer: no cool-down, so each hop of a create or move
    // (several reports in quick succession) reaches its waiter at once.
    if (this.timer !== undefined && this.waiters.size > WAKE_BATCH) {
      this.pending = true;
      return;
    }
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      this.wakeAll();
      if (this.timer !== undefined) return;
      this.timer = setTimeout(() => {
        this.timer = undefined;
        if (this.pending) {
          this.pending = false;
          this.notify();
        }
      }, NOTIFY_COALESCE_MS);
    });
  }

  /** Stops the timers and releases every waiter. */
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.wakeAll();
  }

  /**
   * Wakes the waiters whose generation is out of date (all of them when closing), in
   * batches with a turn of the event loop between them: each woken request writes
   * its answer at once, and writes arriving meanwhile must not wait for all 1,000.
   */
  private wakeAll(): void {
    const current = this.generation();
    const stale: Array<() => void> = [];
    for (const [w, since] of this.waiters) if (this.closed || since !== current) stale.push(w);
    const changedAt = this.changedAt;
    this.changedAt = undefined;
    const wakeBatch = (from: number): void => {
      const end = Math.min(stale.length, from + WAKE_BATCH);
      // A waiter may already be gone (timed out, aborted); done() is idempotent then.
      for (let i = from; i < end; i++) (stale[i] as () => void)();
      if (end < stale.length) setImmediate(wakeBatch, end);
      else if (changedAt !== undefined && stale.length > 0 && !this.closed)
        this.fanOut.observe(secondsSince(changedAt));
    };
    wakeBatch(0);
  }
}
