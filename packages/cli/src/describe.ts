/**
 * `flocker describe volume NAME` (issue 21): everything known about one volume in one place —
 * configuration, what every node has of it, its lease and holders, snapshots, the errors nodes
 * report with their reasons, and the control service's events about it. Pure.
 */
import {
  formatSize,
  type ClusterEvent,
  type ClusterSnapshot,
  type DatasetConfiguration,
  type Lease,
  type SnapshotConfiguration,
} from '@flocker/api';
import {
  keptAsideOf,
  keptAsideText,
  localMoveOf,
  localMoveText,
  replicaOf,
  replicaText,
  sizeText,
  snapshotRow,
  type KeptAsideView,
  type LocalMoveView,
  type ReplicaView,
  type SnapshotRow,
} from '@flocker/web-ui';
import { leaseHoldersText, shortId, visible } from './format';
import { errorsOf, errorText, moveWhere, type NodeError } from './health';
import { volumeView, type VolumeView } from './volumes';

/** What one node has of the volume. */
export interface NodePresence {
  node_uuid: string;
  host: string;
  alive: boolean;
  /** mounted / attached (a manifestation), backend (the storage volume only: attached elsewhere or not at all). */
  status: 'mounted' | 'attached' | 'backend';
  path: string | null;
  size: number;
  blockdevice_id: string;
  /** For a backend volume: the compute instance it is attached to (null: detached). */
  attached_to?: string | null;
}

export interface VolumeDescription {
  volume: VolumeView;
  nodes: NodePresence[];
  lease: (Lease & { node: string; holders_text: string }) | null;
  snapshots: SnapshotRow[];
  errors: NodeError[];
  /** The control service's events about the volume (or its node), oldest first. */
  events: ClusterEvent[];
  /** Local storage (issue 24): a move running now (phase, rounds, bytes sent of total); null when none. */
  local_move: LocalMoveView | null;
  /** Local storage: the standby replica its primary keeps (node, taken_at: its age); null when none. */
  replica: ReplicaView | null;
  /** The primary's host (volume.node is where the data is now: the old node during a move). */
  primary_host: string;
  /** Local storage: copies nodes kept aside (writes the live copy lacks); empty when none. */
  kept_aside: KeptAsideView[];
}

// The page shows the same copies in the same words (@flocker/web-ui's model).
export { keptAsideOf, keptAsideText, type KeptAsideView };

export function describeVolume(
  cluster: ClusterSnapshot,
  d: DatasetConfiguration,
  leases: readonly Lease[],
  snapshots: readonly SnapshotConfiguration[],
  events: readonly ClusterEvent[],
): VolumeDescription {
  const id = d.dataset_id;
  const nodes: NodePresence[] = [];
  for (const n of cluster.nodes) {
    const m = n.manifestations.find((x) => x.dataset_id === id);
    if (m)
      nodes.push({
        node_uuid: n.uuid,
        host: n.host,
        alive: n.alive,
        status: m.status,
        path: m.path ?? null,
        size: m.size,
        blockdevice_id: m.blockdevice_id,
      });
  }
  // Backend volumes no manifestation accounts for (detached, or attached to a node that has not mounted it).
  const seen = new Set(nodes.map((n) => n.blockdevice_id));
  for (const n of cluster.nodes)
    for (const v of n.volumes ?? []) {
      if (v.dataset_id !== id || seen.has(v.blockdevice_id)) continue;
      seen.add(v.blockdevice_id);
      const on = cluster.nodes.find((x) => x.instance_id === v.attached_to) ?? n;
      nodes.push({
        node_uuid: on.uuid,
        host: on.host,
        alive: on.alive,
        status: 'backend',
        path: null,
        size: v.size,
        blockdevice_id: v.blockdevice_id,
        attached_to: v.attached_to,
      });
    }
  const lease = leases.find((l) => l.dataset_id === id);
  const primary = d.primary;
  return {
    volume: volumeView(cluster, d),
    nodes,
    lease:
      lease === undefined
        ? null
        : {
            ...lease,
            node: cluster.nodes.find((n) => n.uuid === lease.node_uuid)?.host ?? shortId(lease.node_uuid),
            holders_text: leaseHoldersText(lease),
          },
    snapshots: snapshots
      .filter((s) => s.dataset_id === id)
      .map((s) => snapshotRow(s, cluster.datasets, cluster))
      .sort((a, b) => a.created_at.localeCompare(b.created_at)),
    errors: errorsOf(cluster, id),
    events: events
      .filter((e) => e.dataset_id === id || (e.dataset_id === undefined && e.node_uuid === primary))
      .slice()
      .sort((a, b) => a.time.localeCompare(b.time)),
    local_move: localMoveOf(cluster, id),
    replica: replicaOf(cluster, id),
    primary_host: cluster.nodes.find((n) => n.uuid === primary)?.host ?? shortId(primary),
    kept_aside: keptAsideOf(cluster, id),
  };
}

/** "1.2 GiB of 10 GiB (12%)"; '-' until the node where it is mounted measures it. */
export function usedText(used: number | null, maximum: number | null | undefined): string {
  if (used === null) return '-';
  if (!maximum) return formatSize(used);
  return `${formatSize(used)} of ${formatSize(maximum)} (${Math.round((100 * used) / maximum)}%)`;
}

/** kubectl-describe-like text; `now` ages the standby replica. */
export function describeText(x: VolumeDescription, now: number = Date.now()): string {
  const v = x.volume;
  const where = moveWhere(v);
  const meta = Object.entries(v.metadata).map(([k, val]) => `  ${visible(k)}=${visible(val)}`);
  const lines = [
    `Name:         ${visible(v.name) || '-'}`,
    `Dataset:      ${v.dataset_id}`,
    `Size:         ${sizeText(v.maximum_size || null, v.size)}`,
    // Of the size it really has (Size's first figure), not the one asked for, which its node may have rounded up.
    `Used:         ${usedText(v.used_bytes, v.size ?? v.maximum_size)}`,
    // A local move: where the data is and where it goes (as `volumes show`), not the target as "Primary".
    ...(where !== undefined
      ? [`On:           ${where.on}`, `Moving to:    ${where.to}`]
      : [`Primary:      ${visible(x.primary_host)} (${v.primary})`]),
    `State:        ${v.state}${v.path ? ` at ${v.path}` : ''}`,
    ...(x.local_move !== null ? [`Moving:       ${localMoveText(x.local_move)}`] : []),
    ...(x.replica !== null ? [`Replica:      ${replicaText(x.replica, now)}`] : []),
    ...x.kept_aside.map(keptAsideText),
    ...(v.source_snapshot_id !== undefined ? [`Cloned from:  snapshot ${v.source_snapshot_id}`] : []),
    ...(v.source_backup !== undefined ? [`Restored from: backup ${v.source_backup.backup_id}`] : []),
    `Metadata:${meta.length ? '' : '     -'}`,
    ...meta,
    `On nodes:${x.nodes.length ? '' : '     none'}`,
    ...x.nodes.map(
      (n) =>
        `  ${visible(n.host)}${n.alive ? '' : ' (dead)'}: ${n.status === 'backend' ? (n.attached_to ? `attached to ${n.attached_to}` : 'detached') : n.status}` +
        `${n.path ? ` at ${n.path}` : ''}, ${formatSize(n.size)} (${n.blockdevice_id})`,
    ),
    `Lease:        ${
      x.lease
        ? `held by ${x.lease.node} (${x.lease.holders_text})${x.lease.pinned ? ', pinned' : ''}${x.lease.expires !== null ? `, expires in ${Math.round(x.lease.expires)}s` : ''}`
        : 'none'
    }`,
    `Snapshots:${x.snapshots.length ? '' : '    none'}`,
    ...x.snapshots.map(
      (s) => `  ${s.name || shortId(s.snapshot_id)}: ${s.state}${s.taken_at ? `, taken ${s.taken_at}` : ''}`,
    ),
    `Last error:   ${x.errors.length ? visible(errorText(x.errors[x.errors.length - 1]!)) : 'none'}`,
    ...x.errors.slice(0, -1).map((e) => `  also: ${visible(errorText(e))}`),
    `Events:${x.events.length ? '' : '       none'}`,
    ...x.events.map((e) => `  ${e.time}  ${e.kind}  ${e.message}`),
  ];
  // Each entry is one line: a line feed in a path, holder, snapshot name or event message cannot start another.
  return lines.map(visible).join('\n');
}
