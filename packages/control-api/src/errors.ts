/**
 * The control service's errors: a stable code and a sentence a user can act on, and no
 * HTTP status. Which status a code answers with is decided in one place, httpErrors.ts.
 */
import type { z } from 'zod';

/** What the configuration logic (configuration.ts, containers.ts, report claims, ControlState) refuses. */
export type ConfigurationCode =
  | 'UNKNOWN_NODE'
  | 'AMBIGUOUS_NODE'
  /** A node to forget that no configuration, identity, report or marker names (forgetNode.ts). */
  | 'NODE_NOT_FOUND'
  /** A node to forget that still reports, or that a dataset, lease or container names (forgetNode.ts). */
  | 'NODE_IN_USE'
  | 'DATASET_NOT_FOUND'
  | 'DATASET_DELETED'
  | 'DATASET_ID_IN_USE'
  /** A create asking for a unique name (unique_name) that a dataset not deleted already has (names.ts). */
  | 'DATASET_NAME_IN_USE'
  /** A new dataset or snapshot name shaped like an id: "name or id" would be ambiguous (names.ts). */
  | 'NAME_SHAPED_LIKE_ID'
  | 'DATASET_IN_USE'
  | 'DATASET_NOT_A_VOLUME'
  | 'DATASET_ON_DIFFERENT_NODE'
  | 'LEASE_HELD'
  | 'LEASE_NOT_FOUND'
  /** A new named holder of a lease that has LEASE_MAX_HOLDERS already (configuration.ts acquireLease). */
  | 'LEASE_TOO_MANY_HOLDERS'
  | 'CONTAINER_NOT_FOUND'
  | 'CONTAINER_NAME_COLLISION'
  | 'CONTAINER_PORT_COLLISION'
  | 'LINK_ALIAS_COLLISION'
  | 'LINK_PORT_COLLISION'
  | 'INVALID_CONFIGURATION_FILE'
  | 'UNKNOWN_APPLICATION'
  | 'INSTANCE_CLAIMED'
  | 'VOLUME_CLAIMED'
  /**
   * A liveness-only report (NodeReport.backend_unseen) of a node already declared dead: it stays dead until a full
   * report (its leases may be gone and its volumes taken; its agent must not count this as contact).
   */
  | 'NODE_DEAD'
  | 'CONFIGURATION_CHANGED'
  | 'SHUTTING_DOWN'
  | 'SNAPSHOT_NOT_FOUND'
  | 'SNAPSHOT_ID_IN_USE'
  | 'SNAPSHOT_NAME_IN_USE'
  | 'SNAPSHOT_SOURCE_DELETED'
  | 'SOURCE_SNAPSHOT_UNKNOWN'
  | 'CLONE_TOO_SMALL'
  /** A smaller maximum_size than the dataset has (or unsetting it): volumes do not shrink. */
  | 'DATASET_SHRINK'
  | 'SOURCE_DATASET_UNKNOWN'
  | 'SNAPSHOT_SCHEDULE_TOO_FREQUENT'
  | 'METADATA_TOO_MANY_KEYS'
  /** A backup or restore aimed at a node whose agent cannot run it (no backup: settings, or not alive). */
  | 'BACKUP_NOT_CONFIGURED'
  /** A snapshot asked for with the metadata keys of a backup request: backups go through /v1/configuration/backups. */
  | 'BACKUP_KEY_RESERVED'
  /** A move of a dataset whose restore has not finished (it is never written twice). */
  | 'RESTORE_IN_PROGRESS'
  /** A snapshot, clone, backup, restore or snapshot schedule that local storage (issue 24) cannot do (localStorage.ts). */
  | 'NOT_ON_LOCAL_STORAGE';

/** What a configuration store (file, etcd, its log) fails with. */
export type StoreCode =
  /** The store could not be reached: the write was not sent (or is known never to apply); nothing changed. */
  | 'STORE_UNAVAILABLE'
  /**
   * The write was sent but its outcome stayed unknown (etcd gave no answer within the bound): it may still be
   * applied once etcd has a quorum. Read the state back before retrying a write that is not idempotent.
   */
  | 'STORE_OUTCOME_UNKNOWN'
  | 'STORE_TLS_REJECTED'
  | 'STORE_CLOSED'
  | 'STORE_FULL'
  | 'STORE_CORRUPT'
  | 'STORE_BASE_UNKNOWN'
  | 'STORE_FORMAT_UNSUPPORTED'
  | 'STORE_FORMAT_TOO_NEW'
  | 'STORE_NOT_EMPTY'
  | 'MIGRATION_VERIFY_FAILED'
  | 'CONFIGURATION_CONFLICT';

/** What the HTTP layer refuses a request for before (or besides) the configuration logic. */
export type RequestCode =
  | 'FORBIDDEN'
  /** A plain-HTTP (--insecure-http) request whose Host names neither an address nor a name of the service (hostCheck.ts). */
  | 'HOST_NOT_ALLOWED'
  /** A write read right after this replica's event loop stalled (stallGuard.ts): not applied, its client may have gone. */
  | 'REPLICA_STALLED'
  | 'INVALID_REQUEST'
  | 'INVALID_JSON'
  | 'RESERVED_KEY'
  | 'BODY_TOO_LARGE'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'NODE_ERA_UNKNOWN'
  | 'NODE_UUID_MISMATCH'
  | 'UNKNOWN_NODE'
  | 'SIZE_BEYOND_BACKEND'
  | 'INTERNAL_ERROR';

/** A bad command-line flag of flocker-control (never an HTTP answer). */
export type UsageCode =
  | 'BAD_ETCD_ENDPOINT'
  | 'BAD_ETCD_TLS'
  | 'BAD_STORE_SPEC'
  | 'INVALID_NODE_TIMEOUT'
  | 'INVALID_LEASE_GRACE'
  | 'INVALID_HANDOVER_WAIT'
  | 'INVALID_ALLOWED_HOST';

export type ErrorCode = ConfigurationCode | StoreCode | RequestCode | UsageCode;

/** Base of the control service's errors: a stable code, a description, and the single problems when there are several. */
export abstract class ControlError<C extends ErrorCode = ErrorCode> extends Error {
  constructor(
    readonly code: C,
    readonly description: string,
    readonly errors?: string[],
    /**
     * Seconds after which the same request can work (answered as Retry-After): a refusal that marks itself
     * retryable this way keeps its code, so clients that predate the mark read it as before.
     */
    readonly retryAfterS?: number,
  ) {
    super(description);
  }
}

/** `instanceof ControlError` types the code `any` (the class is generic); this keeps it an ErrorCode. */
export function isControlError(err: unknown): err is ControlError {
  return err instanceof ControlError;
}

export class ConfigurationError extends ControlError<ConfigurationCode> {
  override readonly name = 'ConfigurationError';
}

/** The codes of a store that could not be reached or written (nothing changed; retrying may work). */
const UNAVAILABLE: ReadonlySet<StoreCode> = new Set([
  'STORE_UNAVAILABLE',
  'STORE_TLS_REJECTED',
  'STORE_CLOSED',
  'STORE_FULL',
]);

export class StoreError extends ControlError<StoreCode> {
  override readonly name: string = 'StoreError';
  /** The store could not be reached or written: the error already says what failed and what to do. */
  get unavailable(): boolean {
    return UNAVAILABLE.has(this.code);
  }
}

export class RequestError extends ControlError<RequestCode> {
  override readonly name = 'RequestError';
}

export class UsageError extends ControlError<UsageCode> {
  override readonly name = 'UsageError';
}

/** How many of a refused input's issues a 400 names: enough to fix a request, few enough that a large invalid body
 * (100,000 bad array elements) is not answered with hundreds of megabytes built in memory (T6 F-A). */
export const INVALID_REQUEST_MAX_ISSUES = 10;
/** The longest a named issue may be in the answer (a path into a deep body, a long message). */
const ISSUE_MAX_CHARS = 300;

/** A request's input its route's schemas refused (the client's fault: 400). Names at most
 * INVALID_REQUEST_MAX_ISSUES issues, then how many more there are. */
export function invalidRequest(err: z.ZodError): RequestError {
  const named = err.issues.slice(0, INVALID_REQUEST_MAX_ISSUES).map((i) => {
    const text = `${i.path.length > 0 ? i.path.join('.') : '(body)'}: ${i.message}`;
    return text.length > ISSUE_MAX_CHARS ? `${text.slice(0, ISSUE_MAX_CHARS)}…` : text;
  });
  const more = err.issues.length - named.length;
  const errors = more > 0 ? [...named, `and ${more} more issue${more === 1 ? '' : 's'}`] : named;
  return new RequestError('INVALID_REQUEST', `The request is not valid: ${errors.join('; ')}`, errors);
}
