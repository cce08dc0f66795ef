/**
 * The onlyVolume guard (volumeOfDataset, e3f3deb) parses only the records whose text can name the dataset: a text
 * with no backslash whose lower-cased form lacks the lower-cased id is skipped. Property (session 13 review): for
 * any pool of records, whatever their JSON escapes, the case of their ids, unicode ids, torn or invalid texts, the
 * guard names exactly the volume listPool() would name for the dataset (the first readable record by creation,
 * else the first problem by id).
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { closeLoopbackDrivers, LoopbackDriver } from './testing/closingLoopbackDriver';
import { destroyTempRoot, makeTempRoot } from './testing/testSupport';

// Ends each driver's helper processes (see closingLoopbackDriver.ts).
afterEach(closeLoopbackDrivers);

jest.setTimeout(120_000);

interface Guarded {
  volumeOfDataset(datasetId: string): Promise<string | undefined>;
}

/** What listPool() names for a dataset: the driver's answer before e3f3deb. */
async function expectedOf(driver: LoopbackDriver, datasetId: string): Promise<string | undefined> {
  const pool = await driver.listPool();
  return (
    pool.volumes.find((v) => v.datasetId === datasetId)?.blockdeviceId ??
    pool.problems.find((p) => p.datasetId === datasetId)?.blockdeviceId
  );
}

const UUIDS = [randomUUID(), randomUUID(), randomUUID()];
// Ids the schema accepts (any non-empty string): final sigma (its lower case depends on the letters around it),
// letters whose lower case is longer (İ) or that have none (ß), a titlecase digraph, a ligature, composed and
// decomposed é, JSON-escaped characters (quote, backslash, controls, U+2028), a lone surrogate.
const ODD_IDS = [
  'ΑΣ',
  'Σ',
  'ΑΣ.Β',
  '.Σ',
  'İx',
  'ß',
  'ǅ',
  'ﬁ',
  '\u00e9',
  'e\u0301',
  'a"b',
  'a\\b',
  'a\nb',
  '\u2028',
  '\ud800x',
];
const IDS = [...UUIDS, ...UUIDS.map((u) => u.toUpperCase()), ...ODD_IDS];

type Encoding = 'plain' | 'pretty' | 'escapeAll' | 'escapeOne' | 'duplicateKey' | 'spaced';
type Kind =
  | { kind: 'record'; datasetId: string; encoding: Encoding; created: number; other: string }
  | { kind: 'torn'; datasetId: string; encoding: Encoding; created: number; other: string; keep: number }
  | { kind: 'mention'; datasetId: string }
  | { kind: 'invalidUtf8'; datasetId: string }
  | { kind: 'directory' };

const encodingArb = fc.constantFrom<Encoding>('plain', 'pretty', 'escapeAll', 'escapeOne', 'duplicateKey', 'spaced');
const idArb = fc.constantFrom(...IDS);
const entryArb: fc.Arbitrary<Kind> = fc.oneof(
  fc.record({
    kind: fc.constant('record' as const),
    datasetId: idArb,
    encoding: encodingArb,
    created: fc.integer({ min: 0, max: 3 }),
    other: idArb,
  }),
  fc.record({
    kind: fc.constant('torn' as const),
    datasetId: idArb,
    encoding: encodingArb,
    created: fc.integer({ min: 0, max: 3 }),
    other: idArb,
    keep: fc.integer({ min: 0, max: 400 }),
  }),
  fc.record({ kind: fc.constant('mention' as const), datasetId: idArb }),
  fc.record({ kind: fc.constant('invalidUtf8' as const), datasetId: idArb }),
  fc.record({ kind: fc.constant('directory' as const) }),
);

/** Every UTF-16 unit as a JSON \u escape: the same string to JSON.parse. */
function escapeAll(s: string): string {
  return [...s]
    .flatMap((c) => (c.length === 2 ? [c[0], c[1]] : [c]))
    .map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    .join('');
}

function recordText(id: string, e: Extract<Kind, { kind: 'record' | 'torn' }>): string {
  const record = {
    version: 1,
    blockdevice_id: id,
    dataset_id: e.datasetId,
    size: 16 * 1024 * 1024,
    attached_to: null,
    created: new Date(Date.UTC(2026, 0, 1, 0, 0, e.created)).toISOString(),
  };
  const literal = JSON.stringify(e.datasetId);
  const body = literal.slice(1, -1);
  switch (e.encoding) {
    case 'plain':
      return JSON.stringify(record);
    case 'pretty':
      return JSON.stringify(record, null, 2) + '\n';
    case 'spaced':
      return JSON.stringify(record).replace(/":/g, '" :\t');
    case 'escapeAll':
      return JSON.stringify(record).replace(literal, `"${escapeAll(e.datasetId)}"`);
    case 'escapeOne': {
      // The first character as an escape, the rest literal.
      const first = [...e.datasetId][0];
      return JSON.stringify(record).replace(
        literal,
        `"${escapeAll(first)}${JSON.stringify(e.datasetId.slice(first.length)).slice(1, -1)}"`,
      );
    }
    case 'duplicateKey':
      // JSON.parse keeps the last of two keys: the record names datasetId, the text names `other` first.
      return JSON.stringify(record).replace(
        `"dataset_id":${literal}`,
        `"dataset_id":${JSON.stringify(e.other)},"dataset_id":"${body}"`,
      );
  }
}

async function writeEntry(volumes: string, e: Kind): Promise<void> {
  const id = randomUUID();
  const file = path.join(volumes, `${id}.json`);
  switch (e.kind) {
    case 'record':
      return fs.writeFile(file, recordText(id, e));
    case 'torn':
      return fs.writeFile(file, recordText(id, e).slice(0, e.keep));
    case 'mention':
      // Not a record: the id appears, but not as a dataset_id.
      return fs.writeFile(file, `{"note": ${JSON.stringify(e.datasetId)}, "version": 1`);
    case 'invalidUtf8': {
      const text = `{"version": 1, "dataset_id": ${JSON.stringify(e.datasetId)}, "x": "`;
      return fs.writeFile(file, Buffer.concat([Buffer.from(text), Buffer.from([0xff, 0xfe, 0x22, 0x7d])]));
    }
    case 'directory':
      return fs.mkdir(file);
  }
}

describe('LoopbackDriver onlyVolume guard (volumeOfDataset)', () => {
  it('names the volume listPool() names for every dataset id, over random pools of records (escapes, case, unicode ids, torn and invalid texts)', async () => {
    const root = await makeTempRoot('flocker-guard-test-');
    try {
      let run = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(entryArb, { maxLength: 10 }), async (entries) => {
          const dir = path.join(root, `p${run++}`);
          const volumes = path.join(dir, 'volumes');
          await fs.mkdir(volumes, { recursive: true });
          for (const e of entries) await writeEntry(volumes, e);
          const driver = new LoopbackDriver({ rootPath: dir, instanceId: 'guard-test' });
          const guard = driver as unknown as Guarded;
          for (const q of IDS) {
            expect({ q, named: await guard.volumeOfDataset(q) }).toEqual({ q, named: await expectedOf(driver, q) });
          }
        }),
        { numRuns: 100 },
      );
    } finally {
      await destroyTempRoot(root);
    }
  });

  it('the case: a record of an upper-case dataset id is that id’s only; a torn one names the lower-cased id (as listPool); the public path refuses the same', async () => {
    const root = await makeTempRoot('flocker-guard-test-');
    try {
      const volumes = path.join(root, 'volumes');
      await fs.mkdir(volumes, { recursive: true });
      const upper = randomUUID().toUpperCase();
      const readable = randomUUID();
      await fs.writeFile(
        path.join(volumes, `${readable}.json`),
        JSON.stringify({
          version: 1,
          blockdevice_id: readable,
          dataset_id: upper,
          size: 16 * 1024 * 1024,
          attached_to: null,
          created: '2020-01-01T00:00:00.000Z',
        }),
      );
      const tornUpper = randomUUID().toUpperCase();
      const torn = randomUUID();
      await fs.writeFile(path.join(volumes, `${torn}.json`), `{"version":1,"dataset_id":"${tornUpper}","si`);
      const driver = new LoopbackDriver({ rootPath: root, instanceId: 'guard-test' });
      const guard = driver as unknown as Guarded;
      expect(await guard.volumeOfDataset(upper)).toBe(readable);
      expect(await guard.volumeOfDataset(upper.toLowerCase())).toBeUndefined();
      expect(await guard.volumeOfDataset(tornUpper.toLowerCase())).toBe(torn);
      expect(await guard.volumeOfDataset(tornUpper)).toBeUndefined();
      for (const q of [upper, upper.toLowerCase(), tornUpper, tornUpper.toLowerCase()]) {
        expect(await guard.volumeOfDataset(q)).toBe(await expectedOf(driver, q));
      }
      await expect(
        driver.createVolume(tornUpper.toLowerCase(), 16 * 1024 * 1024, { onlyVolume: true }),
      ).rejects.toMatchObject({
        code: 'DATASET_HAS_VOLUME',
        blockdeviceId: torn,
      });
    } finally {
      await destroyTempRoot(root);
    }
  });
});
