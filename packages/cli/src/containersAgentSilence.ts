/**
 * A container agent that stopped reporting, as the container reports tell (review T2 F3): its node is alive (its
 * dataset agent reports) but its newest container report is older than two report intervals, or it reports none of
 * the containers configured on it. Pure. Without report times (a control service from before session 18 gives none,
 * and drops a report 30 s old) only the second is seen.
 */
import type { ContainerState } from '@flocker/api';

/** Two container report intervals (an agent reports at least every 10 s): one late report is no silence. */
export const CONTAINER_AGENT_SILENCE_MS = 20_000;

export interface AgentSilence {
  node_uuid: string;
  host: string;
  /** Its newest report's time (ISO 8601); null when it reports nothing the CLI can see. */
  since: string | null;
}

/** A node as listed: `alive` absent means listed as reporting (GET /v1/state/nodes lists live nodes). */
export interface ListedNode {
  uuid: string;
  host: string;
  alive?: boolean;
}

/**
 * The silence of the container agent on `nodeUuid`, if any. `configuredHere`: containers are configured on that node
 * (an agent with nothing to run reports nothing, which is no silence). A node not listed, or dead, is not judged here:
 * its node's death is what to say. `now` is on the control service's clock, as reported_at is (serverNow of the
 * answer: this host's clock may be off by more than the bound, review FR F5).
 */
export function silentContainerAgent(
  nodeUuid: string,
  reported: readonly ContainerState[],
  nodes: readonly ListedNode[],
  now: number,
  configuredHere: boolean,
): AgentSilence | undefined {
  const n = nodes.find((x) => x.uuid === nodeUuid);
  if (n === undefined || n.alive === false) return undefined;
  const mine = reported.filter((r) => r.node_uuid === nodeUuid);
  if (mine.length === 0) return configuredHere ? { node_uuid: nodeUuid, host: n.host, since: null } : undefined;
  const times = mine.flatMap((r) => {
    const t = r.reported_at === undefined ? NaN : Date.parse(r.reported_at);
    return Number.isFinite(t) ? [t] : [];
  });
  if (times.length === 0) return undefined;
  const newest = Math.max(...times);
  return now - newest > CONTAINER_AGENT_SILENCE_MS
    ? { node_uuid: nodeUuid, host: n.host, since: new Date(newest).toISOString() }
    : undefined;
}

export function agentSilenceText(s: AgentSilence): string {
  return `no report from the container agent on host ${s.host}${s.since !== null ? ` since ${s.since}` : ''}: is it running?`;
}
