/**
 * Snapshots in the control service (issue 20): the pure configuration rules, their place
 * in the durable store (log records, the snapshot document, restart), the HTTP routes with
 * Flocker-style errors, the state aggregated from node reports, and the purge of deleted
 * snapshots once no node reports them.
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  type BackendSnapshot,
  ClusterSnapshot,
  CreateDatasetRequest,
  FlockerApiError,
  FlockerClient,
  METADATA_CLONE_KEY,
} from '@flocker/api';
import { FakeFullDisk } from '@flocker/api/testing';
import {
  type Configuration,
  createDataset,
  createSnapshot,
  deleteDataset,
  deleteSnapshot,
  emptyConfiguration,
  purgeSnapshots,
  registerNode,
} from './configuration';
import { applyRecords, diffConfiguration } from './ConfigurationLog';
import {
  CONFIGURATION_FILE,
  decodeConfiguration,
  encodeConfiguration,
  FileConfigurationStore,
} from './ConfigurationStore';
import { ConfigurationError } from './errors';
import { toApiError } from './httpErrors';
import type { ControlService } from './server';
import { emptyNodeReport, killHard, startControlChild } from './testing/controlProcess';
import {
  closeAndRemove,
  NODE_A as A,
  NODE_B as B,
  nodeReport,
  startOnDir,
  startOnLoopback,
  startWithTwoNodes,
} from './testing/httpService';

const D1 = '11111111-1111-4111-8111-111111111111';
const S1 = '5a5a5a5a-0000-4000-8000-000000000001';
const S2 = '5a5a5a5a-0000-4000-8000-000000000002';
const T = Date.UTC(2026, 11, 4);
const MiB = 1024 * 1024;

function base(): Configuration {
  const c = registerNode(emptyConfiguration, { uuid: A, host: 'a' });
  return createDataset(c, { primary: A, dataset_id: D1, metadata: {} }).config;
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof ConfigurationError ? `${toApiError(err).status} ${err.code}` : String(err);
  }
  return undefined;
}

function backendSnapshot(id: string, extra: Partial<BackendSnapshot> = {}): BackendSnapshot {
  return {
    snapshot_id: id,
    dataset_id: D1,
    size: 128 * MiB,
    created_at: new Date(T).toISOString(),
    status: 'ready',
    backend_id: `b-${id.slice(-1)}`,
    source_blockdevice_id: 'v-1',
    ...extra,
  };
}

describe('snapshot configuration rules (pure)', () => {
  it('a snapshot of a live dataset: id chosen or given, created_at the request time, metadata kept', () => {
    const applied = createSnapshot(base(), { dataset_id: D1, metadata: { name: 'nightly' } }, T, () => S1);
    expect(applied.status).toBe(201);
    expect(applied.result).toEqual({
      snapshot_id: S1,
      dataset_id: D1,
      metadata: { name: 'nightly' },
      created_at: '2026-12-04T00:00:00.000Z',
    });
    expect(applied.config.version).toBe(base().version + 1);
    expect(createSnapshot(base(), { dataset_id: D1, snapshot_id: S2 }, T).result.snapshot_id).toBe(S2);
  });

  it('refuses an unknown dataset (404), a deleted one (400), an id in use (409), a live name in use (409)', () => {
    const c = createSnapshot(base(), { dataset_id: D1, snapshot_id: S1, metadata: { name: 'n' } }, T).config;
    expect(code(() => createSnapshot(c, { dataset_id: S2 }, T))).toBe('404 DATASET_NOT_FOUND');
    expect(code(() => createSnapshot(c, { dataset_id: D1, snapshot_id: S1 }, T))).toBe('409 SNAPSHOT_ID_IN_USE');
    expect(code(() => createSnapshot(c, { dataset_id: D1, metadata: { name: 'n' } }, T))).toBe(
      '409 SNAPSHOT_NAME_IN_USE',
    );
    const gone = deleteDataset(c, D1, T).config;
    expect(code(() => createSnapshot(gone, { dataset_id: D1 }, T))).toBe('400 SNAPSHOT_SOURCE_DELETED');
    // A deleted snapshot frees its name, not its id.
    const deleted = deleteSnapshot(c, S1).config;
    expect(createSnapshot(deleted, { dataset_id: D1, snapshot_id: S2, metadata: { name: 'n' } }, T).status).toBe(201);
    expect(code(() => createSnapshot(deleted, { dataset_id: D1, snapshot_id: S1 }, T))).toBe('409 SNAPSHOT_ID_IN_USE');
  });

  it('delete marks deleted: true once (again: unchanged, same value); unknown: 404', () => {
    const c = createSnapshot(base(), { dataset_id: D1, snapshot_id: S1 }, T).config;
    const once = deleteSnapshot(c, S1);
    expect(once.result.deleted).toBe(true);
    const twice = deleteSnapshot(once.config, S1);
    expect(twice.config).toBe(once.config);
    expect(code(() => deleteSnapshot(c, S2))).toBe('404 SNAPSHOT_NOT_FOUND');
  });

  it('purge drops deleted snapshots nobody reports; live ones and reported ones stay; nothing due: same value', () => {
    let c = createSnapshot(base(), { dataset_id: D1, snapshot_id: S1 }, T).config;
    c = createSnapshot(c, { dataset_id: D1, snapshot_id: S2 }, T).config;
    expect(purgeSnapshots(c, new Set()).config).toBe(c); // both live
    c = deleteSnapshot(c, S1).config;
    expect(purgeSnapshots(c, new Set([S1])).config).toBe(c); // still in a backend
    const purged = purgeSnapshots(c, new Set());
    expect(purged.result).toEqual([S1]);
    expect([...(purged.config.snapshots?.keys() ?? [])]).toEqual([S2]);
    expect(purgeSnapshots(purged.config, new Set()).config).toBe(purged.config);
  });

  it('a clone: the snapshot must be live; size defaults to the snapshot size (at least 64 MiB) and may not be below it', () => {
    const c = createSnapshot(base(), { dataset_id: D1, snapshot_id: S1 }, T).config;
    const size = (id: string): number | undefined => (id === S1 ? 128 * MiB : undefined);
    const clone = createDataset(c, { primary: A, source_snapshot_id: S1 }, randomUUID, size).result;
    expect(clone).toMatchObject({ source_snapshot_id: S1, maximum_size: 128 * MiB });
    expect(createDataset(c, { primary: A, source_snapshot_id: S1 }, randomUUID, () => MiB).result.maximum_size).toBe(
      64 * MiB,
    );
    // Not taken yet (no node reports it): the size asked for (or none) stands; the agent makes it at least as big.
    expect(createDataset(c, { primary: A, source_snapshot_id: S1 }).result).not.toHaveProperty('maximum_size');
    expect(
      createDataset(c, { primary: A, source_snapshot_id: S1, maximum_size: 256 * MiB }, randomUUID, size).result
        .maximum_size,
    ).toBe(256 * MiB);
    expect(
      code(() => createDataset(c, { primary: A, source_snapshot_id: S1, maximum_size: 64 * MiB }, randomUUID, size)),
    ).toBe('400 CLONE_TOO_SMALL');
    expect(code(() => createDataset(c, { primary: A, source_snapshot_id: S2 }))).toBe('400 SOURCE_SNAPSHOT_UNKNOWN');
    const deleted = deleteSnapshot(c, S1).config;
    expect(code(() => createDataset(deleted, { primary: A, source_snapshot_id: S1 }))).toBe(
      '400 SOURCE_SNAPSHOT_UNKNOWN',
    );
  });
});

describe('a clone of a dataset (source_dataset_id): an implicit snapshot in the same change', () => {
  const CLONE = '99999999-9999-4999-8999-999999999999';
  const sized = (): Configuration =>
    createDataset(registerNode(emptyConfiguration, { uuid: A, host: 'a' }), {
      primary: A,
      dataset_id: D1,
      maximum_size: 128 * MiB,
    }).config;

  it('asks for a snapshot of the source (marked with the clone) and clones it, at the source size by default', () => {
    const before = sized();
    const applied = createDataset(
      before,
      { primary: A, dataset_id: CLONE, source_dataset_id: D1 },
      () => S1,
      undefined,
      T,
    );
    expect(applied.result).toEqual({
      dataset_id: CLONE,
      primary: A,
      maximum_size: 128 * MiB,
      metadata: {},
      deleted: false,
      source_snapshot_id: S1,
    });
    expect(applied.config.snapshots?.get(S1)).toEqual({
      snapshot_id: S1,
      dataset_id: D1,
      metadata: { [METADATA_CLONE_KEY]: CLONE },
      created_at: new Date(T).toISOString(),
    });
    expect(applied.config.version).toBe(before.version + 1); // one change, one log record
    const record = diffConfiguration(before, applied.config);
    expect(record.ops.map((o) => o.op).sort()).toEqual(['dataset', 'snapshot']);
    expect(
      createDataset(before, { primary: A, source_dataset_id: D1, maximum_size: 256 * MiB }).result.maximum_size,
    ).toBe(256 * MiB);
  });

  it('refuses an unknown or deleted source (400), a smaller size (400), and both sources at once (schema)', () => {
    const c = sized();
    expect(code(() => createDataset(c, { primary: A, source_dataset_id: S2 }))).toBe('400 SOURCE_DATASET_UNKNOWN');
    expect(code(() => createDataset(deleteDataset(c, D1, T).config, { primary: A, source_dataset_id: D1 }))).toBe(
      '400 SOURCE_DATASET_UNKNOWN',
    );
    expect(code(() => createDataset(c, { primary: A, source_dataset_id: D1, maximum_size: 64 * MiB }))).toBe(
      '400 CLONE_TOO_SMALL',
    );
    expect(
      CreateDatasetRequest.safeParse({ primary: A, source_dataset_id: D1, source_snapshot_id: S1 }).error?.issues[0]
        ?.message,
    ).toMatch(/not both/);
  });
});

describe('snapshots in the durable store', () => {
  function withSnapshots(): Configuration {
    let c = createSnapshot(base(), { dataset_id: D1, snapshot_id: S1, metadata: { name: 'a' } }, T).config;
    c = createSnapshot(c, { dataset_id: D1, snapshot_id: S2 }, T).config;
    c = deleteSnapshot(c, S1).config;
    return createDataset(c, { primary: A, source_snapshot_id: S2 }, () => D1.replace('1111', '9999')).config;
  }

  it('the document round-trips them (in order); a configuration without any encodes as before', () => {
    const c = withSnapshots();
    const text = encodeConfiguration(c);
    const back = decodeConfiguration(JSON.parse(text));
    expect([...(back.snapshots?.values() ?? [])]).toEqual([...(c.snapshots?.values() ?? [])]);
    expect([...back.datasets.values()]).toEqual([...c.datasets.values()]);
    expect(encodeConfiguration(back)).toBe(text);
    expect(encodeConfiguration(base())).not.toContain('snapshots');
    expect(decodeConfiguration(JSON.parse(encodeConfiguration(base()))).snapshots).toBeUndefined();
  });

  it('log records carry snapshot changes and deletions (a purge), applied one by one or all at once', () => {
    const configs: Configuration[] = [base()];
    const step = (c: Configuration): void => void configs.push(c);
    step(createSnapshot(configs.at(-1) as Configuration, { dataset_id: D1, snapshot_id: S1 }, T).config);
    step(createSnapshot(configs.at(-1) as Configuration, { dataset_id: D1, snapshot_id: S2 }, T).config);
    step(deleteSnapshot(configs.at(-1) as Configuration, S1).config);
    step(purgeSnapshots(configs.at(-1) as Configuration, new Set()).config);
    const records = configs.slice(1).map((c, i) => diffConfiguration(configs[i] as Configuration, c));
    expect(records.slice(0, 3).map((r) => r.ops.map((o) => o.op))).toEqual([['snapshot'], ['snapshot'], ['snapshot']]);
    // The purge deletes S1 (and may re-append what followed it, so a replay keeps the order exactly).
    expect(records[3]?.ops[0]).toEqual({ op: 'snapshot-delete', id: S1 });
    const last = configs.at(-1) as Configuration;
    for (const replay of [applyRecords(base(), records), records.reduce((c, r) => applyRecords(c, [r]), base())]) {
      expect(replay.version).toBe(last.version);
      expect([...(replay.snapshots?.values() ?? [])]).toEqual([...(last.snapshots?.values() ?? [])]);
    }
  });

  it('a restart finds them, from the log and after compaction from the snapshot document', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'flocker-snapstore-'));
    try {
      const store = new FileConfigurationStore(dir);
      let c = await store.load();
      for (const next of [
        registerNode(c, { uuid: A, host: 'a' }),
        (x: Configuration) => createDataset(x, { primary: A, dataset_id: D1 }).config,
        (x: Configuration) => createSnapshot(x, { dataset_id: D1, snapshot_id: S1 }, T).config,
        (x: Configuration) => createSnapshot(x, { dataset_id: D1, snapshot_id: S2 }, T).config,
        (x: Configuration) => deleteSnapshot(x, S2).config,
      ]) {
        c = typeof next === 'function' ? next(c) : next;
        await store.commit(c);
      }
      await store.close();
      const fromLog = await new FileConfigurationStore(dir).load();
      expect([...(fromLog.snapshots?.values() ?? [])]).toEqual([...(c.snapshots?.values() ?? [])]);
      const again = new FileConfigurationStore(dir);
      await again.load();
      await again.compact();
      await again.close();
      expect(readFileSync(path.join(dir, CONFIGURATION_FILE), 'utf8')).toContain(`"snapshot_id":"${S2}"`);
      const fromSnapshot = await new FileConfigurationStore(dir).load();
      expect(encodeConfiguration(fromSnapshot)).toBe(encodeConfiguration(c));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

async function expectApiError(p: Promise<unknown>, status: number, errorCode: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FlockerApiError);
  const e = err as FlockerApiError;
  expect({ status: e.status, code: e.code }).toEqual({ status, code: errorCode });
  expect(e.description.length).toBeGreaterThan(10);
}

describe('snapshot routes over HTTP', () => {
  let dir: string;
  let svc: ControlService;
  let client: FlockerClient;

  beforeEach(async () => {
    ({ dir, svc, client } = await startWithTwoNodes('flocker-snapshots-'));
    await client.createDataset({ primary: A, dataset_id: D1 });
  });
  afterEach(() => closeAndRemove(svc, dir));

  it('create, list, get and delete with Flocker-style errors (400, 404, 409)', async () => {
    const s = await client.createSnapshot({ dataset_id: D1, metadata: { name: 'before-upgrade' } });
    expect(s).toMatchObject({ dataset_id: D1, metadata: { name: 'before-upgrade' } });
    expect(s).not.toHaveProperty('deleted');
    expect(await client.listSnapshots()).toEqual([s]);
    expect(await client.getSnapshot(s.snapshot_id.toUpperCase())).toEqual(s);
    await expectApiError(client.getSnapshot(S2), 404, 'SNAPSHOT_NOT_FOUND');
    await expectApiError(client.createSnapshot({ dataset_id: S2 }), 404, 'DATASET_NOT_FOUND');
    await expectApiError(
      client.createSnapshot({ dataset_id: D1, snapshot_id: s.snapshot_id }),
      409,
      'SNAPSHOT_ID_IN_USE',
    );
    await expectApiError(
      client.createSnapshot({ dataset_id: D1, metadata: { name: 'before-upgrade' } }),
      409,
      'SNAPSHOT_NAME_IN_USE',
    );
    const bad = await fetch(`${svc.url}/v1/configuration/snapshots`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ dataset_id: 'not-a-uuid' }),
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'INVALID_REQUEST', description: expect.any(String) });
    const deleted = await client.deleteSnapshot(s.snapshot_id);
    expect(deleted).toEqual({ ...s, deleted: true });
    expect(await client.deleteSnapshot(s.snapshot_id)).toEqual(deleted);
    await expectApiError(client.deleteSnapshot(S2), 404, 'SNAPSHOT_NOT_FOUND');
    await client.deleteDataset(D1);
    await expectApiError(client.createSnapshot({ dataset_id: D1 }), 400, 'SNAPSHOT_SOURCE_DELETED');
  });

  it('state comes from alive nodes, one entry per snapshot; a clone takes its size from it', async () => {
    await client.createSnapshot({ dataset_id: D1, snapshot_id: S1 });
    expect(await client.listSnapshotState()).toEqual([]);
    // A shared backend: both nodes report the same snapshot.
    await client.reportNodeState(nodeReport(A, { snapshots: [backendSnapshot(S1)] }));
    await client.reportNodeState(nodeReport(B, { snapshots: [backendSnapshot(S1, { status: 'creating' })] }));
    expect(await client.listSnapshotState()).toEqual([
      {
        snapshot_id: S1,
        dataset_id: D1,
        size: 128 * MiB,
        created_at: new Date(T).toISOString(),
        status: 'ready',
      },
    ]);
    const clone = await client.createDataset({ primary: B, source_snapshot_id: S1 });
    expect(clone).toMatchObject({ source_snapshot_id: S1, maximum_size: 128 * MiB });
    await expectApiError(
      client.createDataset({ primary: B, source_snapshot_id: S1, maximum_size: 64 * MiB }),
      400,
      'CLONE_TOO_SMALL',
    );
    await expectApiError(client.createDataset({ primary: B, source_snapshot_id: S2 }), 400, 'SOURCE_SNAPSHOT_UNKNOWN');
  });

  it('a clone of a dataset over HTTP: an implicit snapshot is listed beside the clone; bad sources are 400', async () => {
    const clone = await client.createDataset({ primary: B, source_dataset_id: D1 });
    const [implicit] = await client.listSnapshots();
    expect(implicit).toMatchObject({ dataset_id: D1, metadata: { [METADATA_CLONE_KEY]: clone.dataset_id } });
    expect(clone.source_snapshot_id).toBe(implicit?.snapshot_id);
    await expectApiError(client.createDataset({ primary: B, source_dataset_id: S2 }), 400, 'SOURCE_DATASET_UNKNOWN');
    const both = await fetch(`${svc.url}/v1/configuration/datasets`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ primary: B, source_dataset_id: D1, source_snapshot_id: S1 }),
    });
    expect(both.status).toBe(400);
    expect(await client.listSnapshots()).toHaveLength(1);
  });

  it('the agent channel carries the configured snapshots (and none while there are none)', async () => {
    expect((await client.waitForCluster()).snapshots).toBeUndefined();
    const s = await client.createSnapshot({ dataset_id: D1 });
    const full = ClusterSnapshot.parse(await client.waitForCluster());
    expect(full.snapshots).toEqual([s]);
    expect((await client.waitForCluster(undefined, 0, { node: B })).snapshots).toEqual([s]);
  });

  it('a deleted snapshot is purged once no alive node reports it, not before; live ones never', async () => {
    await client.createSnapshot({ dataset_id: D1, snapshot_id: S1 });
    await client.createSnapshot({ dataset_id: D1, snapshot_id: S2 });
    await client.reportNodeState(nodeReport(A, { snapshots: [backendSnapshot(S1), backendSnapshot(S2)] }));
    await client.deleteSnapshot(S1);
    await client.reportNodeState(nodeReport(B)); // reports no snapshots at all: tells nothing
    expect((await client.listSnapshots()).map((s) => s.snapshot_id)).toEqual([S1, S2]);
    await client.reportNodeState(nodeReport(A, { snapshots: [backendSnapshot(S2)] })); // destroyed in the backend
    expect(await client.listSnapshots()).toEqual([expect.objectContaining({ snapshot_id: S2 })]);
    await expectApiError(client.getSnapshot(S1), 404, 'SNAPSHOT_NOT_FOUND');
    await client.reportNodeState(nodeReport(A, { snapshots: [] }));
    expect((await client.listSnapshots()).map((s) => s.snapshot_id)).toEqual([S2]);
  });

  it('snapshots, deletions and clones survive a restart of the service', async () => {
    await client.createSnapshot({ dataset_id: D1, snapshot_id: S1, metadata: { name: 'x' } });
    await client.createSnapshot({ dataset_id: D1, snapshot_id: S2 });
    await client.deleteSnapshot(S2);
    const clone = await client.createDataset({ primary: A, source_snapshot_id: S1 });
    const before = await client.listSnapshots();
    await svc.close();
    ({ svc, client } = await startOnDir(dir));
    expect(await client.listSnapshots()).toEqual(before);
    expect((await client.listDatasets()).find((d) => d.dataset_id === clone.dataset_id)).toEqual(clone);
  });
});

describe('snapshot writes under kill -9 and on a full disk', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'flocker-snapcrash-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function startChild(): Promise<{ child: ChildProcess; client: FlockerClient }> {
    const { child, url } = await startControlChild(dir, '--compact-log-bytes', '4096');
    return { child, client: new FlockerClient({ baseUrl: url, timeoutMs: 5000 }) };
  }

  it('every acknowledged create and delete of a snapshot survives a kill -9 mid-write (3 rounds)', async () => {
    const created = new Set<string>();
    const deleted = new Set<string>();
    const inFlight = new Set<string>();
    for (let round = 0; round < 3; round++) {
      const { child, client } = await startChild();
      try {
        const stored = new Map((await client.listSnapshots()).map((x) => [x.snapshot_id, x]));
        for (const id of created) expect(stored.has(id)).toBe(true);
        for (const id of deleted) expect(stored.get(id)?.deleted).toBe(true);
        for (const id of stored.keys()) if (!created.has(id)) expect(inFlight.has(id)).toBe(true);
        for (const id of stored.keys()) created.add(id);
        if (round === 0) {
          await client.reportNodeState(emptyNodeReport(A));
          await client.createDataset({ primary: A, dataset_id: D1 });
        }
        let stop = false;
        const writer = async (): Promise<void> => {
          while (!stop) {
            const id = randomUUID();
            inFlight.add(id);
            try {
              await client.createSnapshot({ dataset_id: D1, snapshot_id: id });
              if (stop) return;
              created.add(id);
              inFlight.delete(id);
              if (created.size % 3 === 0) {
                await client.deleteSnapshot(id);
                if (!stop) deleted.add(id);
              }
            } catch {
              return; // the server died under us
            }
          }
        };
        const writers = [writer(), writer(), writer()];
        await new Promise((r) => setTimeout(r, 150 + Math.floor(Math.random() * 200)));
        await killHard(child);
        stop = true;
        await Promise.all(writers);
      } finally {
        if (child.exitCode === null && child.signalCode === null) await killHard(child);
      }
    }
    const { child, client } = await startChild();
    try {
      const stored = new Map((await client.listSnapshots()).map((x) => [x.snapshot_id, x]));
      for (const id of created) expect(stored.has(id)).toBe(true);
      for (const id of deleted) expect(stored.get(id)?.deleted).toBe(true);
      expect(created.size).toBeGreaterThan(3);
    } finally {
      await killHard(child);
    }
  }, 60_000);

  it('on a full disk a snapshot request answers 503 STORE_FULL and nothing is stored; it works once there is space', async () => {
    const disk = new FakeFullDisk();
    const store = new FileConfigurationStore(dir, { openFile: disk.open });
    let c = registerNode(await store.load(), { uuid: A, host: 'a' });
    c = createDataset(c, { primary: A, dataset_id: D1 }).config;
    await store.commit(c);
    const svc = await startOnLoopback({ store });
    try {
      const client = new FlockerClient({ baseUrl: svc.url, timeoutMs: 5000 });
      disk.free = 20;
      await expectApiError(client.createSnapshot({ dataset_id: D1, snapshot_id: S1 }), 503, 'STORE_FULL');
      expect(await client.listSnapshots()).toEqual([]);
      disk.free = Infinity;
      expect((await client.createSnapshot({ dataset_id: D1, snapshot_id: S1 })).snapshot_id).toBe(S1);
    } finally {
      await svc.close();
    }
    expect([...((await new FileConfigurationStore(dir).load()).snapshots?.keys() ?? [])]).toEqual([S1]);
  });
});
