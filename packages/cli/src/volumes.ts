/**
 * One JSON shape per volume (issue 21): every `volumes` command that returns a volume returns
 * `volumeView` — the configuration with its name, where it is and in what state — and `volumes list`
 * sorts and filters those views. Pure.
 */
import {
  METADATA_NAME_KEY,
  type ClusterSnapshot,
  type DatasetConfiguration,
  type GrowPending,
  type Lease,
  type NodeState,
} from '@flocker/api';
import { holderOf, volumeState } from './health';

export interface VolumeView extends DatasetConfiguration {
  name: string;
  /** Host where the volume is (or its primary's). */
  node: string;
  /** UUID of that node: the one that has it, else its primary. */
  node_uuid: string;
  state: string;
  path: string;
  /** Bytes of the block device as its node reports it; null until a node has it. */
  size: number | null;
  /** Bytes used on its file system as the node where it is mounted measured them; null when not mounted (or unmeasured). */
  used_bytes: number | null;
  reason?: string;
  /** The codes of local agents' refusals, when every error is one (health.ts volumeState). */
  refused?: string;
  /** A grow waiting until nothing uses the volume (TN F3; health.ts volumeState). */
  grow_pending?: GrowPending;
}

export function volumeView(snapshot: ClusterSnapshot, d: DatasetConfiguration): VolumeView {
  const holder = holderOf(snapshot, d);
  const m = holder?.manifestations.find((x) => x.dataset_id === d.dataset_id);
  return {
    ...d,
    name: d.metadata[METADATA_NAME_KEY] ?? '',
    node_uuid: holder?.uuid ?? d.primary,
    size: m?.size ?? null,
    used_bytes: m?.status === 'mounted' ? (m.used_bytes ?? null) : null,
    ...volumeState(snapshot, d),
  };
}

/**
 * The view of a volume after a change: `d` is the write's answer (its configuration, never older
 * than the snapshot's copy, which a lagging replica may still hold), the snapshot says where it is.
 */
export function viewAfter(snapshot: ClusterSnapshot, d: DatasetConfiguration): VolumeView {
  const newer = snapshot.datasets.find((x) => x.dataset_id === d.dataset_id);
  return volumeView(snapshot, newer?.deleted === true && !d.deleted ? newer : d);
}

export const VOLUME_SORT_KEYS = ['name', 'size', 'node', 'state', 'created'] as const;
export type VolumeSortKey = (typeof VOLUME_SORT_KEYS)[number];

const byName = (a: VolumeView, b: VolumeView): number =>
  // Unnamed volumes last, then by id so the order is stable.
  (a.name === '' ? 1 : 0) - (b.name === '' ? 1 : 0) ||
  a.name.localeCompare(b.name) ||
  a.dataset_id.localeCompare(b.dataset_id);

/** `created` keeps the control service's order (creation order); the others break ties by name. */
export function sortVolumes(rows: readonly VolumeView[], key: VolumeSortKey): VolumeView[] {
  const out = [...rows];
  if (key === 'created') return out;
  const cmp: Record<Exclude<VolumeSortKey, 'created'>, (a: VolumeView, b: VolumeView) => number> = {
    name: () => 0,
    size: (a, b) => (a.maximum_size ?? 0) - (b.maximum_size ?? 0),
    node: (a, b) => a.node.localeCompare(b.node),
    state: (a, b) => a.state.localeCompare(b.state),
  };
  return out.sort((a, b) => cmp[key](a, b) || byName(a, b));
}

/** A shell-style glob (`*`, `?`) as an anchored regular expression. */
export function globPattern(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

export interface LabelFilter {
  key: string;
  /** Absent: the key only has to be there. */
  value?: string;
}

/** `--label key=value` (or `key`: present with any value). */
export function parseLabel(text: string): LabelFilter | undefined {
  const eq = text.indexOf('=');
  const key = eq < 0 ? text : text.slice(0, eq);
  if (key === '') return undefined;
  return eq < 0 ? { key } : { key, value: text.slice(eq + 1) };
}

export interface VolumeFilter {
  /** Names or ids matching any of these globs (none: every volume). */
  patterns?: readonly string[];
  /** Only volumes on (or, until placed, primary on) this node. */
  nodeUuid?: string;
  /** Every label must match the volume's metadata. */
  labels?: readonly LabelFilter[];
}

export function filterVolumes(rows: readonly VolumeView[], f: VolumeFilter): VolumeView[] {
  const globs = (f.patterns ?? []).map(globPattern);
  return rows.filter(
    (r) =>
      (globs.length === 0 || globs.some((g) => g.test(r.name) || g.test(r.dataset_id))) &&
      (f.nodeUuid === undefined || r.node_uuid === f.nodeUuid) &&
      (f.labels ?? []).every((l) => (l.value === undefined ? l.key in r.metadata : r.metadata[l.key] === l.value)),
  );
}

export interface LeaseView extends Lease {
  /** The volume's name ('' when unnamed or unknown). */
  name: string;
  /** Host of the node holding it (a short UUID when that node never reported). */
  node: string;
}

export function leaseView(
  lease: Lease,
  datasets: readonly DatasetConfiguration[],
  nodes: readonly NodeState[],
): LeaseView {
  const d = datasets.find((x) => x.dataset_id === lease.dataset_id);
  return {
    ...lease,
    name: d?.metadata[METADATA_NAME_KEY] ?? '',
    node: nodes.find((n) => n.uuid === lease.node_uuid)?.host ?? lease.node_uuid.slice(0, 8),
  };
}
