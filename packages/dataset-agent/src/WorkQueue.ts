/**
 * The datasets waiting for a worker and those being worked on, at most `limit`
 * at once (client-go's workqueue dirty/processing sets, without its rate
 * limiting: the agent keeps its own per-dataset backoff).
 *
 * Invariants:
 * - a dataset is worked on by one worker at a time;
 * - a dataset added while it is being worked on is not queued: its worker
 *   re-decides after every step, and the agent takes a full look once idle when
 *   a turn ran meanwhile (lookWhenIdle in loopState.ts), so nothing is lost;
 * - a dataset marked dirty while it is being worked on (markDirty: news its worker
 *   may have looked too early to see) runs again as soon as its worker ends, in the
 *   place that worker frees, if `again` still wants it then;
 * - waiting datasets start in the order they were added.
 */
export class WorkQueue<T> {
  private readonly waiting = new Set<string>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly dirty = new Set<string>();

  constructor(
    private readonly limit: number,
    /** Works on one dataset; `arg` is what the starter handed over (the agent: a fresh observation). */
    private readonly work: (id: string, arg: T | undefined) => Promise<void>,
    /** Whether new work may start (false once stopping). */
    private readonly mayStart: () => boolean,
    /** Called after each worker ended and the queue was pumped. */
    private readonly onWorkerDone: () => void,
    /**
     * Whether a dataset marked dirty while its worker ran is to run again, asked once that worker ended (the
     * agent: is it still waiting for what the news was about); true by default.
     */
    private readonly again: (id: string) => boolean = () => true,
  ) {}

  add(id: string): void {
    if (!this.running.has(id)) this.waiting.add(id);
  }

  /** Runs `id` again once its running worker ends (see `again`); nothing when it is not running. */
  markDirty(id: string): void {
    if (this.running.has(id)) this.dirty.add(id);
  }

  isWaiting(id: string): boolean {
    return this.waiting.has(id);
  }

  isRunning(id: string): boolean {
    return this.running.has(id);
  }

  get runningCount(): number {
    return this.running.size;
  }

  get waitingCount(): number {
    return this.waiting.size;
  }

  /** A copy of the datasets being worked on. */
  runningIds(): Set<string> {
    return new Set(this.running.keys());
  }

  hasRoom(): boolean {
    return this.running.size < this.limit;
  }

  get idle(): boolean {
    return this.running.size === 0 && this.waiting.size === 0;
  }

  /** Starts waiting datasets, up to the limit, each with `arg`. */
  pump(arg?: T): void {
    for (const id of this.waiting) {
      if (!this.hasRoom() || !this.mayStart()) return;
      this.waiting.delete(id);
      if (this.running.has(id)) continue;
      this.start(id, arg);
    }
  }

  /** Starts a worker for `id` now (the caller checked hasRoom and that it is not running). */
  start(id: string, arg?: T): void {
    this.waiting.delete(id);
    const work = this.work(id, arg).finally(() => {
      this.running.delete(id);
      // The place just freed: a dirty dataset runs again before the waiting ones.
      if (this.dirty.delete(id) && this.mayStart() && this.again(id)) this.start(id);
      this.pump();
      this.onWorkerDone();
    });
    this.running.set(id, work);
  }

  /** Forgets the waiting datasets and the dirty marks (running ones go on). */
  clearWaiting(): void {
    this.waiting.clear();
    this.dirty.clear();
  }

  /** Resolves when every running worker has ended. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.running.values()]);
  }
}
