/**
 * Scheduled snapshots (issue 20), the pure part: given the time, a dataset's schedule
 * (its metadata, see @flocker/api snapshotSchedule.ts) and the scheduled snapshots it
 * has, which snapshot to ask for and which to delete. No timers here (snapshotScheduler.ts).
 *
 * Slots are multiples of the interval since the epoch. A slot is served when a scheduled
 * snapshot of the dataset was asked for at or after its start; an unserved current slot
 * gets one snapshot, whatever number of slots passed before it (a restart or a long outage
 * never causes a burst). Retention deletes the oldest scheduled snapshots beyond keep;
 * snapshots without the scheduled marker (manual ones, a clone's implicit one) never count.
 * Applied inside a configuration commit, and re-applied on whatever another replica
 * committed first, so two control replicas never take a slot twice.
 */
import { randomUUID } from 'node:crypto';
import {
  datasetSnapshotSchedule,
  METADATA_NAME_KEY,
  METADATA_SCHEDULED_KEY,
  METADATA_SNAPSHOT_SCHEDULE_KEY,
  MIN_SNAPSHOT_INTERVAL_MS,
  scheduledSnapshotName,
  scheduleSlotStart,
  type DatasetConfiguration,
  type SnapshotConfiguration,
  type SnapshotSchedule,
} from '@flocker/api';
import { type Applied, type Configuration, createSnapshot, deleteSnapshot } from './configuration';
import type { BackendOf } from './localStorage';
import { PersistentMap } from './PersistentMap';

/** A scheduled snapshot as the planner needs it. */
export interface ScheduledSnapshot {
  readonly snapshot_id: string;
  /** Epoch ms it was asked for. */
  readonly createdAt: number;
}

export interface SchedulePlan {
  /** The snapshot to ask for now, if the current slot is not served. */
  readonly create?: { readonly name: string; readonly slotStart: number };
  /** Ids of scheduled snapshots to delete, oldest first. */
  readonly delete: readonly string[];
  /** When this dataset is next due (epoch ms), once the plan is applied. */
  readonly nextDue: number;
}

/**
 * The plan for one dataset. `scheduled` are its live (not deleted) scheduled snapshots;
 * `nameInUse` says whether a live snapshot already has a name (a manual one may hold the
 * slot's name: then `<name>-scheduled` is used, and if that is taken too the slot is skipped).
 */
export function planSchedule(
  now: number,
  schedule: SnapshotSchedule,
  volume: string,
  scheduled: readonly ScheduledSnapshot[],
  nameInUse: (name: string) => boolean = () => false,
): SchedulePlan {
  const slotStart = scheduleSlotStart(now, schedule.intervalMs);
  const nextSlot = slotStart + schedule.intervalMs;
  const oldestFirst = [...scheduled].sort(
    (a, b) => a.createdAt - b.createdAt || a.snapshot_id.localeCompare(b.snapshot_id),
  );
  const newest = oldestFirst[oldestFirst.length - 1];
  let create: SchedulePlan['create'];
  if (newest === undefined || newest.createdAt < slotStart) {
    const base = scheduledSnapshotName(volume, slotStart, schedule.intervalMs);
    const name = !nameInUse(base) ? base : !nameInUse(`${base}-scheduled`) ? `${base}-scheduled` : undefined;
    if (name !== undefined) create = { name, slotStart };
  }
  const total = oldestFirst.length + (create !== undefined ? 1 : 0);
  const excess = Math.max(0, total - schedule.keep);
  return {
    ...(create !== undefined ? { create } : {}),
    delete: oldestFirst.slice(0, excess).map((s) => s.snapshot_id),
    // Served (or skipped for a name nobody can use): the next slot.
    nextDue: nextSlot,
  };
}

/** Whether a snapshot was taken on schedule (never a manual or a clone's implicit one). */
export function isScheduledSnapshot(snapshot: SnapshotConfiguration): boolean {
  return snapshot.metadata[METADATA_SCHEDULED_KEY] !== undefined;
}

interface DatasetSchedule {
  readonly datasetId: string;
  readonly volume: string;
  readonly schedule: SnapshotSchedule;
  readonly scheduled: ScheduledSnapshot[];
  readonly primary: string;
  /** Held back until then (epoch ms): its primary has not reported since the service started (ScheduleHold). */
  readonly heldUntil?: number;
}

/**
 * Which datasets' schedules are not run (issue 24): local storage's agent takes no snapshots, each would stay
 * "requested" for ever. The API refuses such a schedule once the node has reported (localStorage.ts); one set before
 * that stays in the metadata, not run (the CLI and web UI say why).
 */
export interface ScheduleHold {
  /** A node's backend as its latest report since the service started says (undefined: not reported since). */
  readonly backendOf: BackendOf;
  /**
   * Until then (epoch ms) a dataset whose primary has not reported since the start is held back: it may be local
   * (right after a restart, a missed slot would otherwise be asked for at once). After, it is scheduled as block
   * storage, the default (a block node's agent takes the snapshot only once it reports anyway).
   */
  readonly unknownUntil: number;
}

const mayHaveSchedule = (d: DatasetConfiguration): boolean =>
  !d.deleted && d.metadata[METADATA_SNAPSHOT_SCHEDULE_KEY] !== undefined;

/**
 * The ids of the live datasets whose metadata names a snapshot schedule, kept for the last
 * datasets map asked about and updated from the difference to the next one. The scheduler
 * replans on every configuration change: a scan of 100,000 datasets per change was the
 * control service's largest cost at scale, while a change touches a few datasets.
 */
export class ScheduledDatasets {
  private seen: ReadonlyMap<string, DatasetConfiguration> | undefined;
  private readonly ids = new Set<string>();

  /** The ids for `datasets` (the same Set, updated in place: read it before the next call). */
  of(datasets: ReadonlyMap<string, DatasetConfiguration>): ReadonlySet<string> {
    if (datasets === this.seen) return this.ids;
    if (this.seen === undefined) {
      for (const d of datasets.values()) if (mayHaveSchedule(d)) this.ids.add(d.dataset_id);
    } else {
      for (const id of PersistentMap.changedKeys(this.seen, datasets)) {
        const d = datasets.get(id);
        if (d !== undefined && mayHaveSchedule(d)) this.ids.add(id);
        else this.ids.delete(id);
      }
    }
    this.seen = datasets;
    return this.ids;
  }
}

function* candidates(config: Configuration, index: ScheduledDatasets | undefined): Generator<DatasetConfiguration> {
  if (index === undefined) {
    yield* config.datasets.values();
    return;
  }
  for (const id of index.of(config.datasets)) {
    const d = config.datasets.get(id);
    if (d !== undefined) yield d;
  }
}

/**
 * Every live dataset with a schedule, and its live scheduled snapshots; none whose primary is known to
 * be local, and those whose primary has not reported since the start marked held (`hold`, at `now`).
 */
function datasetSchedules(
  config: Configuration,
  minIntervalMs: number,
  index: ScheduledDatasets | undefined,
  hold: ScheduleHold | undefined,
  now: number,
): DatasetSchedule[] {
  const byDataset = new Map<string, DatasetSchedule>();
  for (const dataset of candidates(config, index)) {
    if (dataset.deleted) continue;
    const backend = hold?.backendOf(dataset.primary);
    if (backend?.kind === 'local') continue;
    const schedule = datasetSnapshotSchedule(dataset.metadata, minIntervalMs);
    if (schedule === undefined) continue;
    const volume = dataset.metadata[METADATA_NAME_KEY] ?? dataset.dataset_id;
    const held = hold !== undefined && backend === undefined && now < hold.unknownUntil;
    byDataset.set(dataset.dataset_id, {
      datasetId: dataset.dataset_id,
      volume,
      schedule,
      scheduled: [],
      primary: dataset.primary,
      ...(held ? { heldUntil: hold.unknownUntil } : {}),
    });
  }
  for (const snapshot of config.snapshots?.values() ?? []) {
    if (snapshot.deleted === true || !isScheduledSnapshot(snapshot)) continue;
    const createdAt = Date.parse(snapshot.created_at);
    byDataset.get(snapshot.dataset_id)?.scheduled.push({
      snapshot_id: snapshot.snapshot_id,
      createdAt: Number.isNaN(createdAt) ? 0 : createdAt,
    });
  }
  return [...byDataset.values()];
}

function liveSnapshotNames(config: Configuration): Set<string> {
  const live = new Set<string>();
  for (const s of config.snapshots?.values() ?? []) {
    const name = s.metadata[METADATA_NAME_KEY];
    if (s.deleted !== true && name !== undefined) live.add(name);
  }
  return live;
}

/** What one application of the schedules did, per dataset (only those with something done). */
export interface ScheduleAction {
  readonly dataset_id: string;
  readonly created?: SnapshotConfiguration;
  readonly deleted: readonly string[];
}

/**
 * Applies every dataset's plan at `now` to the configuration: the same value when nothing
 * is due, so re-applying it (on this replica or after another did it) is a no-op.
 */
export function applySnapshotSchedules(
  config: Configuration,
  now: number,
  minIntervalMs: number = MIN_SNAPSHOT_INTERVAL_MS,
  newId: () => string = randomUUID,
  index?: ScheduledDatasets,
  hold?: ScheduleHold,
): Applied<ScheduleAction[]> {
  const live = liveSnapshotNames(config);
  let next = config;
  const actions: ScheduleAction[] = [];
  for (const d of datasetSchedules(config, minIntervalMs, index, hold, now)) {
    if (d.heldUntil !== undefined) continue;
    const plan = planSchedule(now, d.schedule, d.volume, d.scheduled, (name) => live.has(name));
    if (plan.create === undefined && plan.delete.length === 0) continue;
    let created: SnapshotConfiguration | undefined;
    if (plan.create !== undefined) {
      const applied = createSnapshot(
        next,
        {
          dataset_id: d.datasetId,
          metadata: { [METADATA_NAME_KEY]: plan.create.name, [METADATA_SCHEDULED_KEY]: d.schedule.text },
        },
        now,
        newId,
      );
      next = applied.config;
      created = applied.result;
      live.add(plan.create.name);
    }
    for (const id of plan.delete) next = deleteSnapshot(next, id).config;
    actions.push({ dataset_id: d.datasetId, ...(created !== undefined ? { created } : {}), deleted: plan.delete });
  }
  return { config: next, result: actions, status: 200 };
}

/**
 * The earliest moment any dataset's schedule is due (epoch ms; `now` when something is due now). `held`, when given,
 * gets the primaries of the datasets held back (their first report is worth a new plan).
 */
export function nextScheduleDue(
  config: Configuration,
  now: number,
  minIntervalMs: number,
  index?: ScheduledDatasets,
  hold?: ScheduleHold,
  held?: Set<string>,
): number | undefined {
  const live = liveSnapshotNames(config);
  let due: number | undefined;
  for (const d of datasetSchedules(config, minIntervalMs, index, hold, now)) {
    const plan = planSchedule(now, d.schedule, d.volume, d.scheduled, (name) => live.has(name));
    const planned = plan.create !== undefined || plan.delete.length > 0 ? now : plan.nextDue;
    // Held back: due no earlier than the hold's end (then its node has reported, or it is taken for block storage).
    if (d.heldUntil !== undefined) held?.add(d.primary);
    const at = d.heldUntil === undefined ? planned : Math.max(planned, d.heldUntil);
    if (due === undefined || at < due) due = at;
  }
  return due;
}
