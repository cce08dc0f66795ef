/**
 * The handlers of the container API's routes (Flocker's v1 container endpoints and the
 * container agents' report; their contract is `apiRoutes` in @flocker/api). Container
 * reports are state, not configuration: kept in memory per ControlState, like node reports.
 */
import { z } from 'zod';
import { type ContainerReport, ContainerConfiguration, type ContainerState, ReportResponse } from '@flocker/api';
import { compose, containersOf, createContainer, deleteContainer, moveContainer } from './containers';
import type { ControlState } from './ControlState';
import { RequestError } from './errors';
import type { Handlers } from './routeSpec';

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

type ContainerRouteName =
  | 'listContainers'
  | 'createContainer'
  | 'moveContainer'
  | 'deleteContainer'
  | 'compose'
  | 'listContainerState'
  | 'reportContainers';

export const containerHandlers: Pick<Handlers, ContainerRouteName> = {
  listContainers: (state) => ({ status: 200, body: [...containersOf(state.configuration).values()], tag: state.configurationTag }),
  createContainer: async (state, { body, ifMatches }) => {
    const applied = await state.mutate((c) => createContainer(c, body), ifMatches);
    return { status: 201, body: ContainerConfiguration.parse(applied.result), tag: state.configurationTag };
  },
  moveContainer: async (state, { params, body, ifMatches }) => {
    const applied = await state.mutate((c, now) => moveContainer(c, params.name, body.node_uuid, now), ifMatches);
    return { status: 200, body: ContainerConfiguration.parse(applied.result), tag: state.configurationTag };
  },
  deleteContainer: async (state, { params, ifMatches }) => {
    const applied = await state.mutate((c) => deleteContainer(c, params.name), ifMatches);
    return { status: 200, body: ContainerConfiguration.parse(applied.result), tag: state.configurationTag };
  },
  compose: async (state, { body, ifMatches }) => {
    const applied = await state.mutate((c, now) => compose(c, body.applications, body.deployment, now), ifMatches);
    return { status: 200, body: z.array(ContainerConfiguration).parse(applied.result), tag: state.configurationTag };
  },
  listContainerState: (state) => ({ status: 200, body: containerStates(reportsOf(state), state.now()) }),
  reportContainers: (state, { params, body: report }) => {
    const uuid = params.uuid;
    if (!state.configuration.nodes.has(uuid.toLowerCase())) {
      throw new RequestError('UNKNOWN_NODE', `The node ${uuid} is not known: its dataset agent must report first.`);
    }
    reportsOf(state).set(uuid.toLowerCase(), { report, lastSeen: state.now() });
    return { status: 200, body: ReportResponse.parse({ generation: state.generation }) };
  },
};
