/**
 * The control service's state machine without HTTP: the committed configuration,
 * writes serialized and group-committed to the store, node reports, the generation
 * token and the long-poll waiters.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'winston';
import type { ClusterEvent, NodeReport } from '@flocker/api';
import {
  type Applied,
  type Configuration,
  configurationTag,
  expireLeases,
  nextLeaseExpiry,
  registerNode,
  releaseDeadNodeLeases,
} from './configuration';
import type { ConfigurationStore } from './ConfigurationStore';
import { StoreConflict } from './etcd/conflict';
import { ConfigurationError, StoreError } from './errors';
import { isAlive, type ReportedNode } from './clusterState';
import { EventRing, leaseReleasedEvent, nodeBackEvent, nodeDeadEvent } from './events';

export interface ControlStateOptions {
  store: ConfigurationStore;
  nodeTimeoutMs: number;
  /** How long a node stays dead before the control service releases its unpinned leases; default 5 s. */
  leaseGraceMs?: number;
  logger: Logger;
  now?: () => number;
  /** How often liveness is re-checked; default min(1 s, nodeTimeout / 4). */
  livenessCheckMs?: number;
}

export const DEFAULT_LEASE_GRACE_MS = 5_000;
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
  readonly leaseGraceMs: number;
  readonly now: () => number;
  /** When this process started serving: known nodes that never report after it count as dead from startedAt + T. */
  private readonly startedAt: number;
  private readonly store: ConfigurationStore;
  private readonly logger: Logger;

  private committed: Configuration;
  /** Latest applied value; equals `committed` unless a commit is pending. */
  private pending: Configuration;
  private commitWaiters: CommitWaiter[] = [];
  private flushing = false;

  private readonly nodes = new Map<string, ReportedNode & { json: string }>();
  private readonly aliveSet = new Set<string>();
  /**
   * Nodes declared dead and not back: reported nodes whose last report is older than
   * the node timeout, and (after startedAt + T) lease holders known from the
   * configuration that have not reported since this process started.
   */
  private readonly deadNodes = new Map<string, { deadSince: number; host: string }>();
  private unreportedChecked = false;
  private readonly events = new EventRing();
  private deadReleaseTimer: NodeJS.Timeout | undefined;
  /** The release of dead nodes' leases in flight, if any (one at a time). */
  private releasing: Promise<void> | undefined;
  /** The leases and due nodes of the last sweep that found nothing to release (skips rescanning them). */
  private cleanSweep: { leases: ReadonlyMap<string, unknown>; due: string } | undefined;
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
    this.leaseGraceMs = options.leaseGraceMs ?? DEFAULT_LEASE_GRACE_MS;
    this.now = options.now ?? Date.now;
    this.startedAt = this.now();
    this.committed = initial;
    this.pending = initial;
    const every = options.livenessCheckMs ?? Math.max(50, Math.min(1000, Math.floor(options.nodeTimeoutMs / 4)));
    this.livenessTimer = setInterval(() => void this.checkLiveness(), every);
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

  /** The failover events this replica saw or decided (the last EVENT_CAPACITY), oldest first. */
  listEvents(): ClusterEvent[] {
    return this.events.list();
  }

  /**
   * Epoch ms at which the node was declared dead, or undefined while it is alive (or
   * unknown): its last report plus the node timeout, so every replica agrees on it.
   */
  deadSince(uuid: string, now: number = this.now()): number | undefined {
    const node = this.nodes.get(uuid);
    if (node !== undefined) return isAlive(node, now, this.nodeTimeoutMs) ? undefined : node.lastSeen + this.nodeTimeoutMs;
    return this.deadNodes.get(uuid)?.deadSince;
  }

  /**
   * Applies `change` to the latest configuration and resolves once the result is
   * durable. Changes apply in arrival order; all that arrive while the store is busy
   * share the next commit (group commit).
   */
  async mutate<T>(change: (config: Configuration, now: number) => Applied<T>, ifMatches?: string): Promise<Applied<T>> {
    if (this.closed) throw new ConfigurationError('SHUTTING_DOWN', 'The control service is shutting down.');
    if (ifMatches !== undefined && ifMatches !== configurationTag(this.pending)) {
      throw new ConfigurationError('CONFIGURATION_CHANGED', `The configuration changed since tag ${ifMatches} (now ${configurationTag(this.pending)}); read it again and retry.`,
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
          // A store's own 503 (e.g. STORE_FULL) already says what failed and what to do.
          const failure = err instanceof StoreError && err.unavailable ? err : new StoreError('STORE_UNAVAILABLE', `The configuration could not be saved: ${String(err)}`);
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
        w.reject(new ConfigurationError('CONFIGURATION_CHANGED', `The configuration changed through another control replica (now ${configurationTag(fresh)}); read it again and retry.`));
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
    const now = this.now();
    const alive = isAlive({ report, lastSeen }, now, this.nodeTimeoutMs);
    const wasAlive = this.aliveSet.has(report.uuid);
    if (alive) {
      this.aliveSet.add(report.uuid);
      this.nodeBack(report.uuid, report.host, now);
    } else {
      this.aliveSet.delete(report.uuid);
      // Already dead when we first hear of it (stored reports at start): dead, but nothing new to announce.
      if (wasAlive || this.deadNodes.has(report.uuid)) this.nodeDead(report.uuid, report.host, lastSeen, now, wasAlive);
      else this.deadNodes.set(report.uuid, { deadSince: lastSeen + this.nodeTimeoutMs, host: report.host });
    }
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
    if (!wasAlive) this.nodeBack(report.uuid, report.host, now);
    // A report repeating what we know changes nothing for the agents: do not wake them.
    if (previous === undefined || previous.json !== json || !wasAlive) {
      this.stateGen += 1;
      this.notify();
    }
    return this.generation;
  }

  /**
   * Marks nodes that stopped reporting as dead (and revived ones alive); bumps the
   * generation if any changed. Then releases the leases of nodes dead for the lease
   * grace; the promise settles when that release is durable (or failed and was logged).
   */
  checkLiveness(): Promise<void> {
    const now = this.now();
    let changed = false;
    for (const [uuid, node] of this.nodes) {
      const alive = isAlive(node, now, this.nodeTimeoutMs);
      if (alive !== this.aliveSet.has(uuid)) {
        changed = true;
        if (alive) {
          this.aliveSet.add(uuid);
          this.nodeBack(uuid, node.report.host, now);
        } else {
          this.aliveSet.delete(uuid);
          this.nodeDead(uuid, node.report.host, node.lastSeen, now, true);
        }
      }
    }
    if (!this.unreportedChecked && now - this.startedAt > this.nodeTimeoutMs) {
      this.unreportedChecked = true;
      this.declareUnreportedHolders(now);
    }
    if (changed) {
      this.stateGen += 1;
      this.notify();
    }
    return this.releaseDeadNodeLeases(now);
  }

  private nodeDead(uuid: string, host: string, lastSeen: number | undefined, now: number, announce: boolean): void {
    const deadSince = (lastSeen ?? this.startedAt) + this.nodeTimeoutMs;
    this.deadNodes.set(uuid, { deadSince, host });
    if (announce) {
      const event = nodeDeadEvent(uuid, host, lastSeen, this.nodeTimeoutMs, now);
      this.events.push(event);
      this.logger.warn(event.message, { event: event.kind, node: uuid, host, dead_since: new Date(deadSince).toISOString() });
    }
    this.scheduleDeadNodeRelease();
  }

  private nodeBack(uuid: string, host: string, now: number): void {
    const dead = this.deadNodes.get(uuid);
    if (dead === undefined) return;
    this.deadNodes.delete(uuid);
    const event = nodeBackEvent(uuid, host, dead.deadSince, now);
    this.events.push(event);
    this.logger.info(event.message, { event: event.kind, node: uuid, host });
    this.scheduleDeadNodeRelease();
  }

  /**
   * After a restart this process knows no report times: a node of the configuration that
   * holds a lease and has not reported within the node timeout of our start is dead
   * (else a host that died while the control service was down would keep its leases).
   */
  private declareUnreportedHolders(now: number): void {
    for (const lease of this.committed.leases.values()) {
      const uuid = lease.node_uuid;
      if (this.nodes.has(uuid) || this.deadNodes.has(uuid)) continue;
      const known = this.committed.nodes.get(uuid);
      // A lease naming a node that never reported was never about a live host: left alone.
      if (known === undefined) continue;
      this.nodeDead(uuid, known.host, undefined, now, true);
    }
  }

  /**
   * Releases (one configuration commit) every unpinned lease whose node has been dead
   * for the lease grace. Idempotent: re-applied on whatever configuration is current
   * (another replica's included), it releases only what is still held by a node still
   * dead. Failures are logged and retried on the next liveness check.
   */
  releaseDeadNodeLeases(now: number = this.now()): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.releasing !== undefined) return this.releasing;
    const due: string[] = [];
    for (const [uuid, dead] of this.deadNodes) if (now - dead.deadSince >= this.leaseGraceMs) due.push(uuid);
    if (due.length === 0) return Promise.resolve();
    const key = due.sort().join(',');
    const leases = this.pending.leases;
    if (this.cleanSweep !== undefined && this.cleanSweep.leases === leases && this.cleanSweep.due === key) return Promise.resolve();
    const change = (c: Configuration, t: number) => releaseDeadNodeLeases(c, (uuid) => this.deadSince(uuid, t), t, this.leaseGraceMs);
    if (change(this.pending, now).result.length === 0) {
      this.cleanSweep = { leases, due: key };
      return Promise.resolve();
    }
    const releasing = this.mutate(change)
      .then((applied) => {
        const at = this.now();
        for (const { lease, deadSince } of applied.result) {
          const host = this.nodes.get(lease.node_uuid)?.report.host ?? this.committed.nodes.get(lease.node_uuid)?.host ?? lease.node_uuid;
          const volume = this.committed.datasets.get(lease.dataset_id)?.metadata['name'];
          const event = leaseReleasedEvent(lease.dataset_id, volume, lease.node_uuid, host, deadSince, at);
          this.events.push(event);
          this.logger.warn(event.message, { event: event.kind, dataset: lease.dataset_id, node: lease.node_uuid, host, configuration: this.configurationTag });
        }
      })
      .catch((err: unknown) => {
        if (this.closed) return;
        this.logger.warn('releasing the leases of dead nodes failed; retrying at the next liveness check', { error: String(err) });
      })
      .finally(() => {
        this.releasing = undefined;
      });
    this.releasing = releasing;
    return releasing;
  }

  /** A timer at the next moment a dead node's grace ends (ones already due are swept by the liveness check). */
  private scheduleDeadNodeRelease(): void {
    if (this.deadReleaseTimer !== undefined) clearTimeout(this.deadReleaseTimer);
    this.deadReleaseTimer = undefined;
    if (this.closed) return;
    const now = this.now();
    let next: number | undefined;
    for (const dead of this.deadNodes.values()) {
      const due = dead.deadSince + this.leaseGraceMs;
      if (due > now && (next === undefined || due < next)) next = due;
    }
    if (next === undefined) return;
    const delay = Math.min(next - now + 5, 2 ** 31 - 1);
    this.deadReleaseTimer = setTimeout(() => {
      this.deadReleaseTimer = undefined;
      void this.releaseDeadNodeLeases();
      this.scheduleDeadNodeRelease();
    }, delay);
    this.deadReleaseTimer.unref();
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
    if (this.deadReleaseTimer !== undefined) clearTimeout(this.deadReleaseTimer);
    if (this.notifyTimer !== undefined) clearTimeout(this.notifyTimer);
    if (this.notifyImmediate !== undefined) clearImmediate(this.notifyImmediate);
    this.wakeAll();
    if (this.pending !== this.committed) await this.durable().catch(() => undefined);
    await this.store.close?.();
  }
}
