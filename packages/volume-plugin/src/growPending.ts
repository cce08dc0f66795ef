/**
 * A grow that waits until the volume is unused (TN F3 / review R1 F6): the dataset's node reports grow_pending on its
 * manifestation. A lease this plugin keeps idle is then all that holds the grow back: let go of it at once.
 */
import type { ClusterSnapshot } from '@flocker/api';

/** Whether node `me` reports a grow of the dataset waiting (its manifestation's grow_pending). Pure. */
export function growPendingHere(s: ClusterSnapshot, me: string, datasetId: string): boolean {
  const node = s.nodes.find((n) => n.uuid === me);
  return node?.manifestations.some((m) => m.dataset_id === datasetId && m.grow_pending !== undefined) === true;
}
