/**
 * How ClusterFollower reads the cluster (issue 23), and what it makes of a watch's line. Pure.
 *
 *  - 'watch': the node's view on one long-lived answer (GET /v1/agent/cluster/watch): the whole
 *    view, then a delta per change, each reaching the agent with no request of its own;
 *  - 'deltas': long-polls of the node's view answered by deltas (a control service without the watch);
 *  - 'whole': long-polls of the whole cluster (a control service without node views or deltas).
 * The follower starts with the best the channel offers and steps down when the control service
 * refuses a request as unknown to it (an older version); after a failed read it asks for the best
 * again, as the service may be restarting, upgraded (a rolling upgrade).
 */
import {
  applyClusterDelta,
  type ClusterAnswer,
  type ClusterSnapshot,
  isClusterDelta,
  watchRefusedStatus,
} from '@flocker/api';

export type FollowMode = 'watch' | 'deltas' | 'whole';

/** What the control channel offers (the methods it has; the service may still refuse them). */
export interface FollowOffers {
  readonly watch: boolean;
  readonly deltas: boolean;
}

/**
 * What happened: the service refused the watch or a delta read as unknown to it, or a read
 * (long-poll) failed.
 */
export type FollowEvent = 'watchRefused' | 'deltasRefused' | 'readFailed';

/** The best the channel offers. The watch needs deltas as well: its refetches and its fallback read them. */
export function initialMode(offers: FollowOffers): FollowMode {
  return offers.deltas ? (offers.watch ? 'watch' : 'deltas') : 'whole';
}

/** The mode after `event` in `mode`. */
export function modeAfter(mode: FollowMode, event: FollowEvent, offers: FollowOffers): FollowMode {
  switch (event) {
    case 'watchRefused':
      return mode === 'watch' ? 'deltas' : mode;
    case 'deltasRefused':
      // A service that streams the watch answers deltas too: a refused refetch does not end the watch.
      return mode === 'deltas' ? 'whole' : mode;
    case 'readFailed':
      return initialMode(offers);
  }
}

/** Whether a failed watch request means the control service does not offer the route (@flocker/api's rule). */
export const watchRefused: (status: number | undefined) => boolean = watchRefusedStatus;

/**
 * A line of a watch on top of the view the stream gave so far (`held`, null before its first
 * line): a whole view replaces it, a delta is merged into it. Undefined when the delta is not
 * for `held` (its `since` is another generation, or no view is held): the follower then watches
 * again without `since`, which answers the whole view.
 */
export function viewAfterLine(
  held: ClusterSnapshot | null,
  line: ClusterAnswer,
): { readonly view: ClusterSnapshot; readonly delta: boolean } | undefined {
  if (!isClusterDelta(line)) return { view: line, delta: false };
  const view = held === null ? undefined : applyClusterDelta(held, line);
  return view === undefined ? undefined : { view, delta: true };
}
