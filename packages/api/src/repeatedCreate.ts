import { isDeepStrictEqual } from 'node:util';
import {
  type CreateDatasetRequest,
  type DatasetConfiguration,
  METADATA_CLONE_KEY,
  type SnapshotConfiguration,
} from './schemas';

/**
 * Whether `stored` is the dataset the create `req` (as parsed by CreateDatasetRequest: ids lower-cased) makes, as
 * the control service stores it (control-api configuration.ts createDataset): a create repeated on another replica
 * after an unknown outcome (the first, slow one may have committed it) that is refused 409 DATASET_ID_IN_USE
 * succeeded when this holds. A deleted dataset, or one differing in anything asked for, is someone else's: the id
 * was really taken. A clone's size left out is the source's (any stored size fits); unique_name stores nothing. A clone
 * of a dataset needs its source snapshot (sourceSnapshot): the implicit one, of that dataset, made for this clone.
 */
export function createdAsAsked(
  req: CreateDatasetRequest,
  stored: DatasetConfiguration,
  /** The snapshot stored.source_snapshot_id names (read back for a clone of a dataset); undefined: not known. */
  sourceSnapshot?: Pick<SnapshotConfiguration, 'snapshot_id' | 'dataset_id' | 'metadata'>,
): boolean {
  if (stored.deleted || stored.dataset_id !== req.dataset_id || stored.primary !== req.primary) return false;
  const clone = req.source_snapshot_id !== undefined || req.source_dataset_id !== undefined;
  if (!(clone && req.maximum_size === undefined) && (stored.maximum_size ?? null) !== (req.maximum_size ?? null))
    return false;
  if (!isDeepStrictEqual(stored.metadata, { ...(req.metadata ?? {}) })) return false;
  // A clone of a dataset is a clone of the implicit snapshot taken in the same change (its id made there): of that
  // dataset, and naming this clone (REVIEW-S26 R1: a clone of another dataset's snapshot is someone else's).
  const snapshotAsked =
    req.source_dataset_id !== undefined
      ? stored.source_snapshot_id !== undefined &&
        sourceSnapshot?.snapshot_id === stored.source_snapshot_id &&
        sourceSnapshot.dataset_id === req.source_dataset_id &&
        sourceSnapshot.metadata[METADATA_CLONE_KEY] === req.dataset_id
      : stored.source_snapshot_id === req.source_snapshot_id;
  if (!snapshotAsked) return false;
  const { restored: _, ...backup } = stored.source_backup ?? {};
  return req.source_backup === undefined
    ? stored.source_backup === undefined
    : stored.source_backup !== undefined && isDeepStrictEqual(backup, { ...req.source_backup });
}
