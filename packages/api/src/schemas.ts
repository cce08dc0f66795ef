/**
 * Wire schemas of the Flocker control service: the public v1 REST API
 * (compatible with ClusterHQ Flocker's documented API) and the agent channel.
 * Every process validates what it receives against these; types derive from them.
 */
import { z } from 'zod';
import { MUTABLE_METADATA_KEYS, snapshotScheduleIssues } from './snapshotSchedule';

/** Flocker's lower bound on maximum_size: 64 MiB. */
export const MINIMUM_DATASET_SIZE = 64 * 1024 * 1024;
export const METADATA_MAX_KEYS = 16;
/** The longest lease a request may ask for, in seconds (about 31,700 years; null is "never"). */
export const MAX_LEASE_SECONDS = 1e12;
export const METADATA_MAX_LENGTH = 256;
/** Docker volume names live in metadata.name (as the original Flocker plugin did). */
export const METADATA_NAME_KEY = 'name';
export const METADATA_PROFILE_KEY = 'clusterhq:flocker:profile';
/** The file system a dataset is formatted with (issue 20): one of DATASET_FILESYSTEMS, ext4 when absent. */
export const METADATA_FILESYSTEM_KEY = 'clusterhq:flocker:filesystem';
export const DATASET_FILESYSTEMS = ['ext4', 'xfs'] as const;
/**
 * On a clone's implicit snapshot (the snapshot the control service takes of the source for a clone of a dataset):
 * the clone's dataset id. The control service writes it; the API client's repeated-create check and the CSI driver
 * read it. Stored in every cluster's state: never changes.
 */
export const METADATA_CLONE_KEY = 'clusterhq:flocker:clone';
/** Local storage (issue 24): "1" keeps a standby replica of the dataset on another node. */
export const METADATA_REPLICAS_KEY = 'clusterhq:flocker:replicas';
/** Seconds between the replica's incremental snapshots (default: the agent's, 30). */
export const METADATA_REPLICA_INTERVAL_KEY = 'clusterhq:flocker:replica-interval';
/**
 * "true": a move off a dead primary promotes the replica's newest snapshot (the writes after it are lost). One-shot:
 * the control service removes it once the move it was given for completed, or at the next change of primary.
 */
export const METADATA_ACCEPT_REPLICA_LOSS_KEY = 'clusterhq:flocker:accept-replica-loss';
/**
 * Local storage (issue 24), set by the control service only: the node that may hold the dataset's
 * data, recorded in the same commit as every change of its primary (a node other than the primary
 * holds the live copy only after one). Node states are kept in memory, so after a restart of the
 * service the holder may be shown nowhere: the new primary's agent waits for it instead of making a
 * new, empty dataset (dataset-agent localChanges). Absent: nobody may hold it but the primary.
 */
export const METADATA_DATA_NODE_KEY = 'clusterhq:flocker:data-node';
/** "true": the primary starts the dataset empty although the data-node marker says its data may be elsewhere (one-shot, as above). */
export const METADATA_ACCEPT_DATA_LOSS_KEY = 'clusterhq:flocker:accept-data-loss';
/**
 * Local storage, set by the control service only: the nodes (uuids, comma-separated) whose divergent copy a loss the
 * user accepted covers. Recorded in the commit that removes a consumed one-shot opt-in above (the old primary a
 * failover left, a dead holder mounted over); a node is taken off once its report lists no live copy of the dataset.
 * That node's agent keeps a copy branched from the primary's aside instead of refusing TWO_LIVE_COPIES; any other
 * branch is still refused (a move's source written after its final snapshot: writes nobody gave up).
 */
export const METADATA_ACCEPTED_LOSS_FROM_KEY = 'clusterhq:flocker:accepted-loss-from';
/** The nodes an accepted-loss marker names (its value split; empty when absent). */
export function acceptedLossNodes(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
}
/** Keys only the control service sets: refused in a client's create or update, not counted in METADATA_MAX_KEYS. */
export const SYSTEM_METADATA_KEYS: readonly string[] = [METADATA_DATA_NODE_KEY, METADATA_ACCEPTED_LOSS_FROM_KEY];
export const SYSTEM_METADATA_KEY_MESSAGE = `${METADATA_DATA_NODE_KEY} is set by the control service (the node that may hold a local dataset's data, recorded at each move): a client may not set or remove it`;
/** Keys an update may set besides the snapshot schedule's. */
const UPDATABLE_METADATA_KEYS: readonly string[] = [
  ...MUTABLE_METADATA_KEYS,
  METADATA_REPLICAS_KEY,
  METADATA_REPLICA_INTERVAL_KEY,
  METADATA_ACCEPT_REPLICA_LOSS_KEY,
  METADATA_ACCEPT_DATA_LOSS_KEY,
];

/** How many of the metadata's keys count toward METADATA_MAX_KEYS: all but the control service's own. */
export function clientMetadataKeyCount(metadata: Readonly<Record<string, unknown>>): number {
  let n = 0;
  for (const k of Object.keys(metadata)) if (!SYSTEM_METADATA_KEYS.includes(k)) n++;
  return n;
}
export type DatasetFilesystem = (typeof DATASET_FILESYSTEMS)[number];
/** mkfs.xfs refuses file systems below 300 MB (xfsprogs >= 5.19): an xfs dataset is at least 300 MiB. */
export const XFS_MINIMUM_SIZE = 300 * 1024 * 1024;

/** The file system a dataset's metadata asks for; undefined for a value no agent supports. */
export function datasetFilesystem(metadata: Readonly<Record<string, string>>): DatasetFilesystem | undefined {
  const v = metadata[METADATA_FILESYSTEM_KEY] ?? 'ext4';
  return DATASET_FILESYSTEMS.find((f) => f === v);
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A UUID in its canonical form: validated, then lower-cased. Every identity the service
 * compares or stores (dataset, node, lease, container node) passes through this schema,
 * so `3F9A…` and `3f9a…` are one id everywhere (authorization and store alike).
 * Braces and `urn:uuid:` forms are not UUIDs here (Flocker v1 clients send the bare form). Any hex digits are
 * (z.guid, not z.uuid's RFC 4122 variant and version): Flocker v1 took any 36-character dataset_id.
 */
export const Uuid = z
  .guid({
    // A missing field is not a malformed one: say it is required (zod reports both as this schema's issue).
    error: (issue) =>
      issue.input === undefined
        ? 'required: a UUID such as 3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f'
        : 'must be a UUID such as 3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f',
  })
  .toLowerCase();

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
 * `schema` (a record, or a union of a record and a list) refusing an object of more than `max` own keys, or a list of
 * more than `max` elements, with one issue before any entry is checked: a record's own checks run only after every
 * entry was parsed (100,000 entries of a 1 MiB body: ~0.3 s and an issue per bad one), and a union names no option's
 * issue. Same input and output types and JSON Schema as `schema` (T6 F-A).
 */
export function atMostEntries<R extends z.ZodType>(
  max: number,
  message: string,
  schema: R,
): z.ZodPreprocess<R, z.input<R>> {
  return z.preprocess<unknown, R, z.input<R>>((input, ctx) => {
    const value: unknown = input; // anything reaches a preprocess; `schema` checks its type
    if (typeof value !== 'object' || value === null) return value;
    let n = 0;
    if (Array.isArray(value)) n = value.length;
    else for (const key in value) if (Object.hasOwn(value, key) && ++n > max) break;
    if (n > max) ctx.addIssue({ code: 'too_big', origin: 'object', maximum: max, inclusive: true, input, message });
    return value;
  }, schema);
}

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
export const SnapshotId = Uuid.describe('An identifier, unique across the cluster, of a snapshot (a UUID).');

const MAXIMUM_SIZE_MESSAGE = `must be at most ${Number.MAX_SAFE_INTEGER} bytes (8 PiB)`;
const MINIMUM_SIZE_MESSAGE = `must be at least ${MINIMUM_DATASET_SIZE} bytes (64 MiB)`;
export const MaximumSize = z
  .number()
  // zod's int() refuses whole numbers beyond +-2^53 too: say the bound they pass (the largest, or below -2^53 the
  // smallest), and only once (abort).
  .int({
    error: (issue) =>
      Number.isInteger(issue.input)
        ? (issue.input as number) > 0
          ? MAXIMUM_SIZE_MESSAGE
          : MINIMUM_SIZE_MESSAGE
        : 'must be a whole number of bytes',
    abort: true,
  })
  .min(MINIMUM_DATASET_SIZE, { message: MINIMUM_SIZE_MESSAGE })
  .max(Number.MAX_SAFE_INTEGER, { message: MAXIMUM_SIZE_MESSAGE })
  // Any whole number of bytes, not only multiples of 1 KiB as Flocker v1 required (s23 USER-T F8): Kubernetes' Flocker
  // plugins (flocker-go, and this CSI driver) pass a claim's bytes as they are ("1G" is 10^9), and a node rounds up
  // anyway. Kept as asked for: clients compare it with what they sent (CSI's capacity range on a repeated create).
  .describe(
    "The upper limit on how much data the dataset may hold, in bytes: any whole number from 64 MiB. The primary's node rounds it up to its backend's allocation unit (1 MiB on loopback, 1 GiB on EBS or Cinder); the dataset's state (GET /v1/state/datasets) shows the size it really has.",
  );

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
  .refine((m) => clientMetadataKeyCount(m) <= METADATA_MAX_KEYS, {
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

// ---- Backups to object storage (issue 20) -------------------------------------

/**
 * The metadata keys of a backup's implicit snapshot (a backup request is a snapshot carrying
 * them): the target, and how many of the dataset's backups to keep there.
 */
export const BACKUP_TARGET_KEY = 'clusterhq:flocker:backup-target';
export const BACKUP_KEEP_KEY = 'clusterhq:flocker:backup-keep';

/** Where backups go: an S3 URL (the agents hold the endpoint and credentials). At most a metadata value's length. */
export const BackupTarget = z
  .string()
  .max(METADATA_MAX_LENGTH, { message: `a backup target is at most ${METADATA_MAX_LENGTH} characters` })
  .regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/[^?#\s]*)?$/, {
    message: 'must be s3://bucket[/prefix] (a bucket name as S3 allows it)',
  })
  .describe("An S3 URL, s3://bucket[/prefix]; the agents' agent.yml (backup:) says which S3 endpoint and credentials.");

/** The id of a finished backup in the store: `<dataset id>/<stamp>-<snapshot id>` (@flocker/backup). */
export const StoredBackupId = z
  .string()
  .min(1)
  .max(METADATA_MAX_LENGTH)
  .regex(/^[0-9a-f-]{36}\/[0-9]{8}T[0-9]{9}Z-[0-9a-f-]{36}$/, {
    message: 'must be a backup id as `flocker backup list` shows it (<dataset id>/<stamp>-<snapshot id>)',
  })
  .describe('A finished backup in the store: `<dataset id>/<stamp>-<snapshot id>`, as `flocker backup list` shows it.');

/** A restore: the new dataset starts with a stored backup's data. */
export const SourceBackup = z
  .object({
    target: BackupTarget,
    backup_id: StoredBackupId,
    restored: z
      .literal(true)
      .optional()
      .describe(
        'Set by the control service once the primary reported the dataset mounted: the restore is over and is never run again (also not on another node).',
      ),
  })
  .strict();

export const DatasetConfiguration = z
  .object({
    dataset_id: DatasetId,
    primary: NodeUuid,
    maximum_size: MaximumSize.nullable().optional(),
    metadata: Metadata,
    deleted: z.boolean(),
    source_snapshot_id: SnapshotId.optional().describe(
      'The snapshot this dataset was cloned from (absent: created empty).',
    ),
    source_backup: SourceBackup.optional().describe(
      'The stored backup this dataset was restored from (absent: not a restore).',
    ),
  })
  .strict();

/**
 * A local user of a lease on its node ("docker" for the Docker plugin, "csi" for the CSI node
 * plugin): each holds its own share, and the lease ends when the last one lets go.
 */
export const LeaseHolder = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,31}$/, { message: 'must be 1-32 lower-case letters, digits or -, starting with a letter' })
  .describe('A local user of the lease on its node, such as docker or csi.');

/**
 * The lease a create may ask for (issue 23): granted to the new dataset's primary in the create's own change of the
 * configuration, where a lease POST after the create took a commit of its own (the Docker plugin's first Mount of a
 * new volume). Never expiring, never pinned.
 */
export const CreateDatasetLease = z
  .object({
    holder: LeaseHolder.optional().describe(
      'Who on the primary takes the lease (docker, csi), as POST /v1/configuration/leases `holder`. Without: an unnamed share that only a release without holder ends.',
    ),
    release_on_request: z
      .boolean()
      .optional()
      .describe(
        'true: the primary promises to let go of the lease when asked while nothing uses it, as POST /v1/configuration/leases `release_on_request`.',
      ),
  })
  .strict();

export const CreateDatasetRequest = z
  .object({
    primary: NodeUuid,
    dataset_id: DatasetId.optional(),
    maximum_size: MaximumSize.nullable().optional(),
    metadata: Metadata.optional(),
    source_snapshot_id: SnapshotId.optional().describe(
      "Clone: the new dataset starts with this snapshot's data; maximum_size defaults to the snapshot's size and may not be smaller.",
    ),
    source_dataset_id: DatasetId.optional().describe(
      "Clone of a dataset as it is now: an implicit snapshot of it is asked for (listed with the others, deleted by you), and the new dataset starts with its data; maximum_size defaults to the source's and may not be smaller. Not together with source_snapshot_id.",
    ),
    source_backup: SourceBackup.omit({ restored: true })
      .optional()
      .describe(
        "Restore: the primary's agent creates the volume, writes the stored backup onto it (every chunk verified) and mounts it only when all of it verified. maximum_size is required (at least the backup's size: `flocker backup list` shows it). Not together with source_snapshot_id or source_dataset_id.",
      ),
    lease: CreateDatasetLease.optional().describe(
      "A lease for the new dataset's primary (never expiring, not pinned), granted in the create's own change of the configuration: one request and one commit where a create and a lease took two. Refused as POST /v1/configuration/leases would refuse that lease (409 NODE_DEAD: the primary is declared dead), and then nothing is created. With a node's certificate the primary is that node (as for any create by a node). An extension of Flocker v1 (a service before it refuses the field: 400).",
    ),
    unique_name: z
      .boolean()
      .optional()
      .describe(
        'true: refuse the create (409 DATASET_NAME_IN_USE, naming the dataset) when a dataset not deleted already has this metadata name. The check and the create are one change of the configuration (on every replica of a shared store), so creates of one name at once that all ask for it make one dataset. Needs a metadata name. Without it names are not checked, as in Flocker v1.',
      ),
  })
  .strict()
  .superRefine((req, ctx) => {
    if (req.unique_name === true && req.metadata?.[METADATA_NAME_KEY] === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['unique_name'],
        message: `unique_name needs a metadata ${METADATA_NAME_KEY} to keep unique`,
      });
    }
    if (req.source_snapshot_id !== undefined && req.source_dataset_id !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['source_dataset_id'],
        message: 'give source_snapshot_id or source_dataset_id, not both',
      });
    }
    if (req.source_backup !== undefined) {
      if (req.source_snapshot_id !== undefined || req.source_dataset_id !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['source_backup'],
          message: 'give source_backup or a snapshot or dataset to clone, not both',
        });
      }
      if (req.maximum_size == null) {
        ctx.addIssue({
          code: 'custom',
          path: ['maximum_size'],
          message: "a restore needs maximum_size: at least the backup's size (`flocker backup list` shows it)",
        });
      }
    }
    const metadata = req.metadata ?? {};
    for (const key of SYSTEM_METADATA_KEYS)
      if (Object.hasOwn(metadata, key))
        ctx.addIssue({ code: 'custom', path: ['metadata', key], message: SYSTEM_METADATA_KEY_MESSAGE });
    const fs = datasetFilesystem(metadata);
    if (fs === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['metadata', METADATA_FILESYSTEM_KEY],
        message: `unsupported file system ${JSON.stringify(metadata[METADATA_FILESYSTEM_KEY])}; use one of ${DATASET_FILESYSTEMS.join(', ')}`,
      });
    } else if (fs === 'xfs' && req.maximum_size != null && req.maximum_size < XFS_MINIMUM_SIZE) {
      ctx.addIssue({
        code: 'custom',
        path: ['maximum_size'],
        message: `an xfs dataset needs at least ${XFS_MINIMUM_SIZE} bytes (300 MiB)`,
      });
    }
    // The grammar here; the minimum interval is the control service's (it has a test-only override).
    for (const issue of snapshotScheduleIssues(metadata, 0)) {
      ctx.addIssue({ code: 'custom', path: ['metadata', issue.key], message: issue.message });
    }
  });

export const UpdateDatasetRequest = z
  .object({
    primary: NodeUuid.optional(),
    maximum_size: MaximumSize.nullable().optional(),
    metadata: z
      .record(
        z
          .string()
          .refine((k) => !SYSTEM_METADATA_KEYS.includes(k), { message: SYSTEM_METADATA_KEY_MESSAGE, abort: true })
          .refine((k) => UPDATABLE_METADATA_KEYS.includes(k), {
            message: `only ${UPDATABLE_METADATA_KEYS.join(', ')} can change after creation`,
          }),
        z
          .string()
          .max(METADATA_MAX_LENGTH, { message: `metadata values are at most ${METADATA_MAX_LENGTH} characters` })
          .nullable(),
        KEY_MESSAGES,
      )
      .optional()
      .describe(
        `Merged into the dataset's metadata: a string sets the key, null removes it. Only ${UPDATABLE_METADATA_KEYS.join(', ')} (the snapshot schedule, issue 20; a local dataset's standby replica and loss opt-ins, issue 24) can change.`,
      ),
    when_released: z
      .boolean()
      .optional()
      .describe(
        "A move (a new primary) while the dataset's primary holds its lease: accepted when that node reports a local backend (issue 24). Its agent copies the data to the new primary while the volume stays in use there, and finishes the move only once every user there has let it go (the lease is left as it is: released by its holder as usual). Otherwise the lease refuses the move as without it (409 LEASE_HELD, saying why). Not recorded; an extension of Flocker v1 (a service before it refuses the field: 400).",
      ),
  })
  .strict()
  .superRefine((req, ctx) => {
    for (const issue of snapshotScheduleIssues(req.metadata ?? {}, 0)) {
      ctx.addIssue({ code: 'custom', path: ['metadata', issue.key], message: issue.message });
    }
  });

/** A copy a node kept aside (NodeReport.kept_aside), as the dataset's state shows it: which node, and where there. */
export const DatasetKeptAside = z
  .object({
    node_uuid: NodeUuid.describe('The node holding the copy.'),
    path: z
      .string()
      .min(1)
      .max(4096)
      .describe('Where it is on that node (btrfs: a read-only subvolume; ZFS: a read-only file system).'),
  })
  .strict();

/**
 * A grow asked for (maximum_size) that waits until nothing uses the volume (TN F3): the agent reports it instead of
 * letting the grown block device pass for a grown volume. Absent when no grow waits (the v1 shape unchanged).
 */
export const GrowPending = z
  .object({
    reason: z
      .enum(['online_resize_refused', 'detach_required'])
      .describe(
        'online_resize_refused: the block device is grown, its file system grows only unmounted (ext4 where the agent lacks CAP_SYS_RESOURCE); detach_required: the backend grows a volume only detached (Cinder extend_attached: reattach), so the block device is not grown yet. Either way the grow happens once no container or pod uses the volume (no lease on it).',
      ),
  })
  .strict()
  .describe('A grow that waits for the volume to be unused; absent when none waits.');

export const DatasetState = z
  .object({
    dataset_id: DatasetId,
    primary: NodeUuid.optional().describe('The node where the dataset is attached; absent when attached nowhere.'),
    maximum_size: z.number().int().nullable().optional(),
    path: z.string().optional().describe('Where the dataset is mounted on its primary node.'),
    used_bytes: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe("Bytes used on the dataset's file system, as its primary node last measured it (when mounted there)."),
    kept_aside: z
      .array(DatasetKeptAside)
      .optional()
      .describe(
        "Local storage (issue 24): copies of the dataset live nodes kept aside, read-only, before letting go of their own: each held acknowledged writes the dataset's live copy lacks (an old primary back after a failover, two live copies). Kept until the dataset is deleted; the node's state (NodeReport.kept_aside) lists the same. Absent when none.",
      ),
    grow_pending: GrowPending.optional().describe(
      "A grow that waits until the volume is unused (its primary node's report): maximum_size is then the block device's size, not yet what the file system offers (online_resize_refused) or not yet grown (detach_required). Absent when no grow waits.",
    ),
  })
  .strict();

// ---- Snapshots (issue 20) ----------------------------------------------------

/** A snapshot in the desired configuration: asked for through the API, taken by the source's primary node. */
export const SnapshotConfiguration = z
  .object({
    snapshot_id: SnapshotId,
    dataset_id: DatasetId.describe('The dataset the snapshot is (to be) taken of.'),
    metadata: Metadata.describe('Free-form key/value strings; the `name` key is unique among live snapshots.'),
    created_at: z.string().describe('ISO 8601 time the snapshot was requested.'),
    deleted: z
      .literal(true)
      .optional()
      .describe('Present once the snapshot is deleted: agents destroy it; it is dropped when no node reports it.'),
  })
  .strict();

export const CreateSnapshotRequest = z
  .object({
    dataset_id: DatasetId,
    snapshot_id: SnapshotId.optional(),
    metadata: Metadata.optional(),
  })
  .strict();

export const SnapshotStatus = z
  .enum(['creating', 'ready', 'error'])
  .describe('creating: taken, not yet usable for a clone; ready: usable; error: the backend failed it.');

/** What the storage backends hold: one entry per snapshot, from the nodes' reports. */
export const SnapshotState = z
  .object({
    snapshot_id: SnapshotId,
    dataset_id: DatasetId,
    size: z.number().int().nonnegative().describe('Bytes of the source volume when the snapshot was taken.'),
    created_at: z.string().describe('ISO 8601 time the backend took the snapshot.'),
    status: SnapshotStatus,
  })
  .strict();

/** One snapshot the storage backend holds, as a node's driver lists it. */
export const BackendSnapshot = SnapshotState.extend({
  backend_id: z.string().describe("The backend's own id of the snapshot (EBS snap-…, a Cinder UUID)."),
  source_blockdevice_id: z.string().describe('The volume it was taken of (it may since have been destroyed).'),
}).strict();

export const NodeSummary = z.object({ uuid: NodeUuid, host: z.string() }).strict();
/** GET /v1/state/nodes: a node as its agent reports it (Flocker's uuid and host, plus what a scheduler needs). */
export const NodeStateSummary = NodeSummary.extend({
  zone: z.string().optional().describe('The storage zone the node is in (see NodeReport.zone).'),
  available_bytes: z
    .number()
    .int()
    .nonnegative()
    .optional()
    .describe("Free capacity (bytes) of the node's storage backend, where it has a figure."),
  version: z.string().optional().describe("The release of the node's dataset agent, as it reports it."),
}).strict();
export const EraResponse = z.object({ uuid: NodeUuid }).strict();

/**
 * How an operator names a node to forget (DELETE /v1/configuration/nodes/:node): its UUID, or the address (host) it reported.
 * A host that several known nodes reported is refused (400 AMBIGUOUS_NODE): name it by its UUID then.
 */
export const NodeKey = z.string().min(1).max(255).describe('A node: its UUID, or the address (host) it reported.');

/** What forgetting a node removed, and what still names it (DELETE /v1/configuration/nodes/:node). */
export const ForgottenNode = z
  .object({
    uuid: NodeUuid,
    host: z.string().optional().describe('The address it last reported, if known.'),
    accepted_loss_datasets: z
      .array(DatasetId)
      .describe(
        'Datasets whose accepted-loss-from marker named it: no longer (its branch, if it comes back, is kept).',
      ),
    data_node_datasets: z
      .array(DatasetId)
      .describe(
        'Datasets whose data-node marker still names it (local storage: their data may be on it; kept, so an agent waits for it rather than start them empty).',
      ),
  })
  .strict();
export type ForgottenNode = z.infer<typeof ForgottenNode>;

/** Who asked the holder of a `release_on_request` lease to let go of it, and when (the control service's clock). */
export const LeaseReleaseRequest = z
  .object({
    by: z
      .union([NodeUuid, z.literal('api')])
      .describe(
        'The node whose request asked for the lease (its lease, a move to it, a delete), or api (an API user).',
      ),
    at: z.iso.datetime({ offset: true }).describe('When the control service recorded the request (ISO 8601).'),
  })
  .strict();

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
    holders: z
      .array(LeaseHolder)
      .optional()
      .describe(
        'The named local users holding the lease on its node; the lease ends when the last lets go. Absent when only acquires without a holder (Flocker v1 clients, the CLI) hold it.',
      ),
    unnamed_holder: z
      .boolean()
      .optional()
      .describe(
        'Present (true) beside holders when an acquire without a holder holds the lease too: only a release without a holder ends that share.',
      ),
    release_on_request: z
      .literal(true)
      .optional()
      .describe(
        "Present (true) when the holder promised to let go of the lease when asked while nothing uses it (the Docker plugin keeps an idle volume's lease so): a request this lease would refuse asks for it and waits a few seconds instead (packages/control-api/README.md, the lease hand-over). Absent otherwise.",
      ),
    release_requested: LeaseReleaseRequest.optional().describe(
      'Present while someone asked the holder of a release_on_request lease to let go of it; cleared when the holder declines.',
    ),
  })
  .strict();

/** The answer to a release: the lease as released, or (`remains: true`) as it is now that one holder let go. */
export const ReleasedLease = Lease.extend({
  remains: z
    .boolean()
    .optional()
    .describe(
      'Only for a release naming a holder: true if other holders keep the lease (shown as it is now), false if that holder was the last and the lease is gone.',
    ),
}).strict();

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
    holder: LeaseHolder.optional().describe(
      "Who on the node takes the lease (docker, csi): acquiring the node's lease again adds the holder. Without: an unnamed share that only a release without holder ends.",
    ),
    release_on_request: z
      .boolean()
      .optional()
      .describe(
        'true: the node promises to let go of the lease when asked while nothing uses it (or to decline the request at once); a request the lease would refuse then asks for it and waits for it instead of failing at once. false clears it; absent keeps what the lease had (a new lease: false). An extension of Flocker v1 (a service before it refuses the field: 400).',
      ),
    move_here: z
      .literal(true)
      .optional()
      .describe(
        "true: the lease's node also becomes the dataset's primary, in the same write as the lease (one request and one commit where a move and a lease took two): the Docker plugin's Mount of a volume last used on another node. The move is refused as POST /v1/configuration/datasets/:id {primary} would refuse it (404 DATASET_NOT_FOUND, 409 RESTORE_IN_PROGRESS, 400 SIZE_BEYOND_BACKEND or UNKNOWN_NODE), and then neither happens. An extension of Flocker v1 (a service before it refuses the field: 400).",
      ),
  })
  .strict();

/**
 * Something the control service decided or saw (failover; a move cancelled), kept for `flocker status`, `flocker
 * events` and the UI. A kind added later is additive for the API (clients should skip kinds they do not know).
 */
export const ClusterEvent = z
  .object({
    time: z.string().describe('ISO 8601 time of the event.'),
    kind: z
      .enum(['node_dead', 'node_back', 'lease_released_dead_node', 'move_cancelled'])
      .describe(
        'move_cancelled: a move asked for when_released was cancelled before it finished, its lease holder (the source, node_uuid) having moved the dataset back to itself (a new user there).',
      ),
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
    used_bytes: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe(
        'Bytes used on the mounted file system (statfs of the mount point, measured at most every few seconds).',
      ),
    filesystem: z
      .enum(DATASET_FILESYSTEMS)
      .optional()
      .describe(
        "The mounted file system (T5 F8). Sent only while the dataset's restore is not marked done (source_backup without restored): the restored volume holds its backup's file system, which the metadata may not say; the control service records it in clusterhq:flocker:filesystem with the restore's mark. Absent otherwise and from older agents (agents one release behind parse node states strictly: docs/compatibility.md).",
      ),
    grow_pending: GrowPending.optional().describe(
      'A grow of this volume that waits until nothing uses it (TN F3). Sent only while one waits (agents one release behind parse node states strictly: docs/compatibility.md).',
    ),
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

/** A backup request (issue 20): an implicit snapshot of the dataset that its primary's agent streams to the target. */
export const BackupConfiguration = z
  .object({
    backup_id: SnapshotId.describe('The id of the request; it is also the id of its implicit snapshot.'),
    dataset_id: DatasetId,
    target: BackupTarget,
    keep: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe("After it: keep the newest `keep` of the dataset's backups in the target."),
    created_at: z.string().describe('ISO 8601 time the backup was requested.'),
    deleted: z
      .literal(true)
      .optional()
      .describe(
        'Present once the backup ended (done or failed, as the agent reported): its implicit snapshot is deleted.',
      ),
  })
  .strict();

export const CreateBackupRequest = z
  .object({
    dataset_id: DatasetId,
    target: BackupTarget,
    keep: z.number().int().min(1).max(10_000).optional(),
    backup_id: SnapshotId.optional(),
  })
  .strict();

export const BackupStatus = z
  .enum(['pending', 'running', 'done', 'failed'])
  .describe(
    'pending: waiting for its snapshot; running: uploading; done: stored (stored_backup_id); failed: see error.',
  );

/** A backup as the agent running it reports it. */
export const ReportedBackup = z
  .object({
    backup_id: SnapshotId,
    dataset_id: DatasetId,
    target: BackupTarget,
    status: BackupStatus,
    bytes_read: z.number().int().nonnegative().optional().describe('Bytes of the snapshot read so far.'),
    size: z.number().int().nonnegative().optional().describe('Bytes of the snapshot.'),
    stored_backup_id: StoredBackupId.optional().describe('done: the id to restore from.'),
    data_bytes: z.number().int().nonnegative().optional().describe('done: bytes of data (not holes) in the backup.'),
    uploaded_bytes: z.number().int().nonnegative().optional().describe('done: compressed bytes this backup sent.'),
    error: z.object({ code: z.string(), message: z.string() }).strict().optional(),
    updated_at: z.string().describe('ISO 8601 time of the last change.'),
  })
  .strict();

export const BackupState = ReportedBackup.extend({
  node_uuid: NodeUuid.describe('The node whose agent runs (ran) the backup.'),
}).strict();

/** A move of a local dataset (issue 24) off the reporting node, while it runs: its data goes to the new primary. */
export const LocalMove = z
  .object({
    dataset_id: DatasetId,
    to: NodeUuid.describe('The new primary, which receives the data.'),
    phase: z
      .enum(['copying', 'waitingForRelease', 'final', 'promoting', 'done'])
      .describe(
        'copying: rounds while the volume is in use here; waitingForRelease: caught up, until the last user here lets go; final: the last delta; promoting: the new primary takes it over.',
      ),
    rounds: z.number().int().nonnegative().describe('Snapshots sent so far.'),
    bytes_sent: z.number().int().nonnegative(),
    bytes_total: z.number().int().nonnegative().describe("The dataset's referenced bytes here (a full send's size)."),
  })
  .strict();

/** A standby replica (issue 24) the reporting node, the dataset's primary, keeps of a local dataset on another node. */
export const LocalReplica = z
  .object({
    dataset_id: DatasetId,
    node_uuid: NodeUuid.describe('The node holding the replica (chosen once, kept while it is alive).'),
    snapshot: z.string().nullable().describe('The newest snapshot the replica node holds; null until one is sent.'),
    taken_at: z
      .string()
      .nullable()
      .describe(
        "When that snapshot was taken (ISO 8601): the replica's age. A move off a dead primary with clusterhq:flocker:accept-replica-loss loses the writes after it.",
      ),
  })
  .strict();

/**
 * A copy of a local dataset (issue 24) the reporting node kept aside before letting go of its own: it
 * held writes the primary's copy lacks (an old primary back after a failover, or two live copies).
 */
export const KeptAsideCopy = z
  .object({
    dataset_id: DatasetId,
    path: z
      .string()
      .min(1)
      .max(4096)
      .describe('Where it is on the node (btrfs: a read-only subvolume; ZFS: a read-only file system).'),
  })
  .strict();

/**
 * The most elements any array of a node report may hold. A report body is at most 1 MiB, and no valid element of
 * these arrays (a manifestation, a volume, an error with its dataset id, …) is under ~57 bytes, so a valid report
 * never reaches it (bare id lists such as `retained` could, past 20,000 datasets kept on one node: far beyond any
 * cluster). It makes zod refuse an array of 300,000 tiny invalid elements at once instead of checking every one
 * (T6 F-A: a 1 MB invalid report cost seconds of CPU and hundreds of MB of issues).
 */
export const NODE_REPORT_ARRAY_MAX = 20_000;

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
    manifestations: z.array(ManifestationState).max(NODE_REPORT_ARRAY_MAX),
    /** Volumes the backend lists; on a shared backend any node can report them all. */
    volumes: z.array(BackendVolume).max(NODE_REPORT_ARRAY_MAX).optional(),
    /** Snapshots the backend lists (absent when the backend has none); on a shared backend every node reports all. */
    snapshots: z.array(BackendSnapshot).max(NODE_REPORT_ARRAY_MAX).optional(),
    /** Backups this agent runs or ran lately (issue 20); absent when none. */
    backups: z.array(ReportedBackup).max(NODE_REPORT_ARRAY_MAX).optional(),
    /** Moves of local datasets off this node running now (issue 24); absent when none. */
    moves: z.array(LocalMove).max(NODE_REPORT_ARRAY_MAX).optional(),
    /** Standby replicas of local datasets this node is the primary of (issue 24); absent when none. */
    replicas: z
      .array(LocalReplica)
      .max(NODE_REPORT_ARRAY_MAX)
      .optional()
      .describe(
        'Local storage (issue 24): the standby replica of each dataset with metadata clusterhq:flocker:replicas "1" whose primary this node is: the replica\'s node and age (taken_at).',
      ),
    retained: z
      .array(DatasetId)
      .max(NODE_REPORT_ARRAY_MAX)
      .optional()
      .describe(
        "Local storage (issue 24): datasets this node's pool keeps snapshots of without a live copy (a standby replica, an old source's kept snapshot): they are in its node view, so it can destroy them when the dataset is deleted. Absent when none; never in a node state the service answers (only its view index reads it).",
      ),
    kept_aside: z
      .array(KeptAsideCopy)
      .max(NODE_REPORT_ARRAY_MAX)
      .optional()
      .describe(
        "Local storage (issue 24): copies this node kept aside, read-only, before letting go of its own (writes the primary's copy lacks); kept until the dataset is deleted. Absent when none. Sent whenever there is one (the control service is upgraded first: docs/compatibility.md); shown in the whole cluster's snapshot, never in a node's view.",
      ),
    backup_store: z
      .literal(true)
      .optional()
      .describe(
        'Present when the agent has S3 settings (agent.yml backup:, or AWS_* credentials): it runs backups and restores.',
      ),
    errors: z.array(ActionError).max(NODE_REPORT_ARRAY_MAX).default([]),
    max_volume_size: z
      .number()
      .int()
      .positive()
      .optional()
      .describe("The largest volume (bytes) this node's storage backend can create; absent when unknown."),
    zone: z
      .string()
      .min(1)
      .max(255)
      .optional()
      .describe(
        "The storage zone the node is in: volumes move without copying between the nodes of one zone (loopback: the pool's id; EBS: the availability zone; Cinder: the configured availability zone). Absent when unknown.",
      ),
    available_bytes: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe(
        "Free capacity (bytes) of the node's storage backend where it has a figure (loopback: free space of the pool's file system, rounded down); absent otherwise.",
      ),
    version: z
      .string()
      .min(1)
      .max(64)
      .optional()
      .describe('The release of the reporting dataset agent (docs/compatibility.md: agent/control version skew).'),
    configuration_version: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe(
        "The configuration version (configurationVersionOfTag of a snapshot's configuration_tag) the agent had acted on when it built this report: the latest it had received, or older while work decided on an older one still runs. The control service takes a 'mounted' here as current only if this is at least the version at which the dataset's primary last became this node (a report built before a move back and received after it is not). Absent from older agents; never in a node state the service answers (agents one release behind parse node states strictly).",
      ),
    fencing: z
      .object({
        state: z.enum(['fenced', 'recovered']),
        since: z.string().describe('ISO 8601 time the node fenced itself (lost contact with the control service).'),
        reason: z.string(),
        stopped_containers: z.array(z.string()).max(NODE_REPORT_ARRAY_MAX).optional(),
        removed_mounts: z.array(z.string()).max(NODE_REPORT_ARRAY_MAX).optional(),
      })
      .strict()
      .optional()
      .describe('Set after the node fenced itself for lack of contact: what it stopped and cleaned up.'),
    backend_unseen: z
      .object({
        since: z.string().min(1).max(64).describe('ISO 8601 time the agent started waiting for its storage backend.'),
        reason: z.string().max(1024).describe('What it waits for (e.g. the listing of its volumes).'),
        fencing_stated: z
          .literal(true)
          .optional()
          .describe(
            "This report states the agent's fence (its own state, known without a look): its fencing, or none when absent; the control service shows it in place of the held report's. Absent (agents before it): the held report's fencing is kept. A control service before it refuses the member (400); the agent then sends its liveness reports without it.",
          ),
      })
      .strict()
      .optional()
      .describe(
        "Present in a liveness-only report, sent before the agent's first full look at its storage backend finished (a restart while the backend does not answer): the node is alive; its manifestations, volumes and snapshots are unknown (the lists are empty and mean nothing). The control service keeps the node's previous report, if any, as its state (shown with a BACKEND_UNREACHABLE error), else holds it alive with its state unknown (in no state list). A node already declared dead is refused (409 NODE_DEAD). A control service before it refuses the field (400: the report is strict), so the agent falls back to reporting nothing until its first look. Never in a node state the service answers.",
      ),
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

/**
 * A local-backend node as every local-backend node's view shows it (issue 24): what another local
 * node decides on about it without its whole state — its address, liveness, how many live copies
 * it holds and which datasets' standby replicas it holds (choosing a replica node; telling a stale
 * replica from a needed one).
 */
export const LocalPeer = z
  .object({
    uuid: NodeUuid,
    host: z.string().min(1),
    alive: z.boolean(),
    copies: z
      .number()
      .int()
      .nonnegative()
      .describe('How many live copies (manifestations) it reports, rounded down to a multiple of 16 (a load figure).'),
    replica_of: z
      .array(DatasetId)
      .describe('The datasets whose standby replica it holds, as their primaries (alive or dead) report it; sorted.'),
  })
  .strict();

/** What an agent receives: the desired configuration and the cluster state. */
export const ClusterSnapshot = z
  .object({
    generation: z.string().describe('Opaque token; changes whenever configuration or state changes.'),
    configuration_tag: z
      .string()
      .describe(
        "The committed configuration this snapshot shows: 'v' and its version, which grows with every commit (file store and etcd alike; see configurationVersionOfTag).",
      ),
    datasets: z.array(DatasetConfiguration),
    snapshots: z
      .array(SnapshotConfiguration)
      .optional()
      .describe('Configured snapshots, deleted ones included until no node reports them.'),
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
    peers: z
      .array(LocalPeer)
      .optional()
      .describe(
        "Only in the view of a local-backend node (issue 24; `node=` of a node whose report's backend is local-*): every local-backend node the service knows, itself included. Absent in whole snapshots and other nodes' views.",
      ),
  })
  .strict();

/**
 * The configuration version a configuration tag names ('v' and the version: the control service's tags, on the file
 * store and on etcd), comparable for "at least"; undefined for a tag of another form (then no version is reported).
 */
export function configurationVersionOfTag(tag: string | undefined): number | undefined {
  const m = tag === undefined ? null : /^v(\d{1,15})$/.exec(tag);
  return m === null ? undefined : Number(m[1]);
}

export type LocalPeer = z.infer<typeof LocalPeer>;
export type DatasetConfiguration = z.infer<typeof DatasetConfiguration>;
export type CreateDatasetRequest = z.infer<typeof CreateDatasetRequest>;
export type CreateDatasetLease = z.infer<typeof CreateDatasetLease>;
export type UpdateDatasetRequest = z.infer<typeof UpdateDatasetRequest>;
export type DatasetState = z.infer<typeof DatasetState>;
export type GrowPending = z.infer<typeof GrowPending>;
export type DatasetKeptAside = z.infer<typeof DatasetKeptAside>;
export type NodeSummary = z.infer<typeof NodeSummary>;
export type NodeStateSummary = z.infer<typeof NodeStateSummary>;
export type SnapshotConfiguration = z.infer<typeof SnapshotConfiguration>;
export type CreateSnapshotRequest = z.infer<typeof CreateSnapshotRequest>;
export type SnapshotState = z.infer<typeof SnapshotState>;
export type BackendSnapshot = z.infer<typeof BackendSnapshot>;
export type Lease = z.infer<typeof Lease>;
export type CreateLeaseRequest = z.infer<typeof CreateLeaseRequest>;
export type ReleasedLease = z.infer<typeof ReleasedLease>;
export type LeaseReleaseRequest = z.infer<typeof LeaseReleaseRequest>;
export type ManifestationState = z.infer<typeof ManifestationState>;
export type BackendVolume = z.infer<typeof BackendVolume>;
export type ActionError = z.infer<typeof ActionError>;
export type NodeReport = z.infer<typeof NodeReport>;
export type KeptAsideCopy = z.infer<typeof KeptAsideCopy>;
export type NodeState = z.infer<typeof NodeState>;
export type ClusterSnapshot = z.infer<typeof ClusterSnapshot>;
export type BackupConfiguration = z.infer<typeof BackupConfiguration>;
export type CreateBackupRequest = z.infer<typeof CreateBackupRequest>;
export type ReportedBackup = z.infer<typeof ReportedBackup>;
export type LocalMove = z.infer<typeof LocalMove>;
export type BackupState = z.infer<typeof BackupState>;
export type SourceBackup = z.infer<typeof SourceBackup>;
export type ErrorResponse = z.infer<typeof ErrorResponse>;
export type ClusterEvent = z.infer<typeof ClusterEvent>;
export type VersionResponse = z.infer<typeof VersionResponse>;
