import {
  cinderSnapshotStatus,
  GIB,
  META_CLUSTER,
  META_DATASET,
  META_SNAPSHOT,
  toBlockDeviceSnapshot,
} from './CinderDriver';

describe('Cinder snapshots (pure)', () => {
  it('maps Cinder snapshot states: creating -> creating, available/backing-up -> ready, error -> error', () => {
    expect(
      ['creating', 'available', 'backing-up', 'error', 'error_deleting', 'restoring'].map(cinderSnapshotStatus),
    ).toEqual(['creating', 'ready', 'ready', 'error', 'error', 'creating']);
  });

  it('shows only snapshots with Flocker metadata, reading Cinder times without a zone as UTC', () => {
    const base = {
      id: 'c1',
      status: 'available',
      size: 3,
      volume_id: 'v1',
      created_at: '2026-12-04T07:01:02.000000',
      metadata: { [META_CLUSTER]: 'k', [META_DATASET]: 'd1', [META_SNAPSHOT]: 's1' },
    };
    expect(toBlockDeviceSnapshot(base)).toEqual({
      snapshotId: 's1',
      backendId: 'c1',
      datasetId: 'd1',
      sourceBlockdeviceId: 'v1',
      size: 3 * GIB,
      createdAt: '2026-12-04T07:01:02.000Z',
      status: 'ready',
    });
    expect(toBlockDeviceSnapshot({ ...base, created_at: '2026-12-04T08:01:02+01:00' })?.createdAt).toBe(
      '2026-12-04T07:01:02.000Z',
    );
    expect(toBlockDeviceSnapshot({ ...base, metadata: { [META_CLUSTER]: 'k' } })).toBeNull();
  });
});
