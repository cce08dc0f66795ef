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
 * Which node destroys a deleted snapshot: among the alive nodes whose backend holds it
 * (as their reports say) and this node (which just saw it), the source dataset's
 * primary if it is one of them, else the lowest node uuid. One node, so a shared
 * backend is not asked by all of them at once; destroySnapshot is idempotent anyway.
 */
export function snapshotDestroyer(
  snapshot: DesiredSnapshot,
  dataset: DesiredDataset | undefined,
  desired: DesiredState,
  self: string,
): string {
  const holders = new Set<string>([self]);
  for (const n of desired.nodes) if (n.alive && (n.snapshots ?? []).includes(snapshot.snapshotId)) holders.add(n.uuid);
  if (dataset !== undefined && holders.has(dataset.primary)) return dataset.primary;
  return [...holders].sort()[0] ?? self;
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
