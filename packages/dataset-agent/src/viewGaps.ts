/**
 * What this node's view (issue 23: the control service's Views.snapshotFor, followed by deltas)
 * cannot explain about the pool, and the part of a whole-cluster snapshot that explains it.
 * Pure. A whole snapshot held everything; a node's view holds only the datasets primary or held
 * here and their holders, so the agent asks for the whole cluster once (ClusterFollower.lookWhole)
 * when the pool shows something the view says nothing about:
 *  - a volume of a dataset of the view attached to an instance no node of the view reports
 *    (its node died before reporting it: failover must force-detach it, not wait);
 *  - an unreadable record nothing attributes (a node of this backend may report whose it is);
 *  - an unattached volume of a dataset not in the view (a deleted dataset whose primary is dead:
 *    some live node must destroy it). Not one attached elsewhere: in a shared pool every other
 *    node's volume is attached to an instance this view does not know, so such a volume of a
 *    deleted dataset attached to a dead node is left to the control service (not done here).
 * Only what explains those is merged into the view (supplementView): the nodes with those
 * instances or reporting those volumes or datasets, the datasets of those records, and deleted
 * datasets whose primary is not alive.
 */
import type { ClusterSnapshot } from '@flocker/api';
import type { LocalState } from './LocalState';

/** What the view cannot explain: instances, block devices and datasets to look up. */
export interface ViewGaps {
  readonly instances: readonly string[];
  readonly blockdevices: readonly string[];
  readonly datasets: readonly string[];
}

export function isEmptyGaps(g: ViewGaps): boolean {
  return g.instances.length === 0 && g.blockdevices.length === 0 && g.datasets.length === 0;
}

/** The gaps of `view` against the pool as observed (`local`, with its unreadable records attributed). */
export function viewGaps(view: ClusterSnapshot, local: LocalState): ViewGaps {
  const inView = new Set(view.datasets.map((d) => d.dataset_id));
  const known = new Set(view.nodes.map((n) => n.instance_id));
  known.add(local.instanceId);
  const instances = new Set<string>();
  const datasets = new Set<string>();
  for (const v of local.volumes) {
    if (inView.has(v.datasetId)) {
      if (v.attachedTo !== null && !known.has(v.attachedTo)) instances.add(v.attachedTo);
    } else if (v.attachedTo === null) datasets.add(v.datasetId);
  }
  const blockdevices = (local.unreadable ?? []).filter((u) => u.datasetId === undefined).map((u) => u.blockdeviceId);
  return { instances: [...instances].sort(), blockdevices: blockdevices.sort(), datasets: [...datasets].sort() };
}

/**
 * The part of `whole` (a whole-cluster snapshot) that explains `gaps`: nodes with a gap's
 * instance, nodes reporting a gap's block device or dataset, the datasets of those block devices
 * (an unreadable record's dataset is held, never acted on: calculateChanges), the deleted datasets
 * of the gaps whose primary is not alive (left to any live node: see calculateChanges' owner), and
 * the states of those primaries.
 */
export function explanationOf(whole: ClusterSnapshot, gaps: ViewGaps): Pick<ClusterSnapshot, 'datasets' | 'nodes'> {
  const instances = new Set(gaps.instances);
  const devices = new Set(gaps.blockdevices);
  const wanted = new Set(gaps.datasets);
  const alive = new Set(whole.nodes.filter((n) => n.alive).map((n) => n.uuid));
  // The datasets nodes report the gaps' block devices for (an unreadable record's dataset: held, never acted on).
  const ofDevices = new Set<string>();
  for (const n of whole.nodes)
    for (const v of [...(n.volumes ?? []), ...n.manifestations])
      if (devices.has(v.blockdevice_id)) ofDevices.add(v.dataset_id);
  const datasets = whole.datasets.filter(
    (d) => (wanted.has(d.dataset_id) && d.deleted && !alive.has(d.primary)) || ofDevices.has(d.dataset_id),
  );
  const primaries = new Set(datasets.map((d) => d.primary));
  const nodes = whole.nodes.filter(
    (n) =>
      instances.has(n.instance_id) ||
      primaries.has(n.uuid) ||
      [...(n.volumes ?? []), ...n.manifestations].some(
        (v) => devices.has(v.blockdevice_id) || datasets.some((d) => d.dataset_id === v.dataset_id),
      ),
  );
  return { datasets, nodes };
}

/**
 * The view with an explanation merged in: what the view holds wins (it is newer), the
 * explanation only adds nodes and datasets the view lacks.
 */
export function supplementView(
  view: ClusterSnapshot,
  extra: Pick<ClusterSnapshot, 'datasets' | 'nodes'>,
): ClusterSnapshot {
  const nodeIds = new Set(view.nodes.map((n) => n.uuid));
  const datasetIds = new Set(view.datasets.map((d) => d.dataset_id));
  const nodes = extra.nodes.filter((n) => !nodeIds.has(n.uuid));
  const datasets = extra.datasets.filter((d) => !datasetIds.has(d.dataset_id));
  if (nodes.length === 0 && datasets.length === 0) return view;
  return { ...view, datasets: [...view.datasets, ...datasets], nodes: [...view.nodes, ...nodes] };
}
