/** The desired state of the cluster (LocalState's DesiredState) from a control service snapshot. */
import {
  BACKUP_KEEP_KEY,
  BACKUP_TARGET_KEY,
  METADATA_PROFILE_KEY,
  datasetFilesystem,
  type ClusterSnapshot,
  type SnapshotConfiguration,
} from '@flocker/api';
import type { DesiredState } from './LocalState';

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
        ...(datasetFilesystem(d.metadata) === 'xfs' ? { filesystem: 'xfs' as const } : {}),
        ...(d.source_snapshot_id !== undefined ? { sourceSnapshotId: d.source_snapshot_id } : {}),
        ...(d.source_backup !== undefined && d.source_backup.restored !== true
          ? { restoreFrom: { target: d.source_backup.target, backupId: d.source_backup.backup_id } }
          : {}),
      };
    }),
    nodes: snapshot.nodes.map((n) => {
      // Held as the control service counts holders (their views have the dataset): snapshotDestroyer.
      const held = [
        ...n.manifestations.map((m) => m.dataset_id),
        ...(n.volumes ?? []).filter((v) => v.attached_to === n.instance_id).map((v) => v.dataset_id),
      ];
      return {
        uuid: n.uuid,
        instanceId: n.instance_id,
        alive: n.alive,
        ...(n.snapshots !== undefined ? { snapshots: n.snapshots.map((s) => s.snapshot_id) } : {}),
        ...(held.length > 0 ? { datasets: held } : {}),
      };
    }),
    ...(snapshot.snapshots !== undefined
      ? {
          snapshots: snapshot.snapshots.map((s) => ({
            snapshotId: s.snapshot_id,
            datasetId: s.dataset_id,
            deleted: s.deleted === true,
            ...backupOf(s),
          })),
        }
      : {}),
  };
}

/** The backup a snapshot is the implicit snapshot of (issue 20), as DesiredSnapshot.backup. */
function backupOf(s: SnapshotConfiguration): { backup?: { target: string; keep?: number } } {
  const target = s.metadata[BACKUP_TARGET_KEY];
  if (target === undefined) return {};
  const keep = Number(s.metadata[BACKUP_KEEP_KEY]);
  return { backup: { target, ...(Number.isInteger(keep) && keep >= 1 ? { keep } : {}) } };
}
