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
import type { Action, DesiredDataset } from './LocalState';

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

/**
 * Whether a move away may take its first step, the unmount, on the dataset's volumes as last seen (the
 * agent's view) instead of a look made for it (issue 23: that look is on the move's critical path). Only
 * an unmount of the dataset's own mount path (`ownPath`) of a dataset that is not deleted and whose
 * primary is another node: whatever is mounted there then, the configuration wants it off (the full look's
 * stray-mount rule would take it off too), and the unmount finds the mount itself (nothing mounted there:
 * nothing done). Any other step — a detach, an unmount elsewhere, a stacked mount over a path this node
 * should keep — waits for the look, as does everything after the unmount.
 */
export function unmountOnView(
  dataset: DesiredDataset,
  action: Action | undefined,
  nodeUuid: string,
  ownPath: string,
): action is Extract<Action, { kind: 'unmount' }> {
  return (
    !dataset.deleted &&
    dataset.primary !== nodeUuid &&
    action?.kind === 'unmount' &&
    action.datasetId === dataset.datasetId &&
    action.mountPath === ownPath
  );
}
