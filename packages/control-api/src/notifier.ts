/**
 * Long-poll fan-out: agents wait while the generation they saw is current; a change
 * wakes them, coalesced and in batches so a thousand waiters do not starve writes.
 * A long-poll for one node's view (issue 23) waits while that view is unchanged: a
 * change wakes only the waiters of the nodes it touched (NodeViewIndex says which),
 * so at 10,000 agents a dataset write answers a few polls, not 10,000.
 * A waiter holds its callback, its `since` and its node, never a copy of a view.
 */
import { controlMetrics, processRegistry, secondsSince } from '@flocker/metrics';

export const NOTIFY_COALESCE_MS = 25;
/** Long-polls answered per turn of the event loop during a fan-out. */
export const WAKE_BATCH = 64;

/** A standing wait on one node's view (ChangeNotifier.subscribe). */
export interface ViewSubscription {
  /** The generation its holder has: it is woken for changes after it. */
  since: string;
  cancel(): void;
}

export class ChangeNotifier {
  /** Every waiter: what it saw, and the node whose view it waits on (undefined: the whole cluster). */
  private readonly waiters = new Map<(end?: boolean) => void, { since: string; node: string | undefined }>();
  /** Waiters of the whole cluster (woken by any change). */
  private readonly global = new Set<() => void>();
  /** Waiters of one node's view, by node. */
  private readonly byNode = new Map<string, Set<() => void>>();
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private pending = false;
  /** Nodes whose views changed since the last wake-up ('all': every view). */
  private touched: Set<string> | 'all' = new Set();
  private closed = false;
  /** When the change being fanned out was first notified (flocker_longpoll_fanout_duration_seconds). */
  private changedAt: bigint | undefined;
  private readonly fanOut = controlMetrics(processRegistry('control-service')).fanOutSeconds;

  /**
   * `generation`: the current generation token; a waiter of the whole cluster is woken once it
   * differs from what the waiter saw. `viewChanged(node, since)`: whether that node's view changed
   * since `since` (default: whenever the generation did).
   */
  constructor(
    private readonly generation: () => string,
    private readonly viewChanged: (node: string, since: string) => boolean = (_node, since) => since !== generation(),
  ) {}

  /** Resolves when the generation (with `node`: that node's view) differs from `since`, or after `timeoutMs`. */
  waitForChange(since: string, timeoutMs: number, abort?: AbortSignal, node?: string): Promise<void> {
    if (this.isStale(since, node) || this.closed || timeoutMs <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        if (node === undefined) this.global.delete(done);
        else {
          const set = this.byNode.get(node);
          set?.delete(done);
          if (set?.size === 0) this.byNode.delete(node);
        }
        abort?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.set(done, { since, node });
      if (node === undefined) this.global.add(done);
      else {
        const set = this.byNode.get(node);
        if (set === undefined) this.byNode.set(node, new Set([done]));
        else set.add(done);
      }
      abort?.addEventListener('abort', done);
    });
  }

  /**
   * A standing wait on one node's view (the streaming watch): `wake` is called, in the same batches
   * as long-polls, whenever that view changed after the subscription's `since` (which its holder
   * moves on as it writes), and once with `closing` when the notifier closes. Unlike a long-poll it
   * costs no promise, timer or abort listener per change: one entry, kept until cancel().
   */
  subscribe(node: string, since: string, wake: (closing: boolean) => void): ViewSubscription {
    if (this.closed) {
      queueMicrotask(() => wake(true));
      return { since, cancel: () => undefined };
    }
    const entry = { since, node };
    let cancelled = false;
    const w = (end?: boolean): void => {
      if (!cancelled) wake(this.closed || end === true);
    };
    this.waiters.set(w, entry);
    const set = this.byNode.get(node);
    if (set === undefined) this.byNode.set(node, new Set([w]));
    else set.add(w);
    const remove = (): void => {
      cancelled = true;
      this.waiters.delete(w);
      const nodeSet = this.byNode.get(node);
      nodeSet?.delete(w);
      if (nodeSet?.size === 0) this.byNode.delete(node);
    };
    return {
      get since() {
        return entry.since;
      },
      set since(value: string) {
        entry.since = value;
      },
      cancel: remove,
    };
  }

  get waiting(): number {
    return this.waiters.size;
  }

  /**
   * Wakes the long-polls. An isolated change wakes them on the next turn of the
   * event loop (every hop of a create or move waits on this, so no fixed delay);
   * after a wake-up, further changes are coalesced until NOTIFY_COALESCE_MS has
   * passed if they would wake many: with a thousand agents each wake-up costs a
   * thousand answers. `touched`: the nodes whose views changed (default: all).
   */
  notify(touched: Iterable<string> | 'all' = 'all'): void {
    if (touched === 'all') this.touched = 'all';
    else if (this.touched !== 'all') for (const n of touched) this.touched.add(n);
    this.changedAt ??= process.hrtime.bigint();
    if (this.immediate !== undefined) return;
    // A few waiters are cheap to answer: no cool-down, so each hop of a create or move
    // (several reports in quick succession) reaches its waiter at once.
    if (this.timer !== undefined && this.candidates() > WAKE_BATCH) {
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
          this.notify([]);
        }
      }, NOTIFY_COALESCE_MS);
    });
  }

  /**
   * Ends every wait now, whatever its view: long-polls answer (their route then refuses), standing subscriptions are
   * told `closing` (their streams end). For a replica whose store became unreachable: its agents go elsewhere.
   */
  releaseAll(): void {
    for (const w of [...this.waiters.keys()]) w(true);
  }

  /** Stops the timers and releases every waiter. */
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.touched = 'all';
    this.wakeAll();
  }

  private isStale(since: string, node: string | undefined): boolean {
    return node === undefined ? since !== this.generation() : this.viewChanged(node, since);
  }

  /** How many waiters the pending wake-up may answer (at most). */
  private candidates(): number {
    if (this.touched === 'all') return this.waiters.size;
    let n = this.global.size;
    for (const node of this.touched) n += this.byNode.get(node)?.size ?? 0;
    return n;
  }

  /**
   * Wakes the waiters whose view is out of date (all of them when closing), in
   * batches with a turn of the event loop between them: each woken request writes
   * its answer at once, and writes arriving meanwhile must not wait for all 1,000.
   */
  private wakeAll(): void {
    const touched = this.touched;
    this.touched = new Set();
    const stale: Array<() => void> = [];
    const check = (w: () => void): void => {
      const waiter = this.waiters.get(w);
      if (waiter !== undefined && (this.closed || this.isStale(waiter.since, waiter.node))) stale.push(w);
    };
    if (touched === 'all') for (const w of this.waiters.keys()) check(w);
    else {
      for (const w of this.global) check(w);
      for (const node of touched) for (const w of this.byNode.get(node) ?? []) check(w);
    }
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
