/**
 * What the control service decided on its own (failover), kept in memory for
 * `GET /v1/state/events`, `flocker status` and the web UI: a ring of the last
 * EVENT_CAPACITY events, oldest first. The message builders are pure.
 * Each replica keeps its own ring (events are not stored in etcd): it records what it
 * saw and decided itself.
 */
import type { ClusterEvent } from '@flocker/api';

export const EVENT_CAPACITY = 200;

export class EventRing {
  private readonly events: ClusterEvent[] = [];

  constructor(private readonly capacity = EVENT_CAPACITY) {}

  push(event: ClusterEvent): void {
    this.events.push(event);
    if (this.events.length > this.capacity) this.events.splice(0, this.events.length - this.capacity);
  }

  /** A copy, oldest first. */
  list(): ClusterEvent[] {
    return this.events.slice();
  }
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** "12s", "3m 5s", "2h 1m": how long a node was dead, for messages. */
export function deadFor(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

export function nodeDeadEvent(
  uuid: string,
  host: string,
  lastSeen: number | undefined,
  nodeTimeoutMs: number,
  now: number,
): ClusterEvent {
  const why =
    lastSeen === undefined
      ? `it has not reported since the control service started ${deadFor(nodeTimeoutMs)} ago`
      : `no report for ${deadFor(nodeTimeoutMs)} (last seen ${iso(lastSeen)})`;
  return {
    time: iso(now),
    kind: 'node_dead',
    node_uuid: uuid,
    message: `Node ${host} (${uuid}) declared dead: ${why}.`,
  };
}

export function nodeBackEvent(uuid: string, host: string, deadSince: number, now: number): ClusterEvent {
  return {
    time: iso(now),
    kind: 'node_back',
    node_uuid: uuid,
    message: `Node ${host} (${uuid}) reports again after ${deadFor(now - deadSince)} dead; leases released meanwhile stay released.`,
  };
}

export function leaseReleasedEvent(
  datasetId: string,
  volume: string | undefined,
  uuid: string,
  host: string,
  deadSince: number,
  now: number,
): ClusterEvent {
  const what =
    volume !== undefined && volume !== '' ? `volume ${volume} (dataset ${datasetId})` : `dataset ${datasetId}`;
  return {
    time: iso(now),
    kind: 'lease_released_dead_node',
    node_uuid: uuid,
    dataset_id: datasetId,
    message: `Lease on ${what} released: host ${host} (node ${uuid}) dead for ${deadFor(now - deadSince)}, since ${iso(deadSince)}.`,
  };
}
