/**
 * Backups and restores in the agent (issue 20): the S3 settings (agent.yml backup:, AWS_*),
 * which configured backups this node runs (backupJobs), the restore step of the decision
 * (never a format, never a mount before the restore), and BackupRunner end to end on a
 * real image file and an in-memory object store: done with the stored id, incremental
 * and idempotent when run again, keep N, a failure reported with its code.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { listBackups, restoreVolume, type ObjectStore } from '@flocker/backup';
import { makeSparseImage, MemoryObjectStore, mutateImage } from '@flocker/backup/testing';
import type { ReportedBackup } from '@flocker/api';
import type { BlockDeviceApi, BlockDeviceSnapshot } from '@flocker/storage-drivers';
import winston from 'winston';
import { backupJobs, BackupRunner, backupSettingsOf } from './backups';
import { calculateChanges } from './calculateChanges';
import { executeAction } from './executeAction';
import { FakeDriver, FakeHost } from './testing/fakes';
import type { DecisionContext, DesiredState, DiscoveredVolume, LocalState } from './LocalState';

const ME = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const S1 = '5a5a5a5a-0000-4000-8000-000000000001';
const S2 = '5a5a5a5a-0000-4000-8000-000000000002';
const MiB = 1024 * 1024;
const TARGET = 's3://backups/flocker';
const logger = winston.createLogger({ silent: true });

const ctx: DecisionContext = {
  nodeUuid: ME,
  mountRoot: '/flocker',
  defaultSize: 128 * MiB,
  allocationUnit: MiB,
  canResize: true,
};

function held(id: string, status: BlockDeviceSnapshot['status'] = 'ready'): BlockDeviceSnapshot {
  return {
    snapshotId: id,
    backendId: id,
    datasetId: DS,
    size: 8 * MiB,
    createdAt: new Date(0).toISOString(),
    status,
    sourceBlockdeviceId: 'vol-1',
  };
}

function desired(primary = ME, deleted = false, keep?: number): DesiredState {
  return {
    datasets: [{ datasetId: DS, primary, maximumSize: 128 * MiB, deleted }],
    nodes: [{ uuid: ME, instanceId: 'i-me', alive: true }],
    snapshots: [
      { snapshotId: S1, datasetId: DS, deleted: false, backup: { target: TARGET, ...(keep ? { keep } : {}) } },
      { snapshotId: S2, datasetId: DS, deleted: false },
    ],
  };
}

describe('backupSettingsOf', () => {
  it('agent.yml first, AWS_* for what it leaves out; without a section only credentials in the environment enable', () => {
    expect(backupSettingsOf(undefined, {})).toBeUndefined();
    expect(backupSettingsOf(undefined, { AWS_ACCESS_KEY_ID: 'k' })).toBeUndefined();
    expect(
      backupSettingsOf(undefined, {
        AWS_ACCESS_KEY_ID: 'k',
        AWS_SECRET_ACCESS_KEY: 's',
        AWS_ENDPOINT_URL: 'http://moto:5000',
        AWS_REGION: 'eu-west-1',
      }),
    ).toEqual({
      endpoint: 'http://moto:5000',
      region: 'eu-west-1',
      credentials: { accessKeyId: 'k', secretAccessKey: 's' },
    });
    expect(
      backupSettingsOf(
        { endpoint: 'http://s3.local', access_key_id: 'a', secret_access_key: 'b' },
        { AWS_ENDPOINT_URL: 'http://moto:5000', AWS_REGION: 'us-east-2' },
      ),
    ).toEqual({
      endpoint: 'http://s3.local',
      region: 'us-east-2',
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    expect(backupSettingsOf({}, {})).toEqual({});
  });
});

describe('backupJobs', () => {
  it("runs a backup of its own dataset once the snapshot is ready; pending before; not another node's", () => {
    expect(backupJobs(desired(), [held(S1), held(S2)], ME).ready.map((j) => j.backupId)).toEqual([S1]);
    expect(backupJobs(desired(), [held(S1, 'creating')], ME).pending.map((j) => j.backupId)).toEqual([S1]);
    expect(backupJobs(desired(), [], ME).pending.map((j) => j.backupId)).toEqual([S1]);
    expect(backupJobs(desired(), undefined, ME).ready).toEqual([]);
    expect(backupJobs(desired(OTHER), [held(S1)], ME)).toEqual({ ready: [], pending: [], orphaned: [] });
    expect(backupJobs(desired(ME, true), [], ME).orphaned.map((j) => j.backupId)).toEqual([S1]);
    expect(backupJobs(desired(ME, false, 3), [held(S1)], ME).ready[0]?.keep).toBe(3);
  });
});

describe('the restore step', () => {
  const restoreFrom = { target: TARGET, backupId: `${DS}/20261204T065155123Z-${S1}` };
  const state = (volume: Partial<DiscoveredVolume>): LocalState => ({
    instanceId: 'i-me',
    volumes: [{ blockdeviceId: 'vol-1', datasetId: DS, size: 128 * MiB, attachedTo: 'i-me', ...volume }],
  });
  const want: DesiredState = {
    datasets: [{ datasetId: DS, primary: ME, maximumSize: 128 * MiB, deleted: false, restoreFrom }],
    nodes: [{ uuid: ME, instanceId: 'i-me', alive: true }],
  };

  it('a blank device or one a killed restore left with a file system is restored (and then mounted), never formatted', () => {
    for (const hasFilesystem of [false, true]) {
      const [action] = calculateChanges(want, state({ devicePath: '/dev/loop9', hasFilesystem, mountPoints: [] }), ctx);
      expect(action).toEqual({
        kind: 'restore',
        datasetId: DS,
        blockdeviceId: 'vol-1',
        devicePath: '/dev/loop9',
        mountPath: `/flocker/${DS}`,
        size: 128 * MiB,
        target: TARGET,
        backupId: restoreFrom.backupId,
      });
    }
  });

  it('no volume: a plain create; mounted: nothing more; restored: an ordinary dataset', () => {
    expect(calculateChanges(want, { instanceId: 'i-me', volumes: [] }, ctx)[0]).toMatchObject({ kind: 'create' });
    const mounted = state({ devicePath: '/dev/loop9', hasFilesystem: true, mountPoints: [`/flocker/${DS}`] });
    expect(calculateChanges(want, mounted, ctx)).toEqual([]);
    const done: DesiredState = { ...want, datasets: [{ ...want.datasets[0]!, restoreFrom: undefined }] };
    const blank = state({ devicePath: '/dev/loop9', hasFilesystem: false, mountPoints: [] });
    expect(calculateChanges(done, blank, ctx)[0]).toMatchObject({ kind: 'format' });
  });
});

describe('the restore action', () => {
  const action = {
    kind: 'restore',
    datasetId: DS,
    blockdeviceId: 'v',
    devicePath: '/dev/fake/v',
    mountPath: `/flocker/${DS}`,
    size: 64 * MiB,
    target: TARGET,
    backupId: `${DS}/20261204T065155123Z-${S1}`,
  } as const;

  it('mounts only after the restore succeeded; a failed restore leaves the device unmounted with its code', async () => {
    const host = new FakeHost();
    const base = { driver: new FakeDriver(), host, instanceId: 'i-me' };
    const corrupt = Object.assign(new Error('chunks/ab/abc is corrupt'), { code: 'CHUNK_CORRUPT' });
    await expect(executeAction(action, { ...base, restoreBackup: () => Promise.reject(corrupt) })).rejects.toBe(
      corrupt,
    );
    expect(host.mounts).toEqual([]);
    const order: string[] = [];
    await executeAction(action, {
      ...base,
      restoreBackup: async () => {
        order.push(`restored, mounts: ${host.mounts.length}`);
      },
    });
    expect(order).toEqual(['restored, mounts: 0']);
    expect(host.mounts.map((m) => m.mountPoint)).toEqual([`/flocker/${DS}`]);
  });

  it('without S3 settings: BACKUP_NOT_CONFIGURED, nothing mounted', async () => {
    const host = new FakeHost();
    await expect(executeAction(action, { driver: new FakeDriver(), host, instanceId: 'i-me' })).rejects.toMatchObject({
      code: 'BACKUP_NOT_CONFIGURED',
    });
    expect(host.mounts).toEqual([]);
  });
});

describe('BackupRunner', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'agent-backups-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function runner(store: ObjectStore, image: string, opened: string[] = []): BackupRunner {
    const driver = {
      backend: 'loopback',
      openSnapshot: async (id: string) => {
        opened.push(id);
        return { path: image, size: 16 * MiB, release: async () => {} };
      },
    } as unknown as BlockDeviceApi;
    return new BackupRunner({ driver, settings: {}, logger, now: Date.now, changed: () => {}, storeFor: () => store });
  }

  async function settle(r: BackupRunner, id: string): Promise<ReportedBackup> {
    for (let i = 0; i < 500; i++) {
      const s = r.report()?.find((b) => b.backup_id === id);
      if (s !== undefined && (s.status === 'done' || s.status === 'failed')) return s;
      await new Promise((res) => setTimeout(res, 10));
    }
    throw new Error('backup did not end');
  }

  it('backs up, then incrementally; a run again after the manifest finds it stored; keep prunes', async () => {
    const image = path.join(dir, 'snap.img');
    await makeSparseImage(image, { size: 16 * MiB, regions: 4, regionSize: 2 * MiB });
    const store = new MemoryObjectStore();
    const opened: string[] = [];
    const r1 = runner(store, image, opened);
    r1.update(desired(ME, false, 1), [held(S1)], ME);
    const first = await settle(r1, S1);
    expect(first).toMatchObject({ status: 'done', dataset_id: DS, target: TARGET, size: 16 * MiB });
    expect(first.stored_backup_id).toMatch(new RegExp(`^${DS}/.*-${S1}$`));

    // A new agent (restart) sees the same request: found stored, nothing read again.
    const r2 = runner(store, image, opened);
    r2.update(desired(ME, false, 1), [held(S1)], ME);
    expect(await settle(r2, S1)).toMatchObject({ status: 'done', stored_backup_id: first.stored_backup_id });
    expect(opened).toEqual([S1]);

    // The next backup after a small change sends little, and keep 1 leaves only it.
    await mutateImage(image, { bytes: 64 * 1024, regions: 1, offsets: [4 * MiB] });
    const next: DesiredState = {
      ...desired(),
      snapshots: [{ snapshotId: S2, datasetId: DS, deleted: false, backup: { target: TARGET, keep: 1 } }],
    };
    r2.update(next, [held(S2)], ME);
    const second = await settle(r2, S2);
    expect(second.status).toBe('done');
    expect(second.uploaded_bytes).toBeLessThan(first.uploaded_bytes! / 4);
    expect((await listBackups(store, DS)).map((b) => b.backupId)).toEqual([second.stored_backup_id]);
    // The first request is gone from the configuration: its state goes too.
    expect(r2.report()?.map((b) => b.backup_id)).toEqual([S2]);
  });

  it('a prune that fails leaves the backup done (retention is tried again by the next backup)', async () => {
    const image = path.join(dir, 'snap.img');
    await makeSparseImage(image, { size: 16 * MiB, regions: 2, regionSize: MiB });
    const store = new MemoryObjectStore();
    store.beforeOperation = (op) => {
      if (op === 'delete') throw Object.assign(new Error('no deletes here'), { code: 'STORE_DENIED' });
    };
    await store.put(`manifests/${DS}/20200101T000000000Z-${S2}.json`, Buffer.from('{}')); // unreadable: prune stops
    const r = runner(store, image);
    r.update(desired(ME, false, 1), [held(S1)], ME);
    expect(await settle(r, S1)).toMatchObject({ status: 'done' });
  });

  /**
   * A driver whose openSnapshot answers a block device, as EBS and Cinder do (a temporary volume made
   * from the snapshot, attached here): here a read-only loop device over the image; release() detaches it.
   */
  function deviceRunner(store: ObjectStore, image: string, events: string[]): BackupRunner {
    const driver = {
      backend: 'aws',
      openSnapshot: async (id: string) => {
        const device = execFileSync('losetup', ['--find', '--show', '--read-only', image]).toString().trim();
        events.push(`open ${id}`);
        return {
          path: device,
          size: 16 * MiB,
          release: async () => {
            execFileSync('losetup', ['-d', device]);
            events.push(`release ${id}`);
          },
        };
      },
    } as unknown as BlockDeviceApi;
    return new BackupRunner({ driver, settings: {}, logger, now: Date.now, changed: () => {}, storeFor: () => store });
  }

  it('reads a snapshot opened as a block device (EBS, Cinder): stored byte for byte, the device released; released on a failure too', async () => {
    const image = path.join(dir, 'snap.img');
    await makeSparseImage(image, { size: 16 * MiB, regions: 4, regionSize: 2 * MiB });
    const store = new MemoryObjectStore();
    const events: string[] = [];
    const r = deviceRunner(store, image, events);
    r.update(desired(), [held(S1)], ME);
    const done = await settle(r, S1);
    expect(done).toMatchObject({ status: 'done', size: 16 * MiB });
    expect(events).toEqual([`open ${S1}`, `release ${S1}`]);
    expect(execFileSync('losetup', ['-j', image]).toString()).toBe('');
    const restored = path.join(dir, 'restored.img');
    writeFileSync(restored, '');
    truncateSync(restored, 16 * MiB);
    await restoreVolume(store, done.stored_backup_id ?? '', restored, { overwrite: true });
    expect(readFileSync(restored).equals(readFileSync(image))).toBe(true);

    const failing = new MemoryObjectStore();
    failing.beforeOperation = (op) => {
      if (op === 'put') throw Object.assign(new Error('access denied'), { code: 'STORE_DENIED' });
    };
    const events2: string[] = [];
    const r2 = deviceRunner(failing, image, events2);
    r2.update(desired(), [held(S1)], ME);
    expect(await settle(r2, S1)).toMatchObject({ status: 'failed', error: { code: 'STORE_DENIED' } });
    expect(events2).toEqual([`open ${S1}`, `release ${S1}`]);
    expect(execFileSync('losetup', ['-j', image]).toString()).toBe('');
  });

  it('a failure is reported with its code', async () => {
    const store = new MemoryObjectStore();
    store.beforeOperation = () => {
      throw Object.assign(new Error('access denied'), { code: 'STORE_DENIED' });
    };
    const r = runner(store, path.join(dir, 'none.img'));
    r.update(desired(), [held(S1)], ME);
    expect(await settle(r, S1)).toMatchObject({ status: 'failed', error: { code: 'STORE_DENIED' } });
  });
});
