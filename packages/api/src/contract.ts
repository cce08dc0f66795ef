/**
 * The HTTP contract of the Flocker control service as data: every route's method, path,
 * the schemas of its parameters, query, body and responses. The control service attaches
 * a handler to each (and validates input against these schemas before the handler runs),
 * its OpenAPI document is generated from them, and FlockerClient sends its requests by
 * them: one table, no path written twice.
 */
import { z } from 'zod';
import {
  BackupConfiguration,
  BackupState,
  ClusterEventsResponse,
  CreateBackupRequest,
  CreateDatasetRequest,
  CreateLeaseRequest,
  CreateSnapshotRequest,
  DatasetConfiguration,
  DatasetId,
  DatasetState,
  EraResponse,
  ErrorResponse,
  ForgottenNode,
  Lease,
  LeaseHolder,
  LeaseReleaseRequest,
  NodeKey,
  NodeReport,
  NodeStateSummary,
  NodeUuid,
  OpaqueId,
  ReleasedLease,
  ReportResponse,
  SnapshotConfiguration,
  SnapshotId,
  SnapshotState,
  UpdateDatasetRequest,
  VersionResponse,
} from './schemas';
import {
  ComposeRequest,
  ContainerConfiguration,
  ContainerName,
  ContainerReport,
  ContainerState,
  CreateContainerRequest,
  MoveContainerRequest,
} from './containers';
import { ClusterAnswer } from './clusterDelta';

/** The version of the control service (and of this contract). */
export const FLOCKER_VERSION = '1.16.0-ts.0';
export const CONFIGURATION_TAG_HEADER = 'x-configuration-tag';
export const IF_CONFIGURATION_MATCHES_HEADER = 'x-if-configuration-matches';
/**
 * On a write: how long (ms) the client waits for this request's answer before it gives up on this replica (and may
 * send it to another, or fail). A replica stalled meanwhile applies the write while the client surely still waits,
 * instead of refusing it REPLICA_STALLED (review s27 F9); a request without it is refused after any stall, as before.
 */
export const CLIENT_WAIT_HEADER = 'x-flocker-client-wait-ms';
/** The server holds a long-poll at most this long. */
export const MAX_WAIT_MS = 60_000;
export const DEFAULT_WAIT_MS = 25_000;

export interface ResponseSpec {
  description: string;
  schema: z.ZodType;
}

/** One route of the API, without its implementation. */
export interface RouteContract {
  method: 'get' | 'post' | 'put' | 'delete';
  /** Express syntax (`:id`). */
  path: string;
  summary: string;
  tag: 'configuration' | 'state' | 'agent' | 'meta';
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** A request without a body is read as `{}` (the body stays required in the OpenAPI document). */
  emptyBodyIsObject?: boolean;
  /** Honors X-If-Configuration-Matches. */
  conditional?: boolean;
  /**
   * A whole list (issue 23): its 200 carries a strong ETag, which names the serving process
   * (a restart or another replica never matches it) and the version or state generation the
   * list shows; a GET or HEAD whose If-None-Match names it gets 304 without a body.
   */
  entityTag?: boolean;
  responses: Readonly<Record<number, ResponseSpec>>;
}

/** Identity, keeping the literal type of the route (its schemas) for typed handlers and client calls. */
function route<const R extends RouteContract>(r: R): R {
  return r;
}

/** The statuses a client reads as success. */
type OkStatus = 200 | 201;
/** The parsed body of a route's successful answer. */
export type ResponseOf<R extends RouteContract> = z.output<
  R['responses'][Extract<keyof R['responses'], OkStatus>]['schema']
>;
/** A route's path parameters, body and query as its schemas parse them. */
export type ParamsOf<R extends RouteContract> = R['params'] extends z.ZodType
  ? z.output<R['params']>
  : Record<string, never>;
export type BodyOf<R extends RouteContract> = R['body'] extends z.ZodType ? z.output<R['body']> : undefined;
export type QueryOf<R extends RouteContract> = R['query'] extends z.ZodType
  ? z.output<R['query']>
  : Record<string, never>;

/** The schema of a route's successful answer (its lowest 2xx status). */
export function successSchema(r: RouteContract): z.ZodType {
  const ok = Object.entries(r.responses)
    .filter(([status]) => Number(status) >= 200 && Number(status) < 300)
    .sort(([a], [b]) => Number(a) - Number(b))[0];
  if (ok === undefined) throw new Error(`${r.method} ${r.path} declares no success response`);
  return ok[1].schema;
}

/** `/v1/configuration/datasets/:id` with `{id: 'x y'}` → `/v1/configuration/datasets/x%20y` */
export function routePath(r: Pick<RouteContract, 'path'>, params: Readonly<Record<string, string>> = {}): string {
  return r.path.replace(/:([A-Za-z_]+)/g, (_m, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`${r.path} needs the parameter ${name}`);
    return encodeURIComponent(value);
  });
}

const err = (description: string): ResponseSpec => ({ description, schema: ErrorResponse });
/** 400: what the route's input is called in the description (`id` or `name`). */
const e400 = (what: 'id' | 'name') => ({
  400: err(`The request is malformed: invalid JSON, wrong types, unknown fields or a bad ${what}.`),
});
const E400 = e400('id');
const E412 = { 412: err('X-If-Configuration-Matches did not match the current configuration tag.') };
/** 503 of the agent channel's views while the answering replica cannot reach its store (review T4 finding 2). */
const E503_VIEW = {
  503: err(
    'STORE_UNAVAILABLE: this replica cannot reach its configuration store (etcd), so its view may be out of date; ask another replica. A long-poll or watch under way when that starts is ended (a watch stream just ends).',
  ),
};
/**
 * 503 of a configuration write (review T4 finding 1): STORE_UNAVAILABLE when the store was not reached (nothing was
 * written: safe to send again, to any replica), STORE_OUTCOME_UNKNOWN when the write reached etcd but was not confirmed
 * in time (it may still apply once etcd has a quorum: read back before sending a write that is not idempotent again).
 * REPLICA_STALLED (review S26 R3): a write read right after the replica's event loop stalled is refused unapplied, as
 * its client may have given up on it and sent it to another replica (control-api stallGuard.ts).
 */
const REPLICA_STALLED_TEXT =
  'REPLICA_STALLED (the request was read right after this replica had stalled: stopped, paused or overloaded for longer than a client waits before it asks another replica; nothing applied: send it again, to this or another replica)';
const E503 = {
  503: err(
    'The configuration store is unavailable. Code STORE_UNAVAILABLE: nothing was written; the request may be sent again (to any replica). Code STORE_OUTCOME_UNKNOWN: the write was sent to etcd but not confirmed in time, and may still be applied once etcd has a quorum; read the configuration back before sending it again (a create without dataset_id sent again makes a second dataset). Also SHUTTING_DOWN (the replica is stopping; nothing applied), STORE_CLOSED and ' +
      REPLICA_STALLED_TEXT +
      '.',
  ),
};

const IdParams = z.object({ id: DatasetId }).strict();
const SnapshotParams = z.object({ id: SnapshotId }).strict();
const LeaseParams = z.object({ dataset_id: DatasetId }).strict();
/**
 * A holder's share of the lease ended in the delete's own change (issue 23): the Docker plugin's `docker volume rm` of
 * a volume whose lease it kept idle took a release and a delete, two commits, on the rm's path.
 */
const DeleteDatasetQuery = z
  .object({
    release_holder: LeaseHolder.optional().describe(
      "That holder's share of the dataset's lease, when the lease is the requester's own (a node's certificate: that node's; an API user: any), ends in the same change as the delete (all or nothing: should the lease remain, held by other holders, nothing changes and the delete is refused LEASE_HELD). An extension of Flocker v1; a control service before it ignores it (and refuses the delete of a leased dataset).",
    ),
    release_node: NodeUuid.optional().describe(
      "With release_holder: the share ends only if the lease is this node's (for an API user, whose request names no node of its own: a plugin on plain HTTP names its node, so its rm never ends the lease another node took meanwhile). Without it an API user's release_holder ends the share of whichever node holds the lease.",
    ),
  })
  // Not strict (review s27 F13): before these parameters the route ignored any query string, so a v1 client's
  // cache-buster (?_=…) or other unknown parameter deleted; it still must. The known ones are still checked.
  .strip();
const ReleaseLeaseQuery = z
  .object({
    holder: LeaseHolder.optional().describe(
      "Let go of only this holder's share; the lease ends when no holder is left. Without: the whole lease ends.",
    ),
  })
  .strict();
/**
 * The request a decline answers (review R1 F5): only that one is cleared, so a late or repeated decline leaves a newer
 * request (another asker's, after the volume went idle) pending. Without: whatever is pending (clients before it).
 */
const DeclineReleaseRequestQuery = z
  .object({
    by: LeaseReleaseRequest.shape.by
      .optional()
      .describe('The by of the release_requested this decline answers: another pending request is left as it is.'),
    at: LeaseReleaseRequest.shape.at
      .optional()
      .describe('The at of the release_requested this decline answers: another pending request is left as it is.'),
  })
  .strict();
const DatasetStateQuery = z
  .object({
    dataset_id: DatasetId.optional().describe(
      'Only the state of this dataset: a list of its one entry, or empty when the whole list shows none.',
    ),
  })
  // Not strict: this route took no query before, and any other parameter (a cache-buster) is ignored as it was.
  .strip();
const NodeParams = z.object({ uuid: NodeUuid }).strict();
const EraParams = z.object({ era: OpaqueId }).strict();
const NodeKeyParams = z.object({ node: NodeKey }).strict();
const NameParams = z.object({ name: ContainerName }).strict();
const WaitQuery = z
  .object({
    since: z.string().optional().describe('The generation the agent last saw; the request waits while it is current.'),
    timeout_ms: z.coerce
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe(`How long to wait, in ms (default ${DEFAULT_WAIT_MS}, at most ${MAX_WAIT_MS}).`),
    node: NodeUuid.optional().describe(
      'Only what this node needs: datasets whose primary it is or that it holds, their leases, and the states of the nodes involved. The request then waits while that view is unchanged since `since` (a change elsewhere does not answer it; the answer carries the current generation).',
    ),
    delta: z
      .enum(['true', 'false'])
      .optional()
      .describe(
        "With `since`: answer only what changed since `since` (a ClusterDelta, `delta: true`) in that node's view (with `node`) or in the whole cluster (without); the server may still answer a full snapshot. A node whose view did not change is not woken.",
      ),
  })
  .strict();

const WatchQuery = z
  .object({
    node: NodeUuid.optional().describe(
      'The node whose view is streamed (as `GET /v1/agent/cluster?node=`). Exactly one of `node` and `whole`.',
    ),
    whole: z
      .enum(['true'])
      .optional()
      .describe(
        'Instead of `node`: the whole cluster (as `GET /v1/agent/cluster` without `node`: every dataset, live lease, node state and configured snapshot), then a delta per change of it (the Docker plugins). Explicit, so a request that forgot `node` is refused rather than streamed the whole cluster.',
      ),
    since: z
      .string()
      .optional()
      .describe(
        'The generation of the view the agent holds: the stream starts with a delta since it (nothing until the view changes), or with the whole view when absent or not known here.',
      ),
  })
  .strict()
  .refine((q) => (q.node === undefined) !== (q.whole === undefined), {
    message: "Give exactly one of `node` (a node's view) and `whole=true` (the whole cluster).",
  });

/** Every route, in the order the server registers them (and the OpenAPI document lists them). */
export const apiRoutes = {
  version: route({
    method: 'get',
    path: '/v1/version',
    summary: 'The version of the Flocker control service.',
    tag: 'meta',
    responses: { 200: { description: 'The version.', schema: VersionResponse } },
  }),
  listDatasets: route({
    method: 'get',
    path: '/v1/configuration/datasets',
    summary: 'All configured datasets, including deleted ones (deleted: true).',
    tag: 'configuration',
    entityTag: true,
    responses: { 200: { description: 'The dataset configuration.', schema: z.array(DatasetConfiguration) } },
  }),
  createDataset: route({
    method: 'post',
    path: '/v1/configuration/datasets',
    summary: 'Create a dataset on a primary node.',
    tag: 'configuration',
    body: CreateDatasetRequest,
    conditional: true,
    responses: {
      201: { description: 'The new dataset.', schema: DatasetConfiguration },
      400: err(
        'The request is malformed (invalid JSON, wrong types, unknown fields or a bad id), the primary is unknown, source_snapshot_id (source_dataset_id) names no live snapshot (dataset), maximum_size is below its size, or metadata.name is shaped like an id (code NAME_SHAPED_LIKE_ID: commands take a name or an id).',
      ),
      409: err(
        'The dataset_id is already in use, or (unique_name) a dataset not deleted has the name (code DATASET_NAME_IN_USE), or (lease) the primary is declared dead and is granted no lease until its agent reports again (code NODE_DEAD; nothing is created), or a restore (source_backup) is aimed at a node whose agent has no S3 settings (code BACKUP_NOT_CONFIGURED), or local storage cannot do it (code NOT_ON_LOCAL_STORAGE: a clone or restore onto a node reporting a local backend, a clone of a dataset whose primary reports one, or a snapshot schedule there; a node that has not reported since the control service started is not known to be local and is accepted).',
      ),
      ...E412,
      ...E503,
    },
  }),
  getDataset: route({
    method: 'get',
    path: '/v1/configuration/datasets/:id',
    summary:
      "One dataset's configuration (deleted ones too, deleted: true): the narrow read, where the whole list costs O(datasets) bytes.",
    tag: 'configuration',
    params: IdParams,
    responses: {
      200: { description: 'The dataset.', schema: DatasetConfiguration },
      ...E400,
      404: err('No such dataset.'),
    },
  }),
  updateDataset: route({
    method: 'post',
    path: '/v1/configuration/datasets/:id',
    summary:
      'Update a dataset: a new primary moves it; maximum_size changes its size limit; metadata sets (string) or removes (null) the snapshot schedule keys.',
    tag: 'configuration',
    params: IdParams,
    body: UpdateDatasetRequest,
    emptyBodyIsObject: true,
    conditional: true,
    responses: {
      200: { description: 'The updated dataset.', schema: DatasetConfiguration },
      ...E400,
      404: err('No such dataset.'),
      405: err('The dataset is deleted (code DATASET_DELETED, as in Flocker): it can no longer be changed.'),
      409: err(
        "A lease held by another node forbids the move (code LEASE_HELD; with when_released: true, a lease held by the dataset's primary does not when that node reports a local backend: the description says why it does not apply otherwise), or the dataset is being restored from a backup (code RESTORE_IN_PROGRESS), or a snapshot schedule is set on a dataset whose primary reports a local backend (code NOT_ON_LOCAL_STORAGE). A release_on_request lease of a live node is asked for first and the move waits for it (the lease hand-over, as for POST /v1/configuration/leases).",
      ),
      ...E412,
      ...E503,
    },
  }),
  deleteDataset: route({
    method: 'delete',
    path: '/v1/configuration/datasets/:id',
    summary: 'Mark a dataset deleted; agents then destroy it.',
    tag: 'configuration',
    params: IdParams,
    query: DeleteDatasetQuery,
    conditional: true,
    responses: {
      200: { description: 'The dataset, now deleted: true.', schema: DatasetConfiguration },
      ...E400,
      404: err('No such dataset.'),
      409: err(
        'The dataset is leased (code LEASE_HELD). A release_on_request lease of a live node is asked for first and the delete waits for it (the lease hand-over, as for POST /v1/configuration/leases).',
      ),
      ...E412,
      ...E503,
    },
  }),
  listDatasetState: route({
    method: 'get',
    path: '/v1/state/datasets',
    summary:
      'Where datasets actually are, as alive nodes report them. With ?dataset_id=: only that dataset\'s entry, the narrow read a waiter confirms a "mounted" by, where the whole list costs O(datasets) bytes.',
    tag: 'state',
    query: DatasetStateQuery,
    entityTag: true,
    responses: {
      200: {
        description:
          'Dataset state: the whole list, or with dataset_id the entry of that dataset as the whole list shows it (the same rules; an empty list when it shows none: no alive node reports it, or its only "mounted" is not current). The filtered answer carries no ETag.',
        schema: z.array(DatasetState),
      },
      ...E400,
    },
  }),
  // ---- snapshots (issue 20: an extension of the v1 API) ------------------------
  listSnapshots: route({
    method: 'get',
    path: '/v1/configuration/snapshots',
    summary: 'All configured snapshots, including deleted ones (deleted: true) until no node reports them.',
    tag: 'configuration',
    entityTag: true,
    responses: { 200: { description: 'The snapshot configuration.', schema: z.array(SnapshotConfiguration) } },
  }),
  createSnapshot: route({
    method: 'post',
    path: '/v1/configuration/snapshots',
    summary:
      "Ask for a snapshot of a dataset; the dataset's primary node takes it (freezing a mounted file system for the instant).",
    tag: 'configuration',
    body: CreateSnapshotRequest,
    conditional: true,
    responses: {
      201: { description: 'The new snapshot.', schema: SnapshotConfiguration },
      400: err(
        'The request is malformed, the dataset is deleted (code SNAPSHOT_SOURCE_DELETED), or metadata.name is shaped like an id (code NAME_SHAPED_LIKE_ID).',
      ),
      404: err('No such dataset.'),
      409: err(
        "The snapshot_id, or the name in metadata, is used by another (live) snapshot, or the dataset's primary reports a local backend, which takes no snapshots through the API (code NOT_ON_LOCAL_STORAGE).",
      ),
      ...E412,
      ...E503,
    },
  }),
  getSnapshot: route({
    method: 'get',
    path: '/v1/configuration/snapshots/:id',
    summary: 'One configured snapshot.',
    tag: 'configuration',
    params: SnapshotParams,
    responses: {
      200: { description: 'The snapshot.', schema: SnapshotConfiguration },
      ...E400,
      404: err('No such snapshot.'),
    },
  }),
  deleteSnapshot: route({
    method: 'delete',
    path: '/v1/configuration/snapshots/:id',
    summary:
      'Mark a snapshot deleted; agents then destroy it in the backend. Datasets cloned from it are not affected.',
    tag: 'configuration',
    params: SnapshotParams,
    conditional: true,
    responses: {
      200: { description: 'The snapshot, now deleted: true.', schema: SnapshotConfiguration },
      ...E400,
      404: err('No such snapshot.'),
      ...E412,
      ...E503,
    },
  }),
  listSnapshotState: route({
    method: 'get',
    path: '/v1/state/snapshots',
    summary: 'The snapshots the storage backends hold, as alive nodes report them (one entry per snapshot).',
    tag: 'state',
    entityTag: true,
    responses: { 200: { description: 'Snapshot state.', schema: z.array(SnapshotState) } },
  }),
  // ---- backups to object storage (issue 20: an extension of the v1 API) ----------
  listBackups: route({
    method: 'get',
    path: '/v1/configuration/backups',
    summary:
      'The backup requests whose implicit snapshot still exists (deleted: true once it ended). Finished backups are in the store: `flocker backup list`.',
    tag: 'configuration',
    entityTag: true,
    responses: { 200: { description: 'The backup requests.', schema: z.array(BackupConfiguration) } },
  }),
  createBackup: route({
    method: 'post',
    path: '/v1/configuration/backups',
    summary:
      "Back a dataset up to an S3 target: an implicit snapshot of it is taken (frozen), and its primary's agent streams it to the target (incremental after the first backup there), then keeps the newest `keep` and deletes the snapshot.",
    tag: 'configuration',
    body: CreateBackupRequest,
    conditional: true,
    responses: {
      201: { description: 'The backup request; follow it in /v1/state/backups.', schema: BackupConfiguration },
      400: err('The request is malformed, or the dataset is deleted (code SNAPSHOT_SOURCE_DELETED).'),
      404: err('No such dataset.'),
      409: err(
        "The dataset's primary node cannot run backups (code BACKUP_NOT_CONFIGURED: its agent has no S3 settings, or the node is not alive), or reports a local backend (code NOT_ON_LOCAL_STORAGE), or the backup_id is in use.",
      ),
      ...E412,
      ...E503,
    },
  }),
  listBackupState: route({
    method: 'get',
    path: '/v1/state/backups',
    summary:
      'Backups as the agents running them report them: pending, running (bytes read), done (stored_backup_id) or failed (error).',
    tag: 'state',
    entityTag: true,
    responses: { 200: { description: 'Backup state.', schema: z.array(BackupState) } },
  }),
  listNodes: route({
    method: 'get',
    path: '/v1/state/nodes',
    summary: 'The nodes whose agents are reporting.',
    tag: 'state',
    entityTag: true,
    responses: { 200: { description: 'Alive nodes.', schema: z.array(NodeStateSummary) } },
  }),
  nodeByEra: route({
    method: 'get',
    path: '/v1/state/nodes/by_era/:era',
    summary: 'The node currently in the given era (boot), so an agent can tell a reboot.',
    tag: 'state',
    params: EraParams,
    responses: { 200: { description: 'The node.', schema: EraResponse }, 404: err('No node is in this era.') },
  }),
  forgetNode: route({
    method: 'delete',
    path: '/v1/configuration/nodes/:node',
    summary:
      "Forget a retired node (API users only): its recorded identity, its state (no longer shown dead) and its name in accepted-loss-from markers go, durably. Only a node not reporting (declared dead, or silent since the control service started a node timeout ago) that is no dataset's primary, holds no lease and runs no configured container; otherwise 409 with what to do first (errors). Repeating it after it answered 200 answers 404.",
    tag: 'configuration',
    params: NodeKeyParams,
    responses: {
      200: { description: 'What was forgotten, and what still names it.', schema: ForgottenNode },
      400: err('The node is named by a host that several known nodes reported: name it by its UUID.'),
      404: err('No node is known by this UUID or host (never reported, or already forgotten).'),
      409: err('The node may not be forgotten yet: errors says what to do first.'),
      ...E503,
    },
  }),
  listEvents: route({
    method: 'get',
    path: '/v1/state/events',
    summary:
      'What the control service decided on its own, oldest first (the last 200, kept in memory by this replica): nodes declared dead, nodes back, leases of dead nodes released.',
    tag: 'state',
    responses: { 200: { description: 'Failover events.', schema: ClusterEventsResponse } },
  }),
  listLeases: route({
    method: 'get',
    path: '/v1/configuration/leases',
    summary: 'All live leases; expires is the seconds remaining, or null.',
    tag: 'configuration',
    responses: { 200: { description: 'Leases.', schema: z.array(Lease) } },
  }),
  acquireLease: route({
    method: 'post',
    path: '/v1/configuration/leases',
    summary:
      'Acquire (201) or renew (200) a lease holding a dataset on a node. pinned: true (API users only) keeps it when the node is declared dead; a renewal without pinned keeps what the lease had. holder names the local user (docker, csi) taking its share: taking the lease the node already holds adds the holder.',
    tag: 'configuration',
    body: CreateLeaseRequest,
    conditional: true,
    responses: {
      200: { description: 'The lease, renewed by the same node.', schema: Lease },
      201: { description: 'The new lease.', schema: Lease },
      ...E400,
      403: err('A node asked to pin a lease (or unpin one): only API users may.'),
      404: err('move_here: no such dataset (code DATASET_NOT_FOUND); nothing was leased.'),
      405: err('The dataset is deleted (code DATASET_DELETED): there is nothing to lease.'),
      409: err(
        'Another node holds the lease (code LEASE_HELD). A release_on_request lease of a live node is asked for first (release_requested) and the request waits up to the handover wait (default 5 s) for its holder to let go; the description then says whether the holder declined or did not let go in time. With move_here: the move is refused (code RESTORE_IN_PROGRESS), and nothing was leased. Or the node it is asked for is declared dead (code NODE_DEAD: after a restart of the control service, also a node not heard from within the node timeout of the start): nothing was leased or moved; asked again once its agent reports (the dead-node sweep would release it).',
      ),
      ...E412,
      ...E503,
    },
  }),
  releaseLease: route({
    method: 'delete',
    path: '/v1/configuration/leases/:dataset_id',
    summary:
      'Release the lease on a dataset. With ?holder=: only that holder lets go, and the lease ends when no holder is left (remains says which).',
    tag: 'configuration',
    params: LeaseParams,
    query: ReleaseLeaseQuery,
    conditional: true,
    responses: {
      200: {
        description: 'The released lease; for a holder that is not the last, the lease as it remains (remains: true).',
        schema: ReleasedLease,
      },
      ...E400,
      404: err('There is no lease on this dataset.'),
      ...E412,
      ...E503,
    },
  }),
  declineReleaseRequest: route({
    method: 'delete',
    path: '/v1/configuration/leases/:dataset_id/release-request',
    summary:
      'Decline the request to let go of a release_on_request lease (release_requested): its holder node (or an API user) says the volume is in use, and every request waiting for the lease is refused (409 LEASE_HELD) at once. With ?by=&at= (the request it answers), only that request is cleared: a lease with another one pending, or none, is answered unchanged; without them, whatever is pending is cleared. Answers the lease as it is now. An extension of Flocker v1.',
    tag: 'configuration',
    params: LeaseParams,
    query: DeclineReleaseRequestQuery,
    conditional: true,
    responses: {
      200: {
        description: 'The lease, without the request declined (another request, newer, may be pending).',
        schema: Lease,
      },
      ...E400,
      403: err('A node other than the holder asked: only the holder node or an API user may decline.'),
      404: err('There is no lease on this dataset (code LEASE_NOT_FOUND).'),
      ...E412,
      ...E503,
    },
  }),
  reportNodeState: route({
    method: 'put',
    path: '/v1/agent/nodes/:uuid',
    summary: "Agent channel: a dataset agent publishes its node's state.",
    tag: 'agent',
    params: NodeParams,
    body: NodeReport,
    responses: {
      200: { description: 'The generation after this report.', schema: ReportResponse },
      ...E400,
      409: err(
        "The report claims another live node's compute instance (code INSTANCE_CLAIMED) or a volume attached to it (code VOLUME_CLAIMED), or it is a liveness-only report (backend_unseen) of a node the control service declared dead (code NODE_DEAD: only a full report brings it back).",
      ),
      503: err(
        'The configuration store is unavailable (STORE_UNAVAILABLE, or STORE_OUTCOME_UNKNOWN when a registration it made was not confirmed): a report is the whole state and idempotent, so it may be sent again, to this or another replica. Also ' +
          REPLICA_STALLED_TEXT +
          '.',
      ),
    },
  }),
  waitForCluster: route({
    method: 'get',
    path: '/v1/agent/cluster',
    summary: 'Agent channel: desired configuration and cluster state; long-polls while `since` is current.',
    tag: 'agent',
    query: WaitQuery,
    responses: {
      200: {
        description:
          "The cluster snapshot (or, when `delta=true` was asked, possibly a delta of the view: the node's, or the whole cluster's).",
        schema: ClusterAnswer,
      },
      ...E400,
      ...E503_VIEW,
    },
  }),
  watchCluster: route({
    method: 'get',
    path: '/v1/agent/cluster/watch',
    summary:
      "Agent channel, streaming: one node's view (or, with `whole=true`, the whole cluster's), then a delta per change of it, on one long-lived answer (no re-poll per change).",
    tag: 'agent',
    query: WatchQuery,
    responses: {
      200: {
        description:
          "An `application/x-ndjson` stream that stays open: each line is the node's whole view (ClusterSnapshot) or a delta of it (ClusterDelta, whose `since` is the generation of the line before); empty lines are heartbeats, at most 2 periods apart, the period announced in the Content-Type (`application/x-ndjson; heartbeat-ms=2000`): a client may take a watch silent for 3 periods as dead and watch again with `since`. Only changes to the node's view are written; a client that falls behind gets one delta covering all it missed.",
        schema: ClusterAnswer,
      },
      ...E400,
      ...E503_VIEW,
    },
  }),
  // ---- containers (Flocker's container API) ----------------------------------
  listContainers: route({
    method: 'get',
    path: '/v1/configuration/containers',
    summary: 'All configured containers. They may or may not exist yet on their nodes.',
    tag: 'configuration',
    responses: { 200: { description: 'The container configuration.', schema: z.array(ContainerConfiguration) } },
  }),
  createContainer: route({
    method: 'post',
    path: '/v1/configuration/containers',
    summary: "Add a container to a node's configuration; the node's container agent starts it.",
    tag: 'configuration',
    body: CreateContainerRequest,
    conditional: true,
    responses: {
      201: { description: 'The new container.', schema: ContainerConfiguration },
      ...e400('name'),
      404: err('The volume names a dataset that does not exist.'),
      409: err(
        'The name or an external port is taken, the dataset is used by another container or is on another node, or two links share an alias or local port.',
      ),
      ...E412,
      ...E503,
    },
  }),
  moveContainer: route({
    method: 'post',
    path: '/v1/configuration/containers/:name',
    summary: 'Move a container to another node; its volume moves with it.',
    tag: 'configuration',
    params: NameParams,
    body: MoveContainerRequest,
    conditional: true,
    responses: {
      200: { description: 'The moved container.', schema: ContainerConfiguration },
      ...e400('name'),
      404: err('No such container.'),
      ...E412,
      ...E503,
    },
  }),
  deleteContainer: route({
    method: 'delete',
    path: '/v1/configuration/containers/:name',
    summary: 'Remove a container from the configuration; its node stops and removes it (its dataset stays).',
    tag: 'configuration',
    params: NameParams,
    conditional: true,
    responses: {
      200: { description: 'The removed container.', schema: ContainerConfiguration },
      ...e400('name'),
      404: err('No such container.'),
      ...E412,
      ...E503,
    },
  }),
  compose: route({
    method: 'post',
    path: '/v1/configuration/_compose',
    summary: 'flocker-deploy: replace the container configuration by an application file and a deployment file.',
    tag: 'configuration',
    body: ComposeRequest,
    conditional: true,
    responses: {
      200: { description: 'The resulting container configuration.', schema: z.array(ContainerConfiguration) },
      400: err(
        'The request is malformed (invalid JSON, wrong types, unknown fields or a bad name), a file is invalid, or a volume it would make is named like an id (code NAME_SHAPED_LIKE_ID; nothing is applied).',
      ),
      404: err('A volume names a dataset that does not exist.'),
      409: err('Two applications publish the same external port, or links collide.'),
      ...E412,
      ...E503,
    },
  }),
  listContainerState: route({
    method: 'get',
    path: '/v1/state/containers',
    summary: 'The containers the container agents report, with whether each is running.',
    tag: 'state',
    responses: { 200: { description: 'Container state.', schema: z.array(ContainerState) } },
  }),
  reportContainers: route({
    method: 'put',
    path: '/v1/agent/nodes/:uuid/containers',
    summary: 'Agent channel: a container agent publishes the Flocker containers on its node.',
    tag: 'agent',
    params: NodeParams,
    body: ContainerReport,
    responses: {
      200: { description: 'The generation after this report.', schema: ReportResponse },
      ...e400('name'),
      503: err(`${REPLICA_STALLED_TEXT}.`),
    },
  }),
} as const satisfies Record<string, RouteContract>;

export type ApiRoutes = typeof apiRoutes;
export type RouteName = keyof ApiRoutes;
