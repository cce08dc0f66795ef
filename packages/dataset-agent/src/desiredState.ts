/** The desired state of the cluster (LocalState's DesiredState) from a control service snapshot. */
import { METADATA_PROFILE_KEY, datasetFilesystem, type ClusterSnapshot } from '@flocker/api';
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
      };
    }),
    nodes: snapshot.nodes.map((n) => ({
      uuid: n.uuid,
      instanceId: n.instance_id,
      alive: n.alive,
      ...(n.snapshots !== undefined ? { snapshots: n.snapshots.map((s) => s.snapshot_id) } : {}),
    })),
    ...(snapshot.snapshots !== undefined
      ? {
          snapshots: snapshot.snapshots.map((s) => ({
            snapshotId: s.snapshot_id,
            datasetId: s.dataset_id,
            deleted: s.deleted === true,
          })),
        }
      : {}),
  };
}
