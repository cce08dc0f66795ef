/**
 * Snapshots as the CLI shows them (issue 20): resolving a name, and the phases `--wait` follows.
 * Pure, so each case is unit-tested.
 */
import {
  type BackendSnapshot,
  type ClusterSnapshot,
  type DatasetConfiguration,
  METADATA_SCHEDULED_KEY,
  METADATA_SNAPSHOT_KEEP_KEY,
  METADATA_SNAPSHOT_SCHEDULE_KEY,
  type SnapshotConfiguration,
  snapshotScheduleIssues,
} from '@flocker/api';
import {
  localSnapshotNotTaken,
  nextScheduledAt,
  scheduleOf,
  snapshotError,
  snapshotName,
  snapshotState,
} from '@flocker/web-ui';
import { CliError, EXIT } from './errors';
import { type RefKind, resolveRef } from './resolveRef';

// The join of configuration and backends is the web UI's model, shared so both say the same.
export { snapshotName, snapshotRow, type SnapshotRow } from '@flocker/web-ui';

/** Snapshots as resolveRef takes them: any non-empty name (the control service keeps live names unique). */
const SNAPSHOT_REF: RefKind<SnapshotConfiguration> = {
  noun: 'snapshot',
  idOf: (s) => s.snapshot_id,
  nameOf: snapshotName,
  byName: (ref) => ref !== '',
  code: 'AMBIGUOUS_SNAPSHOT',
};

/**
 * A snapshot given by name, id or unique id prefix (≥ 4 characters); live ones only. The volumes' rule (resolveRef,
 * review R2-1): a full id another snapshot bears as its name, or a name that is another snapshot's id prefix, is
 * refused (exit 2) with what picks each, not resolved to one of them silently (`snapshots destroy` would destroy the
 * other).
 */
export function resolveSnapshot(snapshots: readonly SnapshotConfiguration[], ref: string): SnapshotConfiguration {
  if (ref.trim() === '') throw new CliError(EXIT.USAGE, 'snapshot name or id must not be empty');
  const found = resolveRef(
    SNAPSHOT_REF,
    snapshots,
    snapshots.filter((s) => s.deleted !== true),
    [],
    ref,
  );
  if (found) return found;
  throw new CliError(EXIT.NOT_FOUND, `no snapshot named or with id "${ref}" (see "flocker snapshots list")`);
}

/** `snapshots create --wait`: done once a backend holds it (its point in time is then fixed). */
export function takenPhase(
  cluster: ClusterSnapshot,
  s: SnapshotConfiguration,
): { done: BackendSnapshot } | { step: string; error?: string; fatal?: boolean } {
  const held = snapshotState(cluster, s.snapshot_id);
  if (held?.status === 'error')
    return { step: 'taking the snapshot', error: 'the storage backend failed the snapshot', fatal: true };
  if (held) return { done: held };
  // Asked for before its local node reported its backend (issue 24): never taken, no wait until --timeout.
  const never = localSnapshotNotTaken(cluster, s.dataset_id);
  if (never !== null) return { step: 'taking the snapshot', error: never, fatal: true };
  const source = cluster.datasets.find((d) => d.dataset_id === s.dataset_id);
  if (!source || source.deleted)
    return { step: 'taking the snapshot', error: 'its volume was deleted first', fatal: true };
  const node = cluster.nodes.find((n) => n.uuid === source.primary);
  if (!node || !node.alive)
    return { step: 'waiting for its node', error: `node ${node?.host ?? source.primary} is not alive`, fatal: true };
  const error = snapshotError(cluster, s.dataset_id);
  const step = `taking the snapshot on ${node.host}`;
  return error ? { step, error } : { step };
}

/** `snapshots destroy --wait`: done once no backend holds it. */
export function destroyedPhase(
  cluster: ClusterSnapshot,
  s: SnapshotConfiguration,
): { done: true } | { step: string; error?: string } {
  if (!snapshotState(cluster, s.snapshot_id)) return { done: true };
  const error = snapshotError(cluster, s.dataset_id);
  return error ? { step: 'destroying the snapshot', error } : { step: 'destroying the snapshot' };
}

// ---- scheduled snapshots (issue 20) --------------------------------------------

/**
 * The metadata `volumes create --snapshot-schedule S --snapshot-keep N` (and `volumes schedule`)
 * sends: the grammar checked here for a prompt usage error; the control service checks the
 * minimum interval (its 400 is shown as is). `--snapshot-keep` alone is a usage error.
 */
export function scheduleMetadata(schedule: string | undefined, keep: string | undefined): Record<string, string> {
  if (schedule === undefined) {
    if (keep !== undefined) throw new CliError(EXIT.USAGE, '--snapshot-keep needs --snapshot-schedule');
    return {};
  }
  const issue = snapshotScheduleIssues(
    {
      [METADATA_SNAPSHOT_SCHEDULE_KEY]: schedule,
      ...(keep !== undefined ? { [METADATA_SNAPSHOT_KEEP_KEY]: keep } : {}),
    },
    0,
  )[0];
  if (issue !== undefined) throw new CliError(EXIT.USAGE, issue.message);
  return {
    [METADATA_SNAPSHOT_SCHEDULE_KEY]: schedule,
    ...(keep !== undefined ? { [METADATA_SNAPSHOT_KEEP_KEY]: keep } : {}),
  };
}

export interface VolumeSchedule {
  readonly schedule: string;
  readonly keep: number;
  /** How many scheduled snapshots of the volume are live. */
  readonly kept: number;
  /** When the next scheduled snapshot is due (ISO, UTC): the control service takes it then. */
  readonly next_due: string;
  /** Why the control service does not run it (the volume is on local storage, issue 24), with how to remove it; null when it does. */
  readonly not_run: string | null;
}

/**
 * A volume's snapshot schedule and its next due time at `now`; null without one (or once deleted). With `cluster`,
 * whether the control service runs it (not on local storage).
 */
export function volumeSchedule(
  d: DatasetConfiguration,
  snapshots: readonly SnapshotConfiguration[],
  now: number,
  cluster?: ClusterSnapshot,
): VolumeSchedule | null {
  // The web UI's model reads the schedule and the kept snapshots the same way for the page.
  const v = scheduleOf(d, snapshots, cluster);
  if (v === null) return null;
  const name = d.metadata['name'];
  return {
    schedule: v.text,
    keep: v.keep,
    kept: v.kept,
    next_due: new Date(nextScheduledAt(v, now)).toISOString(),
    not_run: v.not_run === null ? null : `${v.not_run} (flocker volumes schedule ${name ?? d.dataset_id} --off)`,
  };
}

/** The schedule a snapshot was taken for, or null for a manual one. */
export function scheduledBy(s: SnapshotConfiguration): string | null {
  return s.metadata[METADATA_SCHEDULED_KEY] ?? null;
}
