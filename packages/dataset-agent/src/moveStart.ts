/**
 * Which datasets a move makes worth a worker at once, without waiting for the agent's full
 * look at the node (issue 23): both ends of a move are on its critical path (a `docker run`
 * on B of a volume idle on A waits for A to unmount and detach it, then for B to attach and
 * mount it), and the full look costs a listing of every device and mount first.
 *
 * Invariant: a worker started with no observation looks at its dataset afresh before its
 * first step (DatasetWorker.converge), so a dataset picked here wrongly costs one look of
 * that dataset, never a wrong action; the full look still follows and decides the rest.
 */
import type { DesiredDataset } from './LocalState';

/** A volume of the dataset as the agent last saw it: attached to an instance, or to none (null). */
export interface SeenVolume {
  readonly attachedTo: string | null;
}

/**
 * What moved the agent to look: `config`, a new configuration (a primary changed); `released`,
 * a sign that another node may have let go of a volume (the pool changed, or another node
 * reported).
 */
export type MoveTrigger = 'config' | 'released';

export interface MoveStartContext {
  readonly nodeUuid: string;
  readonly instanceId: string;
  /** The dataset's volumes as last seen (the agent's ObservationView). */
  readonly volumesOf: (datasetId: string) => readonly SeenVolume[];
}

/**
 * The datasets whose worker should start now:
 * - moving away: its primary is another node and it was last seen attached here (unmount, detach);
 * - arriving: this node is its primary, it has a volume and none attached here, and that volume
 *   was last seen attached to no one (on a new configuration), or may just have been let go
 *   (`released`: last seen attached to another node, which the look finds out).
 * Deleted datasets are left to the full look (their destroy is on no one's critical path); so
 * are those with no volume at all (the fast start of new datasets takes them).
 */
export function moveStarts(datasets: readonly DesiredDataset[], trigger: MoveTrigger, c: MoveStartContext): string[] {
  const picked: string[] = [];
  for (const d of datasets) {
    if (d.deleted) continue;
    const volumes = c.volumesOf(d.datasetId);
    if (volumes.length === 0) continue;
    const here = volumes.some((v) => v.attachedTo === c.instanceId);
    if (d.primary !== c.nodeUuid) {
      if (trigger === 'config' && here) picked.push(d.datasetId);
      continue;
    }
    if (here) continue;
    const free = volumes.every((v) => v.attachedTo === null);
    const elsewhere = volumes.some((v) => v.attachedTo !== null);
    if (free || (trigger === 'released' && elsewhere)) picked.push(d.datasetId);
  }
  return picked;
}
