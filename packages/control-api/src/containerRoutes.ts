/**
 * The container API's routes (Flocker's v1 container endpoints and the container
 * agents' report), in the route-table form of routes.ts. Container reports are
 * state, not configuration: kept in memory per ControlState, like node reports.
 */
import { z } from 'zod';
import {
  ComposeRequest,
  ContainerConfiguration,
  ContainerName,
  ContainerReport,
  ContainerState,
  CreateContainerRequest,
  ErrorResponse,
  MoveContainerRequest,
  NodeUuid,
  ReportResponse,
} from '@flocker/api';
import { compose, containersOf, createContainer, deleteContainer, moveContainer } from './containers';
import type { ControlState } from './ControlState';
import { ApiError } from './errors';
import type { RouteSpec } from './routes';

/** A container agent reports at least this often; a report older than 3 intervals is stale. */
export const CONTAINER_REPORT_INTERVAL_MS = 10_000;
export const CONTAINER_REPORT_STALE_MS = 3 * CONTAINER_REPORT_INTERVAL_MS;

interface StoredContainerReport {
  report: ContainerReport;
  lastSeen: number;
}

const reportsByState = new WeakMap<ControlState, Map<string, StoredContainerReport>>();

function reportsOf(state: ControlState): Map<string, StoredContainerReport> {
  let m = reportsByState.get(state);
  if (m === undefined) {
    m = new Map();
    reportsByState.set(state, m);
  }
  return m;
}

/** Pure: the containers fresh reports show, with their nodes. */
export function containerStates(reports: ReadonlyMap<string, StoredContainerReport>, now: number, staleMs = CONTAINER_REPORT_STALE_MS): ContainerState[] {
  const out: ContainerState[] = [];
  for (const [node, { report, lastSeen }] of reports) {
    if (now - lastSeen > staleMs) continue;
    for (const c of report.containers) out.push({ name: c.name, node_uuid: node, image: c.image, running: c.running });
  }
  return out;
}

const NameParams = z.object({ name: ContainerName }).strict();
const NodeParams = z.object({ uuid: NodeUuid }).strict();
const err = (description: string) => ({ description, schema: ErrorResponse });
const E400 = { 400: err('The request is malformed: invalid JSON, wrong types, unknown fields or a bad name.') };
const E412 = { 412: err('X-If-Configuration-Matches did not match the current configuration tag.') };

export const containerRoutes: RouteSpec[] = [
  {
    method: 'get',
    path: '/v1/configuration/containers',
    summary: 'All configured containers. They may or may not exist yet on their nodes.',
    tag: 'configuration',
    responses: { 200: { description: 'The container configuration.', schema: z.array(ContainerConfiguration) } },
    handle: (state) => ({ status: 200, body: [...containersOf(state.configuration).values()], tag: state.configurationTag }),
  },
  {
    method: 'post',
    path: '/v1/configuration/containers',
    summary: "Add a container to a node's configuration; the node's container agent starts it.",
    tag: 'configuration',
    body: CreateContainerRequest,
    conditional: true,
    responses: {
      201: { description: 'The new container.', schema: ContainerConfiguration },
      ...E400,
      404: err('The volume names a dataset that does not exist.'),
      409: err('The name or an external port is taken, the dataset is used by another container or is on another node, or two links share an alias or local port.'),
      ...E412,
    },
    handle: async (state, ctx) => {
      const req = CreateContainerRequest.parse(ctx.body);
      const applied = await state.mutate((c) => createContainer(c, req), ctx.ifMatches);
      return { status: 201, body: ContainerConfiguration.parse(applied.result), tag: state.configurationTag };
    },
  },
  {
    method: 'post',
    path: '/v1/configuration/containers/:name',
    summary: 'Move a container to another node; its volume moves with it.',
    tag: 'configuration',
    params: NameParams,
    body: MoveContainerRequest,
    conditional: true,
    responses: {
      200: { description: 'The moved container.', schema: ContainerConfiguration },
      ...E400,
      404: err('No such container.'),
      ...E412,
    },
    handle: async (state, ctx) => {
      const { name } = NameParams.parse(ctx.params);
      const req = MoveContainerRequest.parse(ctx.body);
      const applied = await state.mutate((c, now) => moveContainer(c, name, req.node_uuid, now), ctx.ifMatches);
      return { status: 200, body: ContainerConfiguration.parse(applied.result), tag: state.configurationTag };
    },
  },
  {
    method: 'delete',
    path: '/v1/configuration/containers/:name',
    summary: 'Remove a container from the configuration; its node stops and removes it (its dataset stays).',
    tag: 'configuration',
    params: NameParams,
    conditional: true,
    responses: {
      200: { description: 'The removed container.', schema: ContainerConfiguration },
      ...E400,
      404: err('No such container.'),
      ...E412,
    },
    handle: async (state, ctx) => {
      const { name } = NameParams.parse(ctx.params);
      const applied = await state.mutate((c) => deleteContainer(c, name), ctx.ifMatches);
      return { status: 200, body: ContainerConfiguration.parse(applied.result), tag: state.configurationTag };
    },
  },
  {
    method: 'post',
    path: '/v1/configuration/_compose',
    summary: "flocker-deploy: replace the container configuration by an application file and a deployment file.",
    tag: 'configuration',
    body: ComposeRequest,
    conditional: true,
    responses: {
      200: { description: 'The resulting container configuration.', schema: z.array(ContainerConfiguration) },
      ...E400,
      404: err('A volume names a dataset that does not exist.'),
      409: err('Two applications publish the same external port, or links collide.'),
      ...E412,
    },
    handle: async (state, ctx) => {
      const req = ComposeRequest.parse(ctx.body);
      const applied = await state.mutate((c, now) => compose(c, req.applications, req.deployment, now), ctx.ifMatches);
      return { status: 200, body: z.array(ContainerConfiguration).parse(applied.result), tag: state.configurationTag };
    },
  },
  {
    method: 'get',
    path: '/v1/state/containers',
    summary: 'The containers the container agents report, with whether each is running.',
    tag: 'state',
    responses: { 200: { description: 'Container state.', schema: z.array(ContainerState) } },
    handle: (state) => ({ status: 200, body: containerStates(reportsOf(state), state.now()) }),
  },
  {
    method: 'put',
    path: '/v1/agent/nodes/:uuid/containers',
    summary: "Agent channel: a container agent publishes the Flocker containers on its node.",
    tag: 'agent',
    params: NodeParams,
    body: ContainerReport,
    responses: {
      200: { description: 'The generation after this report.', schema: ReportResponse },
      ...E400,
    },
    handle: (state, ctx) => {
      const { uuid } = NodeParams.parse(ctx.params);
      const report = ContainerReport.parse(ctx.body);
      if (!state.configuration.nodes.has(uuid.toLowerCase())) {
        throw new ApiError(400, 'UNKNOWN_NODE', `The node ${uuid} is not known: its dataset agent must report first.`);
      }
      reportsOf(state).set(uuid.toLowerCase(), { report, lastSeen: state.now() });
      return { status: 200, body: ReportResponse.parse({ generation: state.generation }) };
    },
  },
];
