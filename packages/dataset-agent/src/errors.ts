/** Errors of the dataset agent carry a stable code and a sentence a user can act on. */
import { errorCode as anyErrorCode } from '@flocker/runtime';

export type AgentErrorCode =
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_UNREADABLE'
  | 'CONFIG_INVALID'
  | 'BACKEND_NOT_AVAILABLE'
  | 'IDENTITY_INVALID'
  | 'ACTION_FAILED'
  /** The storage pool belongs to another cluster (pool.json names another cluster id). */
  | 'POOL_OF_ANOTHER_CLUSTER'
  /** The pool is unclaimed or empty while nodes report volumes of existing datasets it does not have. */
  | 'POOL_MISSING_VOLUMES'
  /** A volume record in the pool cannot be read: its dataset is left alone. */
  | 'CORRUPT_RECORD'
  /** A node reports a volume of the dataset that this node's pool does not have: no second volume is created. */
  | 'VOLUME_ELSEWHERE'
  /** A snapshot or clone is asked of a backend without snapshots (issue 20). */
  | 'SNAPSHOTS_UNSUPPORTED'
  /** A restore asked of an agent without S3 settings (issue 20). */
  | 'BACKUP_NOT_CONFIGURED'
  /** A backup asked of a backend whose snapshots the agent cannot read (issue 20). */
  | 'BACKUP_UNSUPPORTED'
  /** A write into the storage pool failed while the pool has no free space (a restore, T5 F7). */
  | 'POOL_FULL';

export class AgentError extends Error {
  constructor(
    readonly code: AgentErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AgentError';
  }
}

export function isAgentError(e: unknown, code?: AgentErrorCode): e is AgentError {
  return e instanceof AgentError && (code === undefined || e.code === code);
}

/** The `code` of any error (ours, StorageError, errno), or a generic one. */
export function errorCode(e: unknown): string {
  return anyErrorCode(e) ?? 'UNEXPECTED';
}

export { errorMessage } from '@flocker/runtime';
