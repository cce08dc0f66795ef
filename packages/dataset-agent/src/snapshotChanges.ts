/**
 * The snapshot part of the agent's decision (issue 20), beside calculateChanges: pure.
 * It is asked only about a dataset whose own volume needs nothing (the volume's steps
 * come first, so a failing snapshot never holds a volume back from being mounted), and
 * answers at most one action:
 *
 * - takeSnapshot: a live configured snapshot the backend does not hold yet, of a live
 *   dataset whose primary is this node and whose volume is here with a file system
 *   (mounted: the file system is frozen around it);
 * - destroySnapshot: a deleted configured snapshot the backend still holds, when this
 *   node is the one to destroy it (snapshotDestroyer).
 *
 * Nothing while the backend's snapshots were not listed (local.snapshots absent).
 */
import type { Discovered } from './calculateChanges';
import type {
  Action,
  DecisionContext,
  DesiredDataset,
  DesiredSnapshot,
  DesiredState,
  DiscoveredVolume,
  LocalState,
} from './LocalState';

/**
 * Which node destroys a deleted snapshot: among the nodes that decide about its dataset and whose
 * backend holds it (as their reports say) — this node (which just saw it, deciding), the dataset's live
 * primary, its live holders (a manifestation or a volume attached to their own instance: the nodes the
 * control service puts the dataset in the views of, with its caretaker, which is this node when it is
 * none of those) — the primary if it is one of them, else the lowest node uuid. A node holding the
 * snapshot but not the dataset (its state in this view for another dataset, or as a witness) never
 * decides about it and does not count, or nobody would destroy it while it is in the view.
 *
 * One destroyer whenever the nodes' views agree, so a shared backend is not asked by all of them at
 * once; the one chosen always decides about the dataset and holds the snapshot, so never none while a
 * live node deciding about it holds it. Views that differ (a holder whose state this view does not show,
 * reports in flight) may make two destroy it: destroySnapshot is idempotent (an unknown snapshot is gone).
 */
export function snapshotDestroyer(
  snapshot: DesiredSnapshot,
  dataset: DesiredDataset | undefined,
  desired: DesiredState,
  self: string,
): string {
  const candidates = new Set<string>([self]);
  for (const n of desired.nodes) {
    if (!n.alive || !(n.snapshots ?? []).includes(snapshot.snapshotId)) continue;
    if (n.uuid === dataset?.primary || (n.datasets ?? []).includes(snapshot.datasetId)) candidates.add(n.uuid);
  }
  if (dataset !== undefined && candidates.has(dataset.primary)) return dataset.primary;
  return [...candidates].sort()[0] ?? self;
}

export function snapshotActionFor(
  dataset: DesiredDataset,
  volume: DiscoveredVolume | undefined,
  discovered: Discovered,
  desired: DesiredState,
  local: LocalState,
  ctx: DecisionContext,
): Action | null {
  if (local.snapshots === undefined) return null;
  const held = new Set(local.snapshots.map((s) => s.snapshotId));
  for (const snapshot of desired.snapshots ?? []) {
    if (snapshot.datasetId !== dataset.datasetId) continue;
    const { snapshotId, datasetId } = snapshot;
    if (snapshot.deleted) {
      if (held.has(snapshotId) && snapshotDestroyer(snapshot, dataset, desired, ctx.nodeUuid) === ctx.nodeUuid)
        return { kind: 'destroySnapshot', datasetId, snapshotId };
      continue;
    }
    if (held.has(snapshotId) || dataset.deleted || dataset.primary !== ctx.nodeUuid || volume === undefined) continue;
    if (discovered !== 'mounted' && discovered !== 'hereFs') continue;
    const mountPath = [...(volume.mountPoints ?? [])].sort()[0];
    return {
      kind: 'takeSnapshot',
      datasetId,
      blockdeviceId: volume.blockdeviceId,
      snapshotId,
      ...(mountPath !== undefined ? { mountPath } : {}),
    };
  }
  return null;
}
