/**
 * Requests the control service accepted for a local volume before its node reported its backend (issue 24: right
 * after a control-service start it accepts them as for block storage), followed by `--wait`: a snapshot, a backup,
 * a clone or restore onto the local node. Local storage takes no snapshots and fills no volume from a snapshot or
 * a backup: each wait now ends at once with the reason (fatal) instead of waiting until --timeout, or (clone,
 * restore) reporting an empty volume "mounted". And `volumes show` says a schedule there is not run.
 */
import type { ClusterSnapshot, SnapshotConfiguration } from '@flocker/api';
import { A, B, D1, D2, dataset, mounted, node, snapshot } from '@flocker/web-ui/testing';
import { backupPhase, restorePhase } from './backups';
import { movePhase } from './progress';
import { takenPhase, volumeSchedule } from './snapshots';

const S1 = '51515151-0000-4000-8000-000000000051';
const BK = '5b5b5b5b-0000-4000-8000-00000000005b';

const snap = (datasetId: string): SnapshotConfiguration => ({
  snapshot_id: S1,
  dataset_id: datasetId,
  metadata: {},
  created_at: '2026-12-05T21:00:00.000Z',
});

/** pg (D1) on a, which reports local storage; db (D2) on b, block storage. */
function cluster(over: Partial<ClusterSnapshot> = {}): ClusterSnapshot {
  return snapshot({
    datasets: [dataset(D1, 'pg', A), dataset(D2, 'db', B)],
    nodes: [node(A, 'a', { backend: 'local-btrfs' }), node(B, 'b')],
    ...over,
  });
}

describe('waits of requests accepted before the local node reported its backend', () => {
  it('snapshots create --wait: fails at once with the reason; a block volume’s waits as before', () => {
    expect(takenPhase(cluster(), snap(D1))).toEqual({
      step: 'taking the snapshot',
      error:
        'never taken: a keeps this volume on local storage (local-btrfs), which takes no snapshots through the API yet (it was asked for before a reported its backend); delete this snapshot',
      fatal: true,
    });
    expect(takenPhase(cluster(), snap(D2))).toEqual({ step: 'taking the snapshot on b' });
  });

  it('backup create --wait: fails at once (NOT_ON_LOCAL_STORAGE); a block volume’s waits as before', () => {
    expect(backupPhase(cluster(), BK, D1)).toEqual({
      step: 'taking the snapshot',
      error:
        'NOT_ON_LOCAL_STORAGE: a keeps this volume on local storage (local-btrfs), which takes no snapshots or backups through the API yet (it was asked for before a reported its backend)',
      fatal: true,
    });
    expect(backupPhase(cluster(), BK, D2)).toEqual({ step: 'taking the snapshot' });
  });

  it('volumes clone --wait and backup restore --wait onto the local node: fail, even once it is mounted (empty)', () => {
    const c = cluster({
      datasets: [
        dataset(D1, 'pg-copy', A, { source_snapshot_id: S1 }),
        dataset(D2, 'db-back', A, { source_backup: { target: 's3://b/p', backup_id: 'x' } }),
      ],
      nodes: [node(A, 'a', { backend: 'local-btrfs', manifestations: [mounted(D1), mounted(D2)] }), node(B, 'b')],
    });
    expect(movePhase(c, D1, A)).toMatchObject({
      phase: 'waiting',
      fatal: true,
      code: 'NOT_ON_LOCAL_STORAGE',
      error: expect.stringContaining('not cloned: a keeps this volume on local storage (local-btrfs)'),
    });
    expect(restorePhase(c, D2, A)).toMatchObject({
      fatal: true,
      error: expect.stringContaining('not restored: a keeps this volume on local storage (local-btrfs)'),
    });
    // A plain local volume, mounted: done as before.
    const plain = cluster({ nodes: [node(A, 'a', { backend: 'local-btrfs', manifestations: [mounted(D1)] })] });
    expect(movePhase(plain, D1, A)).toEqual({ phase: 'mounted', path: `/flocker/${D1}` });
  });

  it('volumes show: the schedule of a local volume says it is not run and why', () => {
    const c = cluster({
      datasets: [dataset(D1, 'pg', A, { metadata: { name: 'pg', 'clusterhq:flocker:snapshot-schedule': 'hourly' } })],
    });
    const d = c.datasets[0];
    if (d === undefined) throw new Error('no dataset');
    expect(volumeSchedule(d, [], Date.UTC(2026, 11, 5), c)?.not_run).toBe(
      'not run: a keeps this volume on local storage (local-btrfs), which takes no snapshots through the API yet; remove the schedule (flocker volumes schedule pg --off)',
    );
    expect(volumeSchedule(d, [], Date.UTC(2026, 11, 5))?.not_run).toBeNull();
  });
});
