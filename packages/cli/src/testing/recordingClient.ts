/** Test support for the cli's own tests: not part of the command. */
import type { ClusterSnapshot, DatasetConfiguration, FlockerClient } from '@flocker/api';
import { node } from '@flocker/web-ui/testing';

export const NODE_A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
export const VOLUME_X1 = '11111111-1111-4111-8111-111111111111';

/**
 * A cluster of one volume, `x1` on node 10.0.0.1, whose client answers the reads and records each create (then fails
 * it): for commands refused before they change anything, which must leave `calls` empty.
 */
export function recordingClient(): { client: FlockerClient; calls: unknown[] } {
  const calls: unknown[] = [];
  const datasets: DatasetConfiguration[] = [
    { dataset_id: VOLUME_X1, primary: NODE_A, maximum_size: null, metadata: { name: 'x1' }, deleted: false },
  ];
  const cluster: ClusterSnapshot = {
    generation: '1',
    configuration_tag: 't',
    datasets,
    leases: [],
    nodes: [node(NODE_A, '10.0.0.1', { last_seen: new Date().toISOString() })],
  };
  const record =
    (what: string) =>
    (...a: unknown[]) => {
      calls.push([what, ...a]);
      return Promise.reject(new Error('not expected'));
    };
  const client = {
    listDatasets: async () => datasets,
    listSnapshots: async () => [],
    waitForCluster: async () => cluster,
    createDataset: record('create'),
    createSnapshot: record('snapshot'),
  } as unknown as FlockerClient;
  return { client, calls };
}
