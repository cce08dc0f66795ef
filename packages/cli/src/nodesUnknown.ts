/**
 * Nodes alive with their state unknown (T1 S0, session 19): a dataset agent restarted while its storage backend does
 * not answer sends liveness-only reports, and when the control service holds no report of its state (it restarted
 * too, or the node is new) it keeps the node alive but out of the cluster snapshot (an empty list there would read
 * "nothing mounted there"), listing it only in GET /v1/state/nodes. What `flocker status` can say of them: the alive
 * nodes /v1/state/nodes lists that the snapshot does not show.
 */
import type { ClusterSnapshot, NodeStateSummary } from '@flocker/api';

/** One line per node alive in `alive` (GET /v1/state/nodes) but absent from `snapshot`, by host. */
export function unknownStateLines(
  snapshot: Pick<ClusterSnapshot, 'nodes'>,
  alive: readonly NodeStateSummary[],
): string[] {
  const shown = new Set(snapshot.nodes.map((n) => n.uuid));
  return alive
    .filter((n) => !shown.has(n.uuid))
    .map((n) => n.host)
    .sort()
    .map(
      (host) =>
        `node ${host}: alive, its state unknown (its dataset agent has not finished a look at its storage backend since it started: BACKEND_UNREACHABLE)`,
    );
}
