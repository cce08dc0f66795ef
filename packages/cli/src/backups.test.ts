import type { ClusterSnapshot, DatasetConfiguration, NodeState, ReportedBackup } from '@flocker/api';
import { BackupError } from '@flocker/backup';
import { node as fixtureNode } from '@flocker/web-ui/testing';
import { backupCliError, backupPhase, isDatasetId, restorePhase, restoreSize, s3Store } from './backups';
import { EXIT } from './errors';

const D = '11111111-1111-4111-8111-111111111111';
const B1 = '5a5a5a5a-0000-4000-8000-0000000000b1';
const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MiB = 1024 * 1024;
const node = (patch: Partial<NodeState> = {}): NodeState => fixtureNode(A, 'host-a', patch);
const dataset: DatasetConfiguration = { dataset_id: D, primary: A, metadata: {}, deleted: false };
const cluster = (nodes: NodeState[]): ClusterSnapshot => ({
  generation: 'g',
  configuration_tag: 't',
  datasets: [dataset],
  leases: [],
  nodes,
});
const backup = (patch: Partial<ReportedBackup>): ReportedBackup => ({
  backup_id: B1,
  dataset_id: D,
  target: 's3://b/p',
  status: 'running',
  updated_at: '2026-12-04T07:00:00Z',
  ...patch,
});

describe('backupPhase', () => {
  it('snapshot, upload progress, done with the stored backup, failure fatal', () => {
    expect(backupPhase(cluster([node()]), B1)).toEqual({ step: 'taking the snapshot' });
    expect(backupPhase(cluster([node({ backups: [backup({ bytes_read: 8 * MiB, size: 64 * MiB })] })]), B1)).toEqual({
      step: 'uploading (8 MiB of 64 MiB read)',
      stage: 'uploading',
    });
    const done = backup({ status: 'done', stored_backup_id: `${D}/20261204T065155123Z-${B1}` });
    expect(backupPhase(cluster([node({ backups: [done] })]), B1)).toEqual({ done });
    const failed = backup({ status: 'failed', error: { code: 'STORE_DENIED', message: 'no' } });
    expect(backupPhase(cluster([node({ backups: [failed] })]), B1)).toMatchObject({
      fatal: true,
      error: 'STORE_DENIED: no',
    });
  });
});

describe('restorePhase', () => {
  it('a damaged backup is fatal; other failures are retried; mounted is done', () => {
    const err = (code: string) => ({
      dataset_id: D,
      action: 'restore',
      code,
      message: 'chunks/ab/abc',
      attempts: 1,
      since: '2026-12-04T07:00:00Z',
    });
    expect(restorePhase(cluster([node({ errors: [err('CHUNK_CORRUPT')] })]), D, A)).toMatchObject({ fatal: true });
    expect(restorePhase(cluster([node({ errors: [err('STORE_UNREACHABLE')] })]), D, A)).toMatchObject({
      fatal: false,
      error: 'STORE_UNREACHABLE: chunks/ab/abc',
    });
    const mounted = node({
      manifestations: [{ dataset_id: D, blockdevice_id: 'v', size: 1, status: 'mounted', path: '/mnt/x' }],
    });
    expect(restorePhase(cluster([mounted]), D, A)).toEqual({ done: '/mnt/x' });
  });
});

describe('restoreSize and errors', () => {
  it("the backup's size by default, never smaller, at least the minimum", () => {
    expect(restoreSize(128 * MiB, undefined)).toBe(128 * MiB);
    expect(restoreSize(1 * MiB, undefined)).toBe(64 * MiB);
    expect(restoreSize(128 * MiB, 256 * MiB)).toBe(256 * MiB);
    expect(() => restoreSize(128 * MiB, 100 * MiB)).toThrow(/smaller than the backup/);
  });

  it('store errors get the exit codes of the other commands', () => {
    expect(backupCliError(new BackupError('BACKUP_NOT_FOUND', 'x'))?.exitCode).toBe(EXIT.NOT_FOUND);
    expect(backupCliError(new BackupError('STORE_DENIED', 'x'))?.exitCode).toBe(EXIT.CREDENTIALS);
    expect(backupCliError(new BackupError('CHUNK_CORRUPT', 'x'))).toMatchObject({ exitCode: 1, code: 'CHUNK_CORRUPT' });
    expect(backupCliError(new Error('x'))).toBeUndefined();
    expect(() => s3Store('http://nope', {}, {})).toThrow(expect.objectContaining({ exitCode: EXIT.USAGE }));
  });
});

it('a whole dataset id lists backups without the control service; a name or a prefix needs it', () => {
  expect(isDatasetId('0B6A53F0-5c3e-4a43-9d4c-6f1f1a3b2c01')).toBe(true);
  expect(isDatasetId('0b6a53f0')).toBe(false);
  expect(isDatasetId('pgdata')).toBe(false);
});
