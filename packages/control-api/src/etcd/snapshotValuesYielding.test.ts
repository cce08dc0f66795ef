import { type Configuration, emptyConfiguration } from '../configuration';
import { ENCODE_SLICE_ENTRIES, encodeConfiguration } from '../ConfigurationStore';
import { PersistentMap } from '../PersistentMap';
import { snapshotValues, snapshotValuesYielding } from './EtcdConfigurationStore';

function configWith(count: number, nameOf: (i: number) => string = (i) => `vol-${i}-é-😀`): Configuration {
  const datasets = new Map<
    string,
    { dataset_id: string; primary: string; metadata: { name: string }; deleted: boolean }
  >();
  for (let i = 0; i < count; i++) {
    const id = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
    datasets.set(id, {
      dataset_id: id,
      primary: '11111111-1111-4111-8111-111111111111',
      metadata: { name: nameOf(i) },
      deleted: false,
    });
  }
  return { ...emptyConfiguration, version: 42, datasets: PersistentMap.adopt(datasets) };
}

function checkChunks(
  config: Configuration,
  out: { value: string; chunks: [string, string][] },
  chunkBytes: number,
): void {
  expect(JSON.parse(out.value)).toEqual({ version: 42, id: 'cafe', chunks: out.chunks.length });
  expect(out.value.startsWith('{"version":42,')).toBe(true);
  // What the loader reads back: the chunks joined are the whole document.
  expect(out.chunks.map(([, c]) => c).join('')).toBe(encodeConfiguration(config));
  for (const [, c] of out.chunks) {
    expect(Buffer.byteLength(c)).toBeLessThanOrEqual(chunkBytes);
    expect(Buffer.from(c).toString('utf8')).toBe(c); // valid UTF-8 on its own: no half surrogate pair
  }
  const keys = out.chunks.map(([k]) => k);
  expect(keys[0]).toBe('snapshot/cafe/00000000');
  expect([...keys].sort()).toEqual(keys);
}

describe('snapshotValuesYielding (the fold, built a slice at a time)', () => {
  it('keeps a document within the chunk size in the snapshot value itself, as snapshotValues does', async () => {
    const config = configWith(3);
    const out = await snapshotValuesYielding(42, config, 'cafe', 64 * 1024);
    expect(out).toEqual(snapshotValues(42, encodeConfiguration(config), 'cafe', 64 * 1024));
    expect(out.chunks).toEqual([]);
  });

  it('cuts a larger one into ordered chunks within the size that join back to the whole document', async () => {
    const config = configWith(500);
    const out = await snapshotValuesYielding(42, config, 'cafe', 4096, { entriesPerSlice: 7 });
    expect(out.chunks.length).toBeGreaterThan(10);
    checkChunks(config, out, 4096);
  });

  it('cuts an entry larger than a chunk (large metadata) too', async () => {
    const config = configWith(20, (i) => (i === 5 ? `big-${'é😀x'.repeat(3000)}` : `vol-${i}`));
    const out = await snapshotValuesYielding(42, config, 'cafe', 1000, { entriesPerSlice: 1 });
    checkChunks(config, out, 1000);
  });

  it('lets the event loop run between slices while it builds the chunks (budget spent: every slice)', async () => {
    const config = configWith(400);
    let turns = 0;
    let on = true;
    const tick = (): void => {
      turns += 1;
      if (on) setImmediate(tick);
    };
    setImmediate(tick);
    const out = await snapshotValuesYielding(42, config, 'cafe', 2048, { entriesPerSlice: 10, budgetMs: 0 });
    on = false;
    // 400 entries in slices of 10: about 40 slices, each followed by a turn others could use.
    expect(turns).toBeGreaterThanOrEqual(40);
    checkChunks(config, out, 2048);
  });

  it('never holds the event loop for much more than its budget while values are expensive to encode (issue 23)', async () => {
    // Values not stringified before cost ~2-7 us each quiet, far more loaded: fixed slices of 2,000 held requests
    // 4-150 ms. Here every value's JSON advances a fake clock by 10 us.
    let clock = 0;
    let encodedSinceTurn = 0;
    const config = configWith(3000);
    const slow = new Map<string, unknown>();
    for (const [id, d] of config.datasets)
      slow.set(id, {
        ...d,
        toJSON() {
          clock += 0.01;
          encodedSinceTurn++;
          return { ...d };
        },
      });
    const expensive = { ...config, datasets: PersistentMap.adopt(slow) } as unknown as Configuration;
    let most = 0;
    let on = true;
    const tick = (): void => {
      most = Math.max(most, encodedSinceTurn);
      encodedSinceTurn = 0;
      if (on) setImmediate(tick);
    };
    setImmediate(tick);
    const out = await snapshotValuesYielding(42, expensive, 'cafe', 64 * 1024, { now: () => clock });
    on = false;
    most = Math.max(most, encodedSinceTurn);
    checkChunks(config, out, 64 * 1024);
    // The default 1 ms budget = 100 values, plus at most one slice past it.
    expect(most).toBeLessThanOrEqual(100 + ENCODE_SLICE_ENTRIES);
  });
});
