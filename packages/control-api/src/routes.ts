/**
 * The HTTP surface as data: each route names its method, path, the schemas of its
 * parameters, body and responses, and a handler. Express registration, 405 answers
 * and the OpenAPI document are all generated from this one table.
 */
import { z } from 'zod';
import {
  ClusterEventsResponse,
  ClusterSnapshot,
  CreateDatasetRequest,
  CreateLeaseRequest,
  DatasetConfiguration,
  DatasetId,
  DatasetState,
  EraResponse,
  ErrorResponse,
  Lease,
  NodeReport,
  NodeSummary,
  NodeUuid,
  ReportResponse,
  OpaqueId,
  UpdateDatasetRequest,
  VersionResponse,
  DEFAULT_WAIT_MS,
  MAX_WAIT_MS,
} from '@flocker/api';
import { acquireLease, createDataset, deleteDataset, listLeases, releaseLease, updateDataset } from './configuration';
import { isAlive, nodeByEra } from './clusterState';
import { reportClaimConflict } from './reportClaims';
import type { ControlState } from './ControlState';
import type { Views } from './Views';
import { ApiError } from './errors';
import { containerRoutes } from './containerRoutes';

export const FLOCKER_VERSION = '1.16.0-ts.0';

/** What a handler returns: status, a body (object or pre-serialized JSON) and whether to send the tag. */
export interface Reply {
  status: number;
  body?: unknown;
  /** A pre-serialized body, possibly a Buffer shared by many replies. */
  json?: string | Buffer;
  tag?: string;
}

export interface RouteContext {
  params: Record<string, string>;
  query: Record<string, string>;
  body: unknown;
  ifMatches: string | undefined;
  signal: AbortSignal;
}

export interface RouteSpec {
  method: 'get' | 'post' | 'put' | 'delete';
  /** Express syntax (`:id`). */
  path: string;
  summary: string;
  tag: 'configuration' | 'state' | 'agent' | 'meta';
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** Honors X-If-Configuration-Matches. */
  conditional?: boolean;
  responses: Record<number, { description: string; schema: z.ZodType }>;
  handle(state: ControlState, ctx: RouteContext, views: Views): Promise<Reply> | Reply;
}

const IdParams = z.object({ id: DatasetId }).strict();
const LeaseParams = z.object({ dataset_id: DatasetId }).strict();
const NodeParams = z.object({ uuid: NodeUuid }).strict();
const EraParams = z.object({ era: OpaqueId }).strict();
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
      'Only what this node needs: datasets whose primary it is or that it holds, their leases, and the states of the nodes involved.',
    ),
  })
  .strict();

/**
 * The request's path parameters and body as the route's schemas parse them (UUIDs in
 * canonical lower case), for authorization to decide on exactly what the handler will
 * act on. Input a schema refuses is returned as it is: the handler answers 400 for it.
 */
export function canonicalInput(
  route: Pick<RouteSpec, 'params' | 'body'>,
  params: Record<string, string>,
  body: unknown,
): { params: Record<string, string>; body: unknown } {
  const p = route.params?.safeParse(params);
  const b = route.body?.safeParse(body);
  return { params: p?.success === true ? (p.data as Record<string, string>) : params, body: b?.success === true ? b.data : body };
}

const err = (description: string) => ({ description, schema: ErrorResponse });
const E400 = { 400: err('The request is malformed: invalid JSON, wrong types, unknown fields or a bad id.') };
const E412 = { 412: err('X-If-Configuration-Matches did not match the current configuration tag.') };

export const routes: RouteSpec[] = [
  {
    method: 'get',
    path: '/v1/version',
    summary: 'The version of the Flocker control service.',
    tag: 'meta',
    responses: { 200: { description: 'The version.', schema: VersionResponse } },
    handle: () => ({ status: 200, body: VersionResponse.parse({ flocker: FLOCKER_VERSION }) }),
  },
  {
    method: 'get',
    path: '/v1/configuration/datasets',
    summary: 'All configured datasets, including deleted ones (deleted: true).',
    tag: 'configuration',
    responses: { 200: { description: 'The dataset configuration.', schema: z.array(DatasetConfiguration) } },
    handle: (state, _ctx, views) => ({ status: 200, json: views.datasets(), tag: state.configurationTag }),
  },
  {
    method: 'post',
    path: '/v1/configuration/datasets',
    summary: 'Create a dataset on a primary node.',
    tag: 'configuration',
    body: CreateDatasetRequest,
    conditional: true,
    responses: {
      201: { description: 'The new dataset.', schema: DatasetConfiguration },
      ...E400,
      409: err('The dataset_id is already in use.'),
      ...E412,
    },
    handle: async (state, ctx) => {
      const req = CreateDatasetRequest.parse(ctx.body);
      const applied = await state.mutate((c) => createDataset(c, req), ctx.ifMatches);
      return { status: 201, body: DatasetConfiguration.parse(applied.result), tag: state.configurationTag };
    },
  },
  {
    method: 'post',
    path: '/v1/configuration/datasets/:id',
    summary: "Update a dataset: a new primary moves it; maximum_size changes its size limit.",
    tag: 'configuration',
    params: IdParams,
    body: UpdateDatasetRequest,
    conditional: true,
    responses: {
      200: { description: 'The updated dataset.', schema: DatasetConfiguration },
      ...E400,
      404: err('No such dataset.'),
      405: err('The dataset is deleted (code DATASET_DELETED, as in Flocker): it can no longer be changed.'),
      409: err('A lease held by another node forbids the move.'),
      ...E412,
    },
    handle: async (state, ctx) => {
      const { id } = IdParams.parse(ctx.params);
      const req = UpdateDatasetRequest.parse(ctx.body ?? {});
      const applied = await state.mutate((c, now) => updateDataset(c, id, req, now), ctx.ifMatches);
      return { status: 200, body: DatasetConfiguration.parse(applied.result), tag: state.configurationTag };
    },
  },
  {
    method: 'delete',
    path: '/v1/configuration/datasets/:id',
    summary: 'Mark a dataset deleted; agents then destroy it.',
    tag: 'configuration',
    params: IdParams,
    conditional: true,
    responses: {
      200: { description: 'The dataset, now deleted: true.', schema: DatasetConfiguration },
      ...E400,
      404: err('No such dataset.'),
      409: err('The dataset is leased.'),
      ...E412,
    },
    handle: async (state, ctx) => {
      const { id } = IdParams.parse(ctx.params);
      const applied = await state.mutate((c, now) => deleteDataset(c, id, now), ctx.ifMatches);
      return { status: 200, body: DatasetConfiguration.parse(applied.result), tag: state.configurationTag };
    },
  },
  {
    method: 'get',
    path: '/v1/state/datasets',
    summary: 'Where datasets actually are, as alive nodes report them.',
    tag: 'state',
    responses: { 200: { description: 'Dataset state.', schema: z.array(DatasetState) } },
    handle: (_state, _ctx, views) => ({ status: 200, json: views.datasetState() }),
  },
  {
    method: 'get',
    path: '/v1/state/nodes',
    summary: 'The nodes whose agents are reporting.',
    tag: 'state',
    responses: { 200: { description: 'Alive nodes.', schema: z.array(NodeSummary) } },
    handle: (_state, _ctx, views) => ({ status: 200, json: views.nodes() }),
  },
  {
    method: 'get',
    path: '/v1/state/nodes/by_era/:era',
    summary: 'The node currently in the given era (boot), so an agent can tell a reboot.',
    tag: 'state',
    params: EraParams,
    responses: { 200: { description: 'The node.', schema: EraResponse }, 404: err('No node is in this era.') },
    handle: (state, ctx) => {
      const { era } = EraParams.parse(ctx.params);
      const uuid = nodeByEra(state.reportedNodes(), era);
      if (uuid === undefined) throw new ApiError(404, 'NODE_ERA_UNKNOWN', `No node is in era ${era}.`);
      return { status: 200, body: EraResponse.parse({ uuid }) };
    },
  },
  {
    method: 'get',
    path: '/v1/state/events',
    summary:
      'What the control service decided on its own, oldest first (the last 200, kept in memory by this replica): nodes declared dead, nodes back, leases of dead nodes released.',
    tag: 'state',
    responses: { 200: { description: 'Failover events.', schema: ClusterEventsResponse } },
    handle: (state) => ({ status: 200, body: ClusterEventsResponse.parse({ events: state.listEvents() }) }),
  },
  {
    method: 'get',
    path: '/v1/configuration/leases',
    summary: 'All live leases; expires is the seconds remaining, or null.',
    tag: 'configuration',
    responses: { 200: { description: 'Leases.', schema: z.array(Lease) } },
    handle: (state) => ({
      status: 200,
      body: z.array(Lease).parse(listLeases(state.configuration, state.now())),
      tag: state.configurationTag,
    }),
  },
  {
    method: 'post',
    path: '/v1/configuration/leases',
    summary:
      'Acquire (201) or renew (200) a lease holding a dataset on a node. pinned: true (API users only) keeps it when the node is declared dead; a renewal without pinned keeps what the lease had.',
    tag: 'configuration',
    body: CreateLeaseRequest,
    conditional: true,
    responses: {
      200: { description: 'The lease, renewed by the same node.', schema: Lease },
      201: { description: 'The new lease.', schema: Lease },
      ...E400,
      403: err('A node asked to pin a lease (or unpin one): only API users may.'),
      405: err('The dataset is deleted (code DATASET_DELETED): there is nothing to lease.'),
      409: err('Another node holds the lease.'),
      ...E412,
    },
    handle: async (state, ctx) => {
      const req = CreateLeaseRequest.parse(ctx.body);
      const applied = await state.mutate((c, now) => acquireLease(c, req, now), ctx.ifMatches);
      return { status: applied.status, body: Lease.parse(applied.result), tag: state.configurationTag };
    },
  },
  {
    method: 'delete',
    path: '/v1/configuration/leases/:dataset_id',
    summary: 'Release the lease on a dataset.',
    tag: 'configuration',
    params: LeaseParams,
    conditional: true,
    responses: {
      200: { description: 'The released lease.', schema: Lease },
      ...E400,
      404: err('There is no lease on this dataset.'),
      ...E412,
    },
    handle: async (state, ctx) => {
      const { dataset_id } = LeaseParams.parse(ctx.params);
      const applied = await state.mutate((c, now) => releaseLease(c, dataset_id, now), ctx.ifMatches);
      return { status: 200, body: Lease.parse(applied.result), tag: state.configurationTag };
    },
  },
  {
    method: 'put',
    path: '/v1/agent/nodes/:uuid',
    summary: "Agent channel: a dataset agent publishes its node's state.",
    tag: 'agent',
    params: NodeParams,
    body: NodeReport,
    responses: {
      200: { description: 'The generation after this report.', schema: ReportResponse },
      ...E400,
      409: err("The report claims another live node's compute instance, or a volume attached to it."),
    },
    handle: async (state, ctx) => {
      const { uuid } = NodeParams.parse(ctx.params);
      const report = NodeReport.parse(ctx.body);
      if (report.uuid !== uuid) {
        throw new ApiError(400, 'NODE_UUID_MISMATCH', `The report is for node ${report.uuid} but was sent to ${uuid}.`);
      }
      const now = state.now();
      const conflict = reportClaimConflict(report, state.reportedNodes(), (n) => isAlive(n, now, state.nodeTimeoutMs));
      if (conflict !== undefined) throw conflict;
      const generation = await state.report(report);
      // The committed tag at this moment: an agent whose snapshot carries another knows it is not current.
      return {
        status: 200,
        body: ReportResponse.parse({
          generation,
          configuration_tag: state.configurationTag,
          node_timeout_seconds: state.nodeTimeoutMs / 1000,
          lease_grace_seconds: state.leaseGraceMs / 1000,
        }),
      };
    },
  },
  {
    method: 'get',
    path: '/v1/agent/cluster',
    summary: 'Agent channel: desired configuration and cluster state; long-polls while `since` is current.',
    tag: 'agent',
    query: WaitQuery,
    responses: { 200: { description: 'The cluster snapshot.', schema: ClusterSnapshot }, ...E400 },
    handle: async (state, ctx, views) => {
      const q = WaitQuery.parse(ctx.query);
      if (q.since !== undefined) {
        const wait = Math.min(q.timeout_ms ?? DEFAULT_WAIT_MS, MAX_WAIT_MS);
        await state.waitForChange(q.since, wait, ctx.signal);
      }
      return { status: 200, json: q.node !== undefined ? views.snapshotFor(q.node) : views.snapshot(), tag: state.configurationTag };
    },
  },
  ...containerRoutes,
];
