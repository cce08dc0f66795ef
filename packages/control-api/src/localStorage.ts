/**
 * What local storage (issue 24) cannot do through the API: its agent takes no snapshots and fills
 * no volume from a snapshot or a backup (dataset-agent README: not with a local backend yet). So a
 * clone or restore onto a local node, and a snapshot, backup or snapshot schedule of a local
 * dataset, are refused (409 NOT_ON_LOCAL_STORAGE, the code the CLI and web UI use) instead of
 * coming out empty or staying "requested" for ever.
 *
 * A node is judged by its latest report since this service started (dataNode.ts: `backend`). A
 * node that has not reported since (a restart, or a node never seen) is not known to be local and
 * is accepted as before: block storage is the default, and its agent reports within seconds.
 *
 * Pure: the caller passes what it knows of the nodes.
 */
import {
  type CreateDatasetRequest,
  type DatasetConfiguration,
  METADATA_SNAPSHOT_SCHEDULE_KEY,
  type UpdateDatasetRequest,
} from '@flocker/api';
import { ConfigurationError } from './errors';

/** A node's backend as its latest report since this service started says: undefined when it has not reported. */
export type BackendOf = (node: string) => { readonly kind: 'local' | 'other'; readonly name: string } | undefined;

function refusal(what: string, node: string, backend: string): ConfigurationError {
  return new ConfigurationError(
    'NOT_ON_LOCAL_STORAGE',
    `${what}: node ${node} keeps its volumes on local storage (${backend}), which takes no snapshots, clones, backups or restores through the API yet (nothing was recorded).`,
  );
}

/** The refusal when `node` is known to be local; undefined otherwise. */
function onLocal(backendOf: BackendOf, node: string, what: string): ConfigurationError | undefined {
  const b = backendOf(node);
  return b?.kind === 'local' ? refusal(what, node, b.name) : undefined;
}

/** Sets a snapshot schedule (a string; null removes it, always allowed). */
function setsSchedule(metadata: Readonly<Record<string, string | null>> | undefined): boolean {
  return typeof metadata?.[METADATA_SNAPSHOT_SCHEDULE_KEY] === 'string';
}

/**
 * A create refused for local storage: a clone (of a snapshot or a dataset) or a restore onto a
 * local node, a clone of a dataset whose primary is local (its snapshot would never be taken), a
 * schedule on a local node. `datasets` looks the clone's source up (unknown: left to createDataset).
 */
export function createRefusal(
  req: CreateDatasetRequest,
  backendOf: BackendOf,
  dataset: (id: string) => DatasetConfiguration | undefined,
): ConfigurationError | undefined {
  const id = req.dataset_id ?? 'to be created';
  if (req.source_backup !== undefined) return onLocal(backendOf, req.primary, `a restore onto node ${req.primary}`);
  if (req.source_snapshot_id !== undefined || req.source_dataset_id !== undefined) {
    const onto = onLocal(backendOf, req.primary, `a clone onto node ${req.primary}`);
    if (onto !== undefined) return onto;
  }
  if (req.source_dataset_id !== undefined) {
    const source = dataset(req.source_dataset_id);
    if (source !== undefined && !source.deleted) {
      const of = onLocal(backendOf, source.primary, `a clone of the dataset ${source.dataset_id}`);
      if (of !== undefined) return of;
    }
  }
  if (setsSchedule(req.metadata)) return onLocal(backendOf, req.primary, `a snapshot schedule of the dataset ${id}`);
  return undefined;
}

/** An update refused for local storage: setting a snapshot schedule on a dataset whose primary (after it) is local. */
export function updateRefusal(
  current: DatasetConfiguration,
  req: UpdateDatasetRequest,
  backendOf: BackendOf,
): ConfigurationError | undefined {
  if (!setsSchedule(req.metadata)) return undefined;
  return onLocal(backendOf, req.primary ?? current.primary, `a snapshot schedule of the dataset ${current.dataset_id}`);
}

/** A snapshot or backup (`what`) of a dataset whose primary is local: refused. */
export function snapshotRefusal(
  dataset: DatasetConfiguration | undefined,
  backendOf: BackendOf,
  what: 'a snapshot' | 'a backup',
): ConfigurationError | undefined {
  if (dataset === undefined || dataset.deleted) return undefined; // refused as before (not found, deleted)
  return onLocal(backendOf, dataset.primary, `${what} of the dataset ${dataset.dataset_id}`);
}
