/**
 * The CSI Identity, Controller and Node services on the Flocker control service.
 * A CSI volume is a dataset; its volume_id is the dataset id, its name is metadata.name
 * (as for Docker volumes, so one cluster serves both). Request shapes are checked in
 * wire.ts, decisions are in mapping.ts; this file does the I/O.
 */
import { lstat, mkdir, rmdir, stat, statfs, unlink } from 'node:fs/promises';
import {
  FlockerApiError,
  METADATA_NAME_KEY,
  METADATA_FILESYSTEM_KEY,
  METADATA_PROFILE_KEY,
  XFS_MINIMUM_SIZE,
  type ClusterSnapshot,
  type CreateDatasetRequest,
  type DatasetConfiguration,
  type FlockerClient,
  type Lease,
  type SnapshotConfiguration,
} from '@flocker/api';
import { status } from '@grpc/grpc-js';
import type { Logger } from 'winston';
import {
  capabilityProblem,
  CsiError,
  datasetIdForName,
  isDatasetId,
  paginate,
  readOnlyMode,
  requestedFilesystem,
  sizeForRange,
  sizeSatisfies,
  type MountInfoEntry,
  type VolumeCapability,
} from './mapping';
import { isReadOnly, mountAt, sameSource, type Mounter } from './mounter';
import {
  availableCapacity,
  choosePlacement,
  MINIMUM_VOLUME_SIZE,
  nodeTopology,
  topologyConflict,
  volumeTopology,
  type TopologyRequirement,
} from './topology';
import {
  cloneSize,
  contentSourceConflict,
  contentSourceProblem,
  contentSourceSize,
  contentSourceWire,
  csiSnapshot,
  csiSnapshots,
  existingSnapshotProblem,
  filterSnapshots,
  implicitSnapshotOf,
  liveSnapshots,
  snapshotIdForName,
  snapshotProgress,
  snapshotState,
  type ContentSource,
  type CsiSnapshot,
} from './snapshots';
import {
  ControllerExpandVolumeRequest,
  CreateSnapshotRequest,
  CreateVolumeRequest,
  DeleteSnapshotRequest,
  DeleteVolumeRequest,
  GetSnapshotRequest,
  ListSnapshotsRequest,
  GetCapacityRequest,
  ListVolumesRequest,
  NodeGetVolumeHealthRequest,
  NodeGetVolumeStatsRequest,
  NodePublishVolumeRequest,
  NodeStageVolumeRequest,
  NodeUnpublishVolumeRequest,
  NodeUnstageVolumeRequest,
  parseRequest,
  required,
  snapshotWire,
  toCapability,
  toContentSource,
  toRange,
  toRequirement,
  toSegments,
  ValidateVolumeCapabilitiesRequest,
  type VolumeCapabilityWire,
  type VolumeUsageWire,
  type VolumeWire,
} from './wire';
import { errorMessage, sleep } from '@flocker/runtime';

export const DRIVER_NAME = 'flocker.clusterhq.io';

/**
 * This plugin's share of its node's lease (the Docker plugin on the same node holds its own):
 * NodeUnstageVolume lets go of only this share, so a Docker container still using the volume keeps it here.
 */
export const LEASE_HOLDER = 'csi';

/** Whether this node's CSI share holds the lease: named, or a lease no holder named (a stage by an older driver). */
export function heldForCsi(lease: Lease | undefined, me: string): boolean {
  if (lease === undefined || lease.node_uuid !== me) return false;
  return lease.holders === undefined || lease.holders.includes(LEASE_HOLDER) || lease.unnamed_holder === true;
}

/**
 * Who uses a leased volume on its node, for messages: "; used there by docker, csi"; for a lease
 * no holder named (a driver or plugin from before holders, `flocker leases acquire`), how it ends.
 */
function leaseUsers(lease: Lease): string {
  if (lease.holders === undefined)
    return '; it names no holder: once nothing there uses the volume, flocker leases release ends it';
  return `; used there by ${lease.holders.join(', ')}`;
}

export type ControlClient = Pick<
  FlockerClient,
  | 'version'
  | 'listDatasets'
  | 'createDataset'
  | 'updateDataset'
  | 'deleteDataset'
  | 'listLeases'
  | 'acquireLease'
  | 'releaseLease'
  | 'waitForCluster'
  | 'createSnapshot'
  | 'deleteSnapshot'
>;

export type DriverMode = 'controller' | 'node' | 'all';

export interface CsiDriverOptions {
  client: ControlClient;
  logger: Logger;
  mode: DriverMode;
  /** This node's Flocker UUID (node and all modes). */
  nodeId?: string;
  mounter: Mounter;
  version: string;
  /** Size of a volume created without a capacity range. */
  defaultSize: number;
  /** How long NodeStageVolume waits for the agent to mount the dataset here. */
  stageTimeoutMs: number;
  /** Long-poll duration per request while waiting. Default 25 s. */
  pollMs?: number;
  /**
   * How long NodeStageVolume waits for a live node to let go of the lease before it is
   * FAILED_PRECONDITION (default 0: at once). A rescheduled pod's stage on the new node
   * usually comes while the old node's kubelet is still unstaging; failing at once costs the
   * kubelet's retry backoff (0.5, 1, 2, 4 s …) instead of the moment the lease is released.
   */
  handoverWaitMs?: number;
  /** How long NodeGetInfo waits for this node's agent to report for the first time (default 30 s). */
  nodeInfoWaitMs?: number;
  /**
   * How long this node's `csi` lease share may hold a volume no pod on this node uses (no kubelet publish
   * target binds it) before the node service releases it (default 30 s; see releaseUnused). A share found
   * so at start is released at once. `never`: none is released so (flocker-csi --unused-release-after 0).
   */
  unusedReleaseMs?: number | 'never';
}

/** StorageClass parameters CreateVolume understands; keys with the csi.storage.k8s.io/ prefix are the CO's and ignored. */
export const PARAMETER_PROFILE = 'profile';
export const PARAMETER_FS_TYPE = 'fsType';

type Json = Record<string, unknown>;

function firstProblem(caps: readonly VolumeCapabilityWire[]): string | undefined {
  for (const c of caps) {
    const p = capabilityProblem(toCapability(c));
    if (p !== undefined) return p;
  }
  return undefined;
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() === true;
}

function liveDataset(datasets: readonly DatasetConfiguration[], id: string): DatasetConfiguration | undefined {
  return datasets.find((d) => d.dataset_id === id && !d.deleted);
}

export function mountedPath(s: ClusterSnapshot, nodeUuid: string, datasetId: string): string | undefined {
  const m = s.nodes.find((n) => n.uuid === nodeUuid)?.manifestations.find((x) => x.dataset_id === datasetId);
  return m?.status === 'mounted' && m.path ? m.path : undefined;
}

/** The datasets a node's agent reports mounted, with their paths (as mountedPath, for all at once). */
function mountedHere(s: ClusterSnapshot, nodeUuid: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of s.nodes.find((n) => n.uuid === nodeUuid)?.manifestations ?? [])
    if (m.status === 'mounted' && m.path) out.set(m.dataset_id, m.path);
  return out;
}

/** Where a new volume goes (see choosePlacement): a live node, fewest volumes first, in the topology asked for. */
export function choosePrimary(s: ClusterSnapshot, req?: TopologyRequirement): ClusterSnapshot['nodes'][number] {
  const live = s.nodes
    .filter((n) => n.alive)
    .map((n) => ({
      uuid: n.uuid,
      volumes: n.manifestations.length,
      node: n,
      ...(n.zone !== undefined ? { zone: n.zone } : {}),
    }));
  return choosePlacement(live, req).node;
}

/** The zone of a node as last reported (undefined: unknown node, or no zone reported). */
export function zoneOf(s: ClusterSnapshot, nodeUuid: string): string | undefined {
  return s.nodes.find((n) => n.uuid === nodeUuid)?.zone;
}

/** A StorageClass parameter CreateVolume and GetCapacity do not understand, as a message; undefined when all are known. */
export function parameterProblem(params: Readonly<Record<string, string>>): string | undefined {
  for (const [k, v] of Object.entries(params)) {
    if (k.startsWith('csi.storage.k8s.io/')) continue;
    if (k === PARAMETER_PROFILE) continue;
    if (k === PARAMETER_FS_TYPE && (v === '' || v === 'ext4' || v === 'xfs')) continue;
    return `unknown or unsupported parameter ${k}=${v} (known: profile, fsType=ext4|xfs)`;
  }
  return undefined;
}

/** CreateSnapshot parameters: none of its own; the CO's csi.storage.k8s.io/ keys are ignored. */
export function snapshotParameterProblem(params: Readonly<Record<string, string>>): string | undefined {
  for (const [k, v] of Object.entries(params)) {
    if (k.startsWith('csi.storage.k8s.io/')) continue;
    return `unknown snapshot parameter ${k}=${v} (this driver takes none)`;
  }
  return undefined;
}

/** The smallest max_volume_size live nodes report (a volume must fit wherever it may move). */
export function maxVolumeSize(s: ClusterSnapshot): number | undefined {
  const sizes = s.nodes
    .filter((n) => n.alive && n.max_volume_size !== undefined)
    .map((n) => n.max_volume_size as number);
  return sizes.length > 0 ? Math.min(...sizes) : undefined;
}

function agentProblem(node: ClusterSnapshot['nodes'][number], datasetId: string): string {
  const problem = node.errors.find((e) => e.dataset_id === datasetId);
  return problem ? `: the dataset agent reports: ${problem.message} (${problem.code})` : '';
}

/** A node for messages: its host and its UUID (the CSINode nodeID: `kubectl get csinode` maps it to a node name). */
function nodeName(s: ClusterSnapshot | undefined, uuid: string): string {
  const host = s?.nodes.find((n) => n.uuid === uuid)?.host;
  return host === undefined ? uuid : `${host} (node id ${uuid})`;
}

/**
 * Errors other nodes' agents report for the dataset (the node it moves from, unable to let it go:
 * DEVICE_BUSY while a pod there still uses it), as "; the dataset agent on node … reports: …".
 */
function otherAgentsProblems(s: ClusterSnapshot | undefined, nodeUuid: string, datasetId: string): string {
  const out: string[] = [];
  for (const n of s?.nodes ?? []) {
    if (n.uuid === nodeUuid) continue;
    const e = n.errors.find((x) => x.dataset_id === datasetId);
    if (e) out.push(`; the dataset agent on node ${nodeName(s, n.uuid)} reports: ${e.message} (${e.code})`);
  }
  return out.join('');
}

/** Why the dataset is not mounted here yet, from the latest snapshot. */
export function waitReason(s: ClusterSnapshot | undefined, nodeUuid: string, datasetId: string): string {
  const node = s?.nodes.find((n) => n.uuid === nodeUuid);
  if (!node) return 'the dataset agent on this node has not reported to the control service';
  if (!node.alive) return 'the dataset agent on this node has stopped reporting';
  const problem = node.errors.find((e) => e.dataset_id === datasetId);
  if (problem) return `the dataset agent reports: ${problem.message} (${problem.code})`;
  const elsewhere = otherAgentsProblems(s, nodeUuid, datasetId);
  const d = s?.datasets.find((x) => x.dataset_id === datasetId);
  if (d && d.primary !== nodeUuid) return `the dataset is still being moved to this node${elsewhere}`;
  return `the dataset agent has not mounted it yet${elsewhere}`;
}

export type LeaseRecovery =
  /** This node's `csi` share holds the lease: nothing to do. */
  | { kind: 'held' }
  /**
   * No lease (or only another share of this node's), this node the primary and its agent alive: take the share
   * again if a pod here uses the volume (recoverLeases reads the mounts: see leaseUse), else forget it.
   */
  | { kind: 'retake' }
  /** This node's agent is not alive: the control service released (or will release) the lease of a dead node; leave it. */
  | { kind: 'agent-down' }
  /** The volume is gone: forget it. */
  | { kind: 'gone' }
  /** Another node holds the lease or is the primary now: never taken back; the pods here must go. */
  | { kind: 'lost'; message: string };

/**
 * What to do about the lease of a volume still staged on this node (a pod here may still use it):
 * the control service releases a node's leases when its agent was dead longer than the node
 * timeout plus the lease grace, and the kubelet and pod keep running meanwhile (review U6 1b).
 * Taking it back is only right while nobody else took the volume: never while another node holds
 * the lease or is its primary, and not while this node's agent is still down (that release is
 * the failover the control service decided on).
 */
export function leaseRecovery(s: ClusterSnapshot, datasetId: string, me: string): LeaseRecovery {
  const d = liveDataset(s.datasets, datasetId);
  if (!d) return { kind: 'gone' };
  const lease = s.leases.find((l) => l.dataset_id === datasetId);
  if (lease !== undefined && lease.node_uuid !== me) {
    return {
      kind: 'lost',
      message: `volume ${datasetId} is still staged on this node but node ${nodeName(s, lease.node_uuid)} holds its lease now (this node's lease was released: by the control service while its dataset agent was down, or by flocker leases release --force): I/O of pods here using it fails once that node takes the volume; delete them`,
    };
  }
  // Our share still holds it: nothing was lost, whatever the primary (a local move when_released waits for this
  // node to let go, its primary already the target: review FR 2).
  if (heldForCsi(lease, me)) return { kind: 'held' };
  if (d.primary !== me) {
    return {
      kind: 'lost',
      message: `volume ${datasetId} is still staged on this node but its primary is node ${nodeName(s, d.primary)} now (this node's lease was released: by the control service while its dataset agent was down, or by flocker leases release --force): I/O of pods here using it fails once that node takes the volume; delete them`,
    };
  }
  if (s.nodes.find((n) => n.uuid === me)?.alive !== true) return { kind: 'agent-down' };
  return { kind: 'retake' };
}

/**
 * Whether a pod on this node uses a volume, from the snapshot and this namespace's mount table (the node
 * plugin's publish binds, made in this namespace, are a pod's only way into it): `published` when any other
 * mount shows the agent's mount (a kubelet publish target; any other mount of it too: counted as use, never
 * let go; a Docker container's binds are in its own namespace, not seen here: the Docker plugin's `docker`
 * share, never released here, keeps those); `unpublished` when the agent's mount is the only one, or when nothing of the volume is on this
 * node at all (no manifestation reported by a live agent, another node its primary); `unknown` otherwise (the
 * agent not alive, or it has not reported it mounted, or this namespace does not show its mount): never decided on.
 */
export type LeaseUse = 'published' | 'unpublished' | 'unknown';

export function leaseUse(
  s: ClusterSnapshot,
  datasetId: string,
  me: string,
  mounts: readonly MountInfoEntry[],
): LeaseUse {
  const d = liveDataset(s.datasets, datasetId);
  const node = s.nodes.find((n) => n.uuid === me);
  // An agent not alive: its last report (kept by the control service) is no account of this node now, and a
  // volume let go here would be force-detached by the node taking it (review FRK-1): the control service's
  // dead-node failover, after the lease grace and only if configured, decides that.
  if (!d || !node || !node.alive) return 'unknown';
  const m = node.manifestations.find((x) => x.dataset_id === datasetId);
  if (m === undefined) return d.primary !== me ? 'unpublished' : 'unknown';
  if (m.status !== 'mounted' || !m.path) return 'unknown';
  const agentPath = m.path;
  const agent = mountAt(mounts, agentPath);
  if (!agent) return 'unknown';
  return mounts.some((x) => sameSource(x, agent) && x.mountPoint !== agentPath) ? 'published' : 'unpublished';
}

/** Whether this node's `csi` share holds the dataset's lease (by name: an unnamed holder may be anyone's). */
function ourCsiLease(s: ClusterSnapshot, datasetId: string, me: string): boolean {
  const lease = s.leases.find((l) => l.dataset_id === datasetId);
  return lease?.node_uuid === me && lease.holders?.includes(LEASE_HOLDER) === true;
}

/** A kubelet's CSI publish target (`…/pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount`): a pod's use, not a Docker container's. */
export function isKubeletTarget(mountPoint: string): boolean {
  return mountPoint.includes('/volumes/kubernetes.io~csi/');
}

export interface VolumeHealthEntry {
  status: 'DEGRADED' | 'INACCESSIBLE';
  reason: string;
  message: string;
}

/** What is wrong with a dataset on this node, from the snapshot: nothing when the list is empty. */
export function volumeHealth(s: ClusterSnapshot, nodeUuid: string, datasetId: string): VolumeHealthEntry[] {
  const node = s.nodes.find((n) => n.uuid === nodeUuid);
  const out: VolumeHealthEntry[] = [];
  if (!node || !node.alive)
    out.push({ status: 'INACCESSIBLE', reason: 'AGENT_NOT_REPORTING', message: waitReason(s, nodeUuid, datasetId) });
  for (const e of node?.errors ?? []) {
    if (e.dataset_id === datasetId) {
      out.push({
        status: 'DEGRADED',
        reason: e.code,
        message: `the dataset agent reports: ${e.message} (${e.action}, ${e.attempts} attempts since ${e.since})`,
      });
    }
  }
  return out;
}

/**
 * A dataset's health across the cluster (the controller's view): DEGRADED for every error an
 * agent reports for it, INACCESSIBLE while its primary node is not alive.
 */
export function clusterVolumeHealth(s: ClusterSnapshot, datasetId: string): VolumeHealthEntry[] {
  const d = s.datasets.find((x) => x.dataset_id === datasetId);
  const out: VolumeHealthEntry[] = [];
  const primary = d ? s.nodes.find((n) => n.uuid === d.primary) : undefined;
  if (d && (!primary || !primary.alive)) {
    const why = primary
      ? `unreachable since ${primary.dead_since ?? primary.last_seen}`
      : 'not known to the control service';
    out.push({
      status: 'INACCESSIBLE',
      reason: 'PRIMARY_NODE_DOWN',
      message: `its node ${primary?.host ?? d.primary} is ${why}`,
    });
  }
  for (const n of s.nodes) {
    for (const e of n.errors) {
      if (e.dataset_id === datasetId) {
        out.push({
          status: 'DEGRADED',
          reason: e.code,
          message: `the dataset agent on ${n.host} reports: ${e.message} (${e.action}, ${e.attempts} attempts since ${e.since})`,
        });
      }
    }
  }
  return out;
}

export type LeaseVerdict =
  /** No lease, or ours: take it. */
  | { kind: 'free' }
  /** Held by a node declared dead whose (unpinned) lease the control service releases at releaseAt. */
  | { kind: 'wait'; message: string; releaseAt: string }
  /** Held by a live node (`busy`: it may be unstaging right now), pinned, or by a dead node the control service will not release. */
  | { kind: 'fail'; message: string; busy?: boolean };

/** What NodeStageVolume can do about the lease on a dataset, from the snapshot (the Docker plugin's rule). */
export function leaseVerdict(s: ClusterSnapshot, datasetId: string, me: string): LeaseVerdict {
  const lease = s.leases.find((l) => l.dataset_id === datasetId);
  if (!lease || lease.node_uuid === me) return { kind: 'free' };
  const holder = s.nodes.find((n) => n.uuid === lease.node_uuid);
  const host = nodeName(s, lease.node_uuid);
  if (lease.pinned === true) {
    return {
      kind: 'fail',
      message: `volume ${datasetId} is in use on node ${host}, pinned there by an admin: release the lease first (flocker leases release)`,
    };
  }
  if (holder === undefined || holder.alive) {
    return {
      kind: 'fail',
      busy: true,
      message: `volume ${datasetId} is in use on node ${host} (it holds the lease${leaseUsers(lease)}): ${lease.holders?.includes('docker') === true ? 'stop the Docker containers using it there' : 'unstage it there first'}`,
    };
  }
  const grace = s.lease_grace_seconds;
  const since = holder.dead_since ?? holder.last_seen;
  if (grace === undefined) {
    return {
      kind: 'fail',
      message: `volume ${datasetId} is held by node ${host}, unreachable since ${since}; this control service does not release the leases of dead nodes`,
    };
  }
  const releaseAt = new Date(Date.parse(since) + grace * 1000).toISOString();
  return {
    kind: 'wait',
    releaseAt,
    message: `volume ${datasetId} is held by node ${host}, unreachable since ${since}; the control service releases it at ${releaseAt}.`,
  };
}

/** The least pause before a lease refused NODE_DEAD (this node held dead) is asked for again. */
const NODE_DEAD_RETRY_MS = 500;

export class CsiDriver {
  private readonly client: ControlClient;
  private readonly logger: Logger;
  private readonly opts: CsiDriverOptions;
  /** Volumes (by id or name) with a call in flight: a second call on one is ABORTED, as the spec asks. */
  private readonly inFlight = new Set<string>();
  /** The keys of inFlight the lease watch holds, each with its end: CSI calls wait for it (watchExclusive). */
  private readonly watchHolds = new Map<string, Promise<void>>();
  /**
   * Volumes staged on this node (node service): added by a successful stage, removed by unstage,
   * found again by findStaged. Their `csi` lease share is taken again when it is gone.
   */
  private readonly staged = new Set<string>();
  /** Volumes staged here whose lease or primary another node has now, with the message (logged once, in health). */
  private readonly lost = new Map<string, string>();
  /**
   * Volumes this node's agent reports mounted (at that path) whose kubelet targets findStaged has read:
   * read again only once the agent reports them mounted anew, so the mounts are not read on every pass.
   */
  private readonly looked = new Map<string, string>();
  /** Whether findStaged has looked for the leases our csi share holds (once, at start). */
  private leasesLooked = false;
  /**
   * One set per findStaged pass reading the snapshot and mounts: the volume keys CSI calls took
   * meanwhile. findStaged reads without the keys (a CSI call is never refused because of it) and
   * decides nothing on a volume a call touched during its read: a later pass reads it again.
   */
  private readonly findReads = new Set<Set<string>>();
  /** Volumes our `csi` share holds that no pod here used when last looked at, since when (ms; -Infinity: at start). */
  private readonly unusedSince = new Map<string, number>();
  /** Whether releaseUnused has made its first pass (the leases it finds then were taken before this process). */
  private unusedLooked = false;
  /** When releaseUnused last read the mount table (it reads at most every few seconds). */
  private unusedReadAt = 0;
  /** Volumes a stage of this process completed (the kubelet was answered): not "held since before it started". */
  private readonly stagedByThis = new Set<string>();

  constructor(opts: CsiDriverOptions) {
    this.opts = opts;
    this.client = opts.client;
    this.logger = opts.logger;
    if (opts.mode !== 'controller' && opts.nodeId === undefined) throw new Error('the node service needs the node id');
  }

  get mode(): DriverMode {
    return this.opts.mode;
  }

  private get me(): string {
    return this.opts.nodeId as string;
  }

  /** How long one long-poll of the control service may hold. */
  private get pollMs(): number {
    return this.opts.pollMs ?? 25_000;
  }

  private async exclusive<T>(key: string, fn: () => Promise<T>): Promise<T> {
    // The lease watch holds a volume's key for a few control-service round trips: wait for it rather than refuse
    // the call (csi-sanity does not retry ABORTED; no call, a DeleteVolume in --mode all included, should fail
    // because of background work: review FRK-7).
    for (let held = this.watchHolds.get(key); held !== undefined; held = this.watchHolds.get(key)) await held;
    if (this.inFlight.has(key))
      throw new CsiError(status.ABORTED, `an operation on volume ${key} is already in progress`);
    this.inFlight.add(key);
    for (const touched of this.findReads) touched.add(key);
    try {
      return await fn();
    } finally {
      this.inFlight.delete(key);
    }
  }

  /**
   * Runs fn under the volume's key for the lease watch (recoverLeases, releaseUnused); not at all while a CSI call
   * holds it. A CSI call arriving meanwhile waits for fn (see exclusive).
   */
  private async watchExclusive(id: string, fn: () => Promise<void>): Promise<void> {
    if (this.inFlight.has(id)) return;
    this.inFlight.add(id);
    let done!: () => void;
    this.watchHolds.set(id, new Promise<void>((r) => (done = r)));
    try {
      await fn();
    } finally {
      this.inFlight.delete(id);
      this.watchHolds.delete(id);
      done();
    }
  }

  private async snapshot(): Promise<ClusterSnapshot> {
    return this.client.waitForCluster(undefined, 0);
  }

  // ---- Identity --------------------------------------------------------------------------

  async getPluginInfo(): Promise<Json> {
    return { name: DRIVER_NAME, vendor_version: this.opts.version };
  }

  /**
   * VOLUME_ACCESSIBILITY_CONSTRAINTS in every mode: nodes report their storage zone, NodeGetInfo
   * answers it, CreateVolume places by it (see topology.ts; meaningful where nodes are in
   * different zones, e.g. EBS across availability zones; one loopback pool is one zone).
   */
  async getPluginCapabilities(): Promise<Json> {
    const capabilities = [
      ...(this.opts.mode === 'node' ? [] : [{ service: { type: 'CONTROLLER_SERVICE' } }]),
      { service: { type: 'VOLUME_ACCESSIBILITY_CONSTRAINTS' } },
    ];
    return { capabilities };
  }

  /** Ready when the control service answers and (node service) this node's dataset agent is alive. */
  async probe(): Promise<Json> {
    try {
      if (this.opts.mode === 'controller') {
        await this.client.version();
      } else {
        const node = (await this.snapshot()).nodes.find((n) => n.uuid === this.me);
        if (!node?.alive) throw new Error(`the dataset agent of node ${this.me} is not alive`);
      }
    } catch (err) {
      throw new CsiError(status.FAILED_PRECONDITION, `not ready: ${errorMessage(err)}`);
    }
    return { ready: { value: true } };
  }

  // ---- Controller -------------------------------------------------------------------------

  async controllerGetCapabilities(): Promise<Json> {
    const rpc = (type: string) => ({ rpc: { type } });
    return {
      capabilities: [
        rpc('CREATE_DELETE_VOLUME'),
        rpc('LIST_VOLUMES'),
        rpc('EXPAND_VOLUME'),
        rpc('SINGLE_NODE_MULTI_WRITER'),
        rpc('GET_VOLUME_HEALTH'),
        rpc('LIST_VOLUME_HEALTH'),
        rpc('GET_CAPACITY'),
        rpc('CREATE_DELETE_SNAPSHOT'),
        rpc('LIST_SNAPSHOTS'),
        rpc('GET_SNAPSHOT'),
        rpc('CLONE_VOLUME'),
      ],
    };
  }

  /**
   * available_capacity: see availableCapacity (the smallest figure among the live nodes in the
   * topology asked for); a capability this driver cannot give: 0. maximum_volume_size: what
   * CreateVolume accepts (the smallest max_volume_size live nodes report), absent when unknown;
   * minimum_volume_size: Flocker's 64 MiB.
   */
  async getCapacity(raw: unknown): Promise<Json> {
    const req = parseRequest(GetCapacityRequest, raw, 'GetCapacity');
    const problem = parameterProblem(req.parameters ?? {});
    if (problem !== undefined) throw new CsiError(status.INVALID_ARGUMENT, problem);
    const s = await this.snapshot();
    const max = maxVolumeSize(s);
    const limits = {
      ...(max !== undefined ? { maximum_volume_size: { value: max } } : {}),
      minimum_volume_size: { value: MINIMUM_VOLUME_SIZE },
    };
    if (firstProblem(req.volume_capabilities ?? []) !== undefined) return { available_capacity: 0, ...limits };
    const live = s.nodes
      .filter((n) => n.alive)
      .map((n) => ({
        ...(n.zone !== undefined ? { zone: n.zone } : {}),
        ...(n.available_bytes !== undefined ? { availableBytes: n.available_bytes } : {}),
        ...(n.max_volume_size !== undefined ? { maxVolumeSize: n.max_volume_size } : {}),
      }));
    const topology = req.accessible_topology ? toSegments(req.accessible_topology) : undefined;
    return { available_capacity: availableCapacity(live, topology), ...limits };
  }

  async createVolume(raw: unknown): Promise<Json> {
    const req = parseRequest(CreateVolumeRequest, raw, 'CreateVolume');
    const name = required(req.name, 'name');
    const caps = req.volume_capabilities ?? [];
    if (caps.length === 0) throw new CsiError(status.INVALID_ARGUMENT, 'volume_capabilities is required');
    const problem = firstProblem(caps);
    if (problem !== undefined) throw new CsiError(status.INVALID_ARGUMENT, problem);
    const source = toContentSource(req.volume_content_source);
    const params = req.parameters ?? {};
    const paramProblem = parameterProblem(params);
    if (paramProblem !== undefined) throw new CsiError(status.INVALID_ARGUMENT, paramProblem);
    const range = toRange(req.capacity_range);
    const requirement = toRequirement(req.accessibility_requirements);
    const filesystem = requestedFilesystem(
      params[PARAMETER_FS_TYPE],
      caps.map((c) => toCapability(c).fsType),
    );
    if (filesystem === undefined)
      throw new CsiError(
        status.INVALID_ARGUMENT,
        'the fsType parameter and the capabilities ask for different file systems',
      );
    return this.exclusive(`name:${name}`, async () => {
      const existing = (await this.client.listDatasets()).find(
        (d) => !d.deleted && d.metadata[METADATA_NAME_KEY] === name,
      );
      if (existing) return this.existingVolume(existing, name, range, requirement, source);
      const s = await this.snapshot();
      let size = sizeForRange(range, this.opts.defaultSize, maxVolumeSize(s));
      if (source !== undefined) {
        const sourceProblem = contentSourceProblem(s, source);
        if (sourceProblem !== undefined) throw sourceProblem;
        size = cloneSize(size, range, contentSourceSize(s, source));
      }
      if (filesystem === 'xfs' && source === undefined && size < XFS_MINIMUM_SIZE) {
        // mkfs.xfs makes nothing smaller: raised to it, unless the range's limit forbids.
        if (range !== undefined && range.limitBytes > 0 && range.limitBytes < XFS_MINIMUM_SIZE)
          throw new CsiError(status.OUT_OF_RANGE, `an xfs volume needs at least ${XFS_MINIMUM_SIZE} bytes (300 MiB)`);
        size = XFS_MINIMUM_SIZE;
      }
      const node = choosePrimary(s, requirement);
      const primary = node.uuid;
      const metadata: Record<string, string> = { [METADATA_NAME_KEY]: name };
      const profile = params[PARAMETER_PROFILE];
      if (profile) metadata[METADATA_PROFILE_KEY] = profile;
      // A clone holds its source's file system already: it is never formatted.
      if (filesystem === 'xfs' && source === undefined) metadata[METADATA_FILESYSTEM_KEY] = 'xfs';
      // unique_name: a namesake another client makes between our look and our create (any id) is refused, not doubled.
      const request: CreateDatasetRequest = {
        primary,
        maximum_size: size,
        metadata,
        unique_name: true,
        ...(source?.kind === 'snapshot' ? { source_snapshot_id: source.snapshotId } : {}),
        ...(source?.kind === 'volume' ? { source_dataset_id: source.volumeId } : {}),
      };
      // A 409 (the name's id or the name taken): the volume of that name made meanwhile, answered as any existing one.
      const madeMeanwhile = async (): Promise<DatasetConfiguration | undefined> =>
        (await this.client.listDatasets()).find((d) => !d.deleted && d.metadata[METADATA_NAME_KEY] === name);
      let created: DatasetConfiguration;
      try {
        try {
          created = await this.client.createDataset({ ...request, dataset_id: datasetIdForName(name) });
        } catch (err) {
          if (!(err instanceof FlockerApiError) || err.status !== 409) throw err;
          // Else the name's id is held by a deleted dataset (or one named otherwise): a random id then.
          const now = await madeMeanwhile();
          if (now) return this.existingVolume(now, name, range, requirement, source);
          try {
            created = await this.client.createDataset(request);
          } catch (again) {
            if (!(again instanceof FlockerApiError) || again.code !== 'DATASET_NAME_IN_USE') throw again;
            const namesake = await madeMeanwhile();
            if (namesake) return this.existingVolume(namesake, name, range, requirement, source);
            // Deleted again since: the CO retries, and a retry finds the name free or taken.
            throw new CsiError(status.ABORTED, `volume ${name} was being made and deleted at once; try again`);
          }
        }
      } catch (err) {
        // The source went away between our look and the create.
        if (err instanceof FlockerApiError && /^SOURCE_(SNAPSHOT|DATASET)_UNKNOWN$/.test(err.code ?? ''))
          throw new CsiError(status.NOT_FOUND, `volume_content_source: ${err.message}`);
        throw err;
      }
      this.logger.info('created volume', {
        volume: name,
        dataset_id: created.dataset_id,
        size,
        primary,
        zone: node.zone,
        ...(source !== undefined ? { source } : {}),
      });
      return { volume: this.volumeWire(created, node.zone, source) };
    });
  }

  /** CreateVolume of a name that exists: that volume, if it has the size and lies in the topology asked for. */
  private async existingVolume(
    d: DatasetConfiguration,
    name: string,
    range: ReturnType<typeof toRange>,
    requirement: TopologyRequirement | undefined,
    source: ContentSource | undefined,
  ): Promise<Json> {
    if (!sizeSatisfies(d.maximum_size, range)) {
      throw new CsiError(
        status.ALREADY_EXISTS,
        `volume ${name} exists (dataset ${d.dataset_id}) with size ${d.maximum_size ?? 'unset'}, outside the requested capacity range`,
      );
    }
    const s = await this.snapshot();
    const zone = zoneOf(s, d.primary);
    const conflict = topologyConflict(zone, requirement) ?? contentSourceConflict(d, source, s.snapshots ?? []);
    if (conflict !== undefined)
      throw new CsiError(status.ALREADY_EXISTS, `volume ${name} exists (dataset ${d.dataset_id}) but ${conflict}`);
    return { volume: this.volumeWire(d, zone, source) };
  }

  /** The CSI volume of a dataset; accessible from its primary's zone when that is known (else from every node). */
  private volumeWire(d: DatasetConfiguration, zone?: string, source?: ContentSource): VolumeWire {
    return {
      volume_id: d.dataset_id,
      capacity_bytes: d.maximum_size ?? 0,
      volume_context: {},
      accessible_topology: volumeTopology(zone),
      ...(source !== undefined ? { content_source: contentSourceWire(source) } : {}),
    };
  }

  async deleteVolume(raw: unknown): Promise<Json> {
    const req = parseRequest(DeleteVolumeRequest, raw, 'DeleteVolume');
    const id = required(req.volume_id, 'volume_id');
    if (!isDatasetId(id)) return {}; // No such volume can exist: deleted already, as far as the CO is concerned.
    return this.exclusive(id, async () => {
      const d = liveDataset(await this.client.listDatasets(), id);
      if (!d) return {};
      const lease = (await this.client.listLeases()).find((l) => l.dataset_id === id);
      if (lease) {
        throw new CsiError(
          status.FAILED_PRECONDITION,
          `volume ${id} is in use on node ${lease.node_uuid} (it holds the lease${leaseUsers(lease)}); unstage it first`,
        );
      }
      // A clone of a volume: the snapshot the control service took for it goes too (first, so a retry finds it).
      const implicit = implicitSnapshotOf(d, (await this.snapshot()).snapshots ?? []);
      if (implicit !== undefined) await this.deleteFlockerSnapshot(implicit.snapshot_id);
      try {
        await this.client.deleteDataset(id);
      } catch (err) {
        if (err instanceof FlockerApiError && err.status === 404) return {};
        throw err;
      }
      this.logger.info('deleted volume', { dataset_id: id, volume: d.metadata[METADATA_NAME_KEY] });
      return {};
    });
  }

  /**
   * Grows the dataset (maximum_size); the dataset agent grows the block device and the
   * file system itself (online when it may, else at the next mount), so no
   * NodeExpandVolume is needed. Waits, bounded, until the primary's agent reports the
   * new size when the volume is attached there. At or above the range already: OK, as is.
   */
  async controllerExpandVolume(raw: unknown): Promise<Json> {
    const req = parseRequest(ControllerExpandVolumeRequest, raw, 'ControllerExpandVolume');
    const id = required(req.volume_id, 'volume_id');
    if (!req.capacity_range) throw new CsiError(status.INVALID_ARGUMENT, 'capacity_range is required');
    if (req.volume_capability) {
      const problem = capabilityProblem(toCapability(req.volume_capability));
      if (problem !== undefined) throw new CsiError(status.INVALID_ARGUMENT, problem);
    }
    const range = toRange(req.capacity_range) as NonNullable<ReturnType<typeof toRange>>;
    return this.exclusive(id, async () => {
      if (!isDatasetId(id)) throw new CsiError(status.NOT_FOUND, `no volume ${id}`);
      const d = liveDataset(await this.client.listDatasets(), id);
      if (!d) throw new CsiError(status.NOT_FOUND, `no volume ${id}`);
      const current = d.maximum_size ?? 0;
      if (current > 0 && sizeSatisfies(current, range))
        return { capacity_bytes: current, node_expansion_required: false };
      if (range.limitBytes > 0 && current > range.limitBytes) {
        throw new CsiError(
          status.OUT_OF_RANGE,
          `volume ${id} is ${current} bytes, above limit_bytes ${range.limitBytes}: volumes do not shrink`,
        );
      }
      const size = sizeForRange(range, current, maxVolumeSize(await this.snapshot()));
      await this.client.updateDataset(id, { maximum_size: size });
      this.logger.info('expanding volume', { dataset_id: id, from: current, to: size });
      await this.waitResized(id, size);
      return { capacity_bytes: size, node_expansion_required: false };
    });
  }

  /** Until no node holds the dataset smaller than `size` (one attached somewhere is grown by its agent). */
  private async waitResized(id: string, size: number): Promise<void> {
    const deadline = Date.now() + this.opts.stageTimeoutMs;
    let since: string | undefined;
    for (;;) {
      const s = await this.client.waitForCluster(
        since,
        since === undefined ? 0 : Math.min(deadline - Date.now(), this.pollMs),
      );
      since = s.generation;
      const small = s.nodes.find((n) => n.manifestations.some((m) => m.dataset_id === id && m.size < size));
      if (!small) return;
      if (Date.now() >= deadline) {
        throw new CsiError(
          status.DEADLINE_EXCEEDED,
          `volume ${id} is recorded as ${size} bytes but node ${small.host} has not grown it yet${agentProblem(small, id)}`,
        );
      }
    }
  }

  /** ControllerGetVolumeHealth (GET_VOLUME_HEALTH, alpha): see clusterVolumeHealth. */
  async controllerGetVolumeHealth(raw: unknown): Promise<Json> {
    const req = parseRequest(DeleteVolumeRequest, raw, 'ControllerGetVolumeHealth');
    const id = required(req.volume_id, 'volume_id');
    if (!isDatasetId(id)) throw new CsiError(status.NOT_FOUND, `no volume ${id}`);
    const s = await this.snapshot();
    if (!liveDataset(s.datasets, id)) throw new CsiError(status.NOT_FOUND, `no volume ${id}`);
    return { volume_health: { volume_id: id, health_statuses: clusterVolumeHealth(s, id) } };
  }

  /** ControllerListVolumeHealth (LIST_VOLUME_HEALTH, alpha): every volume's health, paged as ListVolumes. */
  async controllerListVolumeHealth(raw: unknown): Promise<Json> {
    const req = parseRequest(ListVolumesRequest, raw, 'ControllerListVolumeHealth');
    const s = await this.snapshot();
    const live = s.datasets.filter((d) => !d.deleted);
    const page = paginate(live, (d) => d.dataset_id, req.starting_token ?? '', req.max_entries ?? 0);
    return {
      entries: page.entries.map((d) => ({
        volume_id: d.dataset_id,
        health_statuses: clusterVolumeHealth(s, d.dataset_id),
      })),
      next_token: page.nextToken,
    };
  }

  async validateVolumeCapabilities(raw: unknown): Promise<Json> {
    const req = parseRequest(ValidateVolumeCapabilitiesRequest, raw, 'ValidateVolumeCapabilities');
    const id = required(req.volume_id, 'volume_id');
    const caps = req.volume_capabilities ?? [];
    if (caps.length === 0) throw new CsiError(status.INVALID_ARGUMENT, 'volume_capabilities is required');
    if (!isDatasetId(id) || !liveDataset(await this.client.listDatasets(), id))
      throw new CsiError(status.NOT_FOUND, `no volume ${id}`);
    const problem = firstProblem(caps);
    if (problem !== undefined) return { message: problem };
    return {
      confirmed: {
        volume_context: req.volume_context ?? {},
        volume_capabilities: caps,
        parameters: req.parameters ?? {},
      },
    };
  }

  async listVolumes(raw: unknown): Promise<Json> {
    const req = parseRequest(ListVolumesRequest, raw, 'ListVolumes');
    const live = (await this.client.listDatasets()).filter((d) => !d.deleted);
    const page = paginate(live, (d) => d.dataset_id, req.starting_token ?? '', req.max_entries ?? 0);
    return { entries: page.entries.map((d) => ({ volume: this.volumeWire(d) })), next_token: page.nextToken };
  }

  // ---- Snapshots -------------------------------------------------------------------------------

  /**
   * A Flocker snapshot of the volume, named by the CSI name (idempotent by it: the same name of
   * the same volume is that snapshot, of another volume ALREADY_EXISTS). Waits, bounded by
   * --stage-timeout and on the long-poll, until a backend holds it, so creation_time is when it
   * was taken; ready_to_use once it can be cloned.
   */
  async createSnapshot(raw: unknown): Promise<Json> {
    const req = parseRequest(CreateSnapshotRequest, raw, 'CreateSnapshot');
    const name = required(req.name, 'name');
    const sourceId = required(req.source_volume_id, 'source_volume_id');
    const problem = snapshotParameterProblem(req.parameters ?? {});
    if (problem !== undefined) throw new CsiError(status.INVALID_ARGUMENT, problem);
    return this.exclusive(`snapshot-name:${name}`, async () => {
      const s = await this.snapshot();
      let config = liveSnapshots(s).find((x) => x.metadata[METADATA_NAME_KEY] === name);
      if (config !== undefined) {
        const conflict = existingSnapshotProblem(config, sourceId);
        if (conflict !== undefined) throw conflict;
      } else {
        if (!isDatasetId(sourceId) || !liveDataset(s.datasets, sourceId))
          throw new CsiError(status.NOT_FOUND, `no volume ${sourceId}`);
        config = await this.newSnapshot(name, sourceId);
      }
      return { snapshot: snapshotWire(await this.waitSnapshotTaken(config)) };
    });
  }

  private async newSnapshot(name: string, sourceId: string): Promise<SnapshotConfiguration> {
    const request = { dataset_id: sourceId, metadata: { [METADATA_NAME_KEY]: name } };
    try {
      try {
        const created = await this.client.createSnapshot({ ...request, snapshot_id: snapshotIdForName(name) });
        this.logger.info('created snapshot', {
          snapshot: name,
          snapshot_id: created.snapshot_id,
          dataset_id: sourceId,
        });
        return created;
      } catch (err) {
        if (!(err instanceof FlockerApiError) || err.status !== 409) throw err;
        // The name (or its id) is taken: by this very snapshot made meanwhile, or the id by a deleted one.
        const now = liveSnapshots(await this.snapshot()).find((x) => x.metadata[METADATA_NAME_KEY] === name);
        if (now !== undefined) {
          const conflict = existingSnapshotProblem(now, sourceId);
          if (conflict !== undefined) throw conflict;
          return now;
        }
        return await this.client.createSnapshot(request);
      }
    } catch (err) {
      if (err instanceof FlockerApiError && err.code === 'SNAPSHOT_SOURCE_DELETED')
        throw new CsiError(status.NOT_FOUND, `no volume ${sourceId}`);
      throw err;
    }
  }

  /** Until a backend holds the snapshot (creating or ready); DEADLINE_EXCEEDED with the reason after the bound. */
  private async waitSnapshotTaken(config: SnapshotConfiguration): Promise<CsiSnapshot> {
    const id = config.snapshot_id;
    const deadline = Date.now() + this.opts.stageTimeoutMs;
    let since: string | undefined;
    for (;;) {
      const s = await this.client.waitForCluster(
        since,
        since === undefined ? 0 : Math.max(0, Math.min(deadline - Date.now(), this.pollMs)),
      );
      since = s.generation;
      const now = liveSnapshots(s).find((x) => x.snapshot_id === id);
      if (now === undefined) throw new CsiError(status.ABORTED, `snapshot ${id} was deleted while being taken`);
      const progress = snapshotProgress(s, id);
      if (progress.kind === 'ready' || progress.kind === 'cut') return csiSnapshot(now, snapshotState(s, id));
      if (progress.kind === 'failed') throw new CsiError(status.INTERNAL, progress.message);
      if (Date.now() >= deadline) {
        throw new CsiError(
          status.DEADLINE_EXCEEDED,
          `timed out after ${Math.round(this.opts.stageTimeoutMs / 1000)} s waiting for snapshot ${id} to be taken: ${progress.reason}`,
        );
      }
    }
  }

  private async deleteFlockerSnapshot(id: string): Promise<void> {
    try {
      await this.client.deleteSnapshot(id);
      this.logger.info('deleted snapshot', { snapshot_id: id });
    } catch (err) {
      if (!(err instanceof FlockerApiError) || err.status !== 404) throw err;
    }
  }

  /** Idempotent: an unknown, deleted or non-UUID id is OK. Volumes cloned from it keep their data. */
  async deleteSnapshot(raw: unknown): Promise<Json> {
    const req = parseRequest(DeleteSnapshotRequest, raw, 'DeleteSnapshot');
    const id = required(req.snapshot_id, 'snapshot_id');
    if (!isDatasetId(id)) return {};
    return this.exclusive(`snapshot:${id}`, async () => {
      await this.deleteFlockerSnapshot(id);
      return {};
    });
  }

  /** Live snapshots ordered by id, filtered by snapshot_id / source_volume_id, paged as ListVolumes. */
  async listSnapshots(raw: unknown): Promise<Json> {
    const req = parseRequest(ListSnapshotsRequest, raw, 'ListSnapshots');
    const all = filterSnapshots(csiSnapshots(await this.snapshot()), {
      snapshotId: req.snapshot_id ?? '',
      sourceVolumeId: req.source_volume_id ?? '',
    });
    const page = paginate(all, (x) => x.snapshotId, req.starting_token ?? '', req.max_entries ?? 0);
    return { entries: page.entries.map((x) => ({ snapshot: snapshotWire(x) })), next_token: page.nextToken };
  }

  /** GetSnapshot (GET_SNAPSHOT, alpha): NOT_FOUND for an unknown or deleted snapshot. */
  async getSnapshot(raw: unknown): Promise<Json> {
    const req = parseRequest(GetSnapshotRequest, raw, 'GetSnapshot');
    const id = required(req.snapshot_id, 'snapshot_id');
    const found = isDatasetId(id) ? csiSnapshots(await this.snapshot()).find((x) => x.snapshotId === id) : undefined;
    if (found === undefined) throw new CsiError(status.NOT_FOUND, `no snapshot ${id}`);
    return { snapshot: snapshotWire(found) };
  }

  // ---- Node ----------------------------------------------------------------------------------

  async nodeGetCapabilities(): Promise<Json> {
    const rpc = (type: string) => ({ rpc: { type } });
    return {
      capabilities: [
        rpc('STAGE_UNSTAGE_VOLUME'),
        rpc('GET_VOLUME_STATS'),
        rpc('SINGLE_NODE_MULTI_WRITER'),
        rpc('GET_VOLUME_HEALTH'),
      ],
    };
  }

  /** The node id, and this node's zone as its agent reports it (no topology while it reports none). */
  async nodeGetInfo(): Promise<Json> {
    const topology = nodeTopology((await this.ownNodeState()).zone);
    return {
      node_id: this.me,
      max_volumes_per_node: 0,
      ...(topology !== undefined ? { accessible_topology: { segments: topology } } : {}),
    };
  }

  /**
   * This node's state as its agent last reported it, waiting on the long-poll (up to
   * nodeInfoWaitMs) for a first report: the kubelet asks NodeGetInfo once, at registration,
   * so an answer without the zone would stay until the plugin registers again.
   */
  private async ownNodeState(): Promise<ClusterSnapshot['nodes'][number]> {
    const deadline = Date.now() + (this.opts.nodeInfoWaitMs ?? 30_000);
    let since: string | undefined;
    for (;;) {
      const s = await this.client.waitForCluster(
        since,
        since === undefined ? 0 : Math.max(0, Math.min(deadline - Date.now(), this.pollMs)),
      );
      since = s.generation;
      const node = s.nodes.find((n) => n.uuid === this.me);
      if (node !== undefined) return node;
      if (Date.now() >= deadline) {
        throw new CsiError(
          status.UNAVAILABLE,
          `the dataset agent of node ${this.me} has not reported to the control service: its storage zone is not known yet`,
        );
      }
    }
  }

  /**
   * Makes the dataset's primary this node, holding its lease (so no other node's stage or
   * Docker plugin can take it while it is used here), and waits (long-poll on the control
   * service, bounded) until this node's agent reports it mounted. Nothing is mounted at the
   * staging path (the spec's "MAY"): a bind of the agent's mount there would be a second
   * mount of the device outside the kubelet's plugins dir, and the kubelet refuses to unstage
   * a volume whose staging mount has such references ("still mounted by other references"),
   * so the volume could never leave the node. Staged = this node's lease + the agent's mount.
   */
  async nodeStageVolume(raw: unknown): Promise<Json> {
    const req = parseRequest(NodeStageVolumeRequest, raw, 'NodeStageVolume');
    const id = required(req.volume_id, 'volume_id');
    const staging = required(req.staging_target_path, 'staging_target_path');
    if (!req.volume_capability) throw new CsiError(status.INVALID_ARGUMENT, 'volume_capability is required');
    const problem = capabilityProblem(toCapability(req.volume_capability));
    if (problem !== undefined) throw new CsiError(status.INVALID_ARGUMENT, problem);
    return this.exclusive(id, async () => {
      const deadline = Date.now() + this.opts.stageTimeoutMs;
      if (!isDatasetId(id)) throw new CsiError(status.NOT_FOUND, `no volume ${id}`);
      const s = await this.snapshot();
      const d = liveDataset(s.datasets, id);
      if (!d) throw new CsiError(status.NOT_FOUND, `no volume ${id}`);
      const lease = s.leases.find((l) => l.dataset_id === id);
      const here = mountedPath(s, this.me, id);
      const source = here === undefined ? undefined : mountAt(await this.opts.mounter.mounts(), here);
      // Staged already only if this plugin's share holds the lease: the Docker plugin's alone is not ours to rely on.
      const held = lease !== undefined && lease.holders?.includes(LEASE_HOLDER) === true && lease.node_uuid === this.me;
      if (held && d.primary === this.me && source) {
        this.staged.add(id);
        this.stagedByThis.add(id);
        this.unusedSince.delete(id); // a publish follows: releaseUnused's grace starts now (review FRK-2)
        return {};
      }
      await this.stageHere(id, d, held, staging, deadline);
      return {};
    });
  }

  /** The stage proper, under the volume's key: this node's lease, the primary here, the agent's mount. */
  private async stageHere(
    id: string,
    d: DatasetConfiguration,
    held: boolean,
    staging: string,
    deadline: number,
  ): Promise<void> {
    await this.takeLease(id, deadline);
    try {
      if (d.primary !== this.me) {
        this.logger.info('moving volume to this node', { dataset_id: id, from: d.primary });
        await this.client.updateDataset(id, { primary: this.me });
      }
      const path = await this.waitMounted(id, deadline);
      this.staged.add(id);
      this.stagedByThis.add(id);
      this.lost.delete(id);
      // Its grace period starts at this stage, not at an earlier one no pass saw end (review FRK-2).
      this.unusedSince.delete(id);
      this.logger.info('staged volume', { dataset_id: id, staging_path: staging, agent_path: path });
    } catch (err) {
      // Nothing uses it here yet: let another node have it. A release that fails (the control service
      // unreachable) leaves the share to releaseUnused, which lets go of a share no pod here uses.
      if (!held) {
        await this.releaseOurLease(id).catch((e: unknown) =>
          this.logger.warn('could not release the lease after a failed stage: released later, once unused', {
            dataset_id: id,
            error: errorMessage(e),
          }),
        );
      }
      throw err;
    }
  }

  /**
   * Takes this node's lease. Held by a live node, or pinned, or by a dead node whose lease
   * the control service will not release: FAILED_PRECONDITION at once, naming the holder.
   * Held by a node declared dead: the control service releases it after the lease grace,
   * so wait for that (long-poll, within the stage's deadline) and take it.
   */
  private async takeLease(id: string, deadline: number): Promise<void> {
    const handoverUntil = Math.min(deadline, Date.now() + (this.opts.handoverWaitMs ?? 0));
    for (;;) {
      try {
        await this.client.acquireLease({ dataset_id: id, node_uuid: this.me, expires: null, holder: LEASE_HOLDER });
        return;
      } catch (err) {
        if (!(err instanceof FlockerApiError) || err.status !== 409) throw err;
        // This node held dead (its agent unheard for the node timeout): no lease until it reports again (session 27).
        // Asked for again once a snapshot shows it alive, not every 50 ms as a free lease's retry.
        if (err.code === 'NODE_DEAD') {
          await this.untilAlive(id, deadline, err.description);
          continue;
        }
      }
      let s = await this.snapshot();
      let verdict = leaseVerdict(s, id, this.me);
      let announced: string | undefined;
      // Wait on the long-poll while the holder may still let go: a dead node's lease until the
      // stage deadline (the control service releases it), a live holder's within the hand-over bound.
      for (;;) {
        const busy = verdict.kind === 'fail' && verdict.busy === true && Date.now() < handoverUntil;
        if (verdict.kind === 'free' || (verdict.kind === 'fail' && !busy)) break;
        if (announced !== verdict.kind) {
          announced = verdict.kind;
          this.logger.info(
            verdict.kind === 'wait'
              ? 'waiting for the control service to release the lease of a dead node'
              : 'waiting for another node to release the lease',
            { dataset_id: id, detail: verdict.message },
          );
        }
        const remaining = (verdict.kind === 'wait' ? deadline : handoverUntil) - Date.now();
        if (verdict.kind === 'wait' && remaining <= 0)
          throw new CsiError(
            status.DEADLINE_EXCEEDED,
            `${verdict.message} Gave up waiting (stage timeout); retry after ${verdict.releaseAt}.`,
          );
        s = await this.client.waitForCluster(s.generation, Math.min(remaining, this.pollMs));
        verdict = leaseVerdict(s, id, this.me);
      }
      if (verdict.kind === 'fail') throw new CsiError(status.FAILED_PRECONDITION, verdict.message);
      // Free now (released, or taken and let go elsewhere meanwhile): try again, within the deadline.
      if (Date.now() >= deadline)
        throw new CsiError(
          status.DEADLINE_EXCEEDED,
          `timed out taking the lease of volume ${id}: other nodes keep taking it`,
        );
      await sleep(50);
    }
  }

  /**
   * Waits (long-poll) until a snapshot shows this node alive, after NODE_DEAD_RETRY_MS at least (a snapshot may still
   * show it alive from before it was declared dead); DEADLINE_EXCEEDED at the stage's deadline, with `refusal`.
   */
  private async untilAlive(id: string, deadline: number, refusal: string): Promise<void> {
    this.logger.warn('the control service holds this node dead: waiting for it to show alive to take the lease', {
      dataset_id: id,
      detail: refusal,
    });
    const gaveUp = () =>
      new CsiError(
        status.DEADLINE_EXCEEDED,
        `${refusal} Gave up waiting for this node's dataset agent to report again (stage timeout).`,
      );
    // Past the deadline: no further ask (a snapshot still showing this node alive would loop asks with no pause).
    if (deadline - Date.now() <= 0) throw gaveUp();
    await sleep(Math.max(0, Math.min(NODE_DEAD_RETRY_MS, deadline - Date.now())));
    let s = await this.snapshot();
    while (s.nodes.find((n) => n.uuid === this.me)?.alive !== true) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw gaveUp();
      s = await this.client.waitForCluster(s.generation, Math.min(remaining, this.pollMs));
    }
  }

  private async waitMounted(id: string, deadline: number): Promise<string> {
    let since: string | undefined;
    let last: ClusterSnapshot | undefined;
    for (;;) {
      const remaining = deadline - Date.now();
      let s: ClusterSnapshot;
      try {
        s = await this.client.waitForCluster(since, since === undefined ? 0 : Math.min(remaining, this.pollMs));
      } catch (err) {
        if (Date.now() >= deadline)
          throw new CsiError(
            status.DEADLINE_EXCEEDED,
            `timed out waiting for volume ${id}; the control service: ${errorMessage(err)}`,
          );
        throw err;
      }
      last = s;
      since = s.generation;
      const d = s.datasets.find((x) => x.dataset_id === id);
      if (!d || d.deleted) throw new CsiError(status.NOT_FOUND, `volume ${id} was deleted`);
      const path = mountedPath(s, this.me, id);
      // Only a "mounted" the kernel shows too: after a move away and straight back, this node's report from before
      // its agent had acted on the move back (it was unmounting) can still say mounted (session 9/10, stale mounted).
      // Its agent mounts again and reports; until then, or until the deadline, keep waiting (looked at every pollMs).
      if (path !== undefined && mountAt(await this.opts.mounter.mounts(), path)) return path;
      if (Date.now() >= deadline && path !== undefined) {
        throw new CsiError(
          status.INTERNAL,
          `the agent reports ${path} mounted but this mount namespace does not show it (waited ${Math.round(this.opts.stageTimeoutMs / 1000)} s)`,
        );
      }
      if (Date.now() >= deadline) {
        throw new CsiError(
          status.DEADLINE_EXCEEDED,
          `timed out after ${Math.round(this.opts.stageTimeoutMs / 1000)} s waiting for volume ${id} to be mounted on this node: ${waitReason(last, this.me, id)}`,
        );
      }
    }
  }

  private async releaseOurLease(id: string): Promise<void> {
    const lease = (await this.client.listLeases()).find((l) => l.dataset_id === id);
    if (!lease || lease.node_uuid !== this.me) return;
    try {
      await this.client.releaseLease(id, { holder: LEASE_HOLDER });
    } catch (err) {
      if (!(err instanceof FlockerApiError) || err.status !== 404) throw err;
    }
  }

  /**
   * Releases this node's lease, so the volume may move (and unmounts the staging path, where
   * earlier builds of this driver bind-mounted the volume).
   */
  async nodeUnstageVolume(raw: unknown): Promise<Json> {
    const req = parseRequest(NodeUnstageVolumeRequest, raw, 'NodeUnstageVolume');
    const id = required(req.volume_id, 'volume_id');
    const staging = required(req.staging_target_path, 'staging_target_path');
    return this.exclusive(id, async () => {
      await this.unmountAll(staging);
      // Forgotten before the release, so recoverLeases (which takes this volume's in-flight key too) never takes it back.
      this.staged.delete(id);
      this.stagedByThis.delete(id);
      this.lost.delete(id);
      this.unusedSince.delete(id);
      if (isDatasetId(id)) await this.releaseOurLease(id);
      this.logger.info('unstaged volume', { dataset_id: id, staging_path: staging });
      return {};
    });
  }

  private async unmountAll(path: string): Promise<void> {
    for (let i = 0; i < 16 && mountAt(await this.opts.mounter.mounts(), path); i++)
      await this.opts.mounter.unmount(path);
  }

  /**
   * Bind-mounts the agent's mount of the staged volume onto the target path (created here),
   * read-only when asked. Staged: this node holds the lease and its agent has it mounted.
   */
  async nodePublishVolume(raw: unknown): Promise<Json> {
    const req = parseRequest(NodePublishVolumeRequest, raw, 'NodePublishVolume');
    const id = required(req.volume_id, 'volume_id');
    const target = required(req.target_path, 'target_path');
    if (!req.volume_capability) throw new CsiError(status.INVALID_ARGUMENT, 'volume_capability is required');
    const cap: VolumeCapability = toCapability(req.volume_capability);
    const problem = capabilityProblem(cap);
    if (problem !== undefined) throw new CsiError(status.INVALID_ARGUMENT, problem);
    const staging = required(req.staging_target_path, 'staging_target_path');
    const readOnly = req.readonly === true || readOnlyMode(cap);
    return this.exclusive(id, async () => {
      if (!isDatasetId(id)) throw new CsiError(status.NOT_FOUND, `no volume ${id}`);
      let s = await this.snapshot();
      const d = liveDataset(s.datasets, id);
      if (!d) throw new CsiError(status.NOT_FOUND, `no volume ${id}`);
      let mounts = await this.opts.mounter.mounts();
      let agentPath = mountedPath(s, this.me, id);
      let staged = agentPath === undefined ? undefined : mountAt(mounts, agentPath);
      let ours = heldForCsi(
        s.leases.find((l) => l.dataset_id === id),
        this.me,
      );
      if ((agentPath === undefined || !staged || !ours) && (await isDirectory(staging))) {
        // The kubelet staged it (its staging directory is there) but this node's share is gone: releaseUnused let
        // go of a stage no pod used (the kubelet down between stage and publish), or the lease was released.
        // Stage it again, as NodeStageVolume would: the kubelet, counting it staged, would not call that again.
        this.logger.info('volume not staged here any more at publish: staging it again', { dataset_id: id });
        await this.stageHere(id, d, ours, staging, Date.now() + this.opts.stageTimeoutMs);
        s = await this.snapshot();
        mounts = await this.opts.mounter.mounts();
        agentPath = mountedPath(s, this.me, id);
        staged = agentPath === undefined ? undefined : mountAt(mounts, agentPath);
        ours = heldForCsi(
          s.leases.find((l) => l.dataset_id === id),
          this.me,
        );
      }
      if (agentPath === undefined || !staged || !ours)
        throw new CsiError(status.FAILED_PRECONDITION, `volume ${id} is not staged on this node (${staging})`);
      const existing = mountAt(mounts, target);
      if (existing) {
        if (!sameSource(existing, staged))
          throw new CsiError(status.ALREADY_EXISTS, `${target} already has another file system mounted`);
        if (isReadOnly(existing) !== readOnly) {
          throw new CsiError(
            status.ALREADY_EXISTS,
            `volume ${id} is already published at ${target} ${isReadOnly(existing) ? 'read-only' : 'read-write'}`,
          );
        }
        return {};
      }
      if (cap.accessMode === 'SINGLE_NODE_SINGLE_WRITER') {
        // Mounts of the volume besides the agent's own (and a staging bind of an earlier build).
        const others = mounts.filter(
          (m) => sameSource(m, staged) && m.mountPoint !== staging && m.mountPoint !== agentPath,
        );
        if (others.length > 0) {
          throw new CsiError(
            status.FAILED_PRECONDITION,
            `volume ${id} (SINGLE_NODE_SINGLE_WRITER) is already published at ${others[0]?.mountPoint}`,
          );
        }
      }
      await mkdir(target, { recursive: true });
      await this.opts.mounter.bind(agentPath, target, readOnly);
      this.logger.info('published volume', { dataset_id: id, target_path: target, read_only: readOnly });
      return {};
    });
  }

  /** Unmounts the target path and removes it (the spec: the SP deletes what it created there). */
  async nodeUnpublishVolume(raw: unknown): Promise<Json> {
    const req = parseRequest(NodeUnpublishVolumeRequest, raw, 'NodeUnpublishVolume');
    const id = required(req.volume_id, 'volume_id');
    const target = required(req.target_path, 'target_path');
    return this.exclusive(id, async () => {
      await this.unmountAll(target);
      const st = await lstat(target).catch(() => undefined);
      if (st?.isDirectory()) await rmdir(target);
      else if (st) await unlink(target);
      this.logger.info('unpublished volume', { dataset_id: id, target_path: target });
      return {};
    });
  }

  /** Bytes and inodes of the volume's file system at volume_path (statfs). */
  async nodeGetVolumeStats(raw: unknown): Promise<Json> {
    const req = parseRequest(NodeGetVolumeStatsRequest, raw, 'NodeGetVolumeStats');
    const id = required(req.volume_id, 'volume_id');
    const path = required(req.volume_path, 'volume_path');
    if (!isDatasetId(id)) throw new CsiError(status.NOT_FOUND, `no volume ${id}`);
    const s = await this.snapshot();
    if (!liveDataset(s.datasets, id)) throw new CsiError(status.NOT_FOUND, `no volume ${id}`);
    const agentPath = mountedPath(s, this.me, id);
    if (agentPath === undefined) throw new CsiError(status.NOT_FOUND, `volume ${id} is not mounted on this node`);
    try {
      await stat(path);
    } catch {
      throw new CsiError(status.NOT_FOUND, `${path} does not exist`);
    }
    const mounts = await this.opts.mounter.mounts();
    const at = mountAt(mounts, path);
    const agent = mountAt(mounts, agentPath);
    if (!at || !agent || !sameSource(at, agent))
      throw new CsiError(status.NOT_FOUND, `volume ${id} is not mounted at ${path}`);
    const fs = await statfs(path);
    const usage: VolumeUsageWire[] = [
      {
        unit: 'BYTES',
        total: fs.blocks * fs.bsize,
        available: fs.bavail * fs.bsize,
        used: (fs.blocks - fs.bfree) * fs.bsize,
      },
      { unit: 'INODES', total: fs.files, available: fs.ffree, used: fs.files - fs.ffree },
    ];
    return { usage };
  }

  /**
   * NodeGetVolumeHealth (GET_VOLUME_HEALTH, alpha in CSI 1.13, which removed the volume
   * condition): DEGRADED with the agent's error while it reports one for the dataset,
   * INACCESSIBLE while this node's agent is not alive; no entries when healthy.
   */
  async nodeGetVolumeHealth(raw: unknown): Promise<Json> {
    const req = parseRequest(NodeGetVolumeHealthRequest, raw, 'NodeGetVolumeHealth');
    const id = required(req.volume_id, 'volume_id');
    if (!isDatasetId(id)) throw new CsiError(status.NOT_FOUND, `no volume ${id}`);
    const s = await this.snapshot();
    if (!liveDataset(s.datasets, id)) throw new CsiError(status.NOT_FOUND, `no volume ${id}`);
    const lost = this.lost.get(id);
    const entries = volumeHealth(s, this.me, id);
    if (lost !== undefined) entries.unshift({ status: 'INACCESSIBLE', reason: 'LEASE_LOST', message: lost });
    return { volume_health: { volume_id: id, health_statuses: entries } };
  }

  // ---- Lease recovery (node service) ------------------------------------------------------

  /** Volumes this node's CSI service counts as staged here (for tests and logs). */
  stagedVolumes(): string[] {
    return [...this.staged].sort();
  }

  /**
   * Finds the volumes staged here before this process started: those this node's `csi` share
   * holds the lease of (the kubelet has not unstaged them; looked for once, at start), and those a
   * kubelet publish target still binds (the share lost while this process was down). A volume's
   * targets are read once this node's agent reports it mounted, and again when it reports it
   * mounted anew: a plugin started while its agent is down, or before it reported, finds them once
   * it does (review FR 4). The snapshot and mount table are read fresh without the volumes'
   * in-flight keys, so a CSI call arriving meanwhile is never ABORTED (csi-sanity, the provisioner
   * and the kubelet would see an error); a volume a call took its key for during the read is
   * decided on a later pass, never on that read, so a stage or unstage running meanwhile is never
   * overtaken (a volume unstaged then shows no target on the next read, and its lease is never
   * taken again). The decision after the read is synchronous: no call can start inside it.
   */
  async findStaged(seen?: ClusterSnapshot): Promise<void> {
    const s = seen ?? (await this.snapshot());
    const here = mountedHere(s, this.me);
    for (const [id, path] of this.looked) if (here.get(id) !== path) this.looked.delete(id);
    const byLease = !this.leasesLooked;
    const want = new Set<string>();
    for (const [id, path] of here) if (this.looked.get(id) !== path) want.add(id);
    if (byLease) for (const l of s.leases) if (ourCsiLease(s, l.dataset_id, this.me)) want.add(l.dataset_id);
    const candidates = [...want].filter((id) => !this.staged.has(id) && !this.inFlight.has(id));
    if (candidates.length === 0) {
      this.leasesLooked = true;
      return;
    }
    const touched = new Set<string>();
    this.findReads.add(touched);
    let fresh: ClusterSnapshot;
    let mounts: MountInfoEntry[];
    try {
      fresh = await this.snapshot();
      mounts = await this.opts.mounter.mounts();
    } finally {
      this.findReads.delete(touched);
    }
    const freshHere = mountedHere(fresh, this.me);
    let skipped = false;
    for (const id of candidates) {
      if (touched.has(id) || this.inFlight.has(id) || this.staged.has(id)) {
        skipped = true; // not marked looked at: read again on the next pass
        continue;
      }
      const agentPath = freshHere.get(id);
      // Looked at even if deleted: the agent may report it mounted for a while yet.
      if (agentPath !== undefined) this.looked.set(id, agentPath);
      if (!liveDataset(fresh.datasets, id)) continue;
      if (byLease && ourCsiLease(fresh, id, this.me)) {
        this.staged.add(id);
        continue;
      }
      if (agentPath === undefined) continue;
      const agent = mountAt(mounts, agentPath);
      if (
        agent &&
        mounts.some((m) => sameSource(m, agent) && m.mountPoint !== agentPath && isKubeletTarget(m.mountPoint))
      )
        this.staged.add(id);
    }
    // A lease candidate skipped is looked for by lease again on the next pass.
    if (!skipped) this.leasesLooked = true;
  }

  /**
   * One pass over the volumes staged here against snapshot `s`: takes the `csi` share again where
   * the lease is gone while this node is still the primary (and its agent alive), and reports,
   * loudly and never taking it, a volume another node now holds or is the primary of.
   * Each volume under its in-flight key (skipped while a stage or unstage runs on it), decided
   * again on a fresh snapshot: an unstage that ran meanwhile has removed it from `staged`.
   */
  async recoverLeases(s: ClusterSnapshot): Promise<void> {
    for (const id of [...this.staged]) {
      if (this.inFlight.has(id)) continue;
      const first = leaseRecovery(s, id, this.me);
      this.note(id, first);
      if (first.kind !== 'retake') continue;
      await this.watchExclusive(id, async () => {
        try {
          await this.retakeIfUsed(id);
        } catch (err) {
          this.logger.warn('could not take the lease again for a volume staged here', {
            dataset_id: id,
            error: errorMessage(err),
          });
        }
      });
    }
  }

  /** recoverLeases' take-back of one volume, under its key. */
  private async retakeIfUsed(id: string): Promise<void> {
    if (!this.staged.has(id)) return;
    const fresh = await this.snapshot();
    const now = leaseRecovery(fresh, id, this.me);
    this.note(id, now);
    if (now.kind !== 'retake') return;
    // Taken again only for a pod here that uses it: released while no pod used it (flocker leases release
    // --force, or after releaseUnused's share failed), it is let go; a NodePublishVolume stages it again.
    const use = leaseUse(fresh, id, this.me, await this.opts.mounter.mounts());
    if (use === 'unknown') return;
    if (use === 'unpublished') {
      this.staged.delete(id);
      this.unusedSince.delete(id);
      this.logger.warn(
        "the lease of a volume staged here was released while no pod on this node used it: left released (not staged here any more; a pod's publish here stages it again)",
        { dataset_id: id },
      );
      return;
    }
    try {
      await this.client.acquireLease({ dataset_id: id, node_uuid: this.me, expires: null, holder: LEASE_HOLDER });
      this.logger.warn(
        'took the lease again for a volume a pod on this node uses: its lease was released while the volume was published here (by the control service while the dataset agent was down, or by flocker leases release --force) and no other node has taken it',
        { dataset_id: id },
      );
    } catch (err) {
      // Another node took it first: the next snapshot shows it lost.
      if (!(err instanceof FlockerApiError) || err.status !== 409) throw err;
    }
  }

  /**
   * Lets go of this node's `csi` share of a volume no pod here uses (leaseUse: no kubelet publish target
   * binds it) for longer than unusedReleaseMs, and at once of one found so at this process's first pass (taken
   * before it started: a stage cut short by a crash of this plugin, review T7 TK-1). The kubelet calls
   * NodeUnstageVolume only for what it knows it staged: a stage it lost track of (killed mid-stage, review T7
   * TK-2; or a stage this plugin failed whose release failed) would hold the volume here for ever.
   * Safe: no pod here reaches the volume except through a publish bind, so none loses a write or keeps the
   * volume open when another node takes it; decided again under the volume's key on a fresh snapshot and mount
   * table (no stage, publish or unstage runs meanwhile). A later NodePublishVolume stages it again (see there).
   */
  async releaseUnused(s: ClusterSnapshot, now: number = Date.now()): Promise<void> {
    const grace = this.unusedGraceMs;
    if (grace === undefined) return;
    const first = !this.unusedLooked;
    this.unusedLooked = true;
    const ours = s.leases.filter((l) => ourCsiLease(s, l.dataset_id, this.me)).map((l) => l.dataset_id);
    for (const id of [...this.unusedSince.keys()]) if (!ours.includes(id)) this.unusedSince.delete(id);
    if (ours.length === 0) return;
    // The mount table is read at most every few seconds (passes come with every cluster change).
    if (!first && now - this.unusedReadAt < Math.min(grace / 2, 5_000)) return;
    this.unusedReadAt = now;
    const mounts = await this.opts.mounter.mounts();
    for (const id of ours) {
      const use = this.inFlight.has(id) ? 'unknown' : leaseUse(s, id, this.me, mounts);
      if (use !== 'unpublished') {
        // A call on it running: looked at afresh once it is done.
        if (use === 'published' || this.inFlight.has(id)) this.unusedSince.delete(id);
        continue;
      }
      const since = this.unusedSince.get(id) ?? (first && !this.stagedByThis.has(id) ? -Infinity : now);
      this.unusedSince.set(id, since);
      if (now - since >= grace) await this.releaseIfUnused(id, since === -Infinity);
    }
  }

  /** releaseUnused's grace period (ms); undefined: it releases nothing (unusedReleaseMs `never`). */
  private get unusedGraceMs(): number | undefined {
    const ms = this.opts.unusedReleaseMs ?? 30_000;
    return ms === 'never' ? undefined : ms;
  }

  private async releaseIfUnused(id: string, atStart: boolean): Promise<void> {
    await this.watchExclusive(id, async () => {
      try {
        const fresh = await this.snapshot();
        if (!ourCsiLease(fresh, id, this.me)) return;
        if (leaseUse(fresh, id, this.me, await this.opts.mounter.mounts()) !== 'unpublished') return;
        // Forgotten first: recoverLeases never takes it back.
        this.staged.delete(id);
        this.stagedByThis.delete(id);
        this.lost.delete(id);
        this.unusedSince.delete(id);
        await this.releaseOurLease(id);
        this.logger.warn(
          atStart
            ? 'released the lease of a volume no pod on this node uses, held since before this plugin started (a stage cut short by a crash, or staged and never published)'
            : `released the lease of a volume no pod on this node has used for ${Math.round((this.unusedGraceMs ?? 0) / 1000)} s (staged here and never unstaged: a stage the kubelet lost track of, or a failed stage that could not release it)`,
          { dataset_id: id },
        );
      } catch (err) {
        this.logger.warn('could not release the lease of a volume no pod on this node uses', {
          dataset_id: id,
          error: errorMessage(err),
        });
      }
    });
  }

  private note(id: string, r: LeaseRecovery): void {
    if (r.kind === 'gone') {
      this.staged.delete(id);
      this.lost.delete(id);
    } else if (r.kind === 'lost') {
      if (this.lost.get(id) !== r.message)
        this.logger.error('volume staged here was taken by another node', { dataset_id: id, detail: r.message });
      this.lost.set(id, r.message);
    } else if (r.kind === 'held') {
      this.lost.delete(id);
    }
  }

  /**
   * Keeps the leases of the volumes staged here that pods here use, and lets go of those no pod here uses
   * (findStaged, recoverLeases, then releaseUnused, on every change the control service's long-poll
   * brings and at least every pollMs) until `stop` is called.
   */
  watchLeases(): { stop: () => void; done: Promise<void> } {
    let stopped = false;
    const done = (async () => {
      let since: string | undefined;
      while (!stopped) {
        try {
          const s = await this.client.waitForCluster(since, since === undefined ? 0 : this.pollMs);
          since = s.generation;
          if (stopped) break;
          await this.findStaged(s);
          await this.recoverLeases(s);
          await this.releaseUnused(s);
        } catch (err) {
          since = undefined;
          this.logger.debug('lease watch: the control service did not answer', { error: errorMessage(err) });
          await sleep(1000);
        }
      }
    })();
    return {
      stop: () => {
        stopped = true;
      },
      done,
    };
  }
}
