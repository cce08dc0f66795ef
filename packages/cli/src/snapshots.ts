/**
 * Snapshots as the CLI shows them (issue 20): the configured snapshots joined with what the
 * storage backends report, and the phases `--wait` follows. Pure, so each case is unit-tested.
 */
import type { BackendSnapshot, ClusterSnapshot, DatasetConfiguration, SnapshotConfiguration } from '@flocker/api';
import { CliError, EXIT } from './errors';

export const snapshotName = (s: SnapshotConfiguration): string => s.metadata['name'] ?? '';

/** What a backend holds of the snapshot (any node's report: a shared backend is seen by all). */
export function snapshotState(cluster: ClusterSnapshot, snapshotId: string): BackendSnapshot | undefined {
  for (const n of cluster.nodes) {
    const found = n.snapshots?.find((s) => s.snapshot_id === snapshotId);
    if (found) return found;
  }
  return undefined;
}

/** A snapshot given by name, id or unique id prefix (≥ 4 characters); live ones only. */
export function resolveSnapshot(snapshots: readonly SnapshotConfiguration[], ref: string): SnapshotConfiguration {
  if (ref.trim() === '') throw new CliError(EXIT.USAGE, 'snapshot name or id must not be empty');
  const live = snapshots.filter((s) => s.deleted !== true);
  const id = ref.toLowerCase();
  const exact = live.find((s) => s.snapshot_id === id) ?? live.find((s) => snapshotName(s) === ref);
  if (exact) return exact;
  const byPrefix = ref.length >= 4 ? live.filter((s) => s.snapshot_id.startsWith(id)) : [];
  if (byPrefix.length > 1)
    throw new CliError(EXIT.USAGE, `"${ref}" matches ${byPrefix.length} snapshots; give more of the id`);
  if (byPrefix[0]) return byPrefix[0];
  throw new CliError(EXIT.NOT_FOUND, `no snapshot named or with id "${ref}" (see "flocker snapshots list")`);
}

export interface SnapshotRow {
  snapshot_id: string;
  name: string;
  dataset_id: string;
  /** The source volume's name, or its id when it has none or is gone. */
  volume: string;
  source_deleted: boolean;
  created_at: string;
  /** requested: not taken yet; then the backend's status; deleting: deleted, still held by the backend. */
  state: 'requested' | 'creating' | 'ready' | 'error' | 'deleting';
  size: number | null;
  taken_at: string | null;
}

export function snapshotRow(
  s: SnapshotConfiguration,
  datasets: readonly DatasetConfiguration[],
  cluster: ClusterSnapshot,
): SnapshotRow {
  const source = datasets.find((d) => d.dataset_id === s.dataset_id);
  const held = snapshotState(cluster, s.snapshot_id);
  return {
    snapshot_id: s.snapshot_id,
    name: snapshotName(s),
    dataset_id: s.dataset_id,
    volume: source?.metadata['name'] ?? s.dataset_id,
    source_deleted: source === undefined || source.deleted,
    created_at: s.created_at,
    state: s.deleted === true ? 'deleting' : (held?.status ?? 'requested'),
    size: held?.size ?? null,
    taken_at: held?.created_at ?? null,
  };
}

/** The errors nodes report for the snapshot's source about snapshots (taking or destroying one). */
function snapshotErrors(cluster: ClusterSnapshot, datasetId: string): string | undefined {
  for (const n of cluster.nodes) {
    const e = n.errors.find((x) => x.dataset_id === datasetId && /snapshot/i.test(x.action));
    if (e) return `${e.action} failed on ${n.host}: ${e.message} (${e.code})`;
  }
  return undefined;
}

/** `snapshots create --wait`: done once a backend holds it (its point in time is then fixed). */
export function takenPhase(
  cluster: ClusterSnapshot,
  s: SnapshotConfiguration,
): { done: BackendSnapshot } | { step: string; error?: string; fatal?: boolean } {
  const held = snapshotState(cluster, s.snapshot_id);
  if (held?.status === 'error')
    return { step: 'taking the snapshot', error: 'the storage backend failed the snapshot', fatal: true };
  if (held) return { done: held };
  const source = cluster.datasets.find((d) => d.dataset_id === s.dataset_id);
  if (!source || source.deleted)
    return { step: 'taking the snapshot', error: 'its volume was deleted first', fatal: true };
  const node = cluster.nodes.find((n) => n.uuid === source.primary);
  if (!node || !node.alive)
    return { step: 'waiting for its node', error: `node ${node?.host ?? source.primary} is not alive`, fatal: true };
  const error = snapshotErrors(cluster, s.dataset_id);
  const step = `taking the snapshot on ${node.host}`;
  return error ? { step, error } : { step };
}

/** `snapshots destroy --wait`: done once no backend holds it. */
export function destroyedPhase(
  cluster: ClusterSnapshot,
  s: SnapshotConfiguration,
): { done: true } | { step: string; error?: string } {
  if (!snapshotState(cluster, s.snapshot_id)) return { done: true };
  const error = snapshotErrors(cluster, s.dataset_id);
  return error ? { step: 'destroying the snapshot', error } : { step: 'destroying the snapshot' };
}
