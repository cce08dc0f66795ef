/**
 * The handlers of the container API's routes (Flocker's v1 container endpoints and the
 * container agents' report; their contract is `apiRoutes` in @flocker/api). Container
 * reports are state, not configuration: kept beside the node reports (nodeReports.ts).
 */
import { z } from 'zod';
import { ContainerConfiguration, ReportResponse } from '@flocker/api';
import { compose, containersOf, createContainer, deleteContainer, moveContainer } from './containers';
import { sizeBeyondBackend } from './backendLimits';
import { serviceDataNodeRule } from './dataNode';
import { RequestError } from './errors';
import type { Handlers } from './routeSpec';

export { CONTAINER_REPORT_INTERVAL_MS, CONTAINER_REPORT_STALE_MS, containerStates } from './nodeReports';

type ContainerRouteName =
  | 'listContainers'
  | 'createContainer'
  | 'moveContainer'
  | 'deleteContainer'
  | 'compose'
  | 'listContainerState'
  | 'reportContainers';

export const containerHandlers: Pick<Handlers, ContainerRouteName> = {
  listContainers: (state) => ({
    status: 200,
    body: [...containersOf(state.configuration).values()],
    tag: state.configurationTag,
  }),
  createContainer: async (state, { body, ifMatches }) => {
    const applied = await state.mutate((c) => createContainer(c, body), ifMatches);
    return { status: 201, body: ContainerConfiguration.parse(applied.result), tag: state.configurationTag };
  },
  moveContainer: async (state, { params, body, ifMatches }) => {
    const applied = await state.mutate(
      (c, now) => moveContainer(c, params.name, body.node_uuid, now, serviceDataNodeRule(state)),
      ifMatches,
    );
    return { status: 200, body: ContainerConfiguration.parse(applied.result), tag: state.configurationTag };
  },
  deleteContainer: async (state, { params, ifMatches }) => {
    const applied = await state.mutate((c) => deleteContainer(c, params.name), ifMatches);
    return { status: 200, body: ContainerConfiguration.parse(applied.result), tag: state.configurationTag };
  },
  compose: async (state, { body, ifMatches }) => {
    const applied = await state.mutate((c, now) => {
      const done = compose(c, body.applications, body.deployment, now, undefined, serviceDataNodeRule(state));
      // A volume it creates, grows or moves, beyond its primary's backend: refused as the datasets routes refuse it
      // (its agent would fail with INVALID_SIZE forever).
      if (done.config.datasets !== c.datasets) {
        for (const d of done.config.datasets.values()) {
          const was = c.datasets.get(d.dataset_id);
          if (was !== undefined && was.maximum_size === d.maximum_size && was.primary === d.primary) continue;
          const tooLarge = sizeBeyondBackend(d.maximum_size, state.reportedNode(d.primary));
          if (tooLarge !== undefined) throw tooLarge;
        }
      }
      return done;
    }, ifMatches);
    return { status: 200, body: z.array(ContainerConfiguration).parse(applied.result), tag: state.configurationTag };
  },
  listContainerState: (state) => ({ status: 200, body: state.containerStates() }),
  reportContainers: (state, { params, body: report }) => {
    const uuid = params.uuid;
    if (!state.configuration.nodes.has(uuid.toLowerCase())) {
      throw new RequestError('UNKNOWN_NODE', `The node ${uuid} is not known: its dataset agent must report first.`);
    }
    state.reportContainers(uuid.toLowerCase(), report);
    return { status: 200, body: ReportResponse.parse({ generation: state.generation }) };
  },
};
