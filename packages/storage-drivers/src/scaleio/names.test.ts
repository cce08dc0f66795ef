import { randomUUID } from 'node:crypto';
import {
  clusterTag,
  datasetOfName,
  deviceLinkName,
  MAX_NAME_LENGTH,
  SCALEIO_UNIT,
  sizeInKb,
  SNAPSHOT_NAME_LENGTH,
  snapshotIdOfName,
  snapshotName,
  volumeName,
} from './names';

describe('ScaleIO volume names', () => {
  it('fit the 31-character limit and give back the dataset, for this cluster only', () => {
    for (let i = 0; i < 200; i++) {
      const cluster = randomUUID();
      const dataset = randomUUID();
      const name = volumeName(cluster, dataset);
      expect(name).toHaveLength(MAX_NAME_LENGTH);
      expect(name).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(datasetOfName(cluster, name)).toBe(dataset);
      expect(datasetOfName(randomUUID(), name)).toBeUndefined();
    }
  });

  it('differ per create for one dataset, and leave foreign names alone', () => {
    const cluster = randomUUID();
    const dataset = randomUUID();
    expect(volumeName(cluster, dataset, 'aaa')).not.toBe(volumeName(cluster, dataset, 'aab'));
    expect(datasetOfName(cluster, 'vol-1')).toBeUndefined();
    expect(datasetOfName(cluster, null)).toBeUndefined();
    expect(datasetOfName(cluster, `${clusterTag(cluster)}${'x'.repeat(25)}`)).toMatch(/^[0-9a-f-]{36}$/);
    expect(() => volumeName(cluster, 'not-a-uuid')).toThrow();
  });
});

describe('ScaleIO sizes', () => {
  it('round up to 8 GiB, in KiB', () => {
    expect(sizeInKb(1)).toBe(SCALEIO_UNIT / 1024);
    expect(sizeInKb(SCALEIO_UNIT)).toBe(SCALEIO_UNIT / 1024);
    expect(sizeInKb(14 * 1024 ** 3)).toBe(16 * 1024 * 1024);
    expect(deviceLinkName('2c4a220db6e0520f', '3bd1f78800000019')).toBe('emc-vol-2c4a220db6e0520f-3bd1f78800000019');
  });
});

describe('ScaleIO snapshot names', () => {
  it('fit the limit, give back the snapshot id for this cluster only, and are never read as a volume name', () => {
    for (let i = 0; i < 200; i++) {
      const cluster = randomUUID();
      const snapshot = randomUUID();
      const name = snapshotName(cluster, snapshot);
      expect(name).toHaveLength(SNAPSHOT_NAME_LENGTH);
      expect(name.length).toBeLessThanOrEqual(MAX_NAME_LENGTH);
      expect(name).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(snapshotIdOfName(cluster, name)).toBe(snapshot);
      expect(snapshotIdOfName(randomUUID(), name)).toBeUndefined();
      expect(datasetOfName(cluster, name)).toBeUndefined();
      expect(snapshotIdOfName(cluster, volumeName(cluster, snapshot))).toBeUndefined();
    }
    expect(() => snapshotName('c', '../../etc/passwd')).toThrow(/not a UUID/);
    expect(snapshotIdOfName('c', null)).toBeUndefined();
  });
});
