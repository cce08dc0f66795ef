/** Test support: what each commit of a store said of one dataset (the lease hand-over's one-commit tests). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FlockerClient } from '@flocker/api';
import { type ConfigurationStore, FileConfigurationStore } from '../ConfigurationStore';
import { type ControlService, startControlService } from '../server';
import type { EtcdReplicas, Replica } from './etcdReplicas';
import { silentLogger } from './httpService';

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

/** A control service (or replica), its client, and the record of its store's commits (`store`). */
export type RecordedReplica = Replica & { store: CommitRecord };

/**
 * Registers the file's afterEach (services closed, directories removed) and returns a starter: a control service on a
 * fresh file store (directory named after `dirPrefix`) recording its commits, hand-overs waiting up to 20 s.
 */
export function recordedFileServices(dirPrefix: string): () => Promise<RecordedReplica> {
  const dirs: string[] = [];
  const services: ControlService[] = [];
  afterEach(async () => {
    await Promise.all(services.splice(0).map((s) => s.close()));
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  return async () => {
    const dir = mkdtempSync(path.join(tmpdir(), dirPrefix));
    dirs.push(dir);
    const fileStore = new FileConfigurationStore(dir);
    const store = recordCommits(fileStore);
    const svc = await startControlService({
      port: 0,
      host: '127.0.0.1',
      store: fileStore,
      logger: silentLogger,
      handoverWaitSeconds: 20,
    });
    services.push(svc);
    return { svc, client: new FlockerClient({ baseUrl: svc.url, timeoutMs: 30_000 }), store };
  };
}

/** A replica on `bed`'s etcd under `prefix`, recording its store's commits, hand-overs waiting up to 20 s. */
export async function recordedEtcdReplica(bed: EtcdReplicas, prefix: string): Promise<RecordedReplica> {
  const etcdStore = bed.store(prefix);
  const store = recordCommits(etcdStore);
  return { ...(await bed.start(etcdStore, { handoverWaitSeconds: 20 }, 30_000)), store };
}
