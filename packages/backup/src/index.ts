/**
 * Backups of Flocker volumes to S3-compatible object storage (issue 20): incremental, compressed, verified.
 * See README.md for the format and its guarantees.
 */
export { backupVolume, DEFAULT_CONCURRENCY, type BackupOptions, type BackupProgress } from './backup';
export {
  collectGarbage,
  DEFAULT_GRACE_MS,
  DEFAULT_PENDING_TTL_MS,
  deleteBackup,
  latestBackup,
  listBackups,
  pruneBackups,
  type BackupSummary,
  type GcOptions,
  type GcResult,
  type PruneOptions,
  type PruneResult,
} from './catalog';
export { DEFAULT_COMPRESSION, type Compression } from './chunks';
export { BackupError, isBackupError, type BackupErrorCode } from './errors';
export { parseBackupId, resolveManifestKey } from './layout';
export {
  BACKUP_FORMAT,
  BACKUP_FORMAT_VERSION,
  DEFAULT_CHUNK_SIZE,
  Manifest,
  ManifestStats,
  MAX_CHUNK_SIZE,
  MIN_CHUNK_SIZE,
  type StoredObject,
} from './manifest';
export { readManifest, restoreVolume, type RestoreOptions, type RestoreProgress, type RestoreResult } from './restore';
export { classifyS3Error, DEFAULT_S3_BACKOFF, S3ObjectStore, type S3StoreOptions } from './S3ObjectStore';
export type { CallOptions, ObjectInfo, ObjectStore } from './store';
export { verifyBackup, type VerifyOptions, type VerifyProblem, type VerifyResult } from './verify';
export { formatS3Url, parseS3Url, type S3Location } from './url';
