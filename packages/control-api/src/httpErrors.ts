/**
 * The one place where the control service's errors become HTTP answers: the status of
 * every stable code, and the mapping of anything a handler throws. A ZodError reaching
 * this point came from the server's own data (a response or stored value off its schema):
 * a 500, never a 400 blaming the client (request input is checked in server.ts and
 * refused there as INVALID_REQUEST).
 */
import type { Response } from 'express';
import { type ConfigurationCode, isControlError, type RequestCode, type StoreCode } from './errors';

export const MAX_BODY_BYTES = 1024 * 1024;

/** An error as the API answers it: HTTP status, stable code and a sentence a user can act on. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    readonly description: string,
    readonly errors?: string[],
    /** Sent as Retry-After (ControlError.retryAfterS): the request can work after that many seconds. */
    readonly retryAfterS?: number,
  ) {
    super(description);
  }

  toBody(): { description: string; code: string; errors?: string[] } {
    return this.errors === undefined
      ? { description: this.description, code: this.code }
      : { description: this.description, code: this.code, errors: this.errors };
  }
}

/** The HTTP status of every code an answer can carry. */
export const HTTP_STATUS: Readonly<Record<ConfigurationCode | StoreCode | RequestCode, number>> = {
  // configuration logic
  UNKNOWN_NODE: 400,
  AMBIGUOUS_NODE: 400,
  INVALID_CONFIGURATION_FILE: 400,
  UNKNOWN_APPLICATION: 400,
  DATASET_NOT_FOUND: 404,
  NODE_NOT_FOUND: 404,
  NODE_IN_USE: 409,
  LEASE_NOT_FOUND: 404,
  CONTAINER_NOT_FOUND: 404,
  DATASET_DELETED: 405,
  DATASET_ID_IN_USE: 409,
  DATASET_NAME_IN_USE: 409,
  NAME_SHAPED_LIKE_ID: 400,
  DATASET_IN_USE: 409,
  DATASET_NOT_A_VOLUME: 409,
  DATASET_ON_DIFFERENT_NODE: 409,
  LEASE_HELD: 409,
  LEASE_TOO_MANY_HOLDERS: 409,
  CONTAINER_NAME_COLLISION: 409,
  CONTAINER_PORT_COLLISION: 409,
  LINK_ALIAS_COLLISION: 409,
  LINK_PORT_COLLISION: 409,
  INSTANCE_CLAIMED: 409,
  VOLUME_CLAIMED: 409,
  NODE_DEAD: 409,
  CONFIGURATION_CHANGED: 412,
  SHUTTING_DOWN: 503,
  SNAPSHOT_NOT_FOUND: 404,
  SNAPSHOT_ID_IN_USE: 409,
  SNAPSHOT_NAME_IN_USE: 409,
  SNAPSHOT_SOURCE_DELETED: 400,
  SOURCE_SNAPSHOT_UNKNOWN: 400,
  CLONE_TOO_SMALL: 400,
  DATASET_SHRINK: 400,
  SOURCE_DATASET_UNKNOWN: 400,
  SNAPSHOT_SCHEDULE_TOO_FREQUENT: 400,
  METADATA_TOO_MANY_KEYS: 400,
  BACKUP_NOT_CONFIGURED: 409,
  BACKUP_KEY_RESERVED: 400,
  RESTORE_IN_PROGRESS: 409,
  NOT_ON_LOCAL_STORAGE: 409,
  // stores
  STORE_NOT_EMPTY: 409,
  CONFIGURATION_CONFLICT: 409,
  STORE_CORRUPT: 500,
  STORE_BASE_UNKNOWN: 500,
  STORE_FORMAT_UNSUPPORTED: 500,
  STORE_FORMAT_TOO_NEW: 500,
  MIGRATION_VERIFY_FAILED: 500,
  STORE_UNAVAILABLE: 503,
  STORE_OUTCOME_UNKNOWN: 503,
  STORE_TLS_REJECTED: 503,
  STORE_CLOSED: 503,
  STORE_FULL: 503,
  // requests
  INVALID_REQUEST: 400,
  INVALID_JSON: 400,
  RESERVED_KEY: 400,
  NODE_UUID_MISMATCH: 400,
  SIZE_BEYOND_BACKEND: 400,
  FORBIDDEN: 403,
  HOST_NOT_ALLOWED: 403,
  NOT_FOUND: 404,
  NODE_ERA_UNKNOWN: 404,
  METHOD_NOT_ALLOWED: 405,
  BODY_TOO_LARGE: 413,
  REPLICA_STALLED: 503,
  INTERNAL_ERROR: 500,
};

const INTERNAL = new ApiError(500, 'INTERNAL_ERROR', 'The control service failed to handle the request; see its log.');

/** Turns anything thrown while handling a request into the API's error answer. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (isControlError(err)) {
    const status = (HTTP_STATUS as Readonly<Record<string, number>>)[err.code];
    // A usage error (a bad flag) has no HTTP form: reaching a request, it is the server's fault.
    return status === undefined
      ? INTERNAL
      : new ApiError(status, err.code, err.description, err.errors, err.retryAfterS);
  }
  // body-parser errors carry `type` and `status`.
  if (err instanceof Error && 'type' in err) {
    const type = err.type;
    if (type === 'entity.too.large') {
      return new ApiError(413, 'BODY_TOO_LARGE', `The request body is larger than ${MAX_BODY_BYTES} bytes.`);
    }
    if (type === 'entity.parse.failed') {
      return new ApiError(400, 'INVALID_JSON', `The request body is not valid JSON: ${err.message}`);
    }
  }
  // Other body-parser failures (e.g. a gzip body that does not inflate) carry a 4xx `status` without `type`.
  if (err instanceof Error && 'status' in err) {
    const status = err.status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return new ApiError(status, 'BAD_REQUEST', `The request cannot be read: ${err.message}`);
    }
  }
  return INTERNAL;
}

export function sendError(res: Response, err: unknown): void {
  const apiError = toApiError(err);
  if (apiError.retryAfterS !== undefined) res.setHeader('Retry-After', String(apiError.retryAfterS));
  res.status(apiError.status).type('application/json').send(JSON.stringify(apiError.toBody()));
}
