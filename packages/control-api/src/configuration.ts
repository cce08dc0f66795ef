/**
 * The desired configuration as an immutable value, and the pure functions that
 * apply API requests to it. No I/O here: handlers call these, then persist the result.
 */
import { randomUUID } from 'node:crypto';
import type {
  ContainerConfiguration,
  CreateDatasetRequest,
  CreateLeaseRequest,
  CreateSnapshotRequest,
  DatasetConfiguration,
  Lease,
  LeaseReleaseRequest,
  NodeSummary,
  SnapshotConfiguration,
  ReleasedLease,
  UpdateDatasetRequest,
} from '@flocker/api';
import { clientMetadataKeyCount, METADATA_CLONE_KEY, METADATA_MAX_KEYS, METADATA_NAME_KEY } from '@flocker/api';
import { type DataNodeRule, dropReplicaOptIn, keepDataNode, movedTo, type ReplicaOptInRule } from './dataNode';
import { ConfigurationError } from './errors';
import { requireNameUnused, requireNewName } from './names';
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
  /**
   * The named local users holding it on its node (docker, csi), never empty. Absent: only
   * acquires without a holder hold it, as every lease stored before holders existed.
   */
  readonly holders?: readonly string[];
  /** Beside holders: an acquire without a holder holds it too. Stored only when true. */
  readonly unnamed?: true;
  /**
   * The holder promised to let go of it when asked while nothing uses it (the Docker plugin's idle lease): a request
   * it would refuse asks for it instead (leaseHandover.ts). Stored only when true.
   */
  readonly release_on_request?: true;
  /** A pending request to let go of it (by: node UUID or api; at: ISO time). Stored only while pending. */
  readonly release_requested?: Readonly<LeaseReleaseRequest>;
}

/** Who holds a lease: named holders, and whether an unnamed (holder-less, Flocker v1) acquire does. */
interface LeaseShares {
  readonly names: readonly string[];
  readonly unnamed: boolean;
}

function sharesOf(lease: StoredLease): LeaseShares {
  return lease.holders === undefined
    ? { names: [], unnamed: true }
    : { names: lease.holders, unnamed: lease.unnamed === true };
}

/** The stored fields for shares; a lease only unnamed acquires hold stores none (as before holders existed). */
function storedShares(shares: LeaseShares): Pick<StoredLease, 'holders' | 'unnamed'> {
  if (shares.names.length === 0) return {};
  return { holders: shares.names, ...(shares.unnamed ? { unnamed: true as const } : {}) };
}

/**
 * "node X" and, when named holders hold its lease, who: for the messages of refusals. A lease its holders promised to
 * let go of when asked (release_on_request: the Docker plugin keeps an idle volume's lease so) may be idle: the text
 * says it is held, not that it is used.
 */
export function leaseHolderText(lease: Pick<StoredLease, 'node_uuid' | 'holders' | 'release_on_request'>): string {
  if (lease.holders === undefined) return `node ${lease.node_uuid}`;
  const who = lease.holders.join(', ');
  return lease.release_on_request === true
    ? `node ${lease.node_uuid} (held there by ${who}, kept while no container uses it)`
    : `node ${lease.node_uuid} (used there by ${who})`;
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
  /** Configured snapshots by id, in creation order (issue 20); absent = none. */
  readonly snapshots?: ReadonlyMap<string, SnapshotConfiguration>;
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
    // Omitted while only unnamed acquires hold it: again the lease v1 clients always saw.
    ...(lease.holders !== undefined ? { holders: [...lease.holders] } : {}),
    ...(lease.holders !== undefined && lease.unnamed === true ? { unnamed_holder: true } : {}),
    // Both omitted unless used: the v1 lease again.
    ...(lease.release_on_request === true ? { release_on_request: true } : {}),
    ...(lease.release_requested !== undefined ? { release_requested: { ...lease.release_requested } } : {}),
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

/** The dataset `id`, or DATASET_NOT_FOUND (404). */
export function requireDataset(config: Configuration, id: string): DatasetConfiguration {
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

/**
 * `snapshotSize` answers the size (bytes) of a snapshot the backends hold, when a node
 * reports it: a clone (source_snapshot_id) defaults to that size and may not be smaller.
 * A clone of a dataset (source_dataset_id) asks for an implicit snapshot of it, taken at
 * `now`, in the same change, and is a clone of that snapshot.
 */
export function createDataset(
  config: Configuration,
  req: CreateDatasetRequest,
  newId: () => string = randomUUID,
  snapshotSize: (snapshotId: string) => number | undefined = () => undefined,
  now: number = Date.now(),
): Applied<DatasetConfiguration> {
  const id = req.dataset_id ?? newId();
  if (config.datasets.has(id)) {
    throw new ConfigurationError('DATASET_ID_IN_USE', `The dataset id ${id} is already in use.`);
  }
  requireKnownNode(config, req.primary);
  const name = req.metadata?.[METADATA_NAME_KEY];
  requireNewName('volume', name);
  if (req.unique_name === true && name !== undefined) requireNameUnused(config.datasets.values(), name);
  let maximumSize =
    req.source_snapshot_id === undefined
      ? req.maximum_size
      : cloneSize(config, req.source_snapshot_id, req.maximum_size, snapshotSize);
  let sourceSnapshotId = req.source_snapshot_id;
  let snapshots = config.snapshots;
  if (req.source_dataset_id !== undefined) {
    const implicit = implicitSnapshot(config, req.source_dataset_id, id, req.maximum_size, now, newId);
    maximumSize = implicit.maximumSize;
    sourceSnapshotId = implicit.snapshot.snapshot_id;
    snapshots = setEntry(config.snapshots ?? NO_SNAPSHOTS, sourceSnapshotId, implicit.snapshot);
  }
  const dataset: DatasetConfiguration = {
    dataset_id: id,
    primary: req.primary,
    ...(maximumSize !== undefined ? { maximum_size: maximumSize } : {}),
    metadata: { ...(req.metadata ?? {}) },
    deleted: false,
    ...(sourceSnapshotId !== undefined ? { source_snapshot_id: sourceSnapshotId } : {}),
    // A restore (issue 20, backups.ts): its primary's agent writes the backup before the first mount.
    ...(req.source_backup !== undefined ? { source_backup: { ...req.source_backup } } : {}),
  };
  const next = withDatasets(config, setEntry(config.datasets, id, dataset));
  return { config: snapshots === config.snapshots ? next : { ...next, snapshots }, result: dataset, status: 201 };
}

/**
 * Why a move to another node than the lease's is refused (LEASE_HELD), or undefined when it goes
 * ahead: `when_released` (issue 24) with the lease held by the dataset's primary, that node
 * reporting the local backend (`primaryBackend`, from its latest report since this service
 * started). Its agent copies while the volume stays in use there and does the final send only
 * once nothing on the node has it mounted (dataset-agent localChanges: a non-primary's move waits
 * for the release), so the lease keeps its v1 meaning in effect. A block backend's agent would
 * unmount it from under its users; a lease of a third node (not the primary) means the data is
 * used where it is not; an unknown backend is not known to copy first.
 */
function leasedMoveRefusal(
  dataset: DatasetConfiguration,
  lease: StoredLease,
  whenReleased: boolean,
  primaryBackend: 'local' | 'other' | undefined,
): ConfigurationError | undefined {
  const held = `The dataset ${dataset.dataset_id} cannot move: ${leaseHolderText(lease)} holds a lease on it.`;
  const byPrimary = lease.node_uuid === dataset.primary;
  if (!whenReleased) {
    const hint =
      byPrimary && primaryBackend === 'local'
        ? ' Release the lease first, or ask for the move with when_released: true (flocker volumes move --when-released): the data is copied while it stays in use, and the move finishes once it is released.'
        : ' Release the lease first.';
    return new ConfigurationError('LEASE_HELD', held + hint);
  }
  if (!byPrimary)
    return new ConfigurationError(
      'LEASE_HELD',
      `${held} when_released does not apply: the lease is held by node ${lease.node_uuid}, not by the dataset's primary ${dataset.primary}. Release the lease first.`,
    );
  if (primaryBackend === 'local') return undefined;
  return new ConfigurationError(
    'LEASE_HELD',
    primaryBackend === undefined
      ? `${held} when_released does not apply yet: node ${dataset.primary} has not reported since the control service started, so its backend is not known (when_released applies only to local storage). Try again once it reports, or release the lease first.`
      : `${held} when_released applies only to local storage: node ${dataset.primary}'s backend would unmount the volume from under its users. Release the lease first.`,
  );
}

/**
 * A move (a new primary) records, in the same change, the node that may hold the data (dataNode.ts:
 * `dataNode` answers from what the service knows of the nodes). `backend` tells a node's backend
 * (latest report since this service started) for a move `when_released` (leasedMoveRefusal);
 * `replicaOptIn` whether accept-replica-loss set before the move stays for it (dataNode.ts).
 */
export function updateDataset(
  config: Configuration,
  id: string,
  req: UpdateDatasetRequest,
  now: number,
  dataNode: DataNodeRule = keepDataNode,
  backend: (node: string) => 'local' | 'other' | undefined = () => undefined,
  replicaOptIn: ReplicaOptInRule = dropReplicaOptIn,
): Applied<DatasetConfiguration> {
  const current = requireDataset(config, id);
  if (current.deleted) throw datasetDeleted(id);
  let next: DatasetConfiguration = current;
  if (req.primary !== undefined && req.primary !== current.primary) {
    requireKnownNode(config, req.primary);
    const lease = liveLease(config, id, now);
    if (lease !== undefined && lease.node_uuid !== req.primary) {
      const refused = leasedMoveRefusal(current, lease, req.when_released === true, backend(current.primary));
      if (refused !== undefined) throw refused;
    }
    next = movedTo(next, req.primary, dataNode, replicaOptIn);
  }
  if (req.maximum_size !== undefined && req.maximum_size !== current.maximum_size) {
    // Growth only: no backend shrinks a volume, and recording a smaller size would leave the
    // configuration saying what no node will ever make true.
    const had = current.maximum_size;
    if (had != null && (req.maximum_size === null || req.maximum_size < had)) {
      throw new ConfigurationError(
        'DATASET_SHRINK',
        `The dataset ${id} is ${had} bytes; volumes do not shrink (asked for ${req.maximum_size === null ? 'no size' : `${req.maximum_size} bytes`}).`,
      );
    }
    next = { ...next, maximum_size: req.maximum_size };
  }
  // Onto the moved dataset's metadata: a move's marker stays beside the update's keys.
  const metadata = req.metadata === undefined ? undefined : mergeMetadata(next.metadata, req.metadata);
  if (metadata !== undefined) next = { ...next, metadata };
  if (next === current) return { config, result: current, status: 200 };
  return { config: withDatasets(config, setEntry(config.datasets, id, next)), result: next, status: 200 };
}

/**
 * `patch` merged into `metadata` (a string sets a key, null removes it); undefined when
 * nothing changes. Refused when the result has more keys than the API allows.
 */
function mergeMetadata(
  metadata: Readonly<Record<string, string>>,
  patch: Readonly<Record<string, string | null>>,
): Record<string, string> | undefined {
  const merged: Record<string, string> = { ...metadata };
  let changed = false;
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      if (Object.hasOwn(merged, key)) {
        delete merged[key];
        changed = true;
      }
    } else if (merged[key] !== value) {
      merged[key] = value;
      changed = true;
    }
  }
  if (!changed) return undefined;
  // The control service's own keys (the data-node marker) do not count.
  const count = clientMetadataKeyCount(merged);
  if (count > METADATA_MAX_KEYS) {
    throw new ConfigurationError(
      'METADATA_TOO_MANY_KEYS',
      `The dataset's metadata would have ${count} keys; at most ${METADATA_MAX_KEYS} are allowed.`,
    );
  }
  return merged;
}

/**
 * `release`: the requester's own lease (a node: its node's; 'api': any) loses `holder`'s share in the same change
 * (?release_holder=, issue 23: the Docker plugin's rm of a volume whose lease it kept idle is one commit, not a
 * release's and a delete's). All or nothing: a lease that remains (other holders) refuses the delete as before.
 * `release.node` (?release_node=): only that node's lease loses the share — an API user (a plugin on plain HTTP) never
 * ends the lease another node took meanwhile (review s27 F1: a stale idle entry's rm would delete a volume in use there).
 */
export function deleteDataset(
  config: Configuration,
  id: string,
  now: number,
  release?: { holder: string; requester: string; node?: string },
): Applied<DatasetConfiguration> {
  const current = requireDataset(config, id);
  if (current.deleted) return { config, result: current, status: 200 };
  const own = release === undefined ? undefined : liveLease(config, id, now);
  if (
    own !== undefined &&
    release !== undefined &&
    (release.requester === 'api' || own.node_uuid === release.requester) &&
    (release.node === undefined || own.node_uuid === release.node)
  )
    config = releaseLease(config, id, now, release.holder).config;
  const lease = liveLease(config, id, now);
  if (lease !== undefined) {
    throw new ConfigurationError(
      'LEASE_HELD',
      `The dataset ${id} cannot be deleted: ${leaseHolderText(lease)} holds a lease on it. Release the lease first.`,
    );
  }
  const next: DatasetConfiguration = { ...current, deleted: true };
  return { config: withDatasets(config, setEntry(config.datasets, id, next)), result: next, status: 200 };
}

/**
 * The most named holders one lease may have: the local users of a volume on its node (docker, csi, and a few
 * more). Every holder is in the configuration and in every snapshot sent to every agent: without a bound a looping
 * client (a holder per container) grew them all without end (review T6 F2). Renewals of a holder already there are
 * never refused, nor acquires without a holder.
 */
export const LEASE_MAX_HOLDERS = 16;

export function acquireLease(config: Configuration, req: CreateLeaseRequest, now: number): Applied<Lease> {
  // A lease keeps a dataset where it is; a deleted dataset is being destroyed: nothing to keep.
  if (config.datasets.get(req.dataset_id)?.deleted === true) throw datasetDeleted(req.dataset_id);
  const existing = liveLease(config, req.dataset_id, now);
  if (existing !== undefined && existing.node_uuid !== req.node_uuid) {
    throw new ConfigurationError(
      'LEASE_HELD',
      `The dataset ${req.dataset_id} is already leased by ${leaseHolderText(existing)}.`,
    );
  }
  // A renewal that says nothing about pinning keeps what the lease had; a new lease is unpinned unless asked.
  const pinned = req.pinned ?? existing?.pinned === true;
  // The node's lease again: the holder joins those already holding it (once); the expiry is the request's.
  const had: LeaseShares = existing === undefined ? { names: [], unnamed: false } : sharesOf(existing);
  if (req.holder !== undefined && !had.names.includes(req.holder) && had.names.length >= LEASE_MAX_HOLDERS) {
    throw new ConfigurationError(
      'LEASE_TOO_MANY_HOLDERS',
      `The lease on dataset ${req.dataset_id} already has ${had.names.length} named holders (${had.names.join(', ')}); at most ${LEASE_MAX_HOLDERS} are allowed: one must release its share before ${req.holder} can hold it.`,
    );
  }
  const shares: LeaseShares =
    req.holder === undefined
      ? { names: had.names, unnamed: true }
      : { names: had.names.includes(req.holder) ? had.names : [...had.names, req.holder], unnamed: had.unnamed };
  const onRequest = releaseOnRequest(existing, had, shares, req.holder, req.release_on_request);
  const lease: StoredLease = {
    dataset_id: req.dataset_id,
    node_uuid: req.node_uuid,
    expires_at: req.expires === null ? null : now + Math.round(req.expires * 1000),
    ...(pinned ? { pinned: true as const } : {}),
    ...storedShares(shares),
    ...(onRequest ? { release_on_request: true as const } : {}),
    // A request stays pending while the promise holds: the holder answers it (lets go, or declines).
    ...(onRequest && existing?.release_requested !== undefined
      ? { release_requested: existing.release_requested }
      : {}),
  };
  return {
    config: withLeases(config, setEntry(config.leases, req.dataset_id, lease)),
    result: leaseView(lease, now),
    status: existing === undefined ? 201 : 200,
  };
}

/**
 * Whether the lease, after an acquire by its node, is let go of on request: only while every share promised to (a
 * pod's share through the CSI driver, or an API user's, never did: "exactly as today", review R1 F3). A promise
 * (`asked` true) makes it so when the lease had it already or no other share holds the lease; `false` clears it;
 * without the field a renewal keeps what the lease had, but a share added by an acquire that did not promise (another
 * holder, or the first unnamed acquire) clears it.
 */
function releaseOnRequest(
  existing: StoredLease | undefined,
  had: LeaseShares,
  shares: LeaseShares,
  holder: string | undefined,
  asked: boolean | undefined,
): boolean {
  if (asked === false) return false;
  if (asked === true) {
    if (existing === undefined || existing.release_on_request === true) return true;
    const others = had.names.some((n) => n !== holder) || (had.unnamed && holder !== undefined);
    return !others;
  }
  if (existing?.release_on_request !== true) return false;
  const added = shares.names.some((n) => !had.names.includes(n)) || (shares.unnamed && !had.unnamed);
  return !added;
}

/**
 * Without `holder`: ends the whole lease (every holder's share), as Flocker v1 did. With it: only
 * that holder lets go (a holder not holding it changes nothing), and the lease ends with the last
 * share; `remains` tells which. An unnamed share is ended only by a release without holder.
 */
export function releaseLease(
  config: Configuration,
  datasetId: string,
  now: number,
  holder?: string,
): Applied<ReleasedLease> {
  const existing = liveLease(config, datasetId, now);
  if (existing === undefined) {
    throw new ConfigurationError('LEASE_NOT_FOUND', `There is no lease on the dataset ${datasetId}.`);
  }
  if (holder !== undefined) {
    const had = sharesOf(existing);
    const shares: LeaseShares = { names: had.names.filter((n) => n !== holder), unnamed: had.unnamed };
    if (shares.names.length === had.names.length) {
      return { config, result: { ...leaseView(existing, now), remains: true }, status: 200 };
    }
    if (shares.names.length > 0 || shares.unnamed) {
      const lease: StoredLease = {
        dataset_id: existing.dataset_id,
        node_uuid: existing.node_uuid,
        expires_at: existing.expires_at,
        ...(existing.pinned === true ? { pinned: true as const } : {}),
        ...storedShares(shares),
        ...(existing.release_on_request === true ? { release_on_request: true as const } : {}),
        ...(existing.release_requested !== undefined ? { release_requested: existing.release_requested } : {}),
      };
      return {
        config: withLeases(config, setEntry(config.leases, datasetId, lease)),
        result: { ...leaseView(lease, now), remains: true },
        status: 200,
      };
    }
    return {
      config: withLeases(config, deleteEntry(config.leases, datasetId)),
      result: { ...leaseView(existing, now), remains: false },
      status: 200,
    };
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

// ---- snapshots (issue 20) ------------------------------------------------------

/** A clone's default size is its snapshot's, but never below the API's minimum dataset size. */
const MINIMUM_CLONE_SIZE = 64 * 1024 * 1024;
const NO_SNAPSHOTS: ReadonlyMap<string, SnapshotConfiguration> = new Map();

function withSnapshots(config: Configuration, snapshots: ReadonlyMap<string, SnapshotConfiguration>): Configuration {
  return { ...config, version: config.version + 1, snapshots };
}

/**
 * The maximum_size of a clone of `snapshotId`: refused when the snapshot is unknown or
 * deleted, or when the size asked for is below the snapshot's (when a node reports it);
 * absent, the snapshot's size (when known).
 */
function cloneSize(
  config: Configuration,
  snapshotId: string,
  asked: number | null | undefined,
  snapshotSize: (snapshotId: string) => number | undefined,
): number | null | undefined {
  const source = config.snapshots?.get(snapshotId);
  if (source === undefined || source.deleted === true) {
    throw new ConfigurationError(
      'SOURCE_SNAPSHOT_UNKNOWN',
      `No snapshot with id ${snapshotId} exists${source !== undefined ? ' any more (it is deleted)' : ''}: there is nothing to clone.`,
    );
  }
  const size = snapshotSize(snapshotId);
  if (size === undefined) return asked;
  if (asked === undefined || asked === null) return Math.max(size, MINIMUM_CLONE_SIZE);
  if (asked < size) {
    throw new ConfigurationError(
      'CLONE_TOO_SMALL',
      `maximum_size ${asked} is smaller than the snapshot ${snapshotId} (${size} bytes); a clone is at least as big as its snapshot.`,
    );
  }
  return asked;
}

/**
 * The implicit snapshot of a clone of `sourceId` (a live dataset) and the clone's size: the
 * size asked for, or the source's; never below the source's when that is set.
 */
function implicitSnapshot(
  config: Configuration,
  sourceId: string,
  cloneId: string,
  asked: number | null | undefined,
  now: number,
  newId: () => string,
): { snapshot: SnapshotConfiguration; maximumSize: number | null | undefined } {
  const source = config.datasets.get(sourceId);
  if (source === undefined || source.deleted) {
    throw new ConfigurationError(
      'SOURCE_DATASET_UNKNOWN',
      `No dataset with id ${sourceId} exists${source !== undefined ? ' any more (it is deleted)' : ''}: there is nothing to clone.`,
    );
  }
  const sourceSize = source.maximum_size ?? undefined;
  if (sourceSize !== undefined && asked !== undefined && asked !== null && asked < sourceSize) {
    throw new ConfigurationError(
      'CLONE_TOO_SMALL',
      `maximum_size ${asked} is smaller than the dataset ${sourceId} (${sourceSize} bytes); a clone is at least as big as its source.`,
    );
  }
  const snapshotId = newId();
  if (config.snapshots?.has(snapshotId) === true) {
    throw new ConfigurationError('SNAPSHOT_ID_IN_USE', `The snapshot id ${snapshotId} is already in use.`);
  }
  return {
    snapshot: {
      snapshot_id: snapshotId,
      dataset_id: sourceId,
      metadata: { [METADATA_CLONE_KEY]: cloneId },
      created_at: new Date(now).toISOString(),
    },
    maximumSize: asked === undefined || asked === null ? (sourceSize ?? asked) : asked,
  };
}

export function requireSnapshot(config: Configuration, id: string): SnapshotConfiguration {
  const snapshot = config.snapshots?.get(id);
  if (snapshot === undefined) throw new ConfigurationError('SNAPSHOT_NOT_FOUND', `No snapshot with id ${id} exists.`);
  return snapshot;
}

/** Asks for a snapshot of a live dataset (its primary node takes it); `now` is when it was asked for. */
export function createSnapshot(
  config: Configuration,
  req: CreateSnapshotRequest,
  now: number,
  newId: () => string = randomUUID,
): Applied<SnapshotConfiguration> {
  const dataset = requireDataset(config, req.dataset_id);
  if (dataset.deleted) {
    throw new ConfigurationError(
      'SNAPSHOT_SOURCE_DELETED',
      `The dataset ${req.dataset_id} has been deleted: there is nothing to take a snapshot of.`,
    );
  }
  const snapshots = config.snapshots ?? NO_SNAPSHOTS;
  const id = req.snapshot_id ?? newId();
  if (snapshots.has(id)) {
    throw new ConfigurationError('SNAPSHOT_ID_IN_USE', `The snapshot id ${id} is already in use.`);
  }
  const name = req.metadata?.[METADATA_NAME_KEY];
  requireNewName('snapshot', name);
  if (name !== undefined) {
    for (const other of snapshots.values()) {
      if (other.deleted !== true && other.metadata[METADATA_NAME_KEY] === name) {
        throw new ConfigurationError(
          'SNAPSHOT_NAME_IN_USE',
          `The snapshot name ${JSON.stringify(name)} is used by the snapshot ${other.snapshot_id}; names are unique among live snapshots.`,
        );
      }
    }
  }
  const snapshot: SnapshotConfiguration = {
    snapshot_id: id,
    dataset_id: dataset.dataset_id,
    metadata: { ...(req.metadata ?? {}) },
    created_at: new Date(now).toISOString(),
  };
  return { config: withSnapshots(config, setEntry(snapshots, id, snapshot)), result: snapshot, status: 201 };
}

/** Marks a snapshot deleted (agents destroy it); deleting it again answers it unchanged. */
export function deleteSnapshot(config: Configuration, id: string): Applied<SnapshotConfiguration> {
  const current = requireSnapshot(config, id);
  if (current.deleted === true) return { config, result: current, status: 200 };
  const next: SnapshotConfiguration = { ...current, deleted: true };
  return {
    config: withSnapshots(config, setEntry(config.snapshots ?? NO_SNAPSHOTS, id, next)),
    result: next,
    status: 200,
  };
}

/**
 * Drops the deleted snapshots no backend holds any more: `reported` holds every snapshot
 * id the alive nodes' reports list. The same value when nothing is due, so applying it
 * again (or after another replica did) is a no-op.
 */
export function purgeSnapshots(
  config: Configuration,
  reported: ReadonlySet<string> | undefined,
  neverHeld?: (snapshot: SnapshotConfiguration, datasets: Configuration['datasets']) => boolean,
): Applied<string[]> {
  let snapshots: ReadonlyMap<string, SnapshotConfiguration> | undefined;
  const purged: string[] = [];
  for (const [id, s] of config.snapshots ?? NO_SNAPSHOTS) {
    if (s.deleted !== true || reported?.has(id) === true) continue;
    // No node reports snapshots at all: only one no backend can hold (`neverHeld`: local storage's) is known gone.
    if (reported === undefined && neverHeld?.(s, config.datasets) !== true) continue;
    snapshots = deleteEntry(snapshots ?? config.snapshots ?? NO_SNAPSHOTS, id);
    purged.push(id);
  }
  return { config: snapshots === undefined ? config : withSnapshots(config, snapshots), result: purged, status: 200 };
}
