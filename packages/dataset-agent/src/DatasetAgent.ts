/**
 * The level-triggered loop: observe -> decide -> act -> report -> wait.
 * Wakes on a pushed cluster change (long-poll), an action finishing, a
 * backoff expiring, or the resync timer. Nothing is kept between turns that an
 * observation can give again, except failure counts (for backoff and reporting).
 */
import { METADATA_PROFILE_KEY, type ActionError, type ClusterSnapshot, type NodeReport } from '@flocker/api';
import type { BlockDeviceApi } from '@flocker/storage-drivers';
import type winston from 'winston';
import { calculateChanges, mountPathOf } from './calculateChanges';
import { discoverLocalState } from './discoverLocalState';
import { errorCode, errorMessage } from './errors';
import { executeAction } from './executeAction';
import type { HostOps } from './HostOps';
import type { Action, ActionKind, DecisionContext, DesiredState, LocalState } from './LocalState';

/** The part of FlockerClient the agent uses. */
export interface ControlChannel {
  reportNodeState(report: NodeReport): Promise<unknown>;
  waitForCluster(since?: string, timeoutMs?: number): Promise<ClusterSnapshot>;
}

export interface CrashAfter {
  readonly kind: ActionKind;
  readonly count: number;
}

export interface DatasetAgentOptions {
  readonly nodeUuid: string;
  readonly era: string;
  readonly host: string;
  readonly instanceId: string;
  readonly driver: BlockDeviceApi;
  readonly hostOps: HostOps;
  readonly control: ControlChannel;
  readonly mountRoot: string;
  readonly defaultSize: number;
  readonly resyncIntervalMs: number;
  readonly concurrency: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly logger: winston.Logger;
  /** Test hook: die (SIGKILL) right after the count-th successful action of this kind. */
  readonly crashAfter?: CrashAfter;
  readonly crash?: () => void;
  /** How long one long-poll waits. */
  readonly pollWaitMs?: number;
  readonly now?: () => number;
}

interface Failure {
  readonly action: Action;
  readonly attempts: number;
  readonly since: string;
  readonly code: string;
  readonly message: string;
  readonly retryAt: number;
}

/** Bounded exponential backoff: initial, 2x initial, … up to max. */
export function backoffDelay(attempts: number, initialMs: number, maxMs: number): number {
  return Math.min(maxMs, initialMs * 2 ** Math.max(0, attempts - 1));
}

/** Parses FLOCKER_AGENT_CRASH_AFTER=<kind>:<n>. */
export function parseCrashAfter(value: string | undefined): CrashAfter | undefined {
  if (value === undefined || value === '') return undefined;
  const m = /^([a-zA-Z]+):(\d+)$/.exec(value);
  const kinds: readonly string[] = ['create', 'attach', 'format', 'mount', 'unmount', 'detach', 'forceDetach', 'destroy', 'resize'];
  if (!m || !kinds.includes(m[1]!) || Number(m[2]) < 1) {
    throw new Error(`FLOCKER_AGENT_CRASH_AFTER must be <action kind>:<n> (n >= 1), got ${JSON.stringify(value)}`);
  }
  return { kind: m[1] as ActionKind, count: Number(m[2]) };
}

export function desiredStateOf(snapshot: ClusterSnapshot): DesiredState {
  return {
    datasets: snapshot.datasets.map((d) => {
      const profile = d.metadata[METADATA_PROFILE_KEY];
      return {
        datasetId: d.dataset_id,
        primary: d.primary,
        maximumSize: d.maximum_size ?? null,
        deleted: d.deleted,
        ...(profile !== undefined ? { profile } : {}),
      };
    }),
    nodes: snapshot.nodes.map((n) => ({ uuid: n.uuid, instanceId: n.instance_id, alive: n.alive })),
  };
}

export class DatasetAgent {
  private snapshot: ClusterSnapshot | null = null;
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly failures = new Map<string, Failure>();
  private readonly successes = new Map<ActionKind, number>();
  private wakeUp: (() => void) | null = null;
  private woken = false;
  private stopping = false;
  /** Counts finished actions, to notice observations made stale by one finishing meanwhile. */
  private completed = 0;
  private lastReport = '';
  private lastReportAt = 0;
  private loopDone: Promise<void> | null = null;
  private readonly now: () => number;
  private readonly decision: DecisionContext;

  constructor(private readonly o: DatasetAgentOptions) {
    this.now = o.now ?? Date.now;
    this.decision = {
      nodeUuid: o.nodeUuid,
      mountRoot: o.mountRoot,
      defaultSize: o.defaultSize,
      allocationUnit: o.driver.allocationUnit(),
      canResize: o.driver.resizeVolume !== undefined,
    };
  }

  start(): void {
    this.loopDone = this.mainLoop();
    // Not awaited by stop(): a pending long-poll just ends with its timeout.
    void this.watchCluster();
  }

  /** Finish running actions, start no new ones, stop. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake();
    await Promise.allSettled([...this.inFlight.values()]);
    await this.loopDone;
  }

  private wake(): void {
    this.woken = true;
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  private sleep(ms: number): Promise<void> {
    if (this.woken || this.stopping) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.wakeUp = null;
        resolve();
      }, Math.max(0, ms));
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    }).then(() => {
      this.woken = false;
    });
  }

  private async mainLoop(): Promise<void> {
    while (!this.stopping) {
      let wait = this.o.resyncIntervalMs;
      try {
        wait = await this.turn();
      } catch (e) {
        this.o.logger.error('observation failed', { code: errorCode(e), error: errorMessage(e) });
        wait = Math.min(wait, this.o.backoffInitialMs);
      }
      await this.sleep(wait);
    }
  }

  /** Long-polls the control service and wakes the loop on every new generation. */
  private async watchCluster(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      try {
        const snap = await this.o.control.waitForCluster(this.snapshot?.generation, this.o.pollWaitMs ?? 25_000);
        failures = 0;
        if (snap.generation !== this.snapshot?.generation) {
          this.snapshot = snap;
          this.wake();
        }
      } catch (e) {
        if (this.stopping) return;
        failures++;
        this.o.logger.warn('cannot reach the control service', { code: errorCode(e), error: errorMessage(e) });
        await new Promise((r) => setTimeout(r, backoffDelay(failures, this.o.backoffInitialMs, this.o.backoffMaxMs)));
      }
    }
  }

  /** One observe -> decide -> act -> report pass; returns how long to wait at most. */
  private async turn(): Promise<number> {
    const completedBefore = this.completed;
    const local = await discoverLocalState(this.o.driver, this.o.hostOps, this.o.instanceId);
    // An action finished while we looked: what we saw may predate it. Look again (it woke us already).
    if (this.completed !== completedBefore) return 0;
    const now = this.now();
    let wait = this.o.resyncIntervalMs - (now - this.lastReportAt);
    if (this.snapshot !== null && !this.stopping) {
      const actions = calculateChanges(desiredStateOf(this.snapshot), local, this.decision);
      const wanted = new Set(actions.map((a) => a.datasetId));
      // Converged or asked for something else: the old failure no longer applies.
      for (const [id, f] of this.failures) {
        const next = actions.find((a) => a.datasetId === id);
        if (!wanted.has(id) || (next && next.kind !== f.action.kind)) this.failures.delete(id);
      }
      for (const action of actions) {
        if (this.inFlight.has(action.datasetId)) continue;
        if (this.inFlight.size >= this.o.concurrency) break; // an action finishing wakes us
        const failure = this.failures.get(action.datasetId);
        if (failure && failure.retryAt > now) {
          wait = Math.min(wait, failure.retryAt - now);
          continue;
        }
        this.dispatch(action);
      }
    }
    await this.report(local);
    return Math.max(0, Math.min(wait, this.o.resyncIntervalMs));
  }

  private dispatch(action: Action): void {
    const started = this.now();
    const run = executeAction(action, {
      driver: this.o.driver,
      host: this.o.hostOps,
      instanceId: this.o.instanceId,
      logger: this.o.logger,
    }).then(
      () => {
        this.failures.delete(action.datasetId);
        this.o.logger.info('action done', { ...action, durationMs: this.now() - started });
        this.maybeCrash(action.kind);
      },
      (e: unknown) => {
        const prev = this.failures.get(action.datasetId);
        const attempts = (prev?.attempts ?? 0) + 1;
        const delay = backoffDelay(attempts, this.o.backoffInitialMs, this.o.backoffMaxMs);
        this.failures.set(action.datasetId, {
          action,
          attempts,
          since: prev?.since ?? new Date(this.now()).toISOString(),
          code: errorCode(e),
          message: errorMessage(e),
          retryAt: this.now() + delay,
        });
        this.o.logger.warn('action failed', {
          ...action,
          durationMs: this.now() - started,
          attempts,
          retryInMs: delay,
          code: errorCode(e),
          error: errorMessage(e),
        });
      },
    );
    const tracked = run.finally(() => {
      this.completed++;
      this.inFlight.delete(action.datasetId);
      this.wake();
    });
    this.inFlight.set(action.datasetId, tracked);
  }

  private maybeCrash(kind: ActionKind): void {
    const n = (this.successes.get(kind) ?? 0) + 1;
    this.successes.set(kind, n);
    const c = this.o.crashAfter;
    if (c && c.kind === kind && c.count === n) {
      this.o.logger.warn('crashing on purpose (FLOCKER_AGENT_CRASH_AFTER)', { kind, count: n });
      (this.o.crash ?? (() => process.kill(process.pid, 'SIGKILL')))();
    }
  }

  /** Sends the node report when it changed, and at least every resync interval. */
  private async report(local: LocalState): Promise<void> {
    const report = this.buildReport(local);
    const text = JSON.stringify(report);
    const now = this.now();
    if (text === this.lastReport && now - this.lastReportAt < this.o.resyncIntervalMs) return;
    try {
      await this.o.control.reportNodeState(report);
      if (text !== this.lastReport) this.o.logger.debug('node state reported', { manifestations: report.manifestations.length });
      this.lastReport = text;
      this.lastReportAt = now;
    } catch (e) {
      this.o.logger.warn('cannot report node state', { code: errorCode(e), error: errorMessage(e) });
    }
  }

  buildReport(local: LocalState): NodeReport {
    const manifestations: NodeReport['manifestations'] = [];
    for (const v of local.volumes) {
      if (v.attachedTo !== local.instanceId) continue;
      const path = mountPathOf(v.datasetId, this.decision);
      const mounted = (v.mountPoints ?? []).includes(path);
      manifestations.push({
        dataset_id: v.datasetId,
        blockdevice_id: v.blockdeviceId,
        size: v.size,
        status: mounted ? 'mounted' : 'attached',
        ...(v.devicePath !== undefined ? { device_path: v.devicePath } : {}),
        ...(mounted ? { path } : {}),
      });
    }
    const errors: ActionError[] = [...this.failures.entries()].map(([datasetId, f]) => ({
      dataset_id: datasetId,
      action: f.action.kind,
      code: f.code,
      message: f.message,
      attempts: f.attempts,
      since: f.since,
    }));
    return {
      uuid: this.o.nodeUuid,
      era: this.o.era,
      host: this.o.host,
      instance_id: local.instanceId,
      backend: this.o.driver.backend,
      manifestations,
      volumes: local.volumes.map((v) => ({
        blockdevice_id: v.blockdeviceId,
        dataset_id: v.datasetId,
        size: v.size,
        attached_to: v.attachedTo,
      })),
      errors,
    };
  }
}
