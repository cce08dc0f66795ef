/**
 * Snapshots as people see them (issue 20): the configured snapshots joined with what the
 * storage backends hold (the nodes' reports). Pure; shared by the web UI and the CLI
 * (`flocker snapshots list|show`), so both say the same thing about a snapshot.
 */
import { z } from 'zod';
import type {
  BackendSnapshot,
  ClusterSnapshot,
  DatasetConfiguration,
  SnapshotConfiguration,
} from '@flocker/api/schemas';
import { METADATA_SCHEDULED_KEY } from '@flocker/api/snapshotSchedule';
import { localSnapshotNotTaken } from './local';
import { METADATA_FILESYSTEM_KEY, METADATA_NAME_KEY, METADATA_PROFILE_KEY } from './sizes';

export const SnapshotStateKind = z.enum(['requested', 'creating', 'ready', 'error', 'deleting']);
export type SnapshotStateKind = z.infer<typeof SnapshotStateKind>;

export const SnapshotRow = z.object({
  snapshot_id: z.string(),
  name: z.string(),
  dataset_id: z.string(),
  /** The source volume's name, or its id when it has none or is gone. */
  volume: z.string(),
  source_deleted: z.boolean(),
  created_at: z.string(),
  /**
   * requested: not taken yet; then the backend's status; deleting: deleted, still held by the backend; error also
   * for one never to be taken (`reason`).
   */
  state: SnapshotStateKind,
  size: z.number().nullable(),
  taken_at: z.string().nullable(),
  /** Why a snapshot not taken never will be (its volume on local storage, issue 24); null otherwise. */
  reason: z.string().nullable(),
});
export type SnapshotRow = z.infer<typeof SnapshotRow>;

/** A row of the web UI: the CLI's row plus why taking or destroying it keeps failing, if it does. */
export const SnapshotView = SnapshotRow.extend({
  error: z.string().nullable(),
  /** The live source volume's primary node (where a clone goes by default); null once the source is deleted. */
  source_primary: z.string().nullable(),
  /** Taken by the control service on the volume's schedule (kept only as the schedule's keep says). */
  scheduled: z.boolean(),
});
export type SnapshotView = z.infer<typeof SnapshotView>;

export const snapshotName = (s: Pick<SnapshotConfiguration, 'metadata'>): string => s.metadata['name'] ?? '';

/** What a backend holds of the snapshot (any node's report: a shared backend is seen by all). */
export function snapshotState(cluster: ClusterSnapshot, snapshotId: string): BackendSnapshot | undefined {
  for (const n of cluster.nodes) {
    const found = n.snapshots?.find((s) => s.snapshot_id === snapshotId);
    if (found) return found;
  }
  return undefined;
}

export function snapshotRow(
  s: SnapshotConfiguration,
  datasets: readonly DatasetConfiguration[],
  cluster: ClusterSnapshot,
): SnapshotRow {
  const source = datasets.find((d) => d.dataset_id === s.dataset_id);
  const held = snapshotState(cluster, s.snapshot_id);
  // Asked for before its local node reported its backend (the API accepted it then): never taken.
  const reason = s.deleted !== true && held === undefined ? localSnapshotNotTaken(cluster, s.dataset_id) : null;
  return {
    snapshot_id: s.snapshot_id,
    name: snapshotName(s),
    dataset_id: s.dataset_id,
    volume: source?.metadata[METADATA_NAME_KEY] ?? s.dataset_id,
    source_deleted: source === undefined || source.deleted,
    created_at: s.created_at,
    state: s.deleted === true ? 'deleting' : (held?.status ?? (reason !== null ? 'error' : 'requested')),
    size: held?.size ?? null,
    taken_at: held?.created_at ?? null,
    reason,
  };
}

/**
 * The first error a node reports for the source dataset about snapshots (taking or destroying
 * one), in words: "takeSnapshot failed on a: … (CODE)". Errors name the dataset, not the snapshot.
 */
export function snapshotError(cluster: ClusterSnapshot, datasetId: string): string | undefined {
  for (const n of cluster.nodes) {
    const e = n.errors.find((x) => x.dataset_id === datasetId && /snapshot/i.test(x.action));
    if (e) return `${e.action} failed on ${n.host}: ${e.message} (${e.code})`;
  }
  return undefined;
}

/**
 * Every configured snapshot for display, newest first. A node's snapshot error is shown on the
 * snapshots it can be about: those not taken yet and those being destroyed.
 */
export function snapshotViews(cluster: ClusterSnapshot): SnapshotView[] {
  return (cluster.snapshots ?? [])
    .map((s): SnapshotView => {
      const row = snapshotRow(s, cluster.datasets, cluster);
      const pending = row.state === 'requested' || row.state === 'deleting';
      const source = cluster.datasets.find((d) => d.dataset_id === s.dataset_id && !d.deleted);
      return {
        ...row,
        error: row.reason ?? (pending ? (snapshotError(cluster, s.dataset_id) ?? null) : null),
        source_primary: source?.primary ?? null,
        scheduled: s.metadata[METADATA_SCHEDULED_KEY] !== undefined,
      };
    })
    .sort((a, b) => b.created_at.localeCompare(a.created_at) || a.snapshot_id.localeCompare(b.snapshot_id));
}

/**
 * Snapshots grouped as the page shows them: under each listed volume that is not being
 * deleted, and the rest (their source deleted or on its way out) on their own, since a
 * snapshot outlives its volume and can still be cloned or deleted.
 */
export function groupSnapshots(
  snapshots: readonly SnapshotView[],
  volumes: readonly { dataset_id: string; state: string }[],
): { byVolume: Map<string, SnapshotView[]>; orphans: SnapshotView[] } {
  const live = new Set(volumes.filter((v) => v.state !== 'deleting').map((v) => v.dataset_id));
  const byVolume = new Map<string, SnapshotView[]>();
  const orphans: SnapshotView[] = [];
  for (const s of snapshots) {
    if (!live.has(s.dataset_id)) {
      orphans.push(s);
      continue;
    }
    const list = byVolume.get(s.dataset_id) ?? [];
    list.push(s);
    byVolume.set(s.dataset_id, list);
  }
  return { byVolume, orphans };
}

/**
 * The metadata of a volume cloned from a snapshot of `source`: its name, and the source's
 * profile and file system (a clone is the same file system: it is never formatted).
 */
export function cloneMetadata(
  name: string,
  source: Pick<DatasetConfiguration, 'metadata'> | undefined,
): Record<string, string> {
  const metadata: Record<string, string> = { [METADATA_NAME_KEY]: name };
  for (const key of [METADATA_PROFILE_KEY, METADATA_FILESYSTEM_KEY]) {
    const v = source?.metadata[key];
    if (v !== undefined) metadata[key] = v;
  }
  return metadata;
}

/**
 * Where a clone goes unless the user says otherwise: the source volume's primary (`home`:
 * null once the source is deleted) while it is alive, else the first live node; none when no node is alive.
 */
export function defaultCloneNode<N extends { uuid: string; alive: boolean }>(
  home: string | null | undefined,
  nodes: readonly N[],
): N | undefined {
  const alive = nodes.filter((n) => n.alive);
  return alive.find((n) => n.uuid === home) ?? alive[0];
}
