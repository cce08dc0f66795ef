/**
 * Requests the control service accepted for a local volume before its node reported its backend (issue 24: right
 * after a control-service start it accepts them as for block storage), followed by `--wait`: a snapshot, a backup,
 * a clone or restore onto the local node. Local storage takes no snapshots and fills no volume from a snapshot or
 * a backup: each wait now ends at once with the reason (fatal) instead of waiting until --timeout, or (clone,
 * restore) reporting an empty volume "mounted". And `volumes show` says a schedule there is not run.
 */
import type { ClusterSnapshot, FlockerClient, SnapshotConfiguration, UpdateDatasetRequest } from '@flocker/api';
import { A, B, D1, D2, dataset, mounted, node, snapshot } from '@flocker/web-ui/testing';
import { backupPhase, restorePhase } from './backups';
import { clusterHealth, errorsOf } from './health';
import { movePhase } from './progress';
import { takenPhase, volumeSchedule } from './snapshots';
import { runCli } from './testing/runCli';

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
    // A clone onto block node b of a's snapshot that is never taken: fails too (it waited until --timeout).
    const elsewhere = cluster({
      snapshots: [snap(D1)],
      datasets: [dataset(D1, 'pg', A), dataset(D2, 'pg-copy', B, { source_snapshot_id: S1 })],
    });
    expect(movePhase(elsewhere, D2, B)).toMatchObject({
      fatal: true,
      error: expect.stringContaining('not cloned: the snapshot it is made from is never taken'),
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

describe('a local refusal names the flocker command of its way out', () => {
  const RL = 'clusterhq:flocker:accept-replica-loss';
  const DL = 'clusterhq:flocker:accept-data-loss';
  const refused = (message: string): ClusterSnapshot =>
    cluster({
      datasets: [dataset(D1, 'pg', B)],
      nodes: [
        node(A, 'a', { backend: 'local-btrfs', alive: false }),
        node(B, 'b', {
          backend: 'local-btrfs',
          errors: [{ dataset_id: D1, action: 'refuse', code: 'SOURCE_UNREACHABLE', message, attempts: 1, since: 's' }],
        }),
      ],
    });

  it('volumes show / describe / status: the refusal with the command (errorsOf)', () => {
    const s = refused(`... which is dead ...: set metadata ${RL}=true`);
    expect(errorsOf(s, D1).map((e) => e.message)).toEqual([
      `... which is dead ...: set metadata ${RL}=true (flocker volumes move pg b --accept-replica-loss)`,
    ]);
  });

  it('volumes move --accept-data-loss sets the opt-in (it was reachable through the API only)', async () => {
    const s = refused(`... bring ${A} back, or set metadata ${DL}=true to start it empty`);
    const updates: UpdateDatasetRequest[] = [];
    const d = s.datasets[0]!;
    const fake = {
      listDatasets: async () => s.datasets,
      waitForCluster: async () => s,
      updateDataset: async (_id: string, req: UpdateDatasetRequest) => {
        updates.push(req);
        return { ...d, ...req, metadata: { ...d.metadata } };
      },
      listDatasetState: async () => [],
    };
    await runCli(
      () => fake as unknown as FlockerClient,
      ['volumes', 'move', 'pg', 'b', '--accept-data-loss', '--no-wait'],
    );
    expect(updates).toEqual([{ primary: B, metadata: { [DL]: 'true' } }]);
    updates.length = 0;
    await runCli(
      () => fake as unknown as FlockerClient,
      ['volumes', 'move', 'pg', 'b', '--accept-data-loss', '--accept-replica-loss', '--no-wait'],
    );
    expect(updates).toEqual([{ primary: B, metadata: { [RL]: 'true', [DL]: 'true' } }]);
  });
});

describe('volumes list: a volume a local agent refuses says so, and which refusal, without -o wide', () => {
  it('"moving (refused: SOURCE_UNREACHABLE)", not "moving (error)"; another failure stays "(error)"', async () => {
    const s = cluster({
      // db on the live node b: on the dead a it would be "error" (node a is not alive), whatever a last reported.
      datasets: [dataset(D1, 'pg', B), dataset(D2, 'db', B)],
      nodes: [
        node(A, 'a', {
          backend: 'local-btrfs',
          alive: false,
          manifestations: [{ ...mounted(D1), path: '/a' }],
        }),
        node(B, 'b', {
          backend: 'local-btrfs',
          errors: [
            { dataset_id: D1, action: 'refuse', code: 'SOURCE_UNREACHABLE', message: 'dead', attempts: 1, since: 's' },
            { dataset_id: D2, action: 'create', code: 'IO', message: 'disk', attempts: 2, since: 's' },
          ],
        }),
      ],
    });
    const fake = { listDatasets: async () => s.datasets, waitForCluster: async () => s };
    const r = await runCli(() => fake as unknown as FlockerClient, ['volumes', 'list']);
    expect(r.out).toMatch(/^pg .* moving \(refused: SOURCE_UNREACHABLE\) +\/a$/m);
    expect(r.out).toMatch(/^db .* pending \(error\)/m);
  });
});

describe('volumes list/show: a clone or restore a local node mounted empty is no "mounted" volume', () => {
  it('state error with the reason; flocker status counts it as a problem', async () => {
    const s = cluster({
      datasets: [dataset(D1, 'pg-copy', A, { source_snapshot_id: S1 })],
      nodes: [node(A, 'a', { backend: 'local-btrfs', manifestations: [mounted(D1)] }), node(B, 'b')],
    });
    const fake = {
      listDatasets: async () => s.datasets,
      waitForCluster: async () => s,
      listLeases: async () => [],
      listSnapshots: async () => [],
    };
    const list = await runCli(() => fake as unknown as FlockerClient, ['volumes', 'list']);
    expect(list.out).toMatch(/^pg-copy .* a +error +\/flocker\/\S+$/m);
    const show = await runCli(() => fake as unknown as FlockerClient, ['volumes', 'show', 'pg-copy']);
    expect(show.out).toMatch(/^State: +error at \/flocker\/\S+ — not cloned: a keeps this volume on local storage/m);
    expect(clusterHealth(s, s.datasets).problems).toEqual([
      expect.stringContaining('pg-copy: filling the volume — not cloned'),
    ]);
  });
});
