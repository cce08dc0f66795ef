/** The control channel an agent (DatasetAgent or LocalAgent) follows its view through. */
import type { FlockerClient } from '@flocker/api';
import type { ControlChannel, FollowChoice } from './DatasetAgentOptions';

/**
 * 'watch': the client itself (it streams the node's view, watchCluster). 'long-poll': the client
 * without watchCluster, so the agent long-polls deltas instead.
 */
export function controlChannelOf(client: FlockerClient, follow: FollowChoice): ControlChannel {
  return follow === 'watch'
    ? client
    : {
        reportNodeState: (report) => client.reportNodeState(report),
        waitForCluster: (since, timeoutMs) => client.waitForCluster(since, timeoutMs),
        waitForClusterDelta: (since, timeoutMs, node) => client.waitForClusterDelta(since, timeoutMs, node),
      };
}
