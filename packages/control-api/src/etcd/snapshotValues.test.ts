import { SNAPSHOT_CHUNK_BYTES, snapshotValues } from './EtcdConfigurationStore';

describe('snapshotValues', () => {
  it('keeps a document within the chunk size in the snapshot value itself', () => {
    expect(snapshotValues(7, '{"a":1}', 'ab', 100)).toEqual({ value: '{"version":7,"config":{"a":1}}', chunks: [] });
  });

  it('splits a larger one into ordered chunks within the size that join back to it, named by the value', () => {
    const doc = JSON.stringify({ names: Array.from({ length: 200 }, (_, i) => `vol-${i}-é-😀`) });
    const { value, chunks } = snapshotValues(9, doc, 'cafe', 100);
    expect(JSON.parse(value)).toEqual({ version: 9, id: 'cafe', chunks: chunks.length });
    expect(value.startsWith('{"version":9,')).toBe(true);
    expect(chunks.map(([, c]) => c).join('')).toBe(doc);
    for (const [, c] of chunks) expect(Buffer.byteLength(c)).toBeLessThanOrEqual(100);
    // No chunk ends in half a surrogate pair (each is valid UTF-8 on its own).
    for (const [, c] of chunks) expect(Buffer.from(c).toString('utf8')).toBe(c);
    const keys = chunks.map(([k]) => k);
    expect(keys[0]).toBe('snapshot/cafe/00000000');
    expect([...keys].sort()).toEqual(keys);
  });

  it('defaults to 256 KiB chunks (put one at a time, a commit waits behind one at most), under etcd’s 1.5 MiB request limit', () => {
    expect(SNAPSHOT_CHUNK_BYTES).toBe(256 * 1024);
    const { chunks } = snapshotValues(1, `"${'x'.repeat(3 * 1024 * 1024)}"`, 'ab');
    expect(chunks).toHaveLength(13);
    for (const [, c] of chunks) expect(Buffer.byteLength(c)).toBeLessThanOrEqual(256 * 1024);
  });
});
