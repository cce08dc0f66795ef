/**
 * Shares one read among concurrent callers without ever handing a caller a
 * result that began before its call: callers arriving while a read runs all
 * share the next read, which starts when the current one ends. Many workers
 * observing the same pool then cost at most one listing in flight plus one queued.
 */
export class FreshRead<T> {
  private running: Promise<T> | null = null;
  private next: Promise<T> | null = null;

  constructor(private readonly read: () => Promise<T>) {}

  get(): Promise<T> {
    if (this.running === null) return this.start();
    if (this.next === null) {
      this.next = this.running
        .then(
          () => undefined,
          () => undefined,
        )
        .then(() => {
          this.next = null;
          return this.start();
        });
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
