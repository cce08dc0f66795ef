/**
 * Review R2 (session 21): eff3e47 made a full volume id that another volume bears as its name ambiguous (TN F1), but
 * snapshots keep the old rule: a snapshot named as another snapshot's full id (any string is a snapshot name; the
 * control service only keeps names unique) picks the snapshot with the id silently, so `flocker snapshots destroy X`
 * destroys the snapshot the user did not name; a name equal to another's id prefix wins silently too (volumes: refused).
 * Failed 2/2 before the fix (the first two cases). New UUID-shaped snapshot names are refused (CLI, web UI).
 */
import type { ClusterSnapshot, DatasetConfiguration, FlockerClient, SnapshotConfiguration } from '@flocker/api';
import { newSnapshotNameProblem } from '@flocker/api';
import { TakeSnapshotBody } from '@flocker/web-ui';
import { node } from '@flocker/web-ui/testing';
import { resolveSnapshot } from './snapshots';
import { runCli } from './testing/runCli';

const D = '11111111-1111-4111-8111-111111111111';
const S1 = '51515151-0000-4000-8000-000000000001';
const S2 = '62626262-0000-4000-8000-000000000002';
const snap = (id: string, name?: string): SnapshotConfiguration => ({
  snapshot_id: id,
  dataset_id: D,
  metadata: name !== undefined ? { name } : {},
  created_at: '2026-12-04T07:00:00Z',
});

describe('resolveSnapshot, as resolveDataset (review TN F1 rule)', () => {
  it('refuses a full id that another snapshot bears as its name', () => {
    const all = [snap(S1), snap(S2, S1)];
    expect(() => resolveSnapshot(all, S1)).toThrow(expect.objectContaining({ exitCode: 2 }));
  });
  it('refuses a name that is also another snapshot id prefix', () => {
    const all = [snap(S1), snap(S2, '51515151')];
    expect(() => resolveSnapshot(all, '51515151')).toThrow(expect.objectContaining({ exitCode: 2 }));
  });
  it('says what picks each, and that works', () => {
    const all = [snap(S1), snap(S2, S1)];
    expect(() => resolveSnapshot(all, S1)).toThrow(
      `"${S1}" matches 2 snapshots: it is the id of one and the name of another. Give "51515151" for the snapshot ` +
        `with that id, or the id of the snapshot named "${S1}" (${S2})`,
    );
    expect(resolveSnapshot(all, '51515151').snapshot_id).toBe(S1);
    expect(resolveSnapshot(all, S2).snapshot_id).toBe(S2);
    expect(() => resolveSnapshot([snap(S1), snap(S2, '51515151')], '51515151')).toThrow(
      `"51515151" matches 2 snapshots (ids ${S2}, ${S1}): give the id`,
    );
  });
  it('is not ambiguous for a snapshot bearing its own id, or a namesake destroyed', () => {
    expect(resolveSnapshot([snap(S1, S1)], S1).snapshot_id).toBe(S1);
    expect(resolveSnapshot([snap(S1), { ...snap(S2, S1), deleted: true }], S1).snapshot_id).toBe(S1);
  });
});

describe('a new UUID-shaped snapshot name', () => {
  it('is refused by the rule and the web UI', () => {
    expect(newSnapshotNameProblem(S1)).toMatch(/shaped like a snapshot id/);
    expect(newSnapshotNameProblem(S1.toUpperCase())).toMatch(/shaped like a snapshot id/);
    expect(newSnapshotNameProblem('nightly')).toBeUndefined();
    expect(newSnapshotNameProblem('51515151')).toBeUndefined();
    const r = TakeSnapshotBody.safeParse({ name: ` ${S1} ` });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toMatch(/shaped like a snapshot id/);
    expect(TakeSnapshotBody.parse({ name: 'nightly' })).toEqual({ name: 'nightly' });
  });
  it('`flocker snapshots create db --name <uuid>` is a usage error; nothing is asked', async () => {
    const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
    const datasets: DatasetConfiguration[] = [
      { dataset_id: D, primary: A, maximum_size: null, metadata: { name: 'db' }, deleted: false },
    ];
    const cluster: ClusterSnapshot = {
      generation: '1',
      configuration_tag: 't',
      datasets,
      leases: [],
      nodes: [node(A, '10.0.0.1', { last_seen: new Date().toISOString() })],
    };
    const created: unknown[] = [];
    const client = {
      listDatasets: async () => datasets,
      listSnapshots: async () => [],
      waitForCluster: async () => cluster,
      createSnapshot: async (b: unknown) => {
        created.push(b);
        return Promise.reject(new Error('not expected'));
      },
    } as unknown as FlockerClient;
    const r = await runCli(() => client, ['snapshots', 'create', 'db', '--name', S1, '--no-wait']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/shaped like a snapshot id/);
    expect(created).toEqual([]);
  });
});
