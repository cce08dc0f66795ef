/**
 * Backups and restores in the agent when S3 hangs (review T5 F2, F3, F3b) or the pool is full (F7): stop() is
 * bounded, deleting a backup's request cancels it and lets the next one run, a restore is aborted when its dataset
 * is deleted or moved or the agent stops, and an I/O error of a full pool says so.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { backupVolume, listBackups, type ObjectInfo, type ObjectStore } from '@flocker/backup';
import { makeSparseImage, MemoryObjectStore } from '@flocker/backup/testing';
import type { ReportedBackup } from '@flocker/api';
import type { BlockDeviceApi, BlockDeviceSnapshot } from '@flocker/storage-drivers';
import winston from 'winston';
import { BackupRunner, poolFullError, RestoreAborts } from './backups';
import type { Action, DesiredState } from './LocalState';

const ME = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const DS2 = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
const S1 = '5a5a5a5a-0000-4000-8000-000000000001';
const S2 = '5a5a5a5a-0000-4000-8000-000000000002';
const MiB = 1024 * 1024;
const TARGET = 's3://backups/flocker';
const logger = winston.createLogger({ silent: true });

/** Never answers a put for `frozen` datasets' chunks, signal or not (S3 hung, a store call that ignores the abort). */
class HungStore implements ObjectStore {
  readonly location = 'memory://hung';
  readonly inner = new MemoryObjectStore();
  frozen = true;
  hung = 0;
  private gate(): Promise<void> {
    if (!this.frozen) return Promise.resolve();
    this.hung++;
    return new Promise<void>(() => {});
  }
  async put(key: string, body: Uint8Array): Promise<void> {
    // Chunks of the first backup hang; everything else (the second backup, markers) passes.
    if (key.startsWith('chunks/') && this.hangChunks) await this.gate();
    return this.inner.put(key, body);
  }
  hangChunks = true;
  get(key: string): Promise<Buffer | undefined> {
    return this.inner.get(key);
  }
  head(key: string): Promise<ObjectInfo | undefined> {
    return this.inner.head(key);
  }
  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }
  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }
}

function held(id: string, datasetId: string): BlockDeviceSnapshot {
  return {
    snapshotId: id,
    backendId: id,
    datasetId,
    size: 8 * MiB,
    createdAt: new Date(0).toISOString(),
    status: 'ready',
    sourceBlockdeviceId: `vol-${datasetId}`,
  };
}

function desired(backups: { id: string; datasetId: string }[]): DesiredState {
  return {
    datasets: [
      { datasetId: DS, primary: ME, maximumSize: 128 * MiB, deleted: false },
      { datasetId: DS2, primary: ME, maximumSize: 128 * MiB, deleted: false },
    ],
    nodes: [{ uuid: ME, instanceId: 'i-me', alive: true }],
    snapshots: backups.map((b) => ({
      snapshotId: b.id,
      datasetId: b.datasetId,
      deleted: false,
      backup: { target: TARGET },
    })),
  };
}

async function until<T>(what: string, f: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('BackupRunner with S3 hung', () => {
  let dir: string;
  let image: string;
  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'agent-backup-faults-'));
    image = path.join(dir, 'snap.img');
    await makeSparseImage(image, { size: 16 * MiB, regions: 4, regionSize: 2 * MiB });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function runner(store: ObjectStore, released: string[] = []): BackupRunner {
    const driver = {
      backend: 'loopback',
      openSnapshot: async (id: string) => ({
        path: image,
        size: 16 * MiB,
        release: async () => {
          released.push(id);
        },
      }),
    } as unknown as BlockDeviceApi;
    return new BackupRunner({
      driver,
      settings: {},
      logger,
      now: Date.now,
      changed: () => {},
      storeFor: () => store,
      stopWaitMs: 300,
    });
  }
  const state = (r: BackupRunner, id: string): ReportedBackup | undefined =>
    r.report()?.find((b) => b.backup_id === id);

  it('stop() returns within its bound although the running backup hangs in a store call that ignores the abort (F2)', async () => {
    const store = new HungStore();
    const r = runner(store);
    r.update(desired([{ id: S1, datasetId: DS }]), [held(S1, DS)], ME);
    await until('the upload to hang', () => (store.hung > 0 ? true : undefined));
    const t0 = Date.now();
    await r.stop();
    // Within its bound (hung, it would never return); 4 s leaves a loaded host room.
    expect(Date.now() - t0).toBeLessThan(4000);
  });

  it('deleting the running backup’s request cancels it: its state goes and the next backup runs to done (F3)', async () => {
    const store = new HungStore();
    const r = runner(store);
    const both = desired([
      { id: S1, datasetId: DS },
      { id: S2, datasetId: DS2 },
    ]);
    r.update(both, [held(S1, DS), held(S2, DS2)], ME);
    await until('the first upload to hang', () => (store.hung > 0 ? true : undefined));
    expect(state(r, S1)?.status).toBe('running');
    expect(state(r, S2)?.status).toBeUndefined(); // queued behind the hung one
    store.hangChunks = false;
    // The request of the first is deleted (a new configuration: no full look needed for the cancel).
    r.cancelUnwanted(desired([{ id: S2, datasetId: DS2 }]));
    expect(state(r, S1)).toBeUndefined();
    const second = await until('the second backup done', () =>
      state(r, S2)?.status === 'done' ? state(r, S2) : undefined,
    );
    expect(second.stored_backup_id).toMatch(new RegExp(`^${DS2}/.*-${S2}$`));
    // The cancelled one never comes back in the report (a late progress of the abandoned run).
    r.update(desired([{ id: S2, datasetId: DS2 }]), [held(S2, DS2)], ME);
    expect(state(r, S1)).toBeUndefined();
    await r.stop();
  });
});

describe('BackupRunner retention (F1 agent half)', () => {
  let dir: string;
  let image: string;
  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'agent-backup-keep-'));
    image = path.join(dir, 'snap.img');
    await makeSparseImage(image, { size: 16 * MiB, regions: 2, regionSize: MiB });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const runner = (store: ObjectStore): BackupRunner =>
    new BackupRunner({
      driver: {
        backend: 'loopback',
        openSnapshot: async () => ({ path: image, size: 16 * MiB, release: async () => {} }),
      } as unknown as BlockDeviceApi,
      settings: {},
      logger,
      now: Date.now,
      changed: () => {},
      storeFor: () => store,
    });
  const keep1 = (): DesiredState => ({
    ...desired([]),
    snapshots: [{ snapshotId: S1, datasetId: DS, deleted: false, backup: { target: TARGET, keep: 1 } }],
  });
  const settle = (r: BackupRunner): Promise<ReportedBackup> =>
    until('the backup to end', () => {
      const s = r.report()?.find((b) => b.backup_id === S1);
      return s?.status === 'done' || s?.status === 'failed' ? s : undefined;
    });

  it('keep 1 after a backup stamped by a node whose clock runs ahead: the backup just stored stays, with a warning', async () => {
    const store = new MemoryObjectStore();
    const skewed = await backupVolume(image, store, {
      volumeId: DS,
      snapshotId: S2,
      size: 16 * MiB,
      now: () => Date.now() + 2 * 3600_000,
    });
    const r = runner(store);
    r.update(keep1(), [held(S1, DS)], ME);
    const done = await settle(r);
    expect(done.status).toBe('done');
    const left = (await listBackups(store, DS)).map((b) => b.backupId);
    expect(left).toContain(done.stored_backup_id);
    expect(left).toContain(skewed.backupId);
    expect(done.error).toMatchObject({ code: 'RETENTION_WARNING', message: expect.stringMatching(/in the future/) });
  });

  it('a prune that fails: the backup is done and its state says the prune failed', async () => {
    const store = new MemoryObjectStore();
    await backupVolume(image, store, {
      volumeId: DS,
      snapshotId: S2,
      size: 16 * MiB,
      now: () => Date.now() - 3600_000,
    });
    store.beforeOperation = (op) => {
      if (op === 'delete') throw Object.assign(new Error('no deletes here'), { code: 'STORE_DENIED' });
    };
    const r = runner(store);
    r.update(keep1(), [held(S1, DS)], ME);
    const done = await settle(r);
    expect(done).toMatchObject({
      status: 'done',
      error: { code: 'RETENTION_FAILED', message: expect.stringMatching(/not pruned.*STORE_DENIED/) },
    });
    expect((await listBackups(store, DS)).map((b) => b.backupId)).toContain(done.stored_backup_id);
  });
});

describe('RestoreAborts (F3b)', () => {
  const action: Extract<Action, { kind: 'restore' }> = {
    kind: 'restore',
    datasetId: DS,
    blockdeviceId: 'vol-1',
    devicePath: '/dev/loop9',
    mountPath: `/flocker/${DS}`,
    size: 128 * MiB,
    target: TARGET,
    backupId: `${DS}/20261204T065155123Z-${S1}`,
  };
  const want = (dataset: Partial<DesiredState['datasets'][number]>): DesiredState => ({
    datasets: [
      {
        datasetId: DS,
        primary: ME,
        maximumSize: 128 * MiB,
        deleted: false,
        restoreFrom: { target: TARGET, backupId: action.backupId },
        ...dataset,
      },
    ],
    nodes: [{ uuid: ME, instanceId: 'i-me', alive: true }],
  });
  /** A restore that waits on its signal only (a hung S3 request the signal ends). */
  const hanging = (signal: AbortSignal): Promise<void> =>
    new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error)));

  it('a restore is aborted when its dataset is deleted or moved, not while it is still wanted', async () => {
    for (const change of [{ deleted: true }, { primary: OTHER }]) {
      const aborts = new RestoreAborts();
      const run = aborts.run(action, hanging);
      expect(aborts.update(want({}), ME)).toEqual([]);
      expect(aborts.update(want(change), ME)).toEqual([DS]);
      await expect(run).rejects.toThrow(/restore abandoned: the dataset was (deleted|moved)/);
      // Ended: nothing left to abort.
      expect(aborts.update(want({ deleted: true }), ME)).toEqual([]);
    }
    const aborts = new RestoreAborts();
    const run = aborts.run(action, hanging);
    expect(aborts.update({ datasets: [], nodes: [] }, ME)).toEqual([DS]);
    await expect(run).rejects.toThrow(/deleted/);
  });

  it('abortAll (the agent stops) ends every running restore', async () => {
    const aborts = new RestoreAborts();
    const run = aborts.run(action, hanging);
    aborts.abortAll();
    await expect(run).rejects.toThrow(/the agent is stopping/);
  });
});

describe('poolFullError (F7)', () => {
  const eio = Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
  it('an EIO or ENOSPC (itself or the cause of a wrapped error) while the pool is full: POOL_FULL saying so', () => {
    const full = poolFullError(eio, 0);
    expect(full?.code).toBe('POOL_FULL');
    expect(full?.message).toMatch(
      /^the storage pool of this node is full \(0 bytes free\): EIO: i\/o error, fsync; .*retried/,
    );
    const wrapped = Object.assign(new Error('writing /dev/loop3: ENOSPC: no space left on device'), {
      code: 'TARGET_UNUSABLE',
      cause: Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }),
    });
    expect(poolFullError(wrapped, 4096)?.code).toBe('POOL_FULL');
  });
  it('space left, free space unknown, or another error: the error stands as it is', () => {
    expect(poolFullError(eio, 10 * 1024 * MiB)).toBeUndefined();
    expect(poolFullError(eio, undefined)).toBeUndefined();
    expect(poolFullError(Object.assign(new Error('corrupt'), { code: 'CHUNK_CORRUPT' }), 0)).toBeUndefined();
  });
});
