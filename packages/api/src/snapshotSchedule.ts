/**
 * Scheduled snapshots (issue 20): the grammar of a dataset's snapshot schedule and
 * retention, which live in its metadata, and the slot arithmetic every surface shares
 * (the control service runs the schedule; the CLI and UI show the next due time).
 *
 * Grammar of `clusterhq:flocker:snapshot-schedule`:
 *   hourly | daily | every <N><unit>   (unit s, m, h or d; N a whole number >= 1)
 * Slots are aligned to the UTC epoch: `hourly` is due at every full hour, `daily` at
 * 00:00 UTC, `every 15m` at :00, :15, :30 and :45. The control service refuses
 * intervals below MIN_SNAPSHOT_INTERVAL_MS (seconds exist for its test-only override).
 * `clusterhq:flocker:snapshot-keep` = N (1..MAX_SNAPSHOT_KEEP): how many scheduled
 * snapshots are kept; DEFAULT_SNAPSHOT_KEEP when absent.
 */

export const METADATA_SNAPSHOT_SCHEDULE_KEY = 'clusterhq:flocker:snapshot-schedule';
export const METADATA_SNAPSHOT_KEEP_KEY = 'clusterhq:flocker:snapshot-keep';
/** On a snapshot the control service took on schedule: the schedule it was taken for. */
export const METADATA_SCHEDULED_KEY = 'clusterhq:flocker:scheduled';
/** The metadata keys a dataset update may change (everything else is fixed at creation). */
export const MUTABLE_METADATA_KEYS: readonly string[] = [METADATA_SNAPSHOT_SCHEDULE_KEY, METADATA_SNAPSHOT_KEEP_KEY];

export const MIN_SNAPSHOT_INTERVAL_MS = 5 * 60_000;
export const MAX_SNAPSHOT_INTERVAL_MS = 366 * 86_400_000;
export const DEFAULT_SNAPSHOT_KEEP = 24;
export const MAX_SNAPSHOT_KEEP = 1000;

const UNIT_MS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const EVERY = /^every ([1-9][0-9]{0,8})([smhd])$/;

export const SNAPSHOT_SCHEDULE_HELP = "hourly, daily or 'every <N><s|m|h|d>' such as 'every 15m'";

/** A schedule's interval in ms, or a sentence saying why the text is not a schedule. */
export function parseSnapshotSchedule(text: string): { intervalMs: number } | { error: string } {
  if (text === 'hourly') return { intervalMs: UNIT_MS['h'] as number };
  if (text === 'daily') return { intervalMs: UNIT_MS['d'] as number };
  const m = EVERY.exec(text);
  if (m === null) return { error: `${JSON.stringify(text)} is not a snapshot schedule; use ${SNAPSHOT_SCHEDULE_HELP}` };
  const intervalMs = Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  if (intervalMs > MAX_SNAPSHOT_INTERVAL_MS) {
    return { error: `the snapshot schedule ${JSON.stringify(text)} is longer than 366 days` };
  }
  return { intervalMs };
}

/** The number of scheduled snapshots to keep, or a sentence saying why the text is not one. */
export function parseSnapshotKeep(text: string): { keep: number } | { error: string } {
  if (!/^[1-9][0-9]{0,3}$/.test(text) || Number(text) > MAX_SNAPSHOT_KEEP) {
    return {
      error: `snapshot-keep must be a whole number from 1 to ${MAX_SNAPSHOT_KEEP} (got ${JSON.stringify(text)})`,
    };
  }
  return { keep: Number(text) };
}

/** "every 5m" style text of an interval, for messages. */
export function intervalText(ms: number): string {
  for (const unit of ['d', 'h', 'm'] as const) {
    const u = UNIT_MS[unit] as number;
    if (ms % u === 0) return `${ms / u}${unit}`;
  }
  return `${Math.ceil(ms / 1000)}s`;
}

/**
 * What is wrong with the schedule keys of a dataset's metadata (empty when nothing):
 * the grammar, the minimum interval and the keep count.
 */
export function snapshotScheduleIssues(
  metadata: Readonly<Record<string, string | null>>,
  minIntervalMs: number = MIN_SNAPSHOT_INTERVAL_MS,
): { key: string; message: string }[] {
  const issues: { key: string; message: string }[] = [];
  const schedule = metadata[METADATA_SNAPSHOT_SCHEDULE_KEY];
  if (typeof schedule === 'string') {
    const parsed = parseSnapshotSchedule(schedule);
    if ('error' in parsed) issues.push({ key: METADATA_SNAPSHOT_SCHEDULE_KEY, message: parsed.error });
    else if (parsed.intervalMs < minIntervalMs) {
      issues.push({
        key: METADATA_SNAPSHOT_SCHEDULE_KEY,
        message: `the snapshot schedule ${JSON.stringify(schedule)} is more frequent than the minimum interval of ${intervalText(minIntervalMs)}`,
      });
    }
  }
  const keep = metadata[METADATA_SNAPSHOT_KEEP_KEY];
  if (typeof keep === 'string') {
    const parsed = parseSnapshotKeep(keep);
    if ('error' in parsed) issues.push({ key: METADATA_SNAPSHOT_KEEP_KEY, message: parsed.error });
  }
  return issues;
}

/** A dataset's schedule as the control service runs it; undefined without a (valid) schedule. */
export interface SnapshotSchedule {
  /** The metadata text, e.g. "hourly". */
  readonly text: string;
  readonly intervalMs: number;
  readonly keep: number;
}

/**
 * The schedule a dataset's metadata sets, or undefined (none, or one that does not parse:
 * the API refuses those, so only a hand-edited store could hold one). An interval below
 * `minIntervalMs` runs at the minimum.
 */
export function datasetSnapshotSchedule(
  metadata: Readonly<Record<string, string>>,
  minIntervalMs: number = MIN_SNAPSHOT_INTERVAL_MS,
): SnapshotSchedule | undefined {
  const text = metadata[METADATA_SNAPSHOT_SCHEDULE_KEY];
  if (text === undefined) return undefined;
  const parsed = parseSnapshotSchedule(text);
  if ('error' in parsed) return undefined;
  const keepText = metadata[METADATA_SNAPSHOT_KEEP_KEY];
  const keep = keepText === undefined ? undefined : parseSnapshotKeep(keepText);
  return {
    text,
    intervalMs: Math.max(parsed.intervalMs, minIntervalMs),
    keep: keep !== undefined && 'keep' in keep ? keep.keep : DEFAULT_SNAPSHOT_KEEP,
  };
}

/** The start (epoch ms) of the slot `now` falls in: slots are multiples of the interval since the epoch (UTC). */
export function scheduleSlotStart(now: number, intervalMs: number): number {
  return Math.floor(now / intervalMs) * intervalMs;
}

/**
 * When the next scheduled snapshot is due: the current slot's start when no scheduled
 * snapshot was asked for in it (`lastTakenAt`, epoch ms of the newest), else the next slot's.
 */
export function nextScheduledSnapshot(now: number, intervalMs: number, lastTakenAt: number | undefined): number {
  const slot = scheduleSlotStart(now, intervalMs);
  return lastTakenAt !== undefined && lastTakenAt >= slot ? slot + intervalMs : slot;
}

/**
 * `<volume>-<UTC time of the slot>`, e.g. db-20261204T0700Z (with seconds, db-20261204T070003Z,
 * only for an interval that is not whole minutes); a long volume name is shortened so the
 * whole fits a metadata value (256 characters).
 */
export function scheduledSnapshotName(volume: string, slotStart: number, intervalMs: number): string {
  const iso = new Date(slotStart).toISOString(); // 2026-12-04T07:00:00.000Z
  const date = iso.slice(0, 10).replaceAll('-', '');
  const time = iso.slice(11, 19).replaceAll(':', '');
  const suffix = `-${date}T${intervalMs % 60_000 === 0 ? time.slice(0, 4) : time}Z`;
  return `${volume.slice(0, 256 - suffix.length - '-scheduled'.length)}${suffix}`;
}
