/**
 * The desired configuration as an immutable value, and the pure functions that
 * apply API requests to it. No I/O here: handlers call these, then persist the result.
 */
import { randomUUID } from 'node:crypto';
import type {
  ContainerConfiguration,
  CreateDatasetRequest,
  CreateLeaseRequest,
  DatasetConfiguration,
  Lease,
  NodeSummary,
  UpdateDatasetRequest,
} from '@flocker/api';
import { ConfigurationError } from './errors';
import { deleteEntry, setEntry } from './PersistentMap';

/** A lease as stored: an absolute expiry (epoch ms) rather than "seconds from now". */
export interface StoredLease {
  readonly dataset_id: string;
  readonly node_uuid: string;
  readonly expires_at: number | null;
  /**
   * Kept when its node is declared dead (manual failover). Stored only when true, so
   * unpinned leases encode exactly as before the field existed.
   */
  readonly pinned?: true;
}

export interface Configuration {
  /** Grows by one with every change; the configuration tag derives from it. */
  readonly version: number;
  /** Insertion order is creation order, which list responses keep. */
  readonly datasets: ReadonlyMap<string, DatasetConfiguration>;
  readonly leases: ReadonlyMap<string, StoredLease>;
  /** Nodes whose agent has reported at least once, with their last known host. */
  readonly nodes: ReadonlyMap<string, NodeSummary>;
  /** Configured containers by name (Flocker's container API); absent = none. */
  readonly containers?: ReadonlyMap<string, ContainerConfiguration>;
}

export const emptyConfiguration: Configuration = {
  version: 0,
  datasets: new Map(),
  leases: new Map(),
  nodes: new Map(),
};

export function configurationTag(config: Configuration): string {
  return `v${config.version}`;
}

/** The result of applying a request: the next configuration (unchanged if nothing to do) and the reply. */
export interface Applied<T> {
  readonly config: Configuration;
  readonly result: T;
  /** 201 for a newly created entity, else 200. */
  readonly status: 200 | 201;
}

function withDatasets(config: Configuration, datasets: ReadonlyMap<string, DatasetConfiguration>): Configuration {
  return { ...config, version: config.version + 1, datasets };
}

function withLeases(config: Configuration, leases: ReadonlyMap<string, StoredLease>): Configuration {
  return { ...config, version: config.version + 1, leases };
}

/** Leases still live at `now`. */
export function liveLease(config: Configuration, datasetId: string, now: number): StoredLease | undefined {
  const lease = config.leases.get(datasetId);
  if (lease === undefined) return undefined;
  return lease.expires_at === null || lease.expires_at > now ? lease : undefined;
}

export function leaseView(lease: StoredLease, now: number): Lease {
  return {
    dataset_id: lease.dataset_id,
    node_uuid: lease.node_uuid,
    expires: lease.expires_at === null ? null : Math.max(0, (lease.expires_at - now) / 1000),
    // Omitted when not pinned: Flocker v1 clients see the lease they always saw.
    ...(lease.pinned === true ? { pinned: true } : {}),
  };
}

export function listLeases(config: Configuration, now: number): Lease[] {
  const out: Lease[] = [];
  for (const lease of config.leases.values()) {
    if (lease.expires_at === null || lease.expires_at > now) out.push(leaseView(lease, now));
  }
  return out;
}

function requireKnownNode(config: Configuration, uuid: string): void {
  if (!config.nodes.has(uuid)) {
    throw new ConfigurationError(
      'UNKNOWN_NODE',
      `The primary node ${uuid} is not known: a node becomes known when its dataset agent first reports to the control service.`,
    );
  }
}

function requireDataset(config: Configuration, id: string): DatasetConfiguration {
  const dataset = config.datasets.get(id);
  if (dataset === undefined) {
    throw new ConfigurationError('DATASET_NOT_FOUND', `No dataset with id ${id} exists.`);
  }
  return dataset;
}

/**
 * A change to a deleted dataset: 405 with Flocker's code DATASET_DELETED (ClusterHQ
 * Flocker's httpapi answers METHOD_NOT_ALLOWED "The dataset has been deleted.").
 */
export function datasetDeleted(id: string): ConfigurationError {
  return new ConfigurationError('DATASET_DELETED', `The dataset ${id} has been deleted and cannot be changed.`);
}

export function createDataset(
  config: Configuration,
  req: CreateDatasetRequest,
  newId: () => string = randomUUID,
): Applied<DatasetConfiguration> {
  const id = req.dataset_id ?? newId();
  if (config.datasets.has(id)) {
    throw new ConfigurationError('DATASET_ID_IN_USE', `The dataset id ${id} is already in use.`);
  }
  requireKnownNode(config, req.primary);
  const dataset: DatasetConfiguration = {
    dataset_id: id,
    primary: req.primary,
    ...(req.maximum_size !== undefined ? { maximum_size: req.maximum_size } : {}),
    metadata: { ...(req.metadata ?? {}) },
    deleted: false,
  };
  return { config: withDatasets(config, setEntry(config.datasets, id, dataset)), result: dataset, status: 201 };
}

export function updateDataset(
  config: Configuration,
  id: string,
  req: UpdateDatasetRequest,
  now: number,
): Applied<DatasetConfiguration> {
  const current = requireDataset(config, id);
  if (current.deleted) throw datasetDeleted(id);
  let next: DatasetConfiguration = current;
  if (req.primary !== undefined && req.primary !== current.primary) {
    requireKnownNode(config, req.primary);
    const lease = liveLease(config, id, now);
    if (lease !== undefined && lease.node_uuid !== req.primary) {
      throw new ConfigurationError(
        'LEASE_HELD',
        `The dataset ${id} cannot move: node ${lease.node_uuid} holds a lease on it. Release the lease first.`,
      );
    }
    next = { ...next, primary: req.primary };
  }
  if (req.maximum_size !== undefined && req.maximum_size !== current.maximum_size) {
    next = { ...next, maximum_size: req.maximum_size };
  }
  if (next === current) return { config, result: current, status: 200 };
  return { config: withDatasets(config, setEntry(config.datasets, id, next)), result: next, status: 200 };
}

export function deleteDataset(config: Configuration, id: string, now: number): Applied<DatasetConfiguration> {
  const current = requireDataset(config, id);
  if (current.deleted) return { config, result: current, status: 200 };
  const lease = liveLease(config, id, now);
  if (lease !== undefined) {
    throw new ConfigurationError(
      'LEASE_HELD',
      `The dataset ${id} cannot be deleted: node ${lease.node_uuid} holds a lease on it. Release the lease first.`,
    );
  }
  const next: DatasetConfiguration = { ...current, deleted: true };
  return { config: withDatasets(config, setEntry(config.datasets, id, next)), result: next, status: 200 };
}

export function acquireLease(config: Configuration, req: CreateLeaseRequest, now: number): Applied<Lease> {
  // A lease keeps a dataset where it is; a deleted dataset is being destroyed: nothing to keep.
  if (config.datasets.get(req.dataset_id)?.deleted === true) throw datasetDeleted(req.dataset_id);
  const existing = liveLease(config, req.dataset_id, now);
  if (existing !== undefined && existing.node_uuid !== req.node_uuid) {
    throw new ConfigurationError(
      'LEASE_HELD',
      `The dataset ${req.dataset_id} is already leased by node ${existing.node_uuid}.`,
    );
  }
  // A renewal that says nothing about pinning keeps what the lease had; a new lease is unpinned unless asked.
  const pinned = req.pinned ?? existing?.pinned === true;
  const lease: StoredLease = {
    dataset_id: req.dataset_id,
    node_uuid: req.node_uuid,
    expires_at: req.expires === null ? null : now + Math.round(req.expires * 1000),
    ...(pinned ? { pinned: true as const } : {}),
  };
  return {
    config: withLeases(config, setEntry(config.leases, req.dataset_id, lease)),
    result: leaseView(lease, now),
    status: existing === undefined ? 201 : 200,
  };
}

export function releaseLease(config: Configuration, datasetId: string, now: number): Applied<Lease> {
  const existing = liveLease(config, datasetId, now);
  if (existing === undefined) {
    throw new ConfigurationError('LEASE_NOT_FOUND', `There is no lease on the dataset ${datasetId}.`);
  }
  return {
    config: withLeases(config, deleteEntry(config.leases, datasetId)),
    result: leaseView(existing, now),
    status: 200,
  };
}

/** Drops leases that have expired by `now`; returns the same value when none did. */
export function expireLeases(config: Configuration, now: number): Configuration {
  let leases: ReadonlyMap<string, StoredLease> | undefined;
  for (const [id, lease] of config.leases) {
    if (lease.expires_at !== null && lease.expires_at <= now) leases = deleteEntry(leases ?? config.leases, id);
  }
  return leases === undefined ? config : withLeases(config, leases);
}

/** A lease released because its node was dead for the lease grace, with when that node died. */
export interface DeadNodeRelease {
  readonly lease: StoredLease;
  /** Epoch ms the node was declared dead (its last report plus the node timeout). */
  readonly deadSince: number;
}

/**
 * Releases every live, unpinned lease whose node has been dead for at least `graceMs`
 * at `now`. `deadSince(uuid)` answers when a node was declared dead, or undefined while
 * it is alive (or unknown). Returns the same configuration when nothing is due, so
 * applying it again, or on a configuration where another replica already released the
 * leases, is a no-op; a node alive again at the time of applying keeps its leases.
 */
export function releaseDeadNodeLeases(
  config: Configuration,
  deadSince: (nodeUuid: string) => number | undefined,
  now: number,
  graceMs: number,
): Applied<DeadNodeRelease[]> {
  let leases: ReadonlyMap<string, StoredLease> | undefined;
  const released: DeadNodeRelease[] = [];
  for (const [id, lease] of config.leases) {
    if (lease.pinned === true || (lease.expires_at !== null && lease.expires_at <= now)) continue;
    const since = deadSince(lease.node_uuid);
    if (since === undefined || now - since < graceMs) continue;
    leases = deleteEntry(leases ?? config.leases, id);
    released.push({ lease, deadSince: since });
  }
  return { config: leases === undefined ? config : withLeases(config, leases), result: released, status: 200 };
}

/** The earliest expiry among live leases, for scheduling the expiry timer. */
export function nextLeaseExpiry(config: Configuration): number | undefined {
  let next: number | undefined;
  for (const lease of config.leases.values()) {
    if (lease.expires_at !== null && (next === undefined || lease.expires_at < next)) next = lease.expires_at;
  }
  return next;
}

/** Records a node (first report, or its host changed); unchanged value otherwise. */
export function registerNode(config: Configuration, node: NodeSummary): Configuration {
  const known = config.nodes.get(node.uuid);
  if (known !== undefined && known.host === node.host) return config;
  const nodes = setEntry(config.nodes, node.uuid, { uuid: node.uuid, host: node.host });
  return { ...config, version: config.version + 1, nodes };
}
