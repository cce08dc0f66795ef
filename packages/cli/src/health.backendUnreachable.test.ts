/**
 * `flocker status` of a node whose agent restarted while its storage backend does not answer (T1 S0, session 19): the
 * control service keeps its last state and adds an error of no dataset, BACKEND_UNREACHABLE, which the status prints
 * as a line of its own with when and why; its volumes stay as last reported (mounted, converged).
 */
import type { DatasetConfiguration } from '@flocker/api';
import { clusterHealth } from './health';
import { A, node, snap } from './testing/snapshots';

const D = '11111111-1111-4111-8111-111111111111';
const d: DatasetConfiguration = { dataset_id: D, primary: A, metadata: { name: 'pg' }, deleted: false };
const mounted = { dataset_id: D, blockdevice_id: 'v', size: 1, status: 'mounted' as const, path: '/flocker/pg' };
const unreachable = {
  action: 'observe',
  code: 'BACKEND_UNREACHABLE',
  message:
    'its storage backend has not answered since the dataset agent started (listing volumes of aws: no answer yet): ' +
    'the node is alive; its volumes are shown as its last full report had them',
  attempts: 0,
  since: '2026-12-06T08:00:00.000Z',
};

it('prints the condition as a node line, the volume still converged as last reported', () => {
  const health = clusterHealth(snap([node({ manifestations: [mounted], errors: [unreachable] })]), [d]);
  expect(health.converged).toBe(1);
  expect(health.problems).toEqual([
    'node host-a: on host-a (since 2026-12-06T08:00:00.000Z): its storage backend has not answered since the dataset ' +
      'agent started (listing volumes of aws: no answer yet): the node is alive; its volumes are shown as its last ' +
      'full report had them (BACKEND_UNREACHABLE)',
  ]);
});
