/**
 * The control service's rules for names (metadata `name`) of new datasets and snapshots, whoever asks: the v1 API,
 * the CLI, the web UI, the Docker plugin, the CSI driver, flocker-deploy's compose. Pure; the callers apply them
 * inside the configuration change (ControlState.mutate), so a check and the write it allows are one commit, re-run
 * on the winner's configuration when another replica commits first.
 *
 * - No new name shaped like an id (review TN F1): commands take "a name or an id", and a volume named with another
 *   volume's id made `flocker volumes destroy <id>` destroy the wrong one. Existing names are never re-checked: a
 *   dataset or snapshot that has such a name keeps being read, moved, updated and deleted. (A name never changes
 *   after creation: UpdateDatasetRequest refuses the key, so there is no rename to check.)
 * - Unique dataset names only when the creator asks (unique_name): Flocker v1 leaves names free and duplicates
 *   allowed (ClusterHQ flocker's create_dataset_configuration refuses only a taken dataset_id), so a v1 client keeps
 *   that; the Docker plugin and the CLI ask, which closes the window where two of them made one name twice.
 */
import {
  type DatasetConfiguration,
  idShapedNameProblem,
  METADATA_NAME_KEY,
  newSnapshotNameProblem,
} from '@flocker/api';
import { ConfigurationError } from './errors';

/** Refuses a new dataset (`volume`) or snapshot name shaped like an id; no name, or any other, passes. */
export function requireNewName(kind: 'volume' | 'snapshot', name: string | undefined): void {
  if (name === undefined) return;
  const problem = kind === 'volume' ? idShapedNameProblem('volume', name) : newSnapshotNameProblem(name);
  if (problem !== undefined) throw new ConfigurationError('NAME_SHAPED_LIKE_ID', problem);
}

/** The first dataset (creation order) not deleted that bears `name`. */
export function liveDatasetNamed(
  datasets: Iterable<DatasetConfiguration>,
  name: string,
): DatasetConfiguration | undefined {
  for (const d of datasets) if (!d.deleted && d.metadata[METADATA_NAME_KEY] === name) return d;
  return undefined;
}

/** unique_name: refused (DATASET_NAME_IN_USE) when a dataset not deleted already bears `name`. */
export function requireNameUnused(datasets: Iterable<DatasetConfiguration>, name: string): void {
  const other = liveDatasetNamed(datasets, name);
  if (other === undefined) return;
  throw new ConfigurationError(
    'DATASET_NAME_IN_USE',
    `The name ${JSON.stringify(name)} is used by the dataset ${other.dataset_id}; this create asked for a name no other dataset has (unique_name).`,
  );
}
