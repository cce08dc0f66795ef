/**
 * What the container agent needs of its node's self-fence (dataset-agent SelfFencing), read from its
 * own node's state in the agent channel's snapshot. Pure.
 *
 * A node cut off from the control service for longer than the self-fence bound kills the containers
 * using its volumes (SIGKILL) and unmounts them, so that no container writes once another node may
 * take the volumes over. Docker does not restart a killed container, whatever its restart policy,
 * so the container agent starts again, once the fence is lifted, those the fence killed
 * (calculateContainerChanges) — never while fenced.
 */
import type { NodeState } from '@flocker/api';

export type NodeFence =
  /** No fence this node's dataset agent tells of (or this node is not in the snapshot: no dataset agent reports it). */
  | { readonly kind: 'none' }
  /**
   * Fencing, fenced or cleaning up (report state 'fenced'), or declared dead: no container is
   * created or started here (what Docker would start could not get its volume, or could write to it
   * while another node takes it over). `since` and `stopped` as for 'lifted', when the node has a
   * fence report: its victims are reported as the fence's, not as exits of their own (review FR-3).
   */
  | { readonly kind: 'fenced'; readonly since?: number; readonly stopped?: ReadonlySet<string> }
  /**
   * Back in contact and cleaned up (report state 'recovered'), alive: `stopped` are the containers
   * the fence killed (Docker names, which are the Flocker names), `since` when it began (ms, this
   * host's clock, as Docker's container times).
   */
  | { readonly kind: 'lifted'; readonly since: number; readonly stopped: ReadonlySet<string> };

export function nodeFence(me: string, nodes: readonly NodeState[] | undefined): NodeFence {
  const mine = nodes?.find((n) => n.uuid === me);
  if (mine === undefined) return { kind: 'none' };
  // A time that does not parse names no container the fence killed that could be told apart from one a user stopped.
  const since = mine.fencing === undefined ? NaN : Date.parse(mine.fencing.since);
  const stopped = new Set(mine.fencing?.stopped_containers ?? []);
  if (!mine.alive || mine.fencing?.state === 'fenced')
    return Number.isNaN(since) ? { kind: 'fenced' } : { kind: 'fenced', since, stopped };
  return Number.isNaN(since) ? { kind: 'none' } : { kind: 'lifted', since, stopped };
}
