/** One cluster for a test file (jest hooks; not exported by ./index, which benchmarks load outside jest). */
import { startCluster, type Cluster, type ClusterOptions } from './Cluster';

/** Starts the cluster before the file's tests and stops it after them: the stop must leave no process and no loop device behind. */
export function clusterForSuite(options: ClusterOptions, use: (cluster: Cluster) => void): void {
  let cluster: Cluster | undefined;

  beforeAll(async () => {
    cluster = await startCluster(options);
    use(cluster);
  });

  afterAll(async () => {
    const report = await cluster?.stop();
    if (report !== undefined) {
      expect(report.survivors).toEqual([]);
      expect(report.loopDevicesLeft).toEqual([]);
    }
  });
}
