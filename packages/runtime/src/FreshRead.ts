/**
 * Shares one read among concurrent callers without ever handing a caller a
 * result that began before its call (it may have to see its own write, e.g. a
 * `losetup -d` just done): callers arriving while a read runs all share the
 * next read, which starts when the current one settles. Many callers observing
 * the same thing (the dataset agent's workers listing the pool, the loopback
 * driver scanning sysfs) then cost at most one read in flight plus one queued.
 * A failed read fails only the callers that shared it.
 */
export class FreshRead<T> {
  private running: Promise<T> | null = null;
  private next: Promise<T> | null = null;

  constructor(private readonly read: () => Promise<T>) {}

  get(): Promise<T> {
    if (this.running === null) return this.start();
    if (this.next === null) {
      const startNext = (): Promise<T> => {
        this.next = null;
        return this.start();
      };
      this.next = this.running.then(startNext, startNext);
    }
    return this.next;
  }

  private start(): Promise<T> {
    const p = this.read();
    this.running = p;
    const clear = (): void => {
      if (this.running === p) this.running = null;
    };
    p.then(clear, clear);
    return p;
  }
}
