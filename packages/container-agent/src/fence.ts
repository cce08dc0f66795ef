/**
 * What the container agent needs of its node's self-fence (dataset-agent SelfFencing), read from its
 * own node's state in the agent channel's snapshot. Pure.
 *
 * A node cut off from the control service for longer than the self-fence bound kills the containers
 * using its volumes (SIGKILL) and unmounts them, so that no container writes once another node may
 * take the volumes over. Docker does not restart a killed container, whatever its restart policy,
 * so the container agent starts again, once the fence is lifted, those the fence killed
 * (calculateContainerChanges) — never while fenced. The node report shows a lifted fence for an hour
 * (the dataset agent's RECOVERED_REPORT_MS); the agent remembers the last lift it saw beyond that
 * (withRememberedLift), so that a victim whose start fails for longer (dockerd down, a volume not
 * mountable yet) is still started once it can be. A container agent that was not running while the
 * lift was shown never sees it: its victims then stay stopped.
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

export type LiftedFence = Extract<NodeFence, { kind: 'lifted' }>;

/**
 * The fence a turn acts on, and the lift to remember for the next turns (review R2-6). The node report drops a lifted
 * fence an hour after the lift, which must not end the starts of its victims: a report telling of no fence then
 * counts as the last lift seen. Harmless however old: killedByFence matches only a container that has not run since
 * that fence began (a victim started again, or a new container of the same name, no longer matches), and a newer
 * fence, while fenced, is acted on as such and, once lifted, replaces it.
 */
export function withRememberedLift(
  seen: NodeFence,
  lastLift: LiftedFence | undefined,
): { fence: NodeFence; lastLift: LiftedFence | undefined } {
  const lift = seen.kind === 'lifted' ? seen : lastLift;
  return { fence: seen.kind === 'none' && lift !== undefined ? lift : seen, lastLift: lift };
}
