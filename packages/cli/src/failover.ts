/** `flocker status` lines about failover: dead nodes, self-fencing reports and the control service's events. Pure. */
import type { ClusterEvent, NodeState } from '@flocker/api';
import { relativeTime, shortId } from './format';

/** How many of the control service's events `flocker status` shows (the newest). */
export const STATUS_EVENTS = 10;

/** "node 10.0.0.1 (aaaaaaaa) is dead since <iso> (12s ago); last seen 42s ago"; older services give no dead_since. */
export function deadNodeLine(n: NodeState, now: Date = new Date()): string {
  const lastSeen = `last seen ${relativeTime(new Date(n.last_seen), now)}`;
  if (n.dead_since === undefined) return `node ${n.host} (${shortId(n.uuid)}) is not alive; ${lastSeen}`;
  return `node ${n.host} (${shortId(n.uuid)}) is dead since ${n.dead_since} (${relativeTime(new Date(n.dead_since), now)}); ${lastSeen}`;
}

/**
 * How many stopped containers or removed mounts a fencing line names before "and N more" (TN F9: a fence of a node
 * with 14 volumes printed 14 paths on one line); the node report and `--output json` keep them all.
 */
export const FENCE_LIST_MAX = 3;

function bounded(items: readonly string[]): string {
  const more = items.length - FENCE_LIST_MAX;
  return more > 0 ? `${items.slice(0, FENCE_LIST_MAX).join(', ')} and ${more} more` : items.join(', ');
}

/** What a node did when it fenced itself, if it reports that it did. */
export function fencingLine(n: NodeState): string | undefined {
  const f = n.fencing;
  if (f === undefined) return undefined;
  const did = [
    f.stopped_containers?.length ? `stopped containers ${bounded(f.stopped_containers)}` : '',
    f.removed_mounts?.length ? `removed mounts ${bounded(f.removed_mounts)}` : '',
  ].filter((x) => x !== '');
  const head =
    f.state === 'fenced'
      ? `node ${n.host} (${shortId(n.uuid)}) is fenced since ${f.since}: ${f.reason}`
      : `node ${n.host} (${shortId(n.uuid)}) recovered from fencing (fenced at ${f.since}: ${f.reason})`;
  return did.length > 0 ? `${head}; ${did.join('; ')}` : head;
}

/**
 * One event in words: "<time>  lease released from dead host 10.0.0.1 for volume pgdata".
 * Hosts and volume names come from the current snapshot and configuration; unknown ones show as short ids.
 */
export function eventLine(
  e: ClusterEvent,
  hostOf: (uuid: string) => string | undefined,
  volumeOf: (datasetId: string) => string | undefined,
): string {
  const host = e.node_uuid !== undefined ? (hostOf(e.node_uuid) ?? shortId(e.node_uuid)) : '?';
  switch (e.kind) {
    case 'lease_released_dead_node': {
      const volume = e.dataset_id !== undefined ? volumeOf(e.dataset_id) || shortId(e.dataset_id) : '?';
      return `${e.time}  lease released from dead host ${host} for volume ${volume}`;
    }
    case 'node_dead':
      return `${e.time}  host ${host} declared dead`;
    case 'node_back':
      return `${e.time}  host ${host} is back`;
    case 'move_cancelled': {
      const volume = e.dataset_id !== undefined ? volumeOf(e.dataset_id) || shortId(e.dataset_id) : '?';
      return `${e.time}  move of volume ${volume} cancelled: used again on host ${host}`;
    }
  }
}

/** The newest `limit` events, oldest first (as the control service lists them). */
export function recentEvents(events: readonly ClusterEvent[], limit = STATUS_EVENTS): ClusterEvent[] {
  return events.slice(Math.max(0, events.length - limit));
}
