/** Test support: a file store holding what a migration must carry (a node, a dataset, a lease). */
import winston from 'winston';
import { type DatasetConfiguration, FlockerClient } from '@flocker/api';
import { startControlService } from '../server';

/** Runs a file-store control service in `dir` just long enough to register `node` and give it a leased 64 MiB dataset. */
export async function seedFileStore(dir: string, node: string): Promise<DatasetConfiguration> {
  const svc = await startControlService({
    port: 0,
    host: '127.0.0.1',
    dataDir: dir,
    logger: winston.createLogger({ silent: true }),
  });
  try {
    const client = new FlockerClient({ baseUrl: svc.url });
    await client.reportNodeState({
      uuid: node,
      era: 'era-seed',
      host: '10.0.0.1',
      instance_id: 'i-seed',
      backend: 'loopback',
      manifestations: [],
      errors: [],
    });
    const ds = await client.createDataset({ primary: node, maximum_size: 67108864 });
    await client.acquireLease({ dataset_id: ds.dataset_id, node_uuid: node, expires: null });
    return ds;
  } finally {
    await svc.close();
  }
}
