/** The control channel an agent (DatasetAgent or LocalAgent) follows its view through. */
import type { FlockerClient } from '@flocker/api';
import type { ClusterFollowerOptions } from './ClusterFollower';
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

/**
 * The channel's reads as ClusterFollower takes them, for this node: whole snapshots, and its view by
 * deltas and over a watch when the channel offers them (see ClusterFollower for what the view holds).
 */
export function followerReads(
  control: ControlChannel,
  nodeUuid: string,
): Pick<ClusterFollowerOptions, 'waitForCluster' | 'waitForClusterDelta' | 'watchCluster'> {
  const viewDelta = control.waitForClusterDelta?.bind(control);
  const watch = control.watchCluster?.bind(control);
  return {
    waitForCluster: (since, timeoutMs) => control.waitForCluster(since, timeoutMs),
    ...(viewDelta !== undefined
      ? {
          waitForClusterDelta: (since: string | undefined, timeoutMs: number) => viewDelta(since, timeoutMs, nodeUuid),
        }
      : {}),
    ...(watch !== undefined
      ? { watchCluster: (since: string | undefined, signal: AbortSignal) => watch(nodeUuid, since, { signal }) }
      : {}),
  };
}
