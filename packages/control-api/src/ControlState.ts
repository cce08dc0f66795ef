/**
 * The control service's state machine without HTTP: the committed configuration,
 * writes serialized and group-committed to the store, node reports, the generation
 * token and the long-poll waiters.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'winston';
import type { NodeReport } from '@flocker/api';
import {
  type Applied,
  type Configuration,
  configurationTag,
  expireLeases,
  nextLeaseExpiry,
  registerNode,
} from './configuration';
import type { ConfigurationStore } from './ConfigurationStore';
import { StoreConflict } from './etcd/conflict';
import { ApiError } from './errors';
import { isAlive, type ReportedNode } from './clusterState';

export interface ControlStateOptions {
  store: ConfigurationStore;
  nodeTimeoutMs: number;
  logger: Logger;
  now?: () => number;
  /** How often liveness is re-checked; default min(1 s, nodeTimeout / 4). */
  livenessCheckMs?: number;
}

export const NOTIFY_COALESCE_MS = 25;
/** Long-polls answered per turn of the event loop during a fan-out. */
export const WAKE_BATCH = 64;

interface CommitWaiter {
  resolve: () => void;
  reject: (err: unknown) => void;
  /**
   * Re-applies the waiter's change onto a configuration another replica committed
   * first; 'conflict' when the request was conditional (If-Configuration-Matches),
   * undefined when there is nothing to re-apply.
   */
  rebase?: ((config: Configuration, now: number) => Configuration) | 'conflict';
}

export class ControlState {
  /** Random per process start, so a restarted server never re-issues a generation. */
  readonly instanceId = randomBytes(6).toString('hex');
  readonly nodeTimeoutMs: number;
  readonly now: () => number;
  private readonly store: ConfigurationStore;
  private readonly logger: Logger;

  private committed: Configuration;
  /** Latest applied value; equals `committed` unless a commit is pending. */
  private pending: Configuration;
  private commitWaiters: CommitWaiter[] = [];
  private flushing = false;

  private readonly nodes = new Map<string, ReportedNode & { json: string }>();
  private readonly aliveSet = new Set<string>();
  private stateGen = 0;

  private changeWaiters = new Map<() => void, string>();
  private livenessTimer: NodeJS.Timeout | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private notifyTimer: NodeJS.Timeout | undefined;
  private notifyImmediate: NodeJS.Immediate | undefined;
  private notifyPending = false;
  /** Newest configuration another replica committed while our own commit was in flight. */
  private external: Configuration | undefined;

  private constructor(options: ControlStateOptions, initial: Configuration) {
    this.store = options.store;
    this.logger = options.logger;
    this.nodeTimeoutMs = options.nodeTimeoutMs;
    this.now = options.now ?? Date.now;
    this.committed = initial;
    this.pending = initial;
    const every = options.livenessCheckMs ?? Math.max(50, Math.min(1000, Math.floor(options.nodeTimeoutMs / 4)));
    this.livenessTimer = setInterval(() => this.checkLiveness(), every);
    this.livenessTimer.unref();
    this.scheduleLeaseExpiry();
  }

  static async open(options: ControlStateOptions): Promise<ControlState> {
    const state = new ControlState(options, await options.store.load());
    try {
      await options.store.subscribe?.({
        configuration: (config) => state.externalConfiguration(config),
        report: (report, lastSeen) => state.externalReport(report, lastSeen),
      });
    } catch (err) {
      await state.close();
      throw err;
    }
    return state;
  }

  get configuration(): Configuration {
    return this.committed;
  }

  /**
   * The configuration including applied but not yet durable writes: what the next
   * mutate() will see. Authorization checks read it in the same turn of the event loop
   * as the handler's mutate(), so no write can slip between check and change.
   */
  get latestConfiguration(): Configuration {
    return this.pending;
  }

  get configurationTag(): string {
    return configurationTag(this.committed);
  }

  get generation(): string {
    return `${this.instanceId}.${this.committed.version}.${this.stateGen}`;
  }

  /** Counts node report and liveness changes (configuration changes not included). */
  get stateGeneration(): number {
    return this.stateGen;
  }

  reportedNodes(): Iterable<ReportedNode> {
    return this.nodes.values();
  }

  reportedNodeIds(): Iterable<string> {
    return this.nodes.keys();
  }

  /** The node's last report as JSON, as received (validated) and stored. */
  reportJson(uuid: string): string | undefined {
    return this.nodes.get(uuid)?.json;
  }

  reportedNode(uuid: string): ReportedNode | undefined {
    return this.nodes.get(uuid);
  }

  /**
   * Applies `change` to the latest configuration and resolves once the result is
   * durable. Changes apply in arrival order; all that arrive while the store is busy
   * share the next commit (group commit).
   */
  async mutate<T>(change: (config: Configuration, now: number) => Applied<T>, ifMatches?: string): Promise<Applied<T>> {
    if (this.closed) throw new ApiError(503, 'SHUTTING_DOWN', 'The control service is shutting down.');
    if (ifMatches !== undefined && ifMatches !== configurationTag(this.pending)) {
      throw new ApiError(
        412,
        'CONFIGURATION_CHANGED',
        `The configuration changed since tag ${ifMatches} (now ${configurationTag(this.pending)}); read it again and retry.`,
      );
    }
    let applied = change(this.pending, this.now());
    this.pending = applied.config;
    // Even an answer that changed nothing depends on pending writes, so it waits for them too.
    await this.durable(
      ifMatches !== undefined
        ? 'conflict'
        : (config, now) => {
            applied = change(config, now);
            return applied.config;
          },
    );
    return applied;
  }

  private durable(rebase?: CommitWaiter['rebase']): Promise<void> {
    if (this.pending === this.committed) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => this.commitWaiters.push({ resolve, reject, ...(rebase !== undefined ? { rebase } : {}) }));
    void this.flush();
    return done;
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      // Let requests already parsed in this turn of the event loop join the batch.
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (this.pending !== this.committed) {
        const target = this.pending;
        const waiters = this.commitWaiters;
        this.commitWaiters = [];
        try {
          await this.store.commit(target, this.committed);
        } catch (err) {
          if (err instanceof StoreConflict) {
            // Another replica won the compare-and-swap: re-apply our writes on its configuration.
            this.commitWaiters = waiters.concat(this.commitWaiters);
            this.adopt(this.external !== undefined && this.external.version > err.current.version ? this.external : err.current);
            continue;
          }
          // Writes queued behind the failed one were built upon it: fail them all.
          const all = waiters.concat(this.commitWaiters);
          this.commitWaiters = [];
          this.pending = this.committed;
          this.logger.error('configuration commit failed', { error: String(err), waiting: all.length });
          const failure = new ApiError(503, 'STORE_UNAVAILABLE', `The configuration could not be saved: ${String(err)}`);
          for (const w of all) w.reject(failure);
          continue;
        }
        this.committed = target;
        for (const w of waiters) w.resolve();
        this.scheduleLeaseExpiry();
        this.notify();
        if (this.external !== undefined && this.external.version > this.committed.version) this.adopt(this.external);
      }
    } finally {
      this.flushing = false;
      this.external = undefined;
    }
  }

  /**
   * A configuration another replica committed (shared stores). Replaces ours when newer;
   * writes not yet committed here are re-applied onto it.
   */
  externalConfiguration(config: Configuration): void {
    if (this.closed || config.version <= this.committed.version) return;
    if (this.flushing) {
      // Our commit in flight either wins (and this is older news) or conflicts and adopts this.
      if (this.external === undefined || config.version > this.external.version) this.external = config;
      return;
    }
    this.adopt(config);
    if (this.commitWaiters.length > 0) void this.flush();
  }

  /** Makes `fresh` the committed configuration and rebuilds the pending one on it. */
  private adopt(fresh: Configuration): void {
    this.committed = fresh;
    const waiters = this.commitWaiters;
    this.commitWaiters = [];
    let config = fresh;
    for (const w of waiters) {
      if (w.rebase === 'conflict') {
        w.reject(new ApiError(412, 'CONFIGURATION_CHANGED', `The configuration changed through another control replica (now ${configurationTag(fresh)}); read it again and retry.`));
        continue;
      }
      if (w.rebase !== undefined) {
        try {
          config = w.rebase(config, this.now());
        } catch (err) {
          w.reject(err);
          continue;
        }
      }
      this.commitWaiters.push(w);
    }
    this.pending = config;
    if (config === fresh) {
      // Nothing left to write (re-applied changes were no-ops on the newer configuration).
      for (const w of this.commitWaiters) w.resolve();
      this.commitWaiters = [];
    }
    this.scheduleLeaseExpiry();
    this.notify();
  }

  /** A node report received by another replica (shared stores). */
  externalReport(report: NodeReport, lastSeen: number): void {
    const previous = this.nodes.get(report.uuid);
    if (this.closed || (previous !== undefined && previous.lastSeen >= lastSeen)) return;
    const json = JSON.stringify(report);
    this.nodes.set(report.uuid, { report, lastSeen, json });
    const alive = isAlive({ report, lastSeen }, this.now(), this.nodeTimeoutMs);
    const wasAlive = this.aliveSet.has(report.uuid);
    if (alive) this.aliveSet.add(report.uuid);
    else this.aliveSet.delete(report.uuid);
    if (previous === undefined || previous.json !== json || alive !== wasAlive) {
      this.stateGen += 1;
      this.notify();
    }
  }

  /** Records a node's report; returns the generation after it. */
  async report(report: NodeReport): Promise<string> {
    const config = this.pending;
    if (registerNode(config, report) !== config) {
      // Knowing a node is configuration (datasets may name it as primary), so it is durable first.
      await this.mutate((c) => ({ config: registerNode(c, report), result: undefined, status: 200 }));
    }
    const now = this.now();
    const json = JSON.stringify(report);
    const previous = this.nodes.get(report.uuid);
    this.nodes.set(report.uuid, { report, lastSeen: now, json });
    this.store.publishReport?.(report, json, now);
    const wasAlive = this.aliveSet.has(report.uuid);
    this.aliveSet.add(report.uuid);
    // A report repeating what we know changes nothing for the agents: do not wake them.
    if (previous === undefined || previous.json !== json || !wasAlive) {
      this.stateGen += 1;
      this.notify();
    }
    return this.generation;
  }

  /** Marks nodes that stopped reporting as dead (and revived ones alive); bumps the generation if any changed. */
  checkLiveness(): void {
    const now = this.now();
    let changed = false;
    for (const [uuid, node] of this.nodes) {
      const alive = isAlive(node, now, this.nodeTimeoutMs);
      if (alive !== this.aliveSet.has(uuid)) {
        changed = true;
        if (alive) this.aliveSet.add(uuid);
        else {
          this.aliveSet.delete(uuid);
          this.logger.warn('node stopped reporting', { node: uuid, host: node.report.host });
        }
      }
    }
    if (changed) {
      this.stateGen += 1;
      this.notify();
    }
  }

  /** Resolves when the generation differs from `since`, or after `timeoutMs`. */
  waitForChange(since: string, timeoutMs: number, abort?: AbortSignal): Promise<void> {
    if (since !== this.generation || this.closed || timeoutMs <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.changeWaiters.delete(done);
        abort?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.changeWaiters.set(done, since);
      abort?.addEventListener('abort', done);
    });
  }

  get waiting(): number {
    return this.changeWaiters.size;
  }

  /**
   * Wakes the long-polls. An isolated change wakes them on the next turn of the
   * event loop (every hop of a create or move waits on this, so no fixed delay);
   * after a wake-up, further changes are coalesced until NOTIFY_COALESCE_MS has
   * passed: with a thousand agents each wake-up costs a thousand answers.
   */
  private notify(): void {
    if (this.notifyImmediate !== undefined) return;
    // A few waiters are cheap to answer: no cool-down, so each hop of a create or move
    // (several reports in quick succession) reaches its waiter at once.
    if (this.notifyTimer !== undefined && this.changeWaiters.size > WAKE_BATCH) {
      this.notifyPending = true;
      return;
    }
    this.notifyImmediate = setImmediate(() => {
      this.notifyImmediate = undefined;
      this.wakeAll();
      if (this.notifyTimer !== undefined) return;
      this.notifyTimer = setTimeout(() => {
        this.notifyTimer = undefined;
        if (this.notifyPending) {
          this.notifyPending = false;
          this.notify();
        }
      }, NOTIFY_COALESCE_MS);
    });
  }

  /**
   * Wakes the waiters whose generation is out of date (all of them when closing), in
   * batches with a turn of the event loop between them: each woken request writes
   * its answer at once, and writes arriving meanwhile must not wait for all 1,000.
   */
  private wakeAll(): void {
    const current = this.generation;
    const stale: Array<() => void> = [];
    for (const [w, since] of this.changeWaiters) if (this.closed || since !== current) stale.push(w);
    const wakeBatch = (from: number): void => {
      const end = Math.min(stale.length, from + WAKE_BATCH);
      // A waiter may already be gone (timed out, aborted); done() is idempotent then.
      for (let i = from; i < end; i++) (stale[i] as () => void)();
      if (end < stale.length) setImmediate(wakeBatch, end);
    };
    wakeBatch(0);
  }

  private scheduleLeaseExpiry(): void {
    if (this.leaseTimer !== undefined) clearTimeout(this.leaseTimer);
    this.leaseTimer = undefined;
    if (this.closed) return;
    const next = nextLeaseExpiry(this.committed);
    if (next === undefined) return;
    // Timers cap at ~24.8 days; a longer lease is simply re-checked then.
    const delay = Math.min(Math.max(0, next - this.now()) + 5, 2 ** 31 - 1);
    this.leaseTimer = setTimeout(() => {
      this.leaseTimer = undefined;
      this.mutate((c, now) => {
        const config = expireLeases(c, now);
        return { config, result: undefined, status: 200 };
      }).catch((err: unknown) => {
        this.logger.error('expiring leases failed', { error: String(err) });
      });
    }, delay);
    this.leaseTimer.unref();
  }

  /** Stops timers, releases long-polls and waits for a pending commit. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.livenessTimer !== undefined) clearInterval(this.livenessTimer);
    if (this.leaseTimer !== undefined) clearTimeout(this.leaseTimer);
    if (this.notifyTimer !== undefined) clearTimeout(this.notifyTimer);
    if (this.notifyImmediate !== undefined) clearImmediate(this.notifyImmediate);
    this.wakeAll();
    if (this.pending !== this.committed) await this.durable().catch(() => undefined);
    await this.store.close?.();
  }
}
