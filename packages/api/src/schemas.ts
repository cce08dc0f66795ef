/**
 * Wire schemas of the Flocker control service: the public v1 REST API
 * (compatible with ClusterHQ Flocker's documented API) and the agent channel.
 * Every process validates what it receives against these; types derive from them.
 */
import { z } from 'zod';

/** Flocker's lower bound on maximum_size: 64 MiB. */
export const MINIMUM_DATASET_SIZE = 64 * 1024 * 1024;
export const METADATA_MAX_KEYS = 16;
/** The longest lease a request may ask for, in seconds (about 31,700 years; null is "never"). */
export const MAX_LEASE_SECONDS = 1e12;
export const METADATA_MAX_LENGTH = 256;
/** Docker volume names live in metadata.name (as the original Flocker plugin did). */
export const METADATA_NAME_KEY = 'name';
export const METADATA_PROFILE_KEY = 'clusterhq:flocker:profile';

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A UUID in its canonical form: validated, then lower-cased. Every identity the service
 * compares or stores (dataset, node, lease, container node) passes through this schema,
 * so `3F9A…` and `3f9a…` are one id everywhere (authorization and store alike).
 * Braces and `urn:uuid:` forms are not UUIDs here (Flocker v1 clients send the bare form).
 */
export const Uuid = z.uuid({ message: 'must be a UUID such as 3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f' }).toLowerCase();

/** Lower-cases a string that is a UUID; anything else is returned as it is. */
export function canonicalId(value: string): string {
  return UUID_PATTERN.test(value) ? value.toLowerCase() : value;
}

/**
 * An opaque identifier chosen elsewhere (an era, a compute instance id): kept as sent,
 * except that a UUID is lower-cased, so the same id in another case is the same id.
 */
export const OpaqueId = z.string().min(1).overwrite(canonicalId);

/** Keys that would reach an object's prototype if assigned: refused wherever input becomes an object's keys. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);
export const RESERVED_KEY_MESSAGE =
  'the keys __proto__, constructor and prototype are reserved (they would reach the object prototype)';
/** A refinement for record keys: `z.string().refine(isSafeKey, RESERVED_KEY_MESSAGE)`. */
export function isSafeKey(key: string): boolean {
  return !FORBIDDEN_KEYS.has(key);
}
export const SafeKey = z.string().refine(isSafeKey, { message: RESERVED_KEY_MESSAGE });

/** Options for z.record: a refused key is reported by its own message (zod alone says "Invalid key in record"). */
export const KEY_MESSAGES = {
  error: (issue: z.core.$ZodRawIssue): string | undefined =>
    issue.code === 'invalid_key' ? issue.issues[0]?.message : undefined,
};

/**
 * Where parsed JSON holds a `__proto__` key (JSON.parse makes it an own property; zod's
 * records skip it silently and `{...}`/assignment would treat it as the prototype), as a
 * path; undefined when there is none. Iterative: any depth.
 */
export function findProtoKey(value: unknown): (string | number)[] | undefined {
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value, path: [] }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const v = item.value;
    if (typeof v !== 'object' || v === null) continue;
    if (Array.isArray(v)) {
      v.forEach((x, i) => stack.push({ value: x, path: [...item.path, i] }));
      continue;
    }
    if (Object.hasOwn(v, '__proto__')) return [...item.path, '__proto__'];
    for (const [k, x] of Object.entries(v))
      if (typeof x === 'object' && x !== null) stack.push({ value: x, path: [...item.path, k] });
  }
  return undefined;
}
export const DatasetId = Uuid.describe('An identifier, unique across the cluster, of a dataset (a UUID).');
export const NodeUuid = Uuid.describe('The UUID of a node (a host running a dataset agent).');

export const MaximumSize = z
  .number()
  .int({ message: 'must be a whole number of bytes' })
  .min(MINIMUM_DATASET_SIZE, { message: `must be at least ${MINIMUM_DATASET_SIZE} bytes (64 MiB)` })
  .max(Number.MAX_SAFE_INTEGER)
  .describe('The upper limit on how much data the dataset may hold, in bytes.');

export const Metadata = z
  .record(
    z
      .string()
      .min(1)
      .max(METADATA_MAX_LENGTH, { message: `metadata keys are at most ${METADATA_MAX_LENGTH} characters` })
      .refine(isSafeKey, { message: RESERVED_KEY_MESSAGE }),
    z.string().max(METADATA_MAX_LENGTH, { message: `metadata values are at most ${METADATA_MAX_LENGTH} characters` }),
    KEY_MESSAGES,
  )
  .refine((m) => Object.keys(m).length <= METADATA_MAX_KEYS, {
    message: `metadata has at most ${METADATA_MAX_KEYS} keys`,
  })
  .describe('Free-form key/value strings describing the dataset; not interpreted by Flocker.');

// ---- Public v1 API ---------------------------------------------------------

export const VersionResponse = z.object({ flocker: z.string() }).strict();

export const ErrorResponse = z
  .object({
    description: z.string(),
    code: z.string().optional().describe('A stable machine-readable error code.'),
    errors: z.array(z.string()).optional(),
  })
  .describe('Every error the API returns has this body.');

export const DatasetConfiguration = z
  .object({
    dataset_id: DatasetId,
    primary: NodeUuid,
    maximum_size: MaximumSize.nullable().optional(),
    metadata: Metadata,
    deleted: z.boolean(),
  })
  .strict();

export const CreateDatasetRequest = z
  .object({
    primary: NodeUuid,
    dataset_id: DatasetId.optional(),
    maximum_size: MaximumSize.nullable().optional(),
    metadata: Metadata.optional(),
  })
  .strict();

export const UpdateDatasetRequest = z
  .object({
    primary: NodeUuid.optional(),
    maximum_size: MaximumSize.nullable().optional(),
  })
  .strict();

export const DatasetState = z
  .object({
    dataset_id: DatasetId,
    primary: NodeUuid.optional().describe('The node where the dataset is attached; absent when attached nowhere.'),
    maximum_size: z.number().int().nullable().optional(),
    path: z.string().optional().describe('Where the dataset is mounted on its primary node.'),
  })
  .strict();

export const NodeSummary = z.object({ uuid: NodeUuid, host: z.string() }).strict();
export const EraResponse = z.object({ uuid: NodeUuid }).strict();

export const Lease = z
  .object({
    dataset_id: DatasetId,
    node_uuid: NodeUuid,
    expires: z.number().nullable().describe('Seconds until the lease expires, or null for never.'),
    pinned: z
      .boolean()
      .optional()
      .describe(
        'A pinned lease is kept when its node is declared dead (manual failover); others end after the lease grace.',
      ),
  })
  .strict();

export const CreateLeaseRequest = z
  .object({
    dataset_id: DatasetId,
    node_uuid: NodeUuid,
    // Bounded so that its end (now + expires) is a finite time: 1e308 s would store an infinite expiry.
    expires: z
      .number()
      .positive()
      .max(MAX_LEASE_SECONDS, { message: `must be at most ${MAX_LEASE_SECONDS} seconds` })
      .nullable(),
    pinned: z.boolean().optional().describe('Keep the lease even when its node is declared dead (default false).'),
  })
  .strict();

/** Something the control service decided on its own (failover), kept for `flocker status` and the UI. */
export const ClusterEvent = z
  .object({
    time: z.string().describe('ISO 8601 time of the event.'),
    kind: z.enum(['node_dead', 'node_back', 'lease_released_dead_node']),
    node_uuid: NodeUuid.optional(),
    dataset_id: DatasetId.optional(),
    message: z.string(),
  })
  .strict();

export const ClusterEventsResponse = z.object({ events: z.array(ClusterEvent) }).strict();

// ---- Agent channel ---------------------------------------------------------

/** What a node has of one dataset. */
export const ManifestationState = z
  .object({
    dataset_id: DatasetId,
    blockdevice_id: z.string(),
    size: z.number().int().nonnegative(),
    status: z.enum(['attached', 'mounted']),
    device_path: z.string().optional(),
    path: z.string().optional().describe('Mount path, when mounted.'),
  })
  .strict();

/** One volume of the storage backend, as a node's driver lists it. */
export const BackendVolume = z
  .object({
    blockdevice_id: z.string(),
    dataset_id: DatasetId,
    size: z.number().int().nonnegative(),
    attached_to: z
      .string()
      .overwrite(canonicalId)
      .nullable()
      .describe('Compute instance id the volume is attached to (a UUID is lower-cased).'),
  })
  .strict();

export const ActionError = z
  .object({
    dataset_id: DatasetId.optional(),
    action: z.string(),
    code: z.string(),
    message: z.string(),
    attempts: z.number().int().nonnegative(),
    since: z.string().describe('ISO 8601 time of the first failure in this run.'),
  })
  .strict();

/** Sent by a dataset agent whenever what it observes changes (and periodically). */
export const NodeReport = z
  .object({
    uuid: NodeUuid,
    era: OpaqueId.describe(
      "Identifies the node's current boot; a new era means the node rebooted (a UUID is lower-cased).",
    ),
    host: z.string().min(1).describe('Address of the node.'),
    instance_id: OpaqueId.describe(
      "The storage backend's id for this node's compute instance (a UUID is lower-cased). No two live nodes may report the same one.",
    ),
    backend: z.string().min(1),
    manifestations: z.array(ManifestationState),
    /** Volumes the backend lists; on a shared backend any node can report them all. */
    volumes: z.array(BackendVolume).optional(),
    errors: z.array(ActionError).default([]),
    max_volume_size: z
      .number()
      .int()
      .positive()
      .optional()
      .describe("The largest volume (bytes) this node's storage backend can create; absent when unknown."),
    fencing: z
      .object({
        state: z.enum(['fenced', 'recovered']),
        since: z.string().describe('ISO 8601 time the node fenced itself (lost contact with the control service).'),
        reason: z.string(),
        stopped_containers: z.array(z.string()).optional(),
        removed_mounts: z.array(z.string()).optional(),
      })
      .strict()
      .optional()
      .describe('Set after the node fenced itself for lack of contact: what it stopped and cleaned up.'),
  })
  .strict();

export const NodeState = NodeReport.extend({
  alive: z.boolean(),
  last_seen: z.string().describe('ISO 8601 time of the last report.'),
  dead_since: z.string().optional().describe('ISO 8601 time the node was declared dead; absent while alive.'),
}).strict();

export const ReportResponse = z
  .object({
    generation: z.string(),
    configuration_tag: z
      .string()
      .optional()
      .describe(
        "The configuration's tag when the report was taken: an agent whose snapshot has another knows it is stale.",
      ),
    node_timeout_seconds: z.number().positive().optional(),
    lease_grace_seconds: z.number().nonnegative().optional(),
  })
  .strict();

/** What an agent receives: the desired configuration and the cluster state. */
export const ClusterSnapshot = z
  .object({
    generation: z.string().describe('Opaque token; changes whenever configuration or state changes.'),
    configuration_tag: z.string(),
    datasets: z.array(DatasetConfiguration),
    leases: z.array(Lease),
    nodes: z.array(NodeState),
    node_timeout_seconds: z
      .number()
      .positive()
      .optional()
      .describe('After this long without a report a node is declared dead.'),
    lease_grace_seconds: z
      .number()
      .nonnegative()
      .optional()
      .describe('How long after a node is declared dead its (unpinned) leases are released.'),
  })
  .strict();

export type DatasetConfiguration = z.infer<typeof DatasetConfiguration>;
export type CreateDatasetRequest = z.infer<typeof CreateDatasetRequest>;
export type UpdateDatasetRequest = z.infer<typeof UpdateDatasetRequest>;
export type DatasetState = z.infer<typeof DatasetState>;
export type NodeSummary = z.infer<typeof NodeSummary>;
export type Lease = z.infer<typeof Lease>;
export type CreateLeaseRequest = z.infer<typeof CreateLeaseRequest>;
export type ManifestationState = z.infer<typeof ManifestationState>;
export type BackendVolume = z.infer<typeof BackendVolume>;
export type ActionError = z.infer<typeof ActionError>;
export type NodeReport = z.infer<typeof NodeReport>;
export type NodeState = z.infer<typeof NodeState>;
export type ClusterSnapshot = z.infer<typeof ClusterSnapshot>;
export type ErrorResponse = z.infer<typeof ErrorResponse>;
export type ClusterEvent = z.infer<typeof ClusterEvent>;
export type VersionResponse = z.infer<typeof VersionResponse>;
