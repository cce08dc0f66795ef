/**
 * Snapshots and schedules of a local volume asked for before its node reported its backend (issue 24: right
 * after a control-service start the API accepts them as for block storage). Local storage takes no snapshots:
 * such a snapshot is shown failed with the reason instead of "requested" for ever, and the schedule says it is
 * not run (the control service skips it) and how to remove it.
 */
import type { ClusterSnapshot, SnapshotConfiguration } from '@flocker/api/schemas';
import { snapshotRow, snapshotViews } from './snapshots';
import { clusterView } from './view';
import { A, B, D1, D2, dataset, mounted, node, snapshot } from '../testing/fixtures';

const S1 = '51515151-0000-4000-8000-000000000051';
const S2 = '52525252-0000-4000-8000-000000000052';
const D3 = 'd3d3d3d3-0000-4000-8000-0000000000d3';

const requested = (id: string, datasetId: string, name: string): SnapshotConfiguration => ({
  snapshot_id: id,
  dataset_id: datasetId,
  metadata: { name, 'clusterhq:flocker:scheduled': 'hourly' },
  created_at: '2026-12-05T21:00:00.000Z',
});

/** D1 on local node a, D2 on block node b, each with a schedule and one snapshot nobody took. */
function cluster(aBackend = 'local-btrfs'): ClusterSnapshot {
  const schedule = { 'clusterhq:flocker:snapshot-schedule': 'hourly' };
  return snapshot({
    datasets: [
      dataset(D1, 'pg', A, { metadata: { name: 'pg', ...schedule } }),
      dataset(D2, 'db', B, { metadata: { name: 'db', ...schedule } }),
    ],
    snapshots: [requested(S1, D1, 'pg-1'), requested(S2, D2, 'db-1')],
    nodes: [node(A, 'a', { backend: aBackend }), node(B, 'b')],
  });
}

describe('a snapshot of a local volume nobody will take', () => {
  it('is shown failed (error) with the reason, not requested; a block volume’s stays requested', () => {
    const c = cluster();
    const rows = snapshotViews(c);
    const pg = rows.find((r) => r.snapshot_id === S1);
    expect(pg?.state).toBe('error');
    expect(pg?.error).toBe(
      'never taken: a keeps this volume on local storage (local-btrfs), which takes no snapshots through the API yet (it was asked for before a reported its backend); delete this snapshot',
    );
    expect(snapshotRow(c.snapshots?.[0] as SnapshotConfiguration, c.datasets, c).reason).toBe(pg?.error);
    const db = rows.find((r) => r.snapshot_id === S2);
    expect(db?.state).toBe('requested');
    expect(db?.error).toBeNull();
  });

  it('a node not reporting a local backend: requested as before', () => {
    const rows = snapshotViews(cluster('loopback'));
    expect(rows.map((r) => r.state)).toEqual(['requested', 'requested']);
    expect(rows.map((r) => r.error)).toEqual([null, null]);
  });
});

describe('the schedule of a local volume', () => {
  it('says it is not run, why, and how to remove it; a block volume’s has no such reason', () => {
    const v = clusterView(cluster());
    expect(v.volumes.find((x) => x.dataset_id === D1)?.snapshot_schedule?.not_run).toBe(
      'not run: a keeps this volume on local storage (local-btrfs), which takes no snapshots through the API yet; remove the schedule',
    );
    expect(v.volumes.find((x) => x.dataset_id === D2)?.snapshot_schedule?.not_run).toBeNull();
  });
});

describe('a clone or restore that reached a local node before it reported its backend', () => {
  it('is shown failed with the reason (local storage fills no volume from a snapshot or backup), even mounted', () => {
    const base = cluster();
    const c: ClusterSnapshot = {
      ...base,
      datasets: [
        dataset(D1, 'pg-copy', A, { source_snapshot_id: S2 }),
        dataset(D2, 'db-back', A, { source_backup: { target: 's3://b/p', backup_id: 'x' } }),
      ],
      nodes: [node(A, 'a', { backend: 'local-btrfs', manifestations: [mounted(D1), mounted(D2)] }), node(B, 'b')],
    };
    const v = clusterView(c);
    expect(v.volumes.map((x) => [x.name, x.state, x.detail])).toEqual([
      [
        'db-back',
        'error',
        'not restored: a keeps this volume on local storage (local-btrfs), which fills no volume from a snapshot or a backup yet: it holds none of that data; delete it and restore onto a node with block storage',
      ],
      [
        'pg-copy',
        'error',
        'not cloned: a keeps this volume on local storage (local-btrfs), which fills no volume from a snapshot or a backup yet: it holds none of that data; delete it and clone onto a node with block storage',
      ],
    ]);
    // On a block node the same clone is as before.
    const onB: ClusterSnapshot = {
      ...c,
      datasets: [dataset(D1, 'pg-copy', B, { source_snapshot_id: S2 })],
      nodes: [node(A, 'a', { backend: 'local-btrfs' }), node(B, 'b', { manifestations: [mounted(D1)] })],
    };
    expect(clusterView(onB).volumes.map((x) => x.state)).toEqual(['mounted']);
  });
});

describe('a clone onto block storage of a local volume, asked for before the local node reported its backend', () => {
  it('says its snapshot is never taken (it waited, "creating", for ever)', () => {
    const base = cluster();
    const c: ClusterSnapshot = {
      ...base,
      datasets: [...base.datasets, dataset(D3, 'pg-copy', B, { source_snapshot_id: S1 })],
    };
    const v = clusterView(c).volumes.find((x) => x.dataset_id === D3);
    expect([v?.state, v?.detail]).toEqual([
      'error',
      'not cloned: the snapshot it is made from is never taken: a keeps its source volume on local storage (local-btrfs), which takes no snapshots through the API yet; delete this volume',
    ]);
    // A clone of the block volume's snapshot, not taken yet: creating as before.
    const onBlock: ClusterSnapshot = {
      ...base,
      datasets: [...base.datasets, dataset(D3, 'db-copy', B, { source_snapshot_id: S2 })],
    };
    expect(clusterView(onBlock).volumes.find((x) => x.dataset_id === D3)?.state).toBe('creating');
  });
});
