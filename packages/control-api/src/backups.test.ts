/**
 * Backups in the control service (issue 20): the pure rules of backups.ts (a request is an
 * implicit snapshot carrying its target; its end deletes the snapshot; a mounted restore is
 * marked done) and the HTTP routes with their refusals (no agent that can run it: 409
 * BACKUP_NOT_CONFIGURED; a restore without maximum_size: 400).
 */
import {
  FlockerApiError,
  METADATA_FILESYSTEM_KEY,
  METADATA_MAX_KEYS,
  type FlockerClient,
  type NodeReport,
  type ReportedBackup,
} from '@flocker/api';
import {
  backupConfigurations,
  createBackup,
  endBackups,
  restoredDatasets,
  withoutReportedFilesystems,
  BACKUP_TARGET_KEY,
} from './backups';
import { type Configuration, createDataset, emptyConfiguration, registerNode } from './configuration';
import type { ControlService } from './server';
import { closeAndRemove, NODE_A as A, NODE_B as B, nodeReport, startWithTwoNodes } from './testing/httpService';

const D1 = '11111111-1111-4111-8111-111111111111';
const D2 = '22222222-2222-4222-8222-222222222222';
const B1 = '5a5a5a5a-0000-4000-8000-0000000000b1';
const T = Date.UTC(2026, 11, 4);
const MiB = 1024 * 1024;
const TARGET = 's3://backups/flocker';
const STORED = `${D1}/20261204T065155123Z-${B1}`;

function base(): Configuration {
  const c = registerNode(emptyConfiguration, { uuid: A, host: 'a' });
  return createDataset(c, { primary: A, dataset_id: D1, metadata: {} }).config;
}

function reported(status: ReportedBackup['status'], extra: Partial<ReportedBackup> = {}): ReportedBackup {
  return {
    backup_id: B1,
    dataset_id: D1,
    target: TARGET,
    status,
    updated_at: new Date(T).toISOString(),
    ...extra,
  };
}

describe('backup rules', () => {
  it('a backup request is an implicit snapshot of the dataset carrying its target and keep', () => {
    const applied = createBackup(base(), { dataset_id: D1, target: TARGET, keep: 3 }, T, () => B1);
    expect(applied.result).toEqual({
      backup_id: B1,
      dataset_id: D1,
      target: TARGET,
      keep: 3,
      created_at: new Date(T).toISOString(),
    });
    expect(applied.config.snapshots?.get(B1)?.metadata[BACKUP_TARGET_KEY]).toBe(TARGET);
    expect(backupConfigurations(applied.config)).toEqual([applied.result]);
  });

  it('a done or failed report deletes the implicit snapshot once; running ones and plain snapshots stay', () => {
    const config = createBackup(base(), { dataset_id: D1, target: TARGET }, T, () => B1).config;
    expect(endBackups(config, nodeReport(A, { backups: [reported('running')] })).result).toEqual([]);
    for (const status of ['done', 'failed'] as const) {
      const ended = endBackups(config, nodeReport(A, { backups: [reported(status)] }));
      expect(ended.result).toEqual([B1]);
      expect(backupConfigurations(ended.config)[0]?.deleted).toBe(true);
      expect(endBackups(ended.config, nodeReport(A, { backups: [reported(status)] })).config).toBe(ended.config);
    }
  });

  it('a restore is marked done when its primary reports it mounted, not another node and not attached', () => {
    const c0 = registerNode(base(), { uuid: B, host: 'b' });
    const config = createDataset(c0, {
      primary: A,
      dataset_id: D2,
      maximum_size: 128 * MiB,
      source_backup: { target: TARGET, backup_id: STORED },
    }).config;
    const m = (status: 'attached' | 'mounted') => ({ dataset_id: D2, blockdevice_id: 'v', size: 1, status });
    expect(restoredDatasets(config, nodeReport(A, { manifestations: [m('attached')] })).result).toEqual([]);
    expect(restoredDatasets(config, nodeReport(B, { manifestations: [m('mounted')] })).result).toEqual([]);
    const done = restoredDatasets(config, nodeReport(A, { manifestations: [m('mounted')] }));
    expect(done.result).toEqual([D2]);
    expect(done.config.datasets.get(D2)?.source_backup).toEqual({ target: TARGET, backup_id: STORED, restored: true });
  });

  it("a restore's mark records the file system its primary reports mounted when the metadata says another (T5 F8)", () => {
    const restore = (metadata: Record<string, string>): Configuration =>
      createDataset(base(), {
        primary: A,
        dataset_id: D2,
        maximum_size: 512 * MiB,
        metadata,
        source_backup: { target: TARGET, backup_id: STORED },
      }).config;
    const mounted = (filesystem?: 'ext4' | 'xfs') =>
      nodeReport(A, {
        manifestations: [
          { dataset_id: D2, blockdevice_id: 'v', size: 1, status: 'mounted', ...(filesystem ? { filesystem } : {}) },
        ],
      });
    const metadataAfter = (config: Configuration, report: NodeReport) => {
      const done = restoredDatasets(config, report);
      expect(done.result).toEqual([D2]);
      expect(done.config.version).toBe(config.version + 1); // one write: the mark and the metadata
      return done.config.datasets.get(D2)?.metadata;
    };
    // An xfs backup restored into a dataset whose metadata says nothing (ext4): shown as xfs from the mark on.
    expect(metadataAfter(restore({ name: 'r' }), mounted('xfs'))).toEqual({
      name: 'r',
      [METADATA_FILESYSTEM_KEY]: 'xfs',
    });
    // An ext4 one into a dataset asked as xfs: ext4 said.
    expect(metadataAfter(restore({ [METADATA_FILESYSTEM_KEY]: 'xfs' }), mounted('ext4'))).toEqual({
      [METADATA_FILESYSTEM_KEY]: 'ext4',
    });
    // The same file system (absent is ext4), or none reported (an older agent): the metadata as it was.
    expect(metadataAfter(restore({ name: 'r' }), mounted('ext4'))).toEqual({ name: 'r' });
    expect(metadataAfter(restore({ [METADATA_FILESYSTEM_KEY]: 'xfs' }), mounted('xfs'))).toEqual({
      [METADATA_FILESYSTEM_KEY]: 'xfs',
    });
    expect(metadataAfter(restore({ name: 'r' }), mounted())).toEqual({ name: 'r' });
    // Metadata at its key limit: the key is not added (every agent would refuse a dataset with one more); still marked.
    const full = Object.fromEntries(Array.from({ length: METADATA_MAX_KEYS }, (_, i) => [`k${i}`, 'v']));
    expect(metadataAfter(restore(full), mounted('xfs'))).toEqual(full);
    // Kept and answered without it (agents one release behind parse node states strictly); the same object if none.
    const plain = mounted();
    expect(withoutReportedFilesystems(plain)).toBe(plain);
    const kept = withoutReportedFilesystems(mounted('xfs'));
    expect(kept).toEqual(plain);
    expect(JSON.stringify(kept)).not.toContain('filesystem');
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

describe('backup routes', () => {
  let dir: string;
  let svc: ControlService;
  let client: FlockerClient;
  beforeEach(async () => {
    ({ dir, svc, client } = await startWithTwoNodes('flocker-backups-'));
    await client.createDataset({ primary: A, dataset_id: D1 });
  });
  afterEach(() => closeAndRemove(svc, dir));

  it('refuses a backup or restore on a node whose agent has no backup settings (409 BACKUP_NOT_CONFIGURED)', async () => {
    await expectApiError(client.createBackup({ dataset_id: D1, target: TARGET }), 409, 'BACKUP_NOT_CONFIGURED');
    await expectApiError(
      client.createDataset({
        primary: B,
        maximum_size: 128 * MiB,
        source_backup: { target: TARGET, backup_id: STORED },
      }),
      409,
      'BACKUP_NOT_CONFIGURED',
    );
    expect(await client.listBackups()).toEqual([]);
    expect(await client.listSnapshots()).toEqual([]);
  });

  it('a restore reported mounted as xfs is shown as xfs; no node state answered carries the reported file system (T5 F8)', async () => {
    await client.reportNodeState(nodeReport(B, { backup_store: true }));
    const r = await client.createDataset({
      primary: B,
      maximum_size: 512 * MiB,
      metadata: { name: 'r' },
      source_backup: { target: TARGET, backup_id: STORED },
    });
    const mounted = { dataset_id: r.dataset_id, blockdevice_id: 'v', size: 512 * MiB, status: 'mounted' as const };
    await client.reportNodeState(
      nodeReport(B, { backup_store: true, manifestations: [{ ...mounted, path: '/f/r', filesystem: 'xfs' }] }),
    );
    const d = (await client.listDatasets()).find((x) => x.dataset_id === r.dataset_id);
    expect(d?.metadata).toEqual({ name: 'r', [METADATA_FILESYSTEM_KEY]: 'xfs' });
    expect(d?.source_backup?.restored).toBe(true);
    // Agents one release behind parse these strictly: the whole snapshot and the node's view.
    for (const path of ['/v1/agent/cluster?timeout_ms=0', `/v1/agent/cluster?timeout_ms=0&node=${B}`]) {
      const text = await (await fetch(`${svc.url}${path}`)).text();
      expect(text).toContain(r.dataset_id);
      expect(text).not.toContain('"filesystem"');
    }
  });

  it('create, list, state from the report, and the snapshot deleted once done', async () => {
    await client.reportNodeState(nodeReport(A, { backup_store: true }));
    await expectApiError(client.createBackup({ dataset_id: B1, target: TARGET }), 404, 'DATASET_NOT_FOUND');
    const bad = await fetch(`${svc.url}/v1/configuration/backups`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ dataset_id: D1, target: 'http://example.com/x' }),
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'INVALID_REQUEST' });
    const backup = await client.createBackup({ dataset_id: D1, target: TARGET, keep: 2, backup_id: B1 });
    expect(backup).toMatchObject({ backup_id: B1, dataset_id: D1, target: TARGET, keep: 2 });
    expect(await client.listBackups()).toEqual([backup]);
    expect((await client.listSnapshots()).map((s) => s.snapshot_id)).toEqual([B1]);
    await client.reportNodeState(nodeReport(A, { backup_store: true, backups: [reported('running')] }));
    expect(await client.listBackupState()).toEqual([{ ...reported('running'), node_uuid: A }]);
    const done = reported('done', { stored_backup_id: STORED, uploaded_bytes: 10, data_bytes: 20 });
    await client.reportNodeState(nodeReport(A, { backup_store: true, backups: [done] }));
    expect(await client.listBackupState()).toEqual([{ ...done, node_uuid: A }]);
    expect(await client.listBackups()).toEqual([{ ...backup, deleted: true }]);
    expect((await client.listSnapshots())[0]?.deleted).toBe(true);
  });

  it('a restore needs maximum_size and no clone source; accepted on a node that can run it', async () => {
    await client.reportNodeState(nodeReport(B, { backup_store: true }));
    const source_backup = { target: TARGET, backup_id: STORED };
    for (const body of [
      { primary: B, source_backup },
      { primary: B, maximum_size: 128 * MiB, source_backup, source_dataset_id: D1 },
      { primary: B, maximum_size: 128 * MiB, source_backup: { target: TARGET, backup_id: 'nope' } },
    ]) {
      const res = await fetch(`${svc.url}/v1/configuration/datasets`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(400);
    }
    const restored = await client.createDataset({ primary: B, maximum_size: 128 * MiB, source_backup });
    expect(restored.source_backup).toEqual(source_backup);
    // Not finished: it does not move (another node would write the backup over it again); once mounted it does.
    await expectApiError(client.updateDataset(restored.dataset_id, { primary: A }), 409, 'RESTORE_IN_PROGRESS');
    const mounted = { dataset_id: restored.dataset_id, blockdevice_id: 'v', size: 1, status: 'mounted' as const };
    await client.reportNodeState(nodeReport(B, { backup_store: true, manifestations: [mounted] }));
    expect((await client.listDatasets()).find((d) => d.dataset_id === restored.dataset_id)?.source_backup).toEqual({
      ...source_backup,
      restored: true,
    });
    expect((await client.updateDataset(restored.dataset_id, { primary: A })).primary).toBe(A);
  });

  it('a plain snapshot may not carry the keys of a backup request (400 BACKUP_KEY_RESERVED)', async () => {
    await expectApiError(
      client.createSnapshot({ dataset_id: D1, metadata: { [BACKUP_TARGET_KEY]: TARGET } }),
      400,
      'BACKUP_KEY_RESERVED',
    );
    expect(await client.listSnapshots()).toEqual([]);
  });
});
