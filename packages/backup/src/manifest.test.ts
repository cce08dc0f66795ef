import { isBackupError } from './errors';
import {
  backupIdOf,
  backupIdOfKey,
  chunkKey,
  hashOfChunkKey,
  manifestKey,
  parseBackupId,
  resolveManifestKey,
  stampOf,
  timeOfStamp,
} from './layout';
import { canonicalJson, parseManifest, sealManifest, serializeManifest, type ManifestBody } from './manifest';

const H1 = 'a'.repeat(64);
const H2 = 'b'.repeat(64);

function body(overrides: Partial<ManifestBody> = {}): ManifestBody {
  return {
    format: 'flocker-volume-backup',
    version: 1,
    backupId: 'vol-1/20261204T065155123Z-snap-1',
    volumeId: 'vol-1',
    snapshotId: 'snap-1',
    label: 'nightly',
    createdAt: '2026-12-04T06:51:55.123Z',
    size: 3 * 65536 + 100,
    chunkSize: 65536,
    compression: 'zstd',
    chunks: [H1, null, H2, H1],
    stats: {
      dataChunks: 3,
      holeChunks: 1,
      deltaChunks: 0,
      dataBytes: 2 * 65536 + 100,
      uploadedChunks: 2,
      uploadedBytes: 1000,
      uploadedPlainBytes: 65636,
    },
    ...overrides,
  };
}

function expectCorrupt(fn: () => unknown, why: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(isBackupError(caught, 'MANIFEST_CORRUPT')).toBe(true);
  expect((caught as Error).message).toContain('manifests/k.json');
  expect((caught as Error).message).toContain(why);
}

describe('layout', () => {
  it('stamps sort as time does and read back', () => {
    const t = Date.UTC(2026, 11, 4, 6, 51, 55, 123);
    expect(stampOf(t)).toBe('20261204T065155123Z');
    expect(timeOfStamp(stampOf(t))).toBe(t);
    expect(stampOf(t + 1) > stampOf(t)).toBe(true);
  });

  it('builds and parses backup ids and keys', () => {
    const id = backupIdOf({ volumeId: 'v', stamp: '20261204T065155123Z', snapshotId: 'snap-9' });
    expect(parseBackupId(id)).toEqual({ volumeId: 'v', stamp: '20261204T065155123Z', snapshotId: 'snap-9' });
    expect(backupIdOfKey(manifestKey(id))).toBe(id);
    expect(resolveManifestKey(id)).toBe(manifestKey(id));
    expect(resolveManifestKey(manifestKey(id))).toBe(manifestKey(id));
    expect(parseBackupId('v/2026-snap')).toBeUndefined();
    expect(() => resolveManifestKey('nonsense')).toThrow(/neither a backup id/);
    expect(hashOfChunkKey(chunkKey(H1))).toBe(H1);
    expect(hashOfChunkKey(`chunks/bb/${H1}`)).toBeUndefined();
  });
});

describe('manifest', () => {
  it('round-trips through seal, serialize and parse', () => {
    const m = sealManifest(body());
    expect(m.checksum).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(parseManifest(serializeManifest(m), 'manifests/k.json')).toEqual(m);
  });

  it('checksum does not depend on key order', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: null }] })).toBe('{"a":[{"c":null,"d":2}],"b":1}');
    const m = sealManifest(body());
    const reordered = Object.fromEntries(Object.entries(m).reverse());
    expect(parseManifest(Buffer.from(JSON.stringify(reordered)), 'manifests/k.json')).toEqual(m);
  });

  it('detects any changed field through the checksum', () => {
    const m = sealManifest(body());
    expectCorrupt(
      () => parseManifest(Buffer.from(JSON.stringify({ ...m, chunks: [H2, null, H2, H1] })), 'manifests/k.json'),
      'checksum',
    );
    expectCorrupt(
      () => parseManifest(Buffer.from(JSON.stringify({ ...m, label: 'weekly' })), 'manifests/k.json'),
      'checksum',
    );
  });

  it('refuses bytes that are not a manifest', () => {
    expectCorrupt(() => parseManifest(Buffer.from('{"format":'), 'manifests/k.json'), 'not JSON');
    expectCorrupt(() => parseManifest(Buffer.from('{"format":"other"}'), 'manifests/k.json'), 'format');
    const m = sealManifest(body());
    expectCorrupt(
      () => parseManifest(Buffer.from(JSON.stringify({ ...m, checksum: undefined })), 'manifests/k.json'),
      'checksum',
    );
  });

  it('refuses an inconsistent manifest on write and on read', () => {
    expect(() => sealManifest(body({ chunks: [H1, null] }))).toThrow(/2 chunk entries/);
    expect(() => sealManifest(body({ volumeId: 'other' }))).toThrow(/does not match/);
    expect(() => sealManifest(body({ chunkSize: 1000 }))).toThrow();
  });
});
