import {
  type BackendSnapshot,
  type ClusterSnapshot,
  type DatasetConfiguration,
  METADATA_CLONE_KEY,
  type SnapshotConfiguration,
} from '@flocker/api';
import { status } from '@grpc/grpc-js';
import { MiB } from './mapping';
import {
  cloneSize,
  contentSourceConflict,
  contentSourceProblem,
  contentSourceSize,
  contentSourceWire,
  csiSnapshot,
  csiSnapshots,
  existingSnapshotProblem,
  filterSnapshots,
  implicitSnapshotOf,
  snapshotIdForName,
  snapshotProgress,
  snapshotState,
  timestampOf,
} from './snapshots';

const NODE = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';
const VOL = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const VOL2 = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const SNAP = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';
const SNAP2 = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd';

function config(id: string, datasetId: string, extra: Partial<SnapshotConfiguration> = {}): SnapshotConfiguration {
  return { snapshot_id: id, dataset_id: datasetId, metadata: {}, created_at: '2026-01-01T00:00:00.000Z', ...extra };
}

function backend(id: string, datasetId: string, st: BackendSnapshot['status'], size = 64 * MiB): BackendSnapshot {
  return {
    snapshot_id: id,
    dataset_id: datasetId,
    size,
    created_at: '2026-01-01T00:00:01.500Z',
    status: st,
    backend_id: `b-${id}`,
    source_blockdevice_id: `v-${datasetId}`,
  };
}

function dataset(id: string, extra: Partial<DatasetConfiguration> = {}): DatasetConfiguration {
  return { dataset_id: id, primary: NODE, maximum_size: 128 * MiB, metadata: {}, deleted: false, ...extra };
}

function cluster(extra: Partial<ClusterSnapshot> = {}, nodeExtra: Partial<ClusterSnapshot['nodes'][number]> = {}) {
  const s: ClusterSnapshot = {
    generation: '1',
    configuration_tag: 't',
    datasets: [dataset(VOL), dataset(VOL2, { deleted: true })],
    snapshots: [],
    leases: [],
    nodes: [
      {
        uuid: NODE,
        era: 'e',
        host: 'node1',
        instance_id: 'i',
        backend: 'loopback',
        manifestations: [],
        errors: [],
        alive: true,
        last_seen: '2026-01-01T00:00:00.000Z',
        ...nodeExtra,
      },
    ],
    ...extra,
  };
  return s;
}

describe('snapshot ids and state', () => {
  it('the id is name-based, a UUID, and differs from the volume id of the same name', () => {
    expect(snapshotIdForName('snap-1')).toBe(snapshotIdForName('snap-1'));
    expect(snapshotIdForName('snap-1')).not.toBe(snapshotIdForName('snap-2'));
    expect(snapshotIdForName('snap-1')).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });

  it('the state comes from alive nodes only; a ready report wins over a stale creating one', () => {
    const dead = { ...cluster().nodes[0]!, uuid: OTHER, alive: false, snapshots: [backend(SNAP, VOL, 'ready')] };
    let s = cluster({ nodes: [dead] });
    expect(snapshotState(s, SNAP)).toBeUndefined();
    const creating = { ...cluster().nodes[0]!, snapshots: [backend(SNAP, VOL, 'creating')] };
    const ready = { ...creating, uuid: OTHER, snapshots: [backend(SNAP, VOL, 'ready')] };
    s = cluster({ nodes: [creating, ready] });
    expect(snapshotState(s, SNAP)?.status).toBe('ready');
    s = cluster({ nodes: [ready, creating] });
    expect(snapshotState(s, SNAP)?.status).toBe('ready');
  });

  it('a CSI snapshot: ready_to_use only when ready; size and time from the backend, else 0 and the time asked', () => {
    const c = config(SNAP, VOL);
    expect(csiSnapshot(c, undefined)).toEqual({
      snapshotId: SNAP,
      sourceVolumeId: VOL,
      sizeBytes: 0,
      creationTime: c.created_at,
      readyToUse: false,
    });
    expect(csiSnapshot(c, backend(SNAP, VOL, 'creating'))).toMatchObject({
      sizeBytes: 64 * MiB,
      creationTime: '2026-01-01T00:00:01.500Z',
      readyToUse: false,
    });
    expect(csiSnapshot(c, backend(SNAP, VOL, 'ready')).readyToUse).toBe(true);
    expect(csiSnapshot(c, backend(SNAP, VOL, 'error')).readyToUse).toBe(false);
  });

  it('deleted snapshots are not listed; filters by snapshot id and source volume, unknown ids give nothing', () => {
    const s = cluster({
      snapshots: [config(SNAP, VOL), config(SNAP2, VOL2), config(OTHER, VOL, { deleted: true })],
    });
    const all = csiSnapshots(s);
    expect(all.map((x) => x.snapshotId)).toEqual([SNAP, SNAP2]);
    expect(filterSnapshots(all, { snapshotId: '', sourceVolumeId: '' })).toHaveLength(2);
    expect(filterSnapshots(all, { snapshotId: SNAP2, sourceVolumeId: '' }).map((x) => x.snapshotId)).toEqual([SNAP2]);
    expect(filterSnapshots(all, { snapshotId: '', sourceVolumeId: VOL }).map((x) => x.snapshotId)).toEqual([SNAP]);
    expect(filterSnapshots(all, { snapshotId: SNAP, sourceVolumeId: VOL2 })).toEqual([]);
    expect(filterSnapshots(all, { snapshotId: 'none-exist-id', sourceVolumeId: '' })).toEqual([]);
    expect(filterSnapshots(all, { snapshotId: '', sourceVolumeId: OTHER })).toEqual([]);
  });

  it('the same name of the same volume is fine; of another volume ALREADY_EXISTS', () => {
    const c = config(SNAP, VOL, { metadata: { name: 's' } });
    expect(existingSnapshotProblem(c, VOL)).toBeUndefined();
    expect(existingSnapshotProblem(c, VOL2)).toMatchObject({ code: status.ALREADY_EXISTS });
  });

  it('timestamps: seconds and nanos of an ISO time; an unparsable one is the epoch', () => {
    expect(timestampOf('2026-01-01T00:00:01.500Z')).toEqual({ seconds: 1767225601, nanos: 500_000_000 });
    expect(timestampOf('nonsense')).toEqual({ seconds: 0, nanos: 0 });
  });
});

describe('snapshotProgress', () => {
  const withSnap = (nodeExtra: Partial<ClusterSnapshot['nodes'][number]> = {}) =>
    cluster({ snapshots: [config(SNAP, VOL)] }, nodeExtra);
  it('ready, cut (creating) and failed from the backend', () => {
    expect(snapshotProgress(withSnap({ snapshots: [backend(SNAP, VOL, 'ready')] }), SNAP)).toEqual({ kind: 'ready' });
    expect(snapshotProgress(withSnap({ snapshots: [backend(SNAP, VOL, 'creating')] }), SNAP)).toEqual({ kind: 'cut' });
    const failed = snapshotProgress(
      withSnap({
        snapshots: [backend(SNAP, VOL, 'error')],
        errors: [
          {
            dataset_id: VOL,
            action: 'snapshot',
            code: 'BACKEND_ERROR',
            message: 'disk full',
            attempts: 2,
            since: 'x',
          },
        ],
      }),
      SNAP,
    );
    expect(failed).toEqual({ kind: 'failed', message: expect.stringContaining('disk full (BACKEND_ERROR)') });
  });
  it('waiting: says why (agent not taken it yet, its error, its node down or unknown, source gone)', () => {
    expect(snapshotProgress(withSnap(), SNAP)).toEqual({
      kind: 'waiting',
      reason: 'the dataset agent on node1 has not taken it yet',
    });
    const err = {
      dataset_id: VOL,
      action: 'snapshot',
      code: 'FREEZE_FAILED',
      message: 'no',
      attempts: 1,
      since: 'x',
    };
    expect(snapshotProgress(withSnap({ errors: [err] }), SNAP)).toMatchObject({
      reason: expect.stringContaining('no (FREEZE_FAILED)'),
    });
    expect(snapshotProgress(withSnap({ alive: false }), SNAP)).toMatchObject({
      reason: expect.stringContaining('not reporting'),
    });
    expect(snapshotProgress(withSnap({ uuid: OTHER }), SNAP)).toMatchObject({
      reason: expect.stringContaining('has not reported'),
    });
    expect(snapshotProgress(cluster({ snapshots: [config(SNAP, OTHER)] }), SNAP)).toMatchObject({
      reason: 'its source volume is not in the configuration',
    });
  });
});

describe('clones', () => {
  it('cloneSize: at least the source; without a required size the source size; a limit below the source OUT_OF_RANGE', () => {
    const src = 100 * MiB;
    expect(cloneSize(1024 * MiB, undefined, src)).toBe(src);
    expect(cloneSize(1024 * MiB, { requiredBytes: 0, limitBytes: 0 }, src)).toBe(src);
    expect(cloneSize(64 * MiB, { requiredBytes: 64 * MiB, limitBytes: 0 }, src)).toBe(src);
    expect(cloneSize(200 * MiB, { requiredBytes: 200 * MiB, limitBytes: 0 }, src)).toBe(200 * MiB);
    expect(cloneSize(100 * MiB, { requiredBytes: 0, limitBytes: 100 * MiB }, src)).toBe(src);
    expect(() => cloneSize(64 * MiB, { requiredBytes: 64 * MiB, limitBytes: 99 * MiB }, src)).toThrow(
      expect.objectContaining({ code: status.OUT_OF_RANGE }),
    );
    // A source smaller than Flocker's minimum: the minimum.
    expect(cloneSize(1024 * MiB, undefined, 10 * MiB)).toBe(64 * MiB);
    // Unknown source size: the range decides.
    expect(cloneSize(80 * MiB, { requiredBytes: 80 * MiB, limitBytes: 0 }, undefined)).toBe(80 * MiB);
  });

  it('contentSourceProblem: NOT_FOUND for an unknown, deleted or malformed snapshot or volume', () => {
    const s = cluster({ snapshots: [config(SNAP, VOL), config(SNAP2, VOL, { deleted: true })] });
    expect(contentSourceProblem(s, { kind: 'snapshot', snapshotId: SNAP })).toBeUndefined();
    for (const snapshotId of [SNAP2, OTHER, 'non-existing-snapshot-id'])
      expect(contentSourceProblem(s, { kind: 'snapshot', snapshotId })).toMatchObject({ code: status.NOT_FOUND });
    expect(contentSourceProblem(s, { kind: 'volume', volumeId: VOL })).toBeUndefined();
    for (const volumeId of [VOL2, OTHER, 'nope'])
      expect(contentSourceProblem(s, { kind: 'volume', volumeId })).toMatchObject({ code: status.NOT_FOUND });
  });

  it('contentSourceSize: the snapshot as the backend reports it (unknown before), the volume as configured', () => {
    let s = cluster({ snapshots: [config(SNAP, VOL)] });
    expect(contentSourceSize(s, { kind: 'snapshot', snapshotId: SNAP })).toBeUndefined();
    s = cluster({ snapshots: [config(SNAP, VOL)] }, { snapshots: [backend(SNAP, VOL, 'ready', 96 * MiB)] });
    expect(contentSourceSize(s, { kind: 'snapshot', snapshotId: SNAP })).toBe(96 * MiB);
    expect(contentSourceSize(s, { kind: 'volume', volumeId: VOL })).toBe(128 * MiB);
  });

  it('contentSourceConflict: an existing volume of the name must come from the source asked for', () => {
    const implicit = config(SNAP2, VOL, { metadata: { [METADATA_CLONE_KEY]: OTHER } });
    const fromSnap = dataset(OTHER, { source_snapshot_id: SNAP });
    const fromVol = dataset(OTHER, { source_snapshot_id: SNAP2 });
    const snaps = [config(SNAP, VOL), implicit];
    expect(contentSourceConflict(fromSnap, undefined, snaps)).toBeUndefined();
    expect(contentSourceConflict(fromSnap, { kind: 'snapshot', snapshotId: SNAP }, snaps)).toBeUndefined();
    expect(contentSourceConflict(fromSnap, { kind: 'snapshot', snapshotId: SNAP2 }, snaps)).toMatch(/not made from/);
    expect(contentSourceConflict(dataset(OTHER), { kind: 'snapshot', snapshotId: SNAP }, snaps)).toMatch(/not made/);
    expect(contentSourceConflict(fromVol, { kind: 'volume', volumeId: VOL }, snaps)).toBeUndefined();
    expect(contentSourceConflict(fromVol, { kind: 'volume', volumeId: VOL2 }, snaps)).toMatch(/not a clone/);
    expect(contentSourceConflict(dataset(OTHER), { kind: 'volume', volumeId: VOL }, snaps)).toMatch(/not a clone/);
    // Made from an explicit snapshot of the volume: not a clone of it.
    expect(contentSourceConflict(fromSnap, { kind: 'volume', volumeId: VOL }, snaps)).toMatch(/not a clone/);
  });

  it('contentSourceWire and implicitSnapshotOf (only the snapshot taken for this very clone, while live)', () => {
    expect(contentSourceWire({ kind: 'snapshot', snapshotId: SNAP })).toEqual({ snapshot: { snapshot_id: SNAP } });
    expect(contentSourceWire({ kind: 'volume', volumeId: VOL })).toEqual({ volume: { volume_id: VOL } });
    const implicit = config(SNAP2, VOL, { metadata: { [METADATA_CLONE_KEY]: OTHER } });
    expect(implicitSnapshotOf(dataset(OTHER, { source_snapshot_id: SNAP2 }), [implicit])).toBe(implicit);
    expect(implicitSnapshotOf(dataset(VOL2, { source_snapshot_id: SNAP2 }), [implicit])).toBeUndefined();
    expect(implicitSnapshotOf(dataset(OTHER, { source_snapshot_id: SNAP }), [config(SNAP, VOL)])).toBeUndefined();
    expect(implicitSnapshotOf(dataset(OTHER), [implicit])).toBeUndefined();
    expect(
      implicitSnapshotOf(dataset(OTHER, { source_snapshot_id: SNAP2 }), [{ ...implicit, deleted: true }]),
    ).toBeUndefined();
  });
});
