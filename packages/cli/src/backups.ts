/**
 * `flocker backup` (issue 20): the pure parts. Backups and restores run on the agents (the
 * control service only keeps the requests); the CLI follows them in the cluster snapshot,
 * and reads the store itself (list, delete, a restore's size) with @flocker/backup.
 */
import { isBackupError, S3ObjectStore } from '@flocker/backup';
import { formatSize, MINIMUM_DATASET_SIZE, Uuid, type ClusterSnapshot, type ReportedBackup } from '@flocker/api';
import { localStorageNode } from '@flocker/web-ui';
import { CliError, EXIT } from './errors';
import { movePhase } from './progress';

/** S3 settings of the CLI: options first, then the standard AWS_* environment variables (and the SDK's chain). */
export interface S3Args {
  endpoint?: string;
  region?: string;
}

export function s3Store(url: string, a: S3Args, env: Readonly<Record<string, string | undefined>>): S3ObjectStore {
  const e = (name: string): string | undefined => (env[name] !== undefined && env[name] !== '' ? env[name] : undefined);
  const endpoint = a.endpoint ?? e('AWS_ENDPOINT_URL_S3') ?? e('AWS_ENDPOINT_URL');
  const region = a.region ?? e('AWS_REGION') ?? e('AWS_DEFAULT_REGION');
  try {
    return new S3ObjectStore({ url, ...(endpoint !== undefined ? { endpoint } : {}), ...(region ? { region } : {}) });
  } catch (err) {
    throw backupCliError(err) ?? err;
  }
}

/** A whole dataset id (a UUID): what backups are filed under, usable without asking the control service. */
export function isDatasetId(ref: string): boolean {
  // The API's Uuid (any hex 8-4-4-4-12, any case): what it takes as a dataset id is what is filed under one.
  return Uuid.safeParse(ref).success;
}

/** A @flocker/backup error as the CLI's (exit code by kind); undefined for anything else. */
export function backupCliError(e: unknown): CliError | undefined {
  if (!isBackupError(e)) return undefined;
  const exit: Partial<Record<string, number>> = {
    BACKUP_NOT_FOUND: EXIT.NOT_FOUND,
    INVALID_URL: EXIT.USAGE,
    INVALID_ARGUMENT: EXIT.USAGE,
    STORE_UNREACHABLE: EXIT.UNREACHABLE,
    STORE_DENIED: EXIT.CREDENTIALS,
  };
  return new CliError(exit[e.code] ?? EXIT.FAILURE, e.message, e.code);
}

/** The backup as the agent running it reports it, from the cluster snapshot. */
export function reportedBackup(cluster: ClusterSnapshot, backupId: string): ReportedBackup | undefined {
  let found: ReportedBackup | undefined;
  for (const n of cluster.nodes) {
    if (!n.alive) continue;
    for (const b of n.backups ?? [])
      if (b.backup_id === backupId && (!found || b.updated_at > found.updated_at)) found = b;
  }
  return found;
}

/**
 * Progress of a backup for waitUntil: done (the stored backup), failed (fatal), or a step with bytes. `datasetId`:
 * a backup of a volume whose primary keeps it on local storage never starts (issue 24; asked for before the node
 * reported its backend, else the API refuses it): fatal.
 */
export function backupPhase(
  cluster: ClusterSnapshot,
  backupId: string,
  datasetId?: string,
): { done: ReportedBackup } | { step: string; error?: string; fatal?: boolean; stage?: string } {
  const b = reportedBackup(cluster, backupId);
  if (b === undefined || b.status === 'pending') {
    const primary = cluster.datasets.find((d) => d.dataset_id === datasetId && !d.deleted)?.primary;
    const local = primary === undefined ? null : localStorageNode(cluster, primary);
    if (b === undefined && local !== null)
      return {
        step: 'taking the snapshot',
        error: `NOT_ON_LOCAL_STORAGE: ${local.host} keeps this volume on local storage (${local.backend}), which takes no snapshots or backups through the API yet (it was asked for before ${local.host} reported its backend)`,
        fatal: true,
      };
    return { step: 'taking the snapshot' };
  }
  if (b.status === 'done') return { done: b };
  if (b.status === 'failed')
    return { step: 'backing up', error: `${b.error?.code ?? 'FAILED'}: ${b.error?.message ?? ''}`, fatal: true };
  const of = b.size !== undefined ? ` of ${formatSize(b.size)}` : '';
  return { step: `uploading (${formatSize(b.bytes_read ?? 0)}${of} read)`, stage: 'uploading' };
}

/** A restore's failures that retrying does not cure: the backup in the store is damaged or gone. */
const FATAL_RESTORE = new Set(['CHUNK_CORRUPT', 'CHUNK_MISSING', 'MANIFEST_CORRUPT', 'BACKUP_NOT_FOUND']);

/** Progress of a restore: mounted (done), a damaged backup (fatal), else the volume's step. */
export function restorePhase(
  cluster: ClusterSnapshot,
  datasetId: string,
  nodeUuid: string,
): { done: string } | { step: string; error?: string; fatal?: boolean } {
  // (movePhase says when a local node mounted it empty: issue 24.)
  const p = movePhase(cluster, datasetId, nodeUuid);
  if (p.phase === 'mounted') return { done: p.path };
  if (p.phase === 'deleted') return { step: 'deleted', error: 'the volume was deleted', fatal: true };
  const failure = cluster.nodes
    .find((n) => n.uuid === nodeUuid)
    ?.errors.find((e) => e.dataset_id === datasetId && e.action === 'restore');
  if (failure !== undefined)
    return { step: 'restoring', error: `${failure.code}: ${failure.message}`, fatal: FATAL_RESTORE.has(failure.code) };
  return { step: p.step, ...(p.error !== undefined ? { error: p.error } : {}), ...(p.fatal ? { fatal: true } : {}) };
}

/** A restored volume's size: the --size asked for, else the backup's (never below the API's minimum). */
export function restoreSize(backupSize: number, asked: number | undefined): number {
  if (asked !== undefined && asked < backupSize)
    throw new CliError(
      EXIT.USAGE,
      `--size ${formatSize(asked)} is smaller than the backup (${formatSize(backupSize)})`,
    );
  return Math.max(asked ?? backupSize, MINIMUM_DATASET_SIZE);
}
