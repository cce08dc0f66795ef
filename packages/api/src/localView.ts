/**
 * What the view of a local-backend node (issue 24) carries, defined on a whole snapshot: the
 * reference the control service's incremental views (nodeViews.ts, Views.ts) are tested against,
 * and the input the agent's decisions are proved equal on (LocalAgent's equivalence test). A local
 * node decides on, besides its block-node view (the datasets whose primary it is, that it holds or
 * that are leased to it, and the states of their holders):
 *  - the datasets its pool keeps snapshots of without a live copy (its report's `retained`) and
 *    those whose standby replica a primary reports on it: it destroys them once no one needs them;
 *  - the state of the primary of each of those datasets: the new primary's address and liveness
 *    for a move, whether the primary holds its live copy (a replica here is stale only then);
 *  - every local node's address, liveness, number of live copies (rounded down to a step: peerCopies)
 *    and replicas held (`peers`): the candidates for a standby replica, and who else is named a
 *    dataset's replica node.
 */
import type { ClusterSnapshot, DatasetConfiguration, LocalPeer, NodeState } from './schemas';

/** Whether a node report's backend is a local one (`local-btrfs`, `local-zfs`). */
export function isLocalBackend(backend: string): boolean {
  return backend.startsWith('local-');
}

/**
 * The node whose copy describes a volume: its primary's when the primary has one (a local live copy left on a node
 * that came back may be reported too, by a node listed first), else the first node that has it.
 */
export function holderOf(
  s: Pick<ClusterSnapshot, 'nodes'>,
  d: Pick<DatasetConfiguration, 'dataset_id' | 'primary'>,
): NodeState | undefined {
  const has = (n: NodeState) => n.manifestations.some((x) => x.dataset_id === d.dataset_id);
  const primary = s.nodes.find((n) => n.uuid === d.primary);
  return primary !== undefined && has(primary) ? primary : s.nodes.find(has);
}

/** A local move under way (issue 24): the data is on `from` until the new primary `to` has taken over. */
export interface LocalMoveView {
  /** The old node: it keeps its copy (host mount gone unless its lease holds it) until the new primary took over. */
  readonly from: NodeState;
  /** The new primary's UUID. */
  readonly to: string;
  /** The move finishes only once the source's users release the volume (its lease held there, or caught up). */
  readonly whenReleased: boolean;
}

/**
 * The local move a volume is in, if any: a local node other than the primary holds the copy the volume is described
 * by (holderOf). One rule for every place that says where a moving volume is, so they cannot disagree: the CLI's
 * `volumes list`/`show` and the Docker plugin's `docker volume inspect` (s16 U3: one said the source, the other the
 * target).
 */
export function localMoveOf(s: ClusterSnapshot, d: DatasetConfiguration): LocalMoveView | undefined {
  const from = holderOf(s, d);
  if (from === undefined || from.uuid === d.primary || !isLocalBackend(from.backend)) return undefined;
  const whenReleased =
    s.leases.find((l) => l.dataset_id === d.dataset_id)?.node_uuid === from.uuid ||
    (from.moves ?? []).some((x) => x.dataset_id === d.dataset_id && x.phase === 'waitingForRelease');
  return { from, to: d.primary, whenReleased };
}

/**
 * The dead node a SOURCE_UNREACHABLE refusal names (by UUID) as holding the data, if any: the CLI's move wait and the
 * volume plugin's Mount read a refusal the same way.
 */
export function deadSourceOf(
  s: ClusterSnapshot,
  error: { readonly code: string; readonly message: string } | undefined,
): NodeState | undefined {
  if (error?.code !== 'SOURCE_UNREACHABLE') return undefined;
  return s.nodes.find((n) => !n.alive && error.message.includes(n.uuid));
}

/** The step a peer's live copies are shown in (LocalPeer.copies). */
export const PEER_COPIES_STEP = 16;

/**
 * A local node's live copies as its peer entry shows them, and as the replica choice counts them:
 * rounded down to a multiple of PEER_COPIES_STEP. A load figure, coarse so that a create or a move
 * changes it in every local view only once per step (an exact count changed it at every one).
 */
export function peerCopies(copies: number): number {
  return copies - (copies % PEER_COPIES_STEP);
}

/** The peers of a local view as a whole snapshot gives them: every local node, sorted by uuid. */
export function localPeersOf(nodes: readonly NodeState[]): LocalPeer[] {
  const replicaOf = new Map<string, Set<string>>();
  for (const n of nodes)
    for (const r of n.replicas ?? []) {
      const held = replicaOf.get(r.node_uuid) ?? new Set<string>();
      held.add(r.dataset_id);
      replicaOf.set(r.node_uuid, held);
    }
  return nodes
    .filter((n) => isLocalBackend(n.backend))
    .map((n) => ({
      uuid: n.uuid,
      host: n.host,
      alive: n.alive,
      copies: peerCopies(n.manifestations.length),
      replica_of: [...(replicaOf.get(n.uuid) ?? [])].sort(),
    }))
    .sort((a, b) => (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0));
}

/**
 * The least a local node's view holds, cut from a whole snapshot (the service may show more: the
 * orphans it takes care of, a witness). Datasets and node states keep the snapshot's order. The
 * node's `retained` is read from its state here; the service keeps it out of its answers (agents
 * one release behind parse node states strictly) and reads it from the node's report.
 */
export function localViewOf(whole: ClusterSnapshot, node: string): ClusterSnapshot {
  const own = whole.nodes.find((n) => n.uuid === node);
  const ids = new Set<string>();
  for (const d of whole.datasets) if (d.primary === node) ids.add(d.dataset_id);
  for (const m of own?.manifestations ?? []) ids.add(m.dataset_id);
  for (const v of own?.volumes ?? []) if (v.attached_to === own?.instance_id) ids.add(v.dataset_id);
  for (const l of whole.leases) if (l.node_uuid === node) ids.add(l.dataset_id);
  for (const id of own?.retained ?? []) ids.add(id);
  for (const n of whole.nodes) for (const r of n.replicas ?? []) if (r.node_uuid === node) ids.add(r.dataset_id);
  const datasets = whole.datasets.filter((d) => ids.has(d.dataset_id));
  const shown = new Set<string>([node]);
  for (const d of datasets) {
    shown.add(d.primary);
    for (const n of whole.nodes) if (n.manifestations.some((m) => m.dataset_id === d.dataset_id)) shown.add(n.uuid);
  }
  return {
    ...whole,
    datasets,
    leases: whole.leases.filter((l) => ids.has(l.dataset_id)),
    nodes: whole.nodes.filter((n) => shown.has(n.uuid)),
    peers: localPeersOf(whole.nodes),
  };
}
