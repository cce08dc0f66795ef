/** Backups of Flocker volumes to S3-compatible object storage (issue 20): incremental, compressed, verified. */
export const BACKUP_FORMAT_VERSION = 1;
