/** One cluster for a test file (jest hooks; not exported by ./index, which benchmarks load outside jest). */
import { startCluster, type Cluster, type ClusterOptions } from './Cluster';

/**
 * Starts the cluster before the file's tests (then `use`, which may set up more on it) and stops it after them:
 * `beforeStop` first (the file's own clean-up), then the stop, even when that failed; the stop must leave no
 * process and no loop device behind.
 */
export function clusterForSuite(
  options: ClusterOptions,
  use: (cluster: Cluster) => void | Promise<void>,
  beforeStop?: (cluster: Cluster) => Promise<void>,
): void {
  let cluster: Cluster | undefined;

  beforeAll(async () => {
    cluster = await startCluster(options);
    await use(cluster);
  });

  afterAll(async () => {
    try {
      if (cluster !== undefined) await beforeStop?.(cluster);
    } finally {
      const report = await cluster?.stop();
      if (report !== undefined) {
        expect(report.survivors).toEqual([]);
        expect(report.loopDevicesLeft).toEqual([]);
      }
    }
  });
}
