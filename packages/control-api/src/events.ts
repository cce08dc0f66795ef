/**
 * What the control service decided on its own (failover) or saw happen (a move cancelled), kept in memory for
 * `GET /v1/state/events`, `flocker status`, `flocker events` and the web UI: a ring of the last
 * EVENT_CAPACITY events, oldest first. The message builders and rules are pure.
 * Each replica keeps its own ring (events are not stored in etcd): it records what it
 * saw and decided itself.
 */
import { type ClusterEvent, METADATA_NAME_KEY, type UpdateDatasetRequest } from '@flocker/api';
import { type Configuration, liveLease } from './configuration';

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

/** A pending move the request cancels: the dataset, the node it was moving to, the node using it again. */
export interface CancelledMove {
  readonly datasetId: string;
  readonly volume: string | undefined;
  readonly target: string;
  readonly usedOn: string;
}

/**
 * Whether `req` cancels a move waiting for its source's users (when_released, issue 24): it moves the dataset back to
 * the node holding its live lease, a local node whose latest report lists the dataset's live copy, while the primary
 * (the move's target) lists none. Only such a move leaves the lease with a node that is not the primary while that
 * node keeps the only live copy (a when_released move needs the lease held by the primary being left, and the target
 * gets no copy promoted while it is held). An ordinary Mount elsewhere (the new node's lease taken before its move)
 * moves the dataset to a node holding no copy: not a cancel. The facts are this replica's latest reports: after a
 * restart none are known until the nodes report, so a cancel may go unrecorded, never one made up.
 */
export function cancelledMove(
  config: Configuration,
  id: string,
  req: UpdateDatasetRequest,
  now: number,
  facts: {
    holdersOf: (dataset: string) => ReadonlySet<string> | undefined;
    backend: (node: string) => 'local' | 'other' | undefined;
  },
): CancelledMove | undefined {
  const current = config.datasets.get(id);
  const to = req.primary;
  if (current === undefined || current.deleted || to === undefined || to === current.primary) return undefined;
  if (liveLease(config, id, now)?.node_uuid !== to || facts.backend(to) !== 'local') return undefined;
  const holders = facts.holdersOf(id);
  if (holders === undefined || !holders.has(to) || holders.has(current.primary)) return undefined;
  return { datasetId: id, volume: current.metadata[METADATA_NAME_KEY], target: current.primary, usedOn: to };
}

export function moveCancelledEvent(
  move: CancelledMove,
  hostOf: (node: string) => string | undefined,
  now: number,
): ClusterEvent {
  const what =
    move.volume !== undefined && move.volume !== ''
      ? `volume ${move.volume} (dataset ${move.datasetId})`
      : `dataset ${move.datasetId}`;
  const node = (uuid: string): string => {
    const host = hostOf(uuid);
    return host !== undefined ? `host ${host} (node ${uuid})` : `node ${uuid}`;
  };
  return {
    time: iso(now),
    kind: 'move_cancelled',
    node_uuid: move.usedOn,
    dataset_id: move.datasetId,
    message: `Move of ${what} to ${node(move.target)} cancelled: used again on ${node(move.usedOn)}, which holds its lease.`,
  };
}
