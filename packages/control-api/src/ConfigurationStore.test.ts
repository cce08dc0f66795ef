import {
  appendFileSync,
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import {
  acquireLease,
  type Configuration,
  createDataset,
  deleteDataset,
  emptyConfiguration,
  registerNode,
  releaseLease,
} from './configuration';
import { applyRecords, decodeLog, diffConfiguration, encodeRecord, LogRecord } from './ConfigurationLog';
import {
  CONFIGURATION_FILE,
  decodeConfiguration,
  encodeConfiguration,
  encodeConfigurationSlices,
  FileConfigurationStore,
  LOG_FILE,
  migrate,
  TurnBudget,
} from './ConfigurationStore';
import { StoreError } from './errors';
import { toApiError } from './httpErrors';
import { FakeFullDisk } from '@flocker/api/testing';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const D1 = '11111111-1111-4111-8111-111111111111';

function sample() {
  let c = registerNode(emptyConfiguration, { uuid: A, host: '10.0.0.1' });
  c = createDataset(c, { primary: A, dataset_id: D1, maximum_size: 67108864, metadata: { name: 'db' } }).config;
  return acquireLease(c, { dataset_id: D1, node_uuid: A, expires: null }, 0).config;
}

describe('configuration encoding', () => {
  it('round-trips', () => {
    const c = sample();
    const text = encodeConfiguration(c);
    const back = decodeConfiguration(JSON.parse(text));
    expect(back.version).toBe(c.version);
    expect([...back.datasets.values()]).toEqual([...c.datasets.values()]);
    expect([...back.leases.values()]).toEqual([...c.leases.values()]);
    expect([...back.nodes.values()]).toEqual([...c.nodes.values()]);
    expect(JSON.parse(text)).toMatchObject({ format_version: 1 });
  });
  it('round-trips lease holders; a document from before holders loads its lease as an unnamed share', () => {
    let c = acquireLease(sample(), { dataset_id: D1, node_uuid: A, expires: null, holder: 'csi' }, 0).config;
    c = acquireLease(c, { dataset_id: D1, node_uuid: A, expires: null, holder: 'docker' }, 0).config;
    const back = decodeConfiguration(JSON.parse(encodeConfiguration(c)));
    expect(back.leases.get(D1)).toEqual({
      dataset_id: D1,
      node_uuid: A,
      expires_at: null,
      holders: ['csi', 'docker'],
      unnamed: true,
    });
    // Written by the version before holders: a lease has only dataset_id, node_uuid, expires_at (pinned).
    const old = decodeConfiguration({
      format_version: 1,
      version: 3,
      datasets: [{ dataset_id: D1, primary: A, metadata: {}, deleted: false }],
      leases: [{ dataset_id: D1, node_uuid: A, expires_at: null }],
      nodes: [{ uuid: A, host: 'h' }],
    });
    expect(old.leases.get(D1)).toEqual({ dataset_id: D1, node_uuid: A, expires_at: null });
    const csi = acquireLease(old, { dataset_id: D1, node_uuid: A, expires: null, holder: 'csi' }, 0);
    expect(csi.result).toMatchObject({ holders: ['csi'], unnamed_holder: true });
    expect(releaseLease(csi.config, D1, 0, 'csi').result).toMatchObject({ remains: true });
    expect(() =>
      decodeConfiguration({ ...JSON.parse(encodeConfiguration(c)), leases: [{ ...old.leases.get(D1), holders: [] }] }),
    ).toThrow(StoreError);
  });
  it('rejects corrupt and too-new documents with stable codes', () => {
    expect(() => decodeConfiguration({ format_version: 1 })).toThrow(StoreError);
    try {
      decodeConfiguration({ format_version: 99, version: 1 });
    } catch (err) {
      expect((err as StoreError).code).toBe('STORE_FORMAT_TOO_NEW');
    }
  });
  it('runs migrations step by step', () => {
    const steps = {
      0: (d: Record<string, unknown>) => ({ ...d, format_version: 1, renamed: d['old'] }),
    };
    expect(migrate({ format_version: 0, old: 5 }, steps)).toEqual({ format_version: 1, old: 5, renamed: 5 });
    expect(() => migrate({ format_version: 0 }, {})).toThrow(StoreError);
  });
});

describe('FileConfigurationStore', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'flocker-store-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('loads empty when there is no file, then persists commits atomically', async () => {
    const store = new FileConfigurationStore(path.join(dir, 'sub'));
    expect((await store.load()).version).toBe(0);
    const c = sample();
    await store.commit(c);
    await store.close();
    expect(existsSync(path.join(dir, 'sub', `${CONFIGURATION_FILE}.tmp`))).toBe(false);
    const reloaded = await new FileConfigurationStore(path.join(dir, 'sub')).load();
    expect(reloaded.version).toBe(c.version);
    expect(reloaded.datasets.get(D1)?.metadata).toEqual({ name: 'db' });
  });

  it('refuses to start on a corrupt file rather than losing data', async () => {
    writeFileSync(path.join(dir, CONFIGURATION_FILE), '{"format_version":1,');
    await expect(new FileConfigurationStore(dir).load()).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
    expect(readFileSync(path.join(dir, CONFIGURATION_FILE), 'utf8')).toBe('{"format_version":1,');
  });
});

describe('FileConfigurationStore write-ahead log', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'flocker-wal-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const node = (c: Configuration): Configuration => registerNode(c, { uuid: A, host: '10.0.0.1' });
  const create = (c: Configuration, i: number): Configuration =>
    createDataset(c, {
      primary: A,
      dataset_id: `${String(i).padStart(8, '0')}-1111-4111-8111-111111111111`,
      metadata: { name: `v${i}` },
    }).config;

  async function commitN(
    store: FileConfigurationStore,
    from: Configuration,
    n: number,
    offset = 0,
  ): Promise<Configuration> {
    let c = from;
    for (let i = 0; i < n; i++) {
      c = create(c, offset + i);
      await store.commit(c);
    }
    return c;
  }

  /** Commits node A to a fresh `store`, then `n` datasets; the configuration after them. */
  async function nodeAndDatasets(store: FileConfigurationStore, n: number): Promise<Configuration> {
    const c = node(await store.load());
    await store.commit(c);
    return commitN(store, c, n);
  }

  function expectSame(a: Configuration, b: Configuration): void {
    expect(a.version).toBe(b.version);
    expect([...a.datasets.entries()]).toEqual([...b.datasets.entries()]);
    expect([...a.leases.entries()]).toEqual([...b.leases.entries()]);
    expect([...a.nodes.entries()]).toEqual([...b.nodes.entries()]);
  }

  it('appends one small record per commit instead of rewriting the configuration', async () => {
    const store = new FileConfigurationStore(dir);
    const c = await nodeAndDatasets(store, 200);
    const logSize = statSync(path.join(dir, LOG_FILE)).size;
    expect(logSize).toBeLessThan(201 * 400);
    expect(existsSync(path.join(dir, CONFIGURATION_FILE))).toBe(false);
    await store.close();
    expectSame(await new FileConfigurationStore(dir).load(), c);
  });

  it('compacts into a snapshot in the background while commits continue', async () => {
    const store = new FileConfigurationStore(dir, { compactMinBytes: 4096 });
    const c = await nodeAndDatasets(store, 300);
    await store.close();
    expect(existsSync(path.join(dir, CONFIGURATION_FILE))).toBe(true);
    expect(existsSync(path.join(dir, `${CONFIGURATION_FILE}.tmp`))).toBe(false);
    // Compaction starts once the log outgrows the snapshot, so the log stays below about its size.
    expect(statSync(path.join(dir, LOG_FILE)).size).toBeLessThan(
      statSync(path.join(dir, CONFIGURATION_FILE)).size + 1024,
    );
    const snapshotVersion = (
      JSON.parse(readFileSync(path.join(dir, CONFIGURATION_FILE), 'utf8')) as { version: number }
    ).version;
    expect(snapshotVersion).toBeGreaterThan(200);
    expectSame(await new FileConfigurationStore(dir).load(), c);
  });

  it('a crash at any point of a compaction (snapshot written in slices, log swapped) loses no acknowledged commit', async () => {
    // Every file operation of the compaction waits at a gate; at each gate, with commits acknowledged meanwhile,
    // the directory is copied as a crash would leave it there, and a store loaded from the copy must hold them.
    const gates: Array<{ release: () => void; locked: boolean }> = [];
    let armed = false; // from the compaction on
    const gate = (locked = false): Promise<void> =>
      armed ? new Promise((resolve) => gates.push({ release: resolve, locked })) : Promise.resolve();
    const snapshotTmp = path.join(dir, `${CONFIGURATION_FILE}.tmp`);
    const logTmp = path.join(dir, `${LOG_FILE}.tmp`);
    const open = async (file: string, flags: string | number, mode?: number): Promise<FileHandle> => {
      if (file === logTmp) await gate(true); // the log swap, after the snapshot's rename, holds the commit lock
      const handle = await fs.open(file, flags, mode);
      if (file !== snapshotTmp) return handle;
      return new Proxy(handle, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver) as unknown;
          if (typeof value !== 'function') return value;
          const method = value as (...args: unknown[]) => unknown;
          if (prop === 'write' || prop === 'sync')
            return async (...args: unknown[]) => {
              await gate();
              return method.apply(target, args);
            };
          return method.bind(target);
        },
      });
    };
    // 1 KiB writes: the snapshot of 60 datasets is about eight.
    const store = new FileConfigurationStore(dir, {
      openFile: open,
      snapshotWriteBytes: 1024,
      compactMinBytes: 1 << 30,
    });
    let c = await nodeAndDatasets(store, 60);
    armed = true;
    const compaction = store.compact();
    const images: Array<{ dir: string; config: Configuration }> = [];
    let done = false;
    void compaction.finally(() => (done = true));
    let n = 1000;
    while (!done) {
      if (gates.length === 0) {
        await new Promise((r) => setImmediate(r));
        continue;
      }
      const next = gates.shift() as { release: () => void; locked: boolean };
      if (!next.locked) {
        c = await commitN(store, c, 2, n); // acknowledged while the compaction waits
        n += 2;
      }
      const image = mkdtempSync(path.join(tmpdir(), 'flocker-crash-image-'));
      cpSync(dir, image, { recursive: true });
      images.push({ dir: image, config: c });
      next.release();
    }
    await compaction;
    expect(images.length).toBeGreaterThan(8); // the slices, the fsync, the log swap
    try {
      for (const image of images) {
        const loaded = new FileConfigurationStore(image.dir);
        expectSame(await loaded.load(), image.config);
        await loaded.close();
      }
    } finally {
      for (const image of images) rmSync(image.dir, { recursive: true, force: true });
    }
    c = await commitN(store, c, 3, n);
    await store.close();
    expectSame(await new FileConfigurationStore(dir).load(), c);
    expect(existsSync(snapshotTmp)).toBe(false);
  }, 60_000);

  it('the snapshot is flushed slice by slice (no commit fdatasync waits behind megabytes of it, issue 23)', async () => {
    const snapshotTmp = path.join(dir, `${CONFIGURATION_FILE}.tmp`);
    const calls: string[] = [];
    const open = async (file: string, flags: string | number, mode?: number): Promise<FileHandle> => {
      const handle = await fs.open(file, flags, mode);
      if (file !== snapshotTmp) return handle;
      return new Proxy(handle, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver) as unknown;
          if (typeof value !== 'function') return value;
          const method = value as (...args: unknown[]) => unknown;
          if (prop === 'write' || prop === 'datasync' || prop === 'sync') calls.push(prop);
          return method.bind(target);
        },
      });
    };
    const store = new FileConfigurationStore(dir, {
      openFile: open,
      snapshotWriteBytes: 1024,
      compactMinBytes: 1 << 30,
    });
    const c = await nodeAndDatasets(store, 60);
    await store.compact();
    await store.close();
    // Every slice written is flushed before the next one is encoded; the whole file is synced at the end.
    const writes = calls.filter((x) => x === 'write').length;
    expect(writes).toBeGreaterThan(4);
    expect(calls.filter((x) => x === 'datasync').length).toBe(writes);
    expect(calls.slice(0, -1).join(',')).toBe(Array.from({ length: writes }, () => 'write,datasync').join(','));
    expect(calls.at(-1)).toBe('sync');
    expectSame(await new FileConfigurationStore(dir).load(), c);
  });

  it('the snapshot in slices is the same document whatever the slice size', () => {
    let c = node(emptyConfiguration);
    for (let i = 0; i < 25; i++) c = create(c, i);
    const whole = encodeConfiguration(c);
    for (const size of [1, 2, 3, 7, 24, 25, 26, 2000])
      expect([...encodeConfigurationSlices(c, size)].join('')).toBe(whole);
    expectSame(decodeConfiguration(JSON.parse(whole)), c);
  });

  it('TurnBudget resolves at once within its budget, and after a turn of the event loop once it is spent', async () => {
    let turns = 0;
    let on = true;
    const tick = (): void => {
      turns++;
      if (on) setImmediate(tick);
    };
    setImmediate(tick);
    // A clock standing still: never spent, so no turn is given (the loop above has not run yet).
    const still = new TurnBudget(1, () => 0);
    for (let i = 0; i < 5; i++) await still.spent();
    expect(turns).toBe(0);
    // A clock that moves 1 ms per look with a budget of 1 ms: each call is past it, so each gives a turn.
    let now = 0;
    const moving = new TurnBudget(1, () => now++);
    for (let i = 0; i < 5; i++) await moving.spent();
    on = false;
    expect(turns).toBeGreaterThanOrEqual(4);
    // reset() starts a new budget: within it again at once.
    let t = 100;
    const reset = new TurnBudget(10, () => t);
    t = 115;
    reset.reset();
    const before = turns;
    await reset.spent();
    expect(turns).toBe(before);
  });

  it('an explicit compaction racing concurrent commits loses nothing', async () => {
    const store = new FileConfigurationStore(dir);
    let c = await nodeAndDatasets(store, 50);
    const compaction = store.compact();
    c = await commitN(store, c, 50, 50);
    await compaction;
    c = await commitN(store, c, 10, 100);
    await store.close();
    expectSame(await new FileConfigurationStore(dir).load(), c);
  });

  it('survives a crash between the snapshot rename and the log swap (covered records are skipped)', async () => {
    const store = new FileConfigurationStore(dir);
    let c = await nodeAndDatasets(store, 20);
    const mid = c;
    c = await commitN(store, c, 5, 20);
    await store.close();
    // The snapshot says version `mid`; the log still starts from the beginning.
    writeFileSync(path.join(dir, CONFIGURATION_FILE), encodeConfiguration(mid));
    expectSame(await new FileConfigurationStore(dir).load(), c);
  });

  it('ignores and cuts off a torn last record, then appends cleanly after it', async () => {
    const store = new FileConfigurationStore(dir);
    const c = await nodeAndDatasets(store, 3);
    await store.close();
    const logPath = path.join(dir, LOG_FILE);
    const good = statSync(logPath).size;
    const next = create(c, 99);
    const line = encodeRecord(diffConfiguration(c, next));
    for (const torn of [
      line.slice(0, line.length - 1),
      line.slice(0, 20),
      `${'0'.repeat(8)}${line.slice(8)}`,
      '\0\0\0\0',
    ]) {
      appendFileSync(logPath, torn);
      const reopened = new FileConfigurationStore(dir);
      expectSame(await reopened.load(), c);
      expect(statSync(logPath).size).toBe(good);
      await reopened.close();
    }
    const reopened = new FileConfigurationStore(dir);
    await reopened.load();
    await reopened.commit(next);
    await reopened.close();
    expectSame(await new FileConfigurationStore(dir).load(), next);
  });

  it('refuses a damaged record followed by valid ones, and a log from the future', async () => {
    const store = new FileConfigurationStore(dir);
    await nodeAndDatasets(store, 3);
    await store.close();
    const logPath = path.join(dir, LOG_FILE);
    const text = readFileSync(logPath, 'utf8');
    const lines = text.split('\n');
    lines[2] = `ffffffff${(lines[2] ?? '').slice(8)}`;
    writeFileSync(logPath, lines.join('\n'));
    await expect(new FileConfigurationStore(dir).load()).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
    expect(readFileSync(logPath, 'utf8')).toBe(lines.join('\n'));
    writeFileSync(logPath, 'flocker-configuration-log 7\n');
    await expect(new FileConfigurationStore(dir).load()).rejects.toMatchObject({ code: 'STORE_FORMAT_TOO_NEW' });
  });

  /** The log as a fresh load would read it, without repairing anything. */
  function logOnDisk(afterVersion = 0): ReturnType<typeof decodeLog> {
    const data = readFileSync(path.join(dir, LOG_FILE));
    return decodeLog(data, 'flocker-configuration-log 1\n'.length, afterVersion);
  }

  it('on a full disk: a short write is never acknowledged, a failed append leaves the log whole, every acknowledged commit survives a kill', async () => {
    const disk = new FakeFullDisk();
    const store = new FileConfigurationStore(dir, { openFile: disk.open });
    let acked = await nodeAndDatasets(store, 3);
    const line = encodeRecord(diffConfiguration(acked, create(acked, 10)));
    // Room for half of the next record: write(2) comes back short, then ENOSPC.
    disk.free = Math.floor(line.length / 2);
    const failures: unknown[] = [];
    for (let i = 10; i < 16; i++) {
      const attempt = create(acked, i);
      try {
        await store.commit(attempt);
        acked = attempt;
      } catch (err) {
        failures.push(err);
      }
      // Whatever happened, the log on disk holds exactly the acknowledged commits: no torn tail, no garbage.
      const onDisk = logOnDisk();
      expect(onDisk.tornBytes).toBe(0);
      expect(onDisk.records.at(-1)?.version).toBe(acked.version);
    }
    expect(disk.shortWrites).toBe(1);
    expect(failures).toHaveLength(6);
    for (const err of failures) {
      expect(err).toMatchObject({ code: 'STORE_FULL' });
      expect(toApiError(err).status).toBe(503);
    }
    expect((failures[0] as StoreError).description).toMatch(/no space left/i);
    // Space freed: commits work again without a restart.
    disk.free = Infinity;
    acked = await commitN(store, acked, 3, 20);
    // kill -9: no close; a new process loads every acknowledged change.
    expectSame(await new FileConfigurationStore(dir).load(), acked);
  });

  it('a failed fsync is not acknowledged either, and the record it left is cut off', async () => {
    const disk = new FakeFullDisk();
    const store = new FileConfigurationStore(dir, { openFile: disk.open });
    let acked = await nodeAndDatasets(store, 2);
    disk.failNextSync = true;
    await expect(store.commit(create(acked, 50))).rejects.toMatchObject({
      name: 'StoreError',
      code: 'STORE_UNAVAILABLE',
      unavailable: true,
    });
    expect(logOnDisk().records.at(-1)?.version).toBe(acked.version);
    expect(logOnDisk().tornBytes).toBe(0);
    acked = await commitN(store, acked, 2, 60);
    expectSame(await new FileConfigurationStore(dir).load(), acked);
  });

  it('a compaction on a full disk keeps the good snapshot and leaves no partial temp file', async () => {
    const disk = new FakeFullDisk();
    const store = new FileConfigurationStore(dir, { openFile: disk.open, compactMinBytes: 1 << 30 });
    let acked = await nodeAndDatasets(store, 10);
    await store.compact();
    const snapshot = readFileSync(path.join(dir, CONFIGURATION_FILE), 'utf8');
    acked = await commitN(store, acked, 10, 10);
    disk.free = 100;
    await expect(store.compact()).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(readFileSync(path.join(dir, CONFIGURATION_FILE), 'utf8')).toBe(snapshot);
    expect(readdirSync(dir).sort()).toEqual([CONFIGURATION_FILE, LOG_FILE].sort());
    disk.free = Infinity;
    acked = await commitN(store, acked, 2, 30);
    await store.compact();
    expect(readdirSync(dir).sort()).toEqual([CONFIGURATION_FILE, LOG_FILE].sort());
    expectSame(await new FileConfigurationStore(dir).load(), acked);
  });

  it('starts from a format-1 snapshot written before the log existed', async () => {
    writeFileSync(path.join(dir, CONFIGURATION_FILE), encodeConfiguration(sample()));
    const store = new FileConfigurationStore(dir);
    expectSame(await store.load(), sample());
    await store.close();
  });
});

describe('log records', () => {
  it('diff then apply reproduces any sequence of changes, one record at a time (shared structure) or all at once (a copy)', () => {
    const ops = fc.array(
      fc.oneof(
        fc.record({ k: fc.constant('create' as const), i: fc.integer({ min: 0, max: 20 }) }),
        fc.record({ k: fc.constant('delete' as const), i: fc.integer({ min: 0, max: 20 }) }),
        fc.record({ k: fc.constant('lease' as const), i: fc.integer({ min: 0, max: 20 }) }),
        fc.record({ k: fc.constant('release' as const), i: fc.integer({ min: 0, max: 20 }) }),
        fc.record({
          k: fc.constant('hold' as const),
          i: fc.integer({ min: 0, max: 20 }),
          h: fc.constantFrom('docker', 'csi'),
        }),
        fc.record({
          k: fc.constant('let-go' as const),
          i: fc.integer({ min: 0, max: 20 }),
          h: fc.constantFrom('docker', 'csi'),
        }),
        fc.record({ k: fc.constant('node' as const), i: fc.integer({ min: 0, max: 3 }) }),
      ),
      { maxLength: 40 },
    );
    const entries = (c: Configuration): unknown => [
      [...c.datasets.entries()],
      [...c.leases.entries()],
      [...c.nodes.entries()],
      c.version,
    ];
    fc.assert(
      fc.property(ops, (steps) => {
        const start = registerNode(emptyConfiguration, { uuid: A, host: 'h' });
        let c = start;
        let chained = start;
        const records: LogRecord[] = [];
        const id = (i: number): string => `${String(i).padStart(8, '0')}-1111-4111-8111-111111111111`;
        for (const s of steps) {
          let next = c;
          try {
            if (s.k === 'create') next = createDataset(c, { primary: A, dataset_id: id(s.i) }).config;
            if (s.k === 'delete') next = deleteDataset(c, id(s.i), 0).config;
            if (s.k === 'lease') next = acquireLease(c, { dataset_id: id(s.i), node_uuid: A, expires: null }, 0).config;
            if (s.k === 'release') next = releaseLease(c, id(s.i), 0).config;
            if (s.k === 'hold')
              next = acquireLease(c, { dataset_id: id(s.i), node_uuid: A, expires: null, holder: s.h }, 0).config;
            if (s.k === 'let-go') next = releaseLease(c, id(s.i), 0, s.h).config;
            if (s.k === 'node') next = registerNode(c, { uuid: A, host: `h${s.i}` });
          } catch {
            continue;
          }
          const replayed = applyRecords(c, [LogRecord.parse(JSON.parse(JSON.stringify(diffConfiguration(c, next))))]);
          expect(replayed.version).toBe(next.version);
          expect([...replayed.datasets.entries()]).toEqual([...next.datasets.entries()]);
          expect([...replayed.leases.entries()]).toEqual([...next.leases.entries()]);
          expect([...replayed.nodes.entries()]).toEqual([...next.nodes.entries()]);
          const record = diffConfiguration(c, next);
          records.push(record);
          chained = applyRecords(chained, [record]);
          c = next;
        }
        expect(entries(chained)).toEqual(entries(c));
        expect(entries(applyRecords(start, records))).toEqual(entries(c));
      }),
    );
  });

  it('canonicalises identities written in another case before they were canonical (leases, deletes)', () => {
    const upper = D1.toUpperCase();
    const records = decodeLog(
      Buffer.from(
        encodeRecord({
          version: 1,
          ops: [{ op: 'lease', value: { dataset_id: upper, node_uuid: A.toUpperCase(), expires_at: null } }],
        }) + encodeRecord({ version: 2, ops: [{ op: 'lease-delete', id: upper }] }),
      ),
      0,
      0,
    ).records;
    const first = applyRecords(emptyConfiguration, records.slice(0, 1));
    expect([...first.leases.values()]).toEqual([{ dataset_id: D1, node_uuid: A, expires_at: null }]);
    expect(applyRecords(first, records.slice(1)).leases.size).toBe(0);
  });

  it('decodeLog keeps records after the snapshot version and reports torn bytes', () => {
    const r1 = encodeRecord({ version: 1, ops: [] });
    const r2 = encodeRecord({ version: 2, ops: [] });
    const data = Buffer.from(`${r1}${r2}${r2.slice(0, 5)}`);
    const out = decodeLog(data, 0, 1);
    expect(out.records.map((r) => r.version)).toEqual([2]);
    expect(out.validBytes).toBe(Buffer.byteLength(r1 + r2));
    expect(out.tornBytes).toBe(5);
    expect(() => decodeLog(Buffer.from(`${r2}${r1}`), 0, 0)).toThrow(StoreError);
  });
});
