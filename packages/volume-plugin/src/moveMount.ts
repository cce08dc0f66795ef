/**
 * A Mount of a volume that lives on another host (a move onto this one, issue 23): answered at the first of the
 * cluster snapshot showing it mounted here under the lease (as before) or the kernel showing the agent's mount of it
 * here, not one report and one push later. The kernel's mount is taken only when both hold:
 * - it is fresh: the dataset's mount path was tracked (MountTable) from before the move was asked for, was not
 *   mounted then, and nothing but a mount was seen there since by a source that followed throughout. A mount from
 *   before the move (an agent that has not unmounted yet for a move away, a report built before the move) spoils
 *   the tracker and is never taken;
 * - the move is proven to stay: a snapshot read after this node's lease was granted and its primary change was
 *   answered shows the dataset live, with this node as primary and holding the lease. The control service moves no
 *   dataset away from a lease holder, so it stays here from then on; its agent mounts it only once the other host's
 *   agent released it, and unmounts it for no move while the lease is held.
 * Otherwise the Mount waits for the snapshot as before.
 */
import type { ClusterSnapshot } from '@flocker/api';
import type { MountTracker } from './MountTable';

/**
 * Whether `s` (read after the lease was granted and the primary change answered) shows the dataset staying here:
 * live, this node its primary, and the lease this node's.
 */
export function movedHereUnderLease(s: ClusterSnapshot, nodeUuid: string, datasetId: string): boolean {
  if (s.leases.find((l) => l.dataset_id === datasetId)?.node_uuid !== nodeUuid) return false;
  const d = s.datasets.find((x) => x.dataset_id === datasetId);
  return d !== undefined && !d.deleted && d.primary === nodeUuid;
}

/** The mount path the cluster state names for a dataset under the agent's mount root. */
export function mountPathUnder(hostMountRoot: string, datasetId: string): string {
  return `${hostMountRoot.replace(/\/+$/, '')}/${datasetId}`;
}

export interface MoveMountRace {
  nodeUuid: string;
  /** Tracked since before the primary change was asked for. */
  tracker: MountTracker;
  /** The agent's mount root as the cluster state names it. */
  hostMountRoot: string;
  /** A snapshot read after the lease was granted and the primary change answered (a failure: no kernel answer). */
  proof: Promise<ClusterSnapshot>;
  /** The snapshot wait (mounted here under the lease); given up (snapshotWait aborted) when the kernel answers. */
  snapshot: Promise<string>;
  snapshotWait: AbortController;
}

/** Never settles: a branch of the race that cannot answer. */
const never = new Promise<never>(() => undefined);

/** The first of the snapshot's answer and the kernel's fresh mount of the dataset under a proven lease. */
export async function moveMountOrSnapshot(race: MoveMountRace): Promise<{ path: string; by: 'kernel' | 'snapshot' }> {
  const { tracker } = race;
  const kernel = race.proof.then(
    async (s) => {
      if (!movedHereUnderLease(s, race.nodeUuid, tracker.datasetId)) return never;
      await tracker.mounted();
      // An umount seen since (a spoiled tracker) leaves it to the snapshot.
      if (!tracker.fresh()) return never;
      return { path: mountPathUnder(race.hostMountRoot, tracker.datasetId), by: 'kernel' as const };
    },
    () => never,
  );
  const first = await Promise.race([kernel, race.snapshot.then((path) => ({ path, by: 'snapshot' as const }))]);
  if (first.by === 'kernel') race.snapshotWait.abort();
  return first;
}
