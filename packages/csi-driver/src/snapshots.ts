/**
 * The pure decisions behind CSI snapshots and clones: a CSI snapshot is a Flocker snapshot
 * (snapshot_id = its id, the CSI name = its metadata.name), as the backends report it; a
 * volume with a content source is a clone (source_snapshot_id / source_dataset_id). No I/O here.
 */
import {
  METADATA_CLONE_KEY,
  MINIMUM_DATASET_SIZE,
  volumeDatasetId,
  type ClusterSnapshot,
  type DatasetConfiguration,
  type SnapshotConfiguration,
  type SnapshotState,
} from '@flocker/api';
import { status } from '@grpc/grpc-js';
import { CsiError, isDatasetId, type CapacityRange } from './mapping';

/**
 * A CSI snapshot name's Flocker snapshot id: name-based (as for volumes), so two CreateSnapshot
 * calls of one name racing through two controllers ask for one id and the control service lets
 * one win. Prefixed so a snapshot and a volume of the same name get different ids.
 */
export function snapshotIdForName(name: string): string {
  return volumeDatasetId(`csi-snapshot:${name}`);
}

/** A snapshot as CreateSnapshot/ListSnapshots answer it (before the wire's field names). */
export interface CsiSnapshot {
  snapshotId: string;
  sourceVolumeId: string;
  /** 0: unknown (no backend holds it yet). */
  sizeBytes: number;
  /** When the backend took it; when none holds it yet, when it was asked for. */
  creationTime: string;
  readyToUse: boolean;
}

/** What the backends hold of a snapshot (alive nodes' reports; on a shared backend every node reports all). */
export function snapshotState(s: ClusterSnapshot, snapshotId: string): SnapshotState | undefined {
  let found: SnapshotState | undefined;
  for (const n of s.nodes) {
    if (!n.alive) continue;
    for (const b of n.snapshots ?? []) {
      if (b.snapshot_id !== snapshotId) continue;
      // A ready report wins over a stale "creating" one from another node.
      if (found === undefined || (found.status !== 'ready' && b.status === 'ready')) found = b;
    }
  }
  return found;
}

/** The live (not deleted) configured snapshots. */
export function liveSnapshots(s: ClusterSnapshot): SnapshotConfiguration[] {
  return (s.snapshots ?? []).filter((x) => x.deleted !== true);
}

export function csiSnapshot(config: SnapshotConfiguration, state: SnapshotState | undefined): CsiSnapshot {
  return {
    snapshotId: config.snapshot_id,
    sourceVolumeId: config.dataset_id,
    sizeBytes: state?.size ?? 0,
    creationTime: state?.created_at ?? config.created_at,
    readyToUse: state?.status === 'ready',
  };
}

/** Every live snapshot, as CSI sees it. */
export function csiSnapshots(s: ClusterSnapshot): CsiSnapshot[] {
  return liveSnapshots(s).map((c) => csiSnapshot(c, snapshotState(s, c.snapshot_id)));
}

/** ListSnapshots' filters: both optional; an id that names nothing gives an empty list, not an error. */
export function filterSnapshots(
  all: readonly CsiSnapshot[],
  filter: { snapshotId: string; sourceVolumeId: string },
): CsiSnapshot[] {
  return all.filter(
    (x) =>
      (filter.snapshotId === '' || x.snapshotId === filter.snapshotId) &&
      (filter.sourceVolumeId === '' || x.sourceVolumeId === filter.sourceVolumeId),
  );
}

/** CreateSnapshot of a name that exists: fine for the same source volume, ALREADY_EXISTS for another. */
export function existingSnapshotProblem(existing: SnapshotConfiguration, sourceVolumeId: string): CsiError | undefined {
  if (existing.dataset_id === sourceVolumeId) return undefined;
  return new CsiError(
    status.ALREADY_EXISTS,
    `snapshot ${existing.metadata.name ?? existing.snapshot_id} exists (${existing.snapshot_id}) of another volume, ${existing.dataset_id}`,
  );
}

export type SnapshotProgress =
  /** Taken and usable for a clone. */
  | { kind: 'ready' }
  /** The backend holds it (its time is fixed) but it is not usable yet (EBS "pending"). */
  | { kind: 'cut' }
  /** No backend holds it yet: the source's primary has not taken it. */
  | { kind: 'waiting'; reason: string }
  | { kind: 'failed'; message: string };

/**
 * How far a snapshot is, from the cluster snapshot: CreateSnapshot waits while it is `waiting`
 * (creation_time would not be real yet) and answers from `cut` on.
 */
export function snapshotProgress(s: ClusterSnapshot, snapshotId: string): SnapshotProgress {
  const state = snapshotState(s, snapshotId);
  if (state?.status === 'ready') return { kind: 'ready' };
  if (state?.status === 'creating') return { kind: 'cut' };
  const config = (s.snapshots ?? []).find((x) => x.snapshot_id === snapshotId);
  const source = config ? s.datasets.find((d) => d.dataset_id === config.dataset_id) : undefined;
  const primary = source ? s.nodes.find((n) => n.uuid === source.primary) : undefined;
  const problem = primary?.errors.find(
    (e) => e.dataset_id === config?.dataset_id && /snapshot/i.test(`${e.action} ${e.code}`),
  );
  if (state?.status === 'error') {
    return {
      kind: 'failed',
      message: `the storage backend reports snapshot ${snapshotId} failed${problem ? `: ${problem.message} (${problem.code})` : ''}`,
    };
  }
  let reason: string;
  if (!source) reason = 'its source volume is not in the configuration';
  else if (!primary) reason = `the source volume's node ${source.primary} has not reported`;
  else if (!primary.alive) reason = `the source volume's node ${primary.host} is not reporting`;
  else if (problem) reason = `the dataset agent on ${primary.host} reports: ${problem.message} (${problem.code})`;
  else reason = `the dataset agent on ${primary.host} has not taken it yet`;
  return { kind: 'waiting', reason };
}

/** A gRPC google.protobuf.Timestamp of an ISO 8601 time. */
export function timestampOf(iso: string): { seconds: number; nanos: number } {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return { seconds: 0, nanos: 0 };
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1_000_000 };
}

// ---- clones ------------------------------------------------------------------------------

/** CreateVolume's volume_content_source, as the driver takes it. */
export type ContentSource = { kind: 'snapshot'; snapshotId: string } | { kind: 'volume'; volumeId: string };

/**
 * The size of a clone: as sizeForRange would give, but at least the source's size (the spec:
 * a volume from a snapshot MUST NOT be smaller than it; Flocker refuses a smaller clone).
 * A limit below the source's size cannot be met: OUT_OF_RANGE. `sourceSize` undefined: not
 * known yet (a snapshot no node reports), the range decides and the agent makes the clone at
 * least as big as the snapshot.
 */
export function cloneSize(rangeSize: number, range: CapacityRange | undefined, sourceSize: number | undefined): number {
  if (sourceSize === undefined || sourceSize <= 0) return rangeSize;
  const limit = range?.limitBytes ?? 0;
  if (limit > 0 && limit < sourceSize) {
    throw new CsiError(
      status.OUT_OF_RANGE,
      `capacity_range.limit_bytes ${limit} is below the size of the volume content source (${sourceSize} bytes)`,
    );
  }
  const required = range?.requiredBytes ?? 0;
  // Without a required size the clone is the source's size (the default size is for empty volumes).
  return Math.max(required > 0 ? rangeSize : MINIMUM_DATASET_SIZE, sourceSize);
}

/** NOT_FOUND for a content source that names no live snapshot or volume (the spec's code for it). */
export function contentSourceProblem(s: ClusterSnapshot, source: ContentSource): CsiError | undefined {
  if (source.kind === 'snapshot') {
    const ok = isDatasetId(source.snapshotId) && liveSnapshots(s).some((x) => x.snapshot_id === source.snapshotId);
    return ok ? undefined : new CsiError(status.NOT_FOUND, `no snapshot ${source.snapshotId}`);
  }
  const ok = isDatasetId(source.volumeId) && s.datasets.some((d) => d.dataset_id === source.volumeId && !d.deleted);
  return ok ? undefined : new CsiError(status.NOT_FOUND, `no volume ${source.volumeId}`);
}

/** The size of a content source, when known: the snapshot's as a backend reports it, the volume's configured size. */
export function contentSourceSize(s: ClusterSnapshot, source: ContentSource): number | undefined {
  if (source.kind === 'snapshot') return snapshotState(s, source.snapshotId)?.size;
  const d = s.datasets.find((x) => x.dataset_id === source.volumeId);
  return d?.maximum_size ?? undefined;
}

/**
 * CreateVolume of a name that exists, with a content source: the existing volume must have
 * been made from it (a clone of a volume is a clone of the implicit snapshot the control
 * service took of that volume), else ALREADY_EXISTS. Without a content source any volume of
 * the name is accepted, as before.
 */
export function contentSourceConflict(
  d: DatasetConfiguration,
  source: ContentSource | undefined,
  snapshots: readonly SnapshotConfiguration[],
): string | undefined {
  if (source === undefined) return undefined;
  if (source.kind === 'snapshot') {
    if (d.source_snapshot_id === source.snapshotId) return undefined;
    return `it was not made from snapshot ${source.snapshotId}`;
  }
  // The implicit snapshot taken for this very dataset: a volume made from an explicit snapshot of the source is not its clone.
  const from = snapshots.find((x) => x.snapshot_id === d.source_snapshot_id);
  if (from?.dataset_id === source.volumeId && from.metadata[METADATA_CLONE_KEY] === d.dataset_id) return undefined;
  return `it is not a clone of volume ${source.volumeId}`;
}

/** The CSI content source of a volume (for its answers): the one asked for. */
export function contentSourceWire(
  source: ContentSource,
): { snapshot: { snapshot_id: string } } | { volume: { volume_id: string } } {
  return source.kind === 'snapshot'
    ? { snapshot: { snapshot_id: source.snapshotId } }
    : { volume: { volume_id: source.volumeId } };
}

/**
 * The implicit snapshot the control service took for a clone of a volume, which nobody else
 * refers to: DeleteVolume of the clone deletes it too, so PVC clones leave nothing behind.
 */
export function implicitSnapshotOf(
  d: DatasetConfiguration,
  snapshots: readonly SnapshotConfiguration[],
): SnapshotConfiguration | undefined {
  if (d.source_snapshot_id === undefined) return undefined;
  const x = snapshots.find((y) => y.snapshot_id === d.source_snapshot_id);
  return x !== undefined && x.deleted !== true && x.metadata[METADATA_CLONE_KEY] === d.dataset_id ? x : undefined;
}
