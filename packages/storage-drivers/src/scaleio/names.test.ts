import { randomUUID } from 'node:crypto';
import {
  clusterTag,
  datasetOfName,
  deviceLinkName,
  MAX_NAME_LENGTH,
  SCALEIO_UNIT,
  sizeInKb,
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
