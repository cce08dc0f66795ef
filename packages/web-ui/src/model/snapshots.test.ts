import type { ActionError, BackendSnapshot, SnapshotConfiguration } from '@flocker/api/schemas';
import {
  cloneMetadata,
  defaultCloneNode,
  groupSnapshots,
  snapshotError,
  snapshotName,
  snapshotRow,
  snapshotState,
  snapshotViews,
  type SnapshotView,
} from './snapshots';
import { A, actionError, B, D1, D2, dataset, node, snapshot } from '../testing/fixtures';

const S1 = '51515151-0000-4000-8000-000000000001';
const S2 = '51515151-0000-4000-8000-000000000002';
const S3 = '51515151-0000-4000-8000-000000000003';
const MiB = 1024 * 1024;

const d1 = dataset(D1, 'pgdata', A);
const snap = (id: string, over: Partial<SnapshotConfiguration> = {}): SnapshotConfiguration => ({
  snapshot_id: id,
  dataset_id: D1,
  metadata: {},
  created_at: '2026-12-04T07:00:00Z',
  ...over,
});
const held = (id: string, status: BackendSnapshot['status'] = 'ready', over: Partial<BackendSnapshot> = {}) => ({
  snapshot_id: id,
  dataset_id: D1,
  size: 128 * MiB,
  created_at: '2026-12-04T07:00:01Z',
  status,
  backend_id: `snap-${id.slice(-1)}`,
  source_blockdevice_id: `vol-${D1}`,
  ...over,
});
const takeFails: ActionError = actionError(D1, {
  action: 'takeSnapshot',
  code: 'BACKEND_ERROR',
  message: 'quota exceeded',
});

describe('snapshotName', () => {
  it('is the name in the metadata, else empty', () => {
    expect(snapshotName(snap(S1, { metadata: { name: 'nightly' } }))).toBe('nightly');
    expect(snapshotName(snap(S1))).toBe('');
  });
});

describe('snapshotState', () => {
  it("finds the snapshot in any node's report (a shared backend is seen by all), else undefined", () => {
    const c = snapshot({ nodes: [node(A, 'a'), node(B, 'b', { snapshots: [held(S1, 'creating')] })] });
    expect(snapshotState(c, S1)).toMatchObject({ snapshot_id: S1, status: 'creating' });
    expect(snapshotState(c, S2)).toBeUndefined();
    expect(snapshotState(snapshot(), S1)).toBeUndefined(); // nodes whose backend has no snapshots report none
  });
});

describe('snapshotRow', () => {
  it('joins the configuration with what the backend holds', () => {
    const c = snapshot({ datasets: [d1], nodes: [node(A, 'a', { snapshots: [held(S1)] })] });
    expect(snapshotRow(snap(S1, { metadata: { name: 'nightly' } }), [d1], c)).toEqual({
      snapshot_id: S1,
      name: 'nightly',
      dataset_id: D1,
      volume: 'pgdata',
      source_deleted: false,
      created_at: '2026-12-04T07:00:00Z',
      state: 'ready',
      size: 128 * MiB,
      taken_at: '2026-12-04T07:00:01Z',
      reason: null,
    });
  });

  it('is "requested" before a backend holds it, then the backend status, "deleting" once deleted', () => {
    const c = snapshot({
      datasets: [d1],
      nodes: [node(A, 'a', { snapshots: [held(S2, 'creating'), held(S3, 'error')] })],
    });
    expect(snapshotRow(snap(S1), [d1], c)).toMatchObject({ state: 'requested', size: null, taken_at: null });
    expect(snapshotRow(snap(S2), [d1], c)).toMatchObject({ state: 'creating', size: 128 * MiB });
    expect(snapshotRow(snap(S3), [d1], c)).toMatchObject({ state: 'error' });
    expect(snapshotRow(snap(S2, { deleted: true }), [d1], c)).toMatchObject({ state: 'deleting', size: 128 * MiB });
  });

  it('names a deleted or unknown source by what it knows', () => {
    const c = snapshot();
    expect(snapshotRow(snap(S1), [{ ...d1, deleted: true }], c)).toMatchObject({
      volume: 'pgdata',
      source_deleted: true,
    });
    expect(snapshotRow(snap(S1), [], c)).toMatchObject({ volume: D1, source_deleted: true });
    expect(snapshotRow(snap(S1), [{ ...d1, metadata: {} }], c)).toMatchObject({ volume: D1, source_deleted: false });
  });
});

describe('snapshotError', () => {
  it("is the first node's snapshot error for the dataset, in words", () => {
    const c = snapshot({ nodes: [node(A, 'a'), node(B, 'b', { errors: [takeFails] })] });
    expect(snapshotError(c, D1)).toBe('takeSnapshot failed on b: quota exceeded (BACKEND_ERROR)');
  });

  it("ignores the dataset's other errors and other datasets' snapshot errors", () => {
    const c = snapshot({ nodes: [node(A, 'a', { errors: [actionError(D1), { ...takeFails, dataset_id: D2 }] })] });
    expect(snapshotError(c, D1)).toBeUndefined();
  });
});

describe('snapshotViews', () => {
  it('lists every configured snapshot newest first, with the source primary while the source is live', () => {
    const c = snapshot({
      datasets: [d1, dataset(D2, 'gone', B, { deleted: true })],
      snapshots: [
        snap(S1, { created_at: '2026-12-04T07:00:00Z' }),
        snap(S2, { created_at: '2026-12-04T08:00:00Z', dataset_id: D2 }),
        snap(S3, { created_at: '2026-12-04T07:00:00Z' }),
      ],
      nodes: [node(A, 'a', { snapshots: [held(S1)] }), node(B, 'b')],
    });
    const views = snapshotViews(c);
    expect(views.map((v) => v.snapshot_id)).toEqual([S2, S1, S3]); // same time: by id
    expect(views.map((v) => v.source_primary)).toEqual([null, A, A]);
    expect(views.map((v) => v.state)).toEqual(['requested', 'ready', 'requested']);
  });

  it('marks the snapshots the control service took on schedule', () => {
    const c = snapshot({
      datasets: [d1],
      snapshots: [
        snap(S1, { metadata: { name: 'pgdata-20261204T0700Z', 'clusterhq:flocker:scheduled': 'hourly' } }),
        snap(S2),
      ],
    });
    expect(snapshotViews(c).map((v) => [v.snapshot_id, v.scheduled])).toEqual([
      [S1, true],
      [S2, false],
    ]);
  });

  it('is empty when the cluster has no snapshots (the channel leaves the member out)', () => {
    expect(snapshotViews(snapshot({ datasets: [d1] }))).toEqual([]);
  });

  it('shows a snapshot error on the snapshots it can be about: not taken yet, or being destroyed', () => {
    const c = snapshot({
      datasets: [d1],
      snapshots: [snap(S1), snap(S2), snap(S3, { deleted: true })],
      nodes: [node(A, 'a', { errors: [takeFails], snapshots: [held(S2), held(S3)] })],
    });
    const byId = new Map(snapshotViews(c).map((v) => [v.snapshot_id, v.error]));
    const reason = 'takeSnapshot failed on a: quota exceeded (BACKEND_ERROR)';
    expect(Object.fromEntries(byId)).toEqual({ [S1]: reason, [S2]: null, [S3]: reason });
  });
});

describe('groupSnapshots', () => {
  const view = (id: string, datasetId: string): SnapshotView => ({
    ...snapshotRow(snap(id, { dataset_id: datasetId }), [], snapshot()),
    error: null,
    source_primary: null,
    scheduled: false,
  });

  it('puts snapshots under their listed volume, keeping their order', () => {
    const g = groupSnapshots(
      [view(S1, D1), view(S2, D2), view(S3, D1)],
      [
        { dataset_id: D1, state: 'mounted' },
        { dataset_id: D2, state: 'creating' },
      ],
    );
    expect(g.byVolume.get(D1)?.map((s) => s.snapshot_id)).toEqual([S1, S3]);
    expect(g.byVolume.get(D2)?.map((s) => s.snapshot_id)).toEqual([S2]);
    expect(g.orphans).toEqual([]);
  });

  it('keeps the snapshots of deleted, deleting or unlisted volumes apart (they can still be cloned)', () => {
    const g = groupSnapshots([view(S1, D1), view(S2, D2)], [{ dataset_id: D1, state: 'deleting' }]);
    expect(g.byVolume.size).toBe(0);
    expect(g.orphans.map((s) => s.snapshot_id)).toEqual([S1, S2]);
  });
});

describe('cloneMetadata', () => {
  it("names the clone and keeps the source's profile and file system, nothing else", () => {
    const source = {
      metadata: {
        name: 'pgdata',
        'clusterhq:flocker:profile': 'gold',
        'clusterhq:flocker:filesystem': 'xfs',
        owner: 'ops',
      },
    };
    expect(cloneMetadata('pg-test', source)).toEqual({
      name: 'pg-test',
      'clusterhq:flocker:profile': 'gold',
      'clusterhq:flocker:filesystem': 'xfs',
    });
  });

  it('is only the name when the source is unknown or says nothing more', () => {
    expect(cloneMetadata('copy', undefined)).toEqual({ name: 'copy' });
    expect(cloneMetadata('copy', { metadata: { name: 'pgdata' } })).toEqual({ name: 'copy' });
  });
});

describe('defaultCloneNode', () => {
  const a = { uuid: A, alive: true };
  const b = { uuid: B, alive: true };
  it("is the source's primary while it is alive", () => {
    expect(defaultCloneNode(B, [a, b])).toBe(b);
  });
  it('is the first live node when the source is deleted, its primary dead or unknown', () => {
    expect(defaultCloneNode(null, [a, b])).toBe(a);
    expect(defaultCloneNode(B, [a, { ...b, alive: false }])).toBe(a);
    expect(defaultCloneNode(undefined, [{ ...a, alive: false }, b])).toBe(b);
  });
  it('is undefined with no live node', () => {
    expect(defaultCloneNode(A, [{ ...a, alive: false }])).toBeUndefined();
    expect(defaultCloneNode(A, [])).toBeUndefined();
  });
});
