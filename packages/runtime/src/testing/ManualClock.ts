/** A Clock that moves only when a test says so (test support: `@flocker/runtime/testing`, not the main entry). */
import type { Clock, TimerHandle } from '../clock';

interface Pending {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/** Lets every already-queued promise callback and I/O callback run (no timer of the clock fires). */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private timers: Pending[] = [];

  constructor(start = 1_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  wallNow(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const p: Pending = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(p);
    return { cancel: () => void (p.cancelled = true) };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimer(resolve, ms));
  }

  /** Timers not yet fired nor cancelled. */
  get pending(): number {
    return this.timers.filter((p) => !p.cancelled).length;
  }

  /**
   * Moves time forward by ms, firing due timers in order; after each, lets the
   * promise chains they started run (settle) before looking for the next.
   */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (;;) {
      this.timers = this.timers.filter((p) => !p.cancelled);
      const next = this.timers.filter((p) => p.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (next === undefined) break;
      this.t = Math.max(this.t, next.at);
      next.cancelled = true;
      next.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }

  /** Advances in steps of `step` ms until check() holds or `limit` ms have passed. */
  async advanceUntil(check: () => boolean, limit: number, step = 10): Promise<number> {
    const start = this.t;
    while (!check()) {
      if (this.t - start >= limit) throw new Error(`condition not reached within ${limit} ms of manual time`);
      await this.advance(step);
    }
    return this.t - start;
  }
}
