/** Test support: what each commit of a store said of one dataset (the lease hand-over's one-commit tests). */
import type { ConfigurationStore } from '../ConfigurationStore';

/** What one commit says of the watched dataset: whose lease it has, and its primary. */
export interface Seen {
  readonly lease: string | undefined;
  readonly primary: string | undefined;
}

/** The commits seen: set `watched` once the dataset exists. */
export interface CommitRecord {
  watched: string | undefined;
  readonly seen: Seen[];
}

/** Records, after each commit `store` makes, whose lease `watched` has and its primary. */
export function recordCommits(store: ConfigurationStore): CommitRecord {
  const record: CommitRecord = { watched: undefined, seen: [] };
  const commit = store.commit.bind(store);
  store.commit = async (config, base) => {
    await commit(config, base);
    const id = record.watched;
    if (id !== undefined)
      record.seen.push({ lease: config.leases.get(id)?.node_uuid, primary: config.datasets.get(id)?.primary });
  };
  return record;
}
