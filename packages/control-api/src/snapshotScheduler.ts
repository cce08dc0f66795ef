/**
 * Runs the snapshot schedules (issue 20): one timer at the earliest due time of the
 * committed configuration, re-planned on every configuration change. Each run is one
 * configuration commit of applySnapshotSchedules (snapshotSchedule.ts), which the committer
 * re-applies onto whatever another replica committed first: every replica runs this, and
 * the compare-and-set commit is what keeps them from taking a slot twice.
 */
import type { Logger } from 'winston';
import type { Clock, TimerHandle } from '@flocker/runtime';
import { configurationTag, type Configuration, type Applied } from './configuration';
import {
  applySnapshotSchedules,
  nextScheduleDue,
  ScheduledDatasets,
  type ScheduleAction,
  type ScheduleHold,
} from './snapshotSchedule';

export interface SnapshotSchedulerOptions {
  /** The committed configuration, and a way to change it (the committer). */
  configuration: () => Configuration;
  mutate: (
    change: (config: Configuration, now: number) => Applied<ScheduleAction[]>,
  ) => Promise<Applied<ScheduleAction[]>>;
  /** Epoch ms (the control service's clock). */
  now: () => number;
  /** Timers; by default setTimeout, unref'd (a pending schedule never keeps the process alive). */
  timers?: Pick<Clock, 'setTimer'>;
  minIntervalMs: number;
  logger: Logger;
  /** Which datasets' schedules are not run (issue 24: local storage, and nodes not reported since the start). */
  hold?: ScheduleHold;
}

/** Timers cap at ~24.8 days; a later moment is simply re-planned then. */
const MAX_DELAY_MS = 2 ** 31 - 1;
/** After a start, how long at most a schedule waits for its primary's first report (it may be local storage). */
export const SCHEDULE_HOLD_UNKNOWN_MS = 30_000;
/** After a failed run (store unavailable, shutting down), the next try. */
export const SCHEDULE_RETRY_MS = 5_000;

const unrefTimers: Pick<Clock, 'setTimer'> = {
  setTimer(fn, ms) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

export class SnapshotScheduler {
  private timer: TimerHandle | undefined;
  private running: Promise<void> | undefined;
  private retryAt: number | undefined;
  /** The datasets and snapshots the pending timer was planned on: other changes (leases, nodes) keep it. */
  private plannedOn: { datasets: unknown; snapshots: unknown } | undefined;
  private closed = false;
  /** Which datasets have a schedule, kept by diff (a replan per change must not scan every dataset). */
  private readonly scheduled = new ScheduledDatasets();
  /** The primaries of the datasets the pending plan holds back (not reported since the start: hold). */
  private readonly waitingFor = new Set<string>();

  constructor(private readonly options: SnapshotSchedulerOptions) {}

  /** A timer at the earliest due time (replacing the previous one); nothing while a run is in flight. */
  reschedule(): void {
    const config = this.options.configuration();
    const same =
      this.plannedOn !== undefined &&
      this.plannedOn.datasets === config.datasets &&
      this.plannedOn.snapshots === config.snapshots;
    if (same && this.running === undefined && !this.closed) return;
    this.timer?.cancel();
    this.timer = undefined;
    this.plannedOn = undefined;
    if (this.closed || this.running !== undefined) return;
    const now = this.options.now();
    this.waitingFor.clear();
    let due = nextScheduleDue(
      config,
      now,
      this.options.minIntervalMs,
      this.scheduled,
      this.options.hold,
      this.waitingFor,
    );
    this.plannedOn = { datasets: config.datasets, snapshots: config.snapshots };
    if (due === undefined) return;
    if (this.retryAt !== undefined) due = Math.max(due, this.retryAt);
    // A few ms late, so the slot has begun on the clock the planner reads.
    const delay = Math.min(Math.max(0, due - now) + (due > now ? 5 : 0), MAX_DELAY_MS);
    const timers = this.options.timers ?? unrefTimers;
    this.timer = timers.setTimer(() => {
      this.timer = undefined;
      void this.run();
    }, delay);
  }

  /** Applies the schedules now (one commit); resolves once it is durable, or failed and was logged. */
  run(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.running !== undefined) return this.running;
    const { logger, minIntervalMs, hold } = this.options;
    this.running = this.options
      .mutate((c, now) => applySnapshotSchedules(c, now, minIntervalMs, undefined, this.scheduled, hold))
      .then((applied) => {
        this.retryAt = undefined;
        const tag = configurationTag(this.options.configuration());
        for (const action of applied.result) {
          logger.info('scheduled snapshots', {
            event: 'snapshot_schedule',
            dataset: action.dataset_id,
            ...(action.created !== undefined
              ? { created: action.created.snapshot_id, name: action.created.metadata['name'] }
              : {}),
            deleted: action.deleted,
            configuration: tag,
          });
        }
      })
      .catch((err: unknown) => {
        if (this.closed) return;
        this.retryAt = this.options.now() + SCHEDULE_RETRY_MS;
        logger.warn('running the snapshot schedules failed; retrying', {
          error: String(err),
          retry_ms: SCHEDULE_RETRY_MS,
        });
      })
      .finally(() => {
        this.running = undefined;
        this.plannedOn = undefined;
        this.reschedule();
      });
    return this.running;
  }

  /**
   * A node reported: if the plan held a dataset back for its first report, plan again (its backend is known now: a
   * block dataset is scheduled at once, a local one not at all). O(1) otherwise: called on every report.
   */
  nodeReported(uuid: string): void {
    if (!this.waitingFor.delete(uuid)) return;
    this.plannedOn = undefined;
    this.reschedule();
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
  }
}
