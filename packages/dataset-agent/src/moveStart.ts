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
import type { ClusterSnapshot, DatasetConfiguration } from '@flocker/api';
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
  /**
   * Whether another live node reports the dataset as its own (a manifestation of it, attached or mounted
   * there) in the configuration at hand; absent: none does.
   */
  readonly heldElsewhere?: (datasetId: string) => boolean;
}

/**
 * The datasets whose worker should start now:
 * - moving away: its primary is another node and it was last seen attached here (unmount, detach);
 * - arriving: this node is its primary, it has a volume and none attached here, and that volume
 *   was last seen attached to no one (on a new configuration: unless another live node reports it as
 *   its own, in which case this node's view is older than that node's news — typically from this node's
 *   own detach of the move before — and the release starts it: see DatasetAgent.waitingForOtherNodes), or
 *   may just have been let go (`released`: last seen attached to no one or to another node, which the
 *   look finds out).
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
    if (trigger === 'released' ? free || elsewhere : free && c.heldElsewhere?.(d.datasetId) !== true)
      picked.push(d.datasetId);
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

/**
 * The dataset's volumes as last seen, with the release a pool change signals assumed made (issue 23: the new
 * primary's look before its attach is on a move's critical path, and the pool watch says only that some record
 * changed): its one volume, not attached here, as attached to no one. Undefined (the worker looks first) for a
 * dataset with no volume or more than one as last seen, or whose volume is attached here.
 */
export function assumeReleased<V extends SeenVolume>(volumes: readonly V[], instanceId: string): V[] | undefined {
  const [only, ...more] = volumes;
  if (only === undefined || more.length > 0 || only.attachedTo === instanceId) return undefined;
  return [{ ...only, attachedTo: null }];
}

/**
 * Whether a move here may take its first step, the attach, on the view with the release assumed (assumeReleased)
 * instead of a look made for it: the step decided on that view (`assumed`) is the attach of the dataset's volume,
 * for a dataset not deleted whose primary is this node, and on the view as it is (`seen`) nothing is to be done
 * (a live holder: wait) or that same attach. The backend checks the one thing assumed itself: it refuses, under its
 * own exclusion (loopback: the pool lock), to attach a volume attached elsewhere; so a release not made yet costs
 * one refused attach, after which the worker looks (DatasetWorker: no failure recorded). Anything else — a holder
 * declared dead (its step is a force detach), a step other than the attach — waits for the look.
 */
export function attachOnRelease(
  dataset: DesiredDataset,
  seen: Action | undefined,
  assumed: Action | undefined,
  nodeUuid: string,
): assumed is Extract<Action, { kind: 'attach' }> {
  return (
    !dataset.deleted &&
    dataset.primary === nodeUuid &&
    assumed?.kind === 'attach' &&
    assumed.datasetId === dataset.datasetId &&
    (seen === undefined || JSON.stringify(seen) === JSON.stringify(assumed))
  );
}

/**
 * The datasets a new configuration deleted that this node holds as last seen (a volume attached here, so this node
 * unmounts and destroys it): their workers start at once instead of after a full look (issue 23, session 12: on
 * 2 cores the look competes with the destroy and with the next command; a worker started with no observation looks
 * at its own dataset first). Only a dataset that was in `before`, not deleted there and otherwise unchanged, with no
 * configured snapshots (its backups follow the full look). Others deleted (attached elsewhere or to no one: their
 * owner's destroy) are left to the full look.
 */
export function deleteStarts(before: ClusterSnapshot, after: ClusterSnapshot, c: MoveStartContext): string[] {
  const was = new Map(before.datasets.map((d) => [d.dataset_id, d]));
  const withSnapshots = new Set((after.snapshots ?? []).map((s) => s.dataset_id));
  return after.datasets
    .filter((d) => {
      const b = was.get(d.dataset_id);
      return (
        b !== undefined &&
        onlyDeletionDiffers(b, d) &&
        !withSnapshots.has(d.dataset_id) &&
        c.volumesOf(d.dataset_id).some((v) => v.attachedTo === c.instanceId)
      );
    })
    .map((d) => d.dataset_id);
}

export interface ConfigChangeContext extends MoveStartContext {
  /** The datasets whose worker this very change started (moveStarts, as the agent could start them). */
  readonly started: ReadonlySet<string>;
}

/**
 * Whether a new configuration is worth the full look at the node, or every difference from the one
 * before is already in hand (issue 23: on 2 cores, a full look on either end of a move competes with the
 * move's own steps — the old primary's after its detach with the new primary's attach and mount, the new
 * primary's with the old one's unmount). In hand, and only these:
 * - a dataset whose primary alone changed, or that is new to this node's view (it moved here, or was just
 *   created: the fast start), and whose worker this change started: the worker looks at its dataset before each
 *   step after the first, and its failures ask for a full look;
 * - a dataset this change deleted and changed nothing else of, whose worker it started (deleteStarts);
 * - the same, not started, with this node its primary and, as last seen, a volume attached to another
 *   node's instance that is not dead and none here, or all of them attached to no one while another live
 *   node reports it as its own (heldElsewhere): nothing is done until that node lets go, and the release
 *   starts a worker by itself (the pool watch or the holder's report: waitingForOtherNodes);
 * - a dataset gone from this node's view (the old primary's, once the move's release is reported) that
 *   was not this node's primary, not deleted, and of which nothing is attached here as last seen: there
 *   is nothing this node could do for it.
 * Anything else needs the look: another field of a dataset changed, another deleted one, a dataset with
 * configured snapshots (its backups follow the full look), snapshots changed, a node of the view whose
 * instance or liveness changed, this node gone. Nodes that enter or leave the view with such datasets
 * change nothing by themselves (a dead one fails the rule above). A wrong "in hand" could only delay a
 * step until the next full look (the resync timer); a key order that differs counts as a change.
 */
export function configChangeNeedsLook(
  before: ClusterSnapshot,
  after: ClusterSnapshot,
  c: ConfigChangeContext,
): boolean {
  if (JSON.stringify(before.snapshots ?? []) !== JSON.stringify(after.snapshots ?? [])) return true;
  const nodesBefore = new Map(before.nodes.map((n) => [n.uuid, n]));
  for (const n of after.nodes) {
    const b = nodesBefore.get(n.uuid);
    if (b !== undefined && (b.instance_id !== n.instance_id || b.alive !== n.alive)) return true;
  }
  if (nodesBefore.has(c.nodeUuid) && !after.nodes.some((n) => n.uuid === c.nodeUuid)) return true;
  const withSnapshots = new Set((after.snapshots ?? []).map((s) => s.dataset_id));
  const dead = new Set(after.nodes.filter((n) => !n.alive).map((n) => n.instance_id));
  const gone = new Map(before.datasets.map((d) => [d.dataset_id, d]));
  for (const d of after.datasets) {
    const b = gone.get(d.dataset_id);
    gone.delete(d.dataset_id);
    if (b !== undefined && JSON.stringify(b) === JSON.stringify(d)) continue;
    if (withSnapshots.has(d.dataset_id)) return true;
    if (d.deleted) {
      if (b !== undefined && onlyDeletionDiffers(b, d) && c.started.has(d.dataset_id)) continue;
      return true;
    }
    if (b !== undefined && !onlyPrimaryDiffers(b, d)) return true;
    if (c.started.has(d.dataset_id)) continue;
    const volumes = c.volumesOf(d.dataset_id);
    const waiting =
      d.primary === c.nodeUuid &&
      volumes.length > 0 &&
      volumes.every((v) => v.attachedTo !== c.instanceId) &&
      (volumes.some((v) => v.attachedTo !== null && !dead.has(v.attachedTo)) ||
        (volumes.every((v) => v.attachedTo === null) && c.heldElsewhere?.(d.dataset_id) === true));
    if (!waiting) return true;
  }
  for (const b of gone.values())
    if (
      b.deleted ||
      b.primary === c.nodeUuid ||
      withSnapshots.has(b.dataset_id) ||
      c.volumesOf(b.dataset_id).some((v) => v.attachedTo === c.instanceId)
    )
      return true;
  return false;
}

/** `b` is `a` deleted, nothing else changed. */
function onlyDeletionDiffers(a: DatasetConfiguration, b: DatasetConfiguration): boolean {
  return !a.deleted && b.deleted && JSON.stringify({ ...a, deleted: true }) === JSON.stringify(b);
}

function onlyPrimaryDiffers(a: DatasetConfiguration, b: DatasetConfiguration): boolean {
  return a.primary !== b.primary && JSON.stringify({ ...a, primary: '' }) === JSON.stringify({ ...b, primary: '' });
}

/**
 * Whether a sign of a release (the `released` trigger: the pool changed, or another node reported) is worth the
 * full look at the node once the workers it started are done (issue 23: on the new primary that look ran right
 * after the mount, on 2 cores beside the report, its push and the waiter the move is measured by). `waiting`:
 * the datasets this node waited on another node for when the sign came (DatasetAgent.waitingForOtherNodes);
 * `started`: those whose worker the sign started (moveStarts, as the agent could start them).
 * In hand, and no look: every waiting dataset was started by this very sign, and none has configured snapshots
 * (its backups follow the full look). Each started worker looks at its dataset before each step after the
 * first and asks for a full look when a step or look fails, so nothing of those datasets needs the node's look.
 * Anything else needs it: a waiting dataset not started (no room, in backoff, or already running — a worker that
 * may be ending on an older look: the look once idle is what brings it back), or nothing waiting at all.
 */
export function releaseNeedsLook(
  waiting: readonly string[],
  started: ReadonlySet<string>,
  withSnapshots: ReadonlySet<string>,
): boolean {
  return waiting.length === 0 || waiting.some((id) => !started.has(id) || withSnapshots.has(id));
}
