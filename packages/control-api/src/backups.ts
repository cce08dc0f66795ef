/**
 * Backups to object storage (issue 20), the control service's part: pure. The control
 * service never touches data or S3 credentials; it only keeps the requests and decides
 * which node may run them.
 *
 * A backup request is a snapshot of the configuration (the implicit snapshot the backup is
 * read from) whose metadata names the target and the retention: it is stored, replicated
 * and sent to the agents as every snapshot is, and its id is the backup's id. The source's
 * primary takes the snapshot (frozen), its agent streams it to the target and reports the
 * backup's state; once that state is done or failed, the control service deletes the
 * snapshot (endedBackups), and the request stays listed (deleted: true) until no backend
 * holds the snapshot any more.
 *
 * A restore is a dataset with source_backup: its primary's agent writes the stored backup
 * onto the new volume and mounts it only when all of it verified. Once the primary reports
 * it mounted, the control service marks the restore done (restoredDatasets), so it never
 * runs again, also not on another node after a move.
 */
import { randomUUID } from 'node:crypto';
import {
  BACKUP_KEEP_KEY,
  BACKUP_TARGET_KEY,
  clientMetadataKeyCount,
  METADATA_FILESYSTEM_KEY,
  METADATA_MAX_KEYS,
  type BackupConfiguration,
  type BackupState,
  type CreateBackupRequest,
  type DatasetConfiguration,
  type DatasetFilesystem,
  type NodeReport,
  type SnapshotConfiguration,
} from '@flocker/api';
import type { ReportedNode } from './clusterState';
import { createSnapshot, type Applied, type Configuration } from './configuration';
import { ConfigurationError } from './errors';
import { setEntry } from './PersistentMap';

export { BACKUP_KEEP_KEY, BACKUP_TARGET_KEY };

/** The backup request a configured snapshot is, or undefined for a plain snapshot. */
export function backupOf(snapshot: SnapshotConfiguration): BackupConfiguration | undefined {
  const target = snapshot.metadata[BACKUP_TARGET_KEY];
  if (target === undefined) return undefined;
  const keep = Number(snapshot.metadata[BACKUP_KEEP_KEY]);
  return {
    backup_id: snapshot.snapshot_id,
    dataset_id: snapshot.dataset_id,
    target,
    ...(Number.isInteger(keep) && keep >= 1 ? { keep } : {}),
    created_at: snapshot.created_at,
    ...(snapshot.deleted === true ? { deleted: true as const } : {}),
  };
}

export function backupConfigurations(config: Configuration): BackupConfiguration[] {
  const out: BackupConfiguration[] = [];
  for (const s of config.snapshots?.values() ?? []) {
    const backup = backupOf(s);
    if (backup !== undefined) out.push(backup);
  }
  return out;
}

/**
 * Refused unless the node's agent can run backups and restores: alive and reporting
 * backup_store (it has S3 settings).
 */
export function requireBackupNode(alive: readonly ReportedNode[], nodeUuid: string, what: string): void {
  const node = alive.find((n) => n.report.uuid === nodeUuid);
  if (node?.report.backup_store === true) return;
  throw new ConfigurationError(
    'BACKUP_NOT_CONFIGURED',
    node === undefined
      ? `The node ${nodeUuid} (${what}) is not alive: no agent there can run it.`
      : `The agent of node ${nodeUuid} (${what}) cannot run backups or restores: it has no S3 settings (a backup: section in its agent.yml, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in its environment).`,
  );
}

/** Asks for a backup: an implicit snapshot of the dataset that carries the target and retention. */
export function createBackup(
  config: Configuration,
  req: CreateBackupRequest,
  now: number,
  newId: () => string = randomUUID,
): Applied<BackupConfiguration> {
  const metadata: Record<string, string> = { [BACKUP_TARGET_KEY]: req.target };
  if (req.keep !== undefined) metadata[BACKUP_KEEP_KEY] = String(req.keep);
  const applied = createSnapshot(
    config,
    { dataset_id: req.dataset_id, metadata, ...(req.backup_id !== undefined ? { snapshot_id: req.backup_id } : {}) },
    now,
    newId,
  );
  const backup = backupOf(applied.result);
  if (backup === undefined) throw new Error('a backup snapshot without its target'); // cannot happen: set above
  return { config: applied.config, result: backup, status: 201 };
}

/** Every backup the alive nodes report, with the node; one entry per backup (the newest report of it wins). */
export function deriveBackupState(alive: readonly ReportedNode[]): BackupState[] {
  const byId = new Map<string, BackupState>();
  for (const { report } of alive) {
    for (const b of report.backups ?? []) {
      const seen = byId.get(b.backup_id);
      if (seen !== undefined && seen.updated_at >= b.updated_at) continue;
      byId.set(b.backup_id, { ...b, node_uuid: report.uuid });
    }
  }
  return [...byId.values()];
}

/**
 * Deletes the implicit snapshot of every live backup request that the report says is done
 * or failed (its agent is finished with it). The same value when nothing is due.
 */
export function endBackups(config: Configuration, report: NodeReport): Applied<string[]> {
  let snapshots: ReadonlyMap<string, SnapshotConfiguration> | undefined;
  const ended: string[] = [];
  for (const b of report.backups ?? []) {
    if (b.status !== 'done' && b.status !== 'failed') continue;
    const s = (snapshots ?? config.snapshots)?.get(b.backup_id);
    if (s === undefined || s.deleted === true || backupOf(s) === undefined) continue;
    snapshots = setEntry(snapshots ?? config.snapshots ?? new Map<string, SnapshotConfiguration>(), b.backup_id, {
      ...s,
      deleted: true,
    });
    ended.push(b.backup_id);
  }
  if (snapshots === undefined) return { config, result: [], status: 200 };
  return { config: { ...config, version: config.version + 1, snapshots }, result: ended, status: 200 };
}

/**
 * The metadata saying the file system a restore mounted (T5 F8): a restored volume holds its backup's file system,
 * whatever the dataset was asked as, and what reads the metadata (the Docker plugin's `-o fs=` check, a clone) must
 * see that one. The same object when it already says it (absent is ext4), when the agent did not say (one release
 * behind), or when the key would be one more than METADATA_MAX_KEYS (every agent would refuse the dataset).
 */
function withFilesystem(
  metadata: Record<string, string>,
  mounted: DatasetFilesystem | undefined,
): Record<string, string> {
  if (mounted === undefined || (metadata[METADATA_FILESYSTEM_KEY] ?? 'ext4') === mounted) return metadata;
  const adds = !Object.hasOwn(metadata, METADATA_FILESYSTEM_KEY);
  if (adds && clientMetadataKeyCount(metadata) >= METADATA_MAX_KEYS) return metadata;
  return { ...metadata, [METADATA_FILESYSTEM_KEY]: mounted };
}

/**
 * The report as kept and answered: without the file systems of mounted restores (ManifestationState.filesystem, T5
 * F8), which only restoredDatasets reads, from the report as received. Agents one release behind parse node states
 * strictly. The same object when it carries none (the usual report: one pass over its manifestations).
 */
export function withoutReportedFilesystems(report: NodeReport): NodeReport {
  if (!report.manifestations.some((m) => m.filesystem !== undefined)) return report;
  return {
    ...report,
    manifestations: report.manifestations.map((m) => {
      if (m.filesystem === undefined) return m;
      const { filesystem: _filesystem, ...rest } = m;
      return rest;
    }),
  };
}

/**
 * Marks the restores done whose dataset the reporting node, its primary, has mounted: the
 * agent mounts a restored volume only after every chunk verified, so from then on it is
 * the dataset's own data and no node may write the backup over it again. In the same write,
 * the metadata takes the file system the primary reports mounted (withFilesystem).
 */
export function restoredDatasets(config: Configuration, report: NodeReport): Applied<string[]> {
  let datasets: ReadonlyMap<string, DatasetConfiguration> | undefined;
  const restored: string[] = [];
  for (const m of report.manifestations) {
    if (m.status !== 'mounted') continue;
    const d = (datasets ?? config.datasets).get(m.dataset_id);
    if (d?.source_backup === undefined || d.source_backup.restored === true || d.deleted) continue;
    if (d.primary !== report.uuid) continue;
    datasets = setEntry(datasets ?? config.datasets, d.dataset_id, {
      ...d,
      metadata: withFilesystem(d.metadata, m.filesystem),
      source_backup: { ...d.source_backup, restored: true },
    });
    restored.push(d.dataset_id);
  }
  if (datasets === undefined) return { config, result: [], status: 200 };
  return { config: { ...config, version: config.version + 1, datasets }, result: restored, status: 200 };
}
