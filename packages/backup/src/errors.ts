/** Errors of the backup engine: every failure a caller decides on carries a stable code. */
export type BackupErrorCode =
  /** No manifest for that backup id or key. */
  | 'BACKUP_NOT_FOUND'
  /** A chunk a manifest references is not in the store. */
  | 'CHUNK_MISSING'
  /** A chunk's bytes do not decompress, or do not hash to the name the manifest gives them. */
  | 'CHUNK_CORRUPT'
  /** A manifest is not valid JSON, fails its schema, or its checksum does not match. */
  | 'MANIFEST_CORRUPT'
  /** The object store did not answer (network, 5xx, throttling) after every retry. */
  | 'STORE_UNREACHABLE'
  /** The store refused our credentials or the bucket does not exist. */
  | 'STORE_DENIED'
  /** Any other answer of the store we cannot act on. */
  | 'STORE_ERROR'
  /** An s3:// URL that cannot name a bucket and prefix. */
  | 'INVALID_URL'
  /** Bad options (ids, chunk size, keep count). */
  | 'INVALID_ARGUMENT'
  /** The source cannot be opened or read, or changed size while being read. */
  | 'SOURCE_UNREADABLE'
  /** The restore target cannot be written, already holds data, or is too small. */
  | 'TARGET_UNUSABLE';

export class BackupError extends Error {
  constructor(
    readonly code: BackupErrorCode,
    message: string,
    /** The store key (or path) the error is about, when there is one. */
    readonly key?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'BackupError';
  }
}

export function isBackupError(e: unknown, code?: BackupErrorCode): e is BackupError {
  return e instanceof BackupError && (code === undefined || e.code === code);
}
