/**
 * A create that asks for a lease (issue 23, session 28): the new dataset and its primary's lease in one change of the
 * configuration. The Docker plugin's `docker run` of a new volume took two commits, the create and its first Mount's
 * lease POST (4 ms on a quiet host, 25-36 ms loaded: docs/performance.md "Session 27"); the Mount now finds the lease.
 */
import type { CreateDatasetRequest, DatasetConfiguration } from '@flocker/api';
import { acquireLease, type Applied, type Configuration, createDataset } from './configuration';

/**
 * createDataset, then, when `req.lease` asks for it, the primary's lease on the dataset as POST
 * /v1/configuration/leases would grant it (never expiring, not pinned, its holder and promise as asked) on the
 * configuration the create made: a new dataset has no lease, so nothing can refuse it there (the route refuses a
 * primary held dead before). The answer is the dataset, as for any create.
 */
export function createDatasetLeased(
  config: Configuration,
  req: CreateDatasetRequest,
  newId?: () => string,
  snapshotSize?: (snapshotId: string) => number | undefined,
  now: number = Date.now(),
): Applied<DatasetConfiguration> {
  const { lease, ...create } = req;
  const made = createDataset(config, create, newId, snapshotSize, now);
  if (lease === undefined) return made;
  const leased = acquireLease(
    made.config,
    {
      dataset_id: made.result.dataset_id,
      node_uuid: made.result.primary,
      expires: null,
      ...(lease.holder !== undefined ? { holder: lease.holder } : {}),
      ...(lease.release_on_request !== undefined ? { release_on_request: lease.release_on_request } : {}),
    },
    now,
  );
  return { ...made, config: leased.config };
}
