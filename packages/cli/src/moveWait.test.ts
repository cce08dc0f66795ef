/**
 * `flocker volumes move --wait` confirms a "mounted" its snapshot shows by reading that one dataset's state
 * (GET /v1/state/datasets?dataset_id=, session 11), not the whole list (~18 MB at 100,000 datasets), and keeps
 * waiting while the control service does not show it there (the stale-mounted rule, session 10).
 */
import type { ClusterSnapshot, DatasetState, FlockerClient } from '@flocker/api';
import { A, B, D1, dataset, mounted, node, snapshot } from '@flocker/web-ui/testing';
import { buildCli } from './cli';

const at = (t: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, t)).toISOString();

it('reads only the moved dataset’s state, and waits while the service hides the target’s "mounted"', async () => {
  const d = dataset(D1, 'pgdata', B);
  // Before the move: on B; A reported at t=0.
  const before = snapshot({
    datasets: [d],
    nodes: [node(A, '10.0.0.1', { last_seen: at(0) }), node(B, '10.0.0.2', { manifestations: [mounted(D1, '/b')] })],
  });
  // After: A reports it mounted (a report since the move); the service first hides it (built before A acted), then
  // shows it.
  const onA = (generation: string): ClusterSnapshot =>
    snapshot({
      generation,
      datasets: [{ ...d, primary: A }],
      nodes: [node(A, '10.0.0.1', { last_seen: at(5), manifestations: [mounted(D1, '/a')] }), node(B, '10.0.0.2')],
    });
  const snapshots = [before, onA('2'), onA('3')];
  const shown: DatasetState[][] = [[], [{ dataset_id: D1, primary: A, maximum_size: 1, path: '/a' }]];
  const reads: unknown[] = [];
  const fake = {
    listDatasets: async () => [d],
    waitForCluster: async () => (snapshots.length > 1 ? snapshots.shift() : snapshots[0]),
    updateDataset: async () => ({ ...d, primary: A }),
    listDatasetState: async (options?: { datasetId?: string }) => {
      reads.push(options);
      return shown.length > 1 ? shown.shift() : shown[0];
    },
  };
  const out: string[] = [];
  const err: string[] = [];
  await buildCli(
    ['volumes', 'move', 'pgdata', A, '--timeout', '5'],
    { out: (t) => out.push(t), err: (t) => err.push(t), interactive: true },
    () => fake as unknown as FlockerClient,
  ).parseAsync();
  expect(reads).toEqual([{ datasetId: D1 }, { datasetId: D1 }]);
  expect(err.join('\n')).toMatch(/waiting for 10\.0\.0\.1 to report having acted on the move/);
  expect(out.join('\n')).toMatch(/pgdata is mounted on 10\.0\.0\.1 at \/a/);
});
