/**
 * Docker volume semantics on top of the Flocker control service: a Docker volume is the
 * non-deleted dataset whose metadata.name is the volume name.
 */
import { pluginMetrics, processRegistry, secondsSince } from '@flocker/metrics';
import {
  FlockerApiError,
  configurationVersionOfTag,
  datasetFilesystem,
  datasetSnapshotSchedule,
  formatSize,
  deviceSize,
  realSize,
  localMoveOf,
  METADATA_FILESYSTEM_KEY,
  METADATA_NAME_KEY,
  METADATA_PROFILE_KEY,
  UUID_SHAPED,
  type ClusterSnapshot,
  type CreateDatasetRequest,
  type DatasetConfiguration,
  type CreateLeaseRequest,
  type FlockerClient,
  type Lease,
  refusedUnknownKey,
  RefusedKeys,
  UNIQUE_NAME_RECHECK_MS,
  type NodeState,
  type WriteOptions,
} from '@flocker/api';
import { errorMessage } from '@flocker/runtime';
import type { Logger } from 'winston';
import { ClusterWatcher, WaitAbortedError, WaitTimeoutError } from './ClusterWatcher';
import {
  decideInSight,
  DEFAULT_MOUNT_SAFETY_WINDOW_MS,
  inheritedSettled,
  sightOf,
  stoppedMounting,
  type DockerSight,
  type FinishedAt,
  type ReconcileTarget,
  type VolumeOutcome,
  type VolumeRef,
} from './DockerReconciler';
import type { DockerContainer, DockerVolume } from './DockerView';
import {
  keepAfterLastUnmountMs,
  keptLeaseStep,
  promisedInView,
  releaseRequestOf,
  releasesOnRequest,
  snapshotFacts,
  type KeptLeaseStep,
  type ReleaseRequest,
} from './idleLeases';
import { MountRegistry, type MountEntry } from './MountRegistry';
import type { MountTable, MountTracker } from './MountTable';
import {
  VolumePluginError,
  type CapabilitiesResponse,
  type CreateRequest,
  type GetResponse,
  type ListResponse,
  type MountRequest,
  type MountResponse,
  type NameRequest,
  type PathResponse,
  type VolumeDriverBackend,
  type VolumeInfo,
} from './protocol';
import {
  finalRefusal,
  mayPutBack,
  RefusalClock,
  REFUSAL_GRACE_MS,
  refusalMessage,
  type FinalRefusal,
} from './mountRefusal';
import {
  parseCreateOptions,
  profileForBackend,
  validateNewVolumeName,
  validateVolumeName,
  volumeDatasetId,
  type CreateOptions,
} from './volumeOptions';
import { growPendingHere } from './growPending';

/**
 * This plugin's share of its node's lease (the CSI node plugin on the same node holds its own):
 * its last Unmount lets go of only this share, so a pod still using the volume keeps it here.
 */
export const LEASE_HOLDER = 'docker';

export type ControlClient = Pick<
  FlockerClient,
  'createDataset' | 'updateDataset' | 'deleteDataset' | 'acquireLease' | 'releaseLease' | 'waitForCluster'
> &
  // The whole cluster's watch (issue 23): followed by deltas when the client offers it, else long-polled.
  // Declining a request for an idle-kept lease (session 21): without it the requester waits out the hand-over.
  Partial<Pick<FlockerClient, 'watchCluster' | 'declineReleaseRequest'>> &
  // A read of the configuration's tag at Mount time: the proof that lets a Mount on the create's kept lease answer at
  // the kernel's first mount (keptLeaseProof, review s28 F4); without it such a Mount waits for the snapshot.
  Partial<Pick<FlockerClient, 'getDatasetTagged'>>;

export interface FlockerVolumeBackendOptions {
  client: ControlClient;
  nodeUuid: string;
  registry: MountRegistry;
  logger: Logger;
  /** Bound on Mount (Docker gives up after 120 s). */
  mountTimeoutMs: number;
  defaultSize: number;
  /** Long-poll duration of the cluster watcher. */
  pollMs?: number;
  /**
   * How long the lease is kept after a copy-up Unmount: when Docker creates a
   * container it mounts the volume to copy the image's files into it (new or
   * existing volume alike), unmounts, and mounts again to start the container.
   * Default CREATE_CYCLE_GRACE_MS; 0 releases at once.
   */
  createCycleGraceMs?: number;
  /**
   * The copy-up Unmount comes right after the Mount that took the lease; one
   * later than this (a container that ran, even briefly) releases at once.
   * Default COPY_UP_MAX_MS.
   */
  copyUpMaxMs?: number;
  /**
   * Mount IDs younger than this, and "created" containers younger than this, count as in
   * use when reconciling with Docker (a Mount in flight or just answered). Default
   * DEFAULT_MOUNT_SAFETY_WINDOW_MS.
   */
  mountSafetyWindowMs?: number;
  /** The clock (ms since the epoch); default Date.now. */
  now?: () => number;
  /**
   * How long the lease of a volume no container here uses any more is kept (idle_lease_seconds), so the next
   * container here takes and lets go of no lease; it is let go of at once when the control service asks for it
   * (another node's Mount, a move, a delete). Only against a control service that echoes release_on_request in
   * its grants. Default 0: released after the last Unmount (Docker's copy-up cycle aside).
   */
  idleLeaseMs?: number;
  /**
   * How long the lease granted with a Create here is kept for the new volume's first Mount (never more than
   * idleLeaseMs); then it goes, mounted or not. Default CREATE_LEASE_KEEP_MS.
   */
  createLeaseKeepMs?: number;
  /**
   * How long this node's agent must keep reporting a final refusal of the dataset (mountRefusal) before a Mount
   * fails on it rather than waiting for its timeout. Default REFUSAL_GRACE_MS.
   */
  refusalGraceMs?: number;
  /**
   * The kernel's mount table under the agent's mount root (MountTable), and that root as the cluster
   * state names it: a new volume made here is then answered when the agent's first mount of it shows
   * in the kernel, under a lease granted on a configuration showing it here (see doMount).
   */
  mountTable?: { table: MountTable; hostMountRoot: string };
}

/**
 * Docker's copy-up Unmount follows its Mount within a few milliseconds; a container's
 * whole life (runc create, start, exit, cleanup) takes well over 100 ms.
 */
export const COPY_UP_MAX_MS = 50;

export const CREATE_CYCLE_GRACE_MS = 1_000;

/**
 * How long the lease granted with a Create here is kept for the new volume's first Mount (review s28 F3). `docker run`
 * mounts a volume it creates within the same command (its Get and the container's create between: milliseconds,
 * about a second on a loaded host), so this covers that gap with room; `docker volume create` alone then holds no
 * lease for the idle time: another host's `docker run` would have to ask for it, and with this plugin down
 * meanwhile (killed, upgraded) nobody would let it go until it came back. A later Mount takes the lease as before.
 */
export const CREATE_LEASE_KEEP_MS = 10_000;

/** How long a new volume's mount path is tracked in the kernel's table for its first Mount (then: the snapshot). */
export const FIRST_MOUNT_TRACK_MS = 60_000;
/** How often a Mount whose snapshot the kernel's table contradicts (a stale report) looks again. */
export const KERNEL_RECHECK_MS = 100;

/** How often a Mount's wait looks again at a refusal it is giving its grace (no new snapshot may come). */
export const REFUSAL_RECHECK_MS = 250;
/**
 * The least pause before a lease refused NODE_DEAD (this node held dead by the control service) is asked for again:
 * the snapshot the plugin follows may still show this node alive from before it was declared dead.
 */
export const NODE_DEAD_RETRY_MS = 500;

/**
 * The lease this Mount took was released while it waited for the agent's mount (the control service declared this
 * node dead — its agent unheard for the node timeout, as after a restart of the service while the agent was slow to
 * report — and released its leases after the grace, or an administrator released it). Waiting on would wait out the
 * mount timeout for a snapshot showing the volume "mounted under this node's lease" that never comes.
 */
class LeaseLostError extends Error {
  constructor() {
    super('the lease was released while the Mount waited');
  }
}

/** Thrown by a Mount's wait when this node's agent keeps refusing the dataset until the user acts. */
class MountRefusedError extends Error {
  constructor(
    readonly refusal: FinalRefusal,
    readonly snapshot: ClusterSnapshot,
  ) {
    super(refusal.error.message);
  }
}

/** A lease kept after the last Unmount (FlockerVolumeBackend.idle). */
interface KeptLease {
  name: string;
  /** When the keep ends (ms): the lease is released then. */
  until: number;
  /**
   * When Docker's copy-up grace ends (ms; 0: not a copy-up keep): until then the keep is trusted before the grant's
   * push (takeOverKept) and a resize is not acted on.
   */
  copyUpUntil: number;
  timer: NodeJS.Timeout;
}

/** How long after a control service refused release_on_request (an older release) the plugin asks with it again. */
export const RELEASE_ON_REQUEST_RETRY_MS = UNIQUE_NAME_RECHECK_MS;

/**
 * How long after a control service refused move_here (an older release) the plugin moves a volume with a request of
 * its own beside the lease POST, as before it; then it asks with it again (the service is upgraded after its nodes).
 */
export const MOVE_HERE_RETRY_MS = UNIQUE_NAME_RECHECK_MS;

/** Whether a lease POST was refused because the control service does not know release_on_request (400). */
export function refusesReleaseOnRequest(err: unknown): boolean {
  return apiStatus(err) === 400 && errorMessage(err).includes('release_on_request');
}

/** A lease request of a dataset (FlockerVolumeBackend.declining): the dataset, the requester and when it asked. */
function declineKey(datasetId: string, request: ReleaseRequest): string {
  return `${datasetId} ${request.by} ${request.at}`;
}

/** The lease a Create asks for with the new dataset (idle leases on): this plugin's share, let go of on request. */
const CREATE_LEASE = { holder: LEASE_HOLDER, release_on_request: true } as const;

/**
 * How long after a control service refused a create's lease (an older release) the plugin creates without it (the
 * first Mount takes the lease, as before); then it asks with it again (the service is upgraded after its nodes).
 */
export const CREATE_LEASE_RETRY_MS = UNIQUE_NAME_RECHECK_MS;

/** How many datasets removed here lookups keep skipping (far more than one snapshot can lag behind). */
export const MAX_REMOVED_REMEMBERED = 1_024;

/** Docker shows CreatedAt in `volume inspect`; datasets have no such field, so metadata keeps it. */
export const CREATED_AT_KEY = 'docker:created_at';

// ---- pure lookups on a snapshot ----------------------------------------------

export function findVolume(s: ClusterSnapshot, name: string): DatasetConfiguration | undefined {
  return s.datasets.find((d) => !d.deleted && d.metadata[METADATA_NAME_KEY] === name);
}

export function nodeOf(s: ClusterSnapshot, uuid: string): NodeState | undefined {
  return s.nodes.find((n) => n.uuid === uuid);
}

export function hostOf(s: ClusterSnapshot, uuid: string): string {
  return nodeOf(s, uuid)?.host ?? uuid;
}

export function leaseOf(s: ClusterSnapshot, datasetId: string): Lease | undefined {
  return s.leases.find((l) => l.dataset_id === datasetId);
}

/**
 * Who uses a leased volume on its node, for messages: " (by docker, csi)"; for a lease no
 * holder named (an older plugin, a Flocker v1 client, `flocker leases acquire`), how it ends.
 */
export function leaseUsers(lease: Lease, name: string): string {
  if (lease.holders === undefined)
    return ` (its lease names no holder: once nothing there uses it, flocker leases release ${name})`;
  return ` (by ${lease.holders.join(', ')}${lease.unnamed_holder === true ? ' and a lease without holder' : ''})`;
}

/** Whether the snapshot shows the dataset deleted (an id it does not know is not taken as deleted). */
export function datasetDeleted(s: ClusterSnapshot, datasetId: string): boolean {
  return s.datasets.some((d) => d.dataset_id === datasetId && d.deleted);
}

/**
 * Which dataset an Unmount(name, id) is for. A name can stand for several datasets in the
 * registry: a volume deleted under a running container keeps its entry (Docker sends no
 * Unmount for it), and a new volume of the same name gets another dataset. So: the current
 * dataset of the name (`current`, the snapshot's live one) if its entry holds the ID; else
 * another entry of that name holding the ID (a late Unmount of the old volume's
 * container); else the current dataset. Never an entry merely because it bears the name.
 */
export function unmountTarget(
  entries: readonly MountEntry[],
  name: string,
  id: string,
  current: string | undefined,
): string | undefined {
  const holding = entries.filter((e) => e.name === name && e.ids.includes(id));
  if (current !== undefined && holding.some((e) => e.datasetId === current)) return current;
  return holding[0]?.datasetId ?? current;
}

/** Where the dataset is mounted on this node, if it is. */
export function mountedPath(s: ClusterSnapshot, nodeUuid: string, datasetId: string): string | undefined {
  const m = nodeOf(s, nodeUuid)?.manifestations.find((x) => x.dataset_id === datasetId);
  return m?.status === 'mounted' && m.path ? m.path : undefined;
}

/**
 * The path a Mount may answer: mounted here, in a snapshot that shows this node's lease and this
 * node as the primary. The control service moves a dataset away from no lease holder, so such a
 * snapshot is no older than the move that could take it away; a snapshot from before a move
 * (the long-poll lagging) must never answer a Mount with a directory the agent has unmounted.
 */
export function mountedUnderLease(s: ClusterSnapshot, nodeUuid: string, datasetId: string): string | undefined {
  if (leaseOf(s, datasetId)?.node_uuid !== nodeUuid) return undefined;
  if (s.datasets.find((d) => d.dataset_id === datasetId)?.primary !== nodeUuid) return undefined;
  return mountedPath(s, nodeUuid, datasetId);
}

/**
 * The path a Mount may answer once this node's lease is granted on exactly the configuration `s`
 * shows (a lease conditional on its configuration_tag): `s` shows the dataset live with this node
 * as primary, mounted here, and leased to no other node. The grant then proves what a snapshot
 * pushed after it would show (mountedUnderLease): no move between `s` and the lease, none after it.
 */
export function mountedForConditionalLease(
  s: ClusterSnapshot,
  nodeUuid: string,
  datasetId: string,
): string | undefined {
  const lease = leaseOf(s, datasetId);
  if (lease !== undefined && lease.node_uuid !== nodeUuid) return undefined;
  const d = s.datasets.find((x) => x.dataset_id === datasetId);
  if (d === undefined || d.deleted || d.primary !== nodeUuid) return undefined;
  return mountedPath(s, nodeUuid, datasetId);
}

/**
 * Whether a Mount may be answered from the kernel's first mount of the dataset once this node's lease
 * is granted on exactly the configuration `s` shows: live, this node its primary, leased to no other
 * node, and no node reports it yet (a new dataset: the agent's mount of it will be its first). The
 * grant then keeps it here and live (no move from a lease holder, no delete of a leased dataset), so
 * the agent mounts it here and keeps it mounted.
 */
export function newHereForConditionalLease(s: ClusterSnapshot, nodeUuid: string, datasetId: string): boolean {
  const lease = leaseOf(s, datasetId);
  if (lease !== undefined && lease.node_uuid !== nodeUuid) return false;
  const d = s.datasets.find((x) => x.dataset_id === datasetId);
  if (d === undefined || d.deleted || d.primary !== nodeUuid) return false;
  return s.nodes.every((n) => n.manifestations.every((m) => m.dataset_id !== datasetId));
}

/** One word for `docker volume inspect`: where the dataset stands. */
export function volumeState(s: ClusterSnapshot, d: DatasetConfiguration): string {
  for (const n of s.nodes) {
    const m = n.manifestations.find((x) => x.dataset_id === d.dataset_id);
    if (m) return n.uuid === d.primary ? m.status : `${m.status} on ${n.host} (moving)`;
  }
  return 'pending';
}

/**
 * What the start reconcile does with a registry entry that still holds mount IDs:
 * - drop: the IDs are stale and nothing of this node holds the volume (deleted, or moved away without our lease);
 * - retake: used here (live, this node its primary, mounted here): take the lease again, unless another node holds it;
 * - leave: this node still holds the lease, yet the volume is no longer here as a user would find it (a move
 *   when_released changed its primary, or the agent has not mounted it yet, as after a host reboot). Whether a
 *   container here still uses it is Docker's to say, not the snapshot's: the entry stays for the Docker reconcile,
 *   which releases the lease once no container uses the volume (a reboot killed them), or keeps it while one runs (only
 *   the plugin restarted). Dropping the IDs here left such a lease held for ever (review U2, session 16, finding 2b).
 */
export type StartReconcileStep = 'drop' | 'retake' | 'leave';

export function startReconcileStep(s: ClusterSnapshot, me: string, datasetId: string): StartReconcileStep {
  const d = s.datasets.find((x) => x.dataset_id === datasetId && !x.deleted);
  if (d === undefined) return 'drop';
  const ours = leaseOf(s, datasetId)?.node_uuid === me;
  const here = d.primary === me && (nodeOf(s, me) === undefined || mountedPath(s, me, datasetId) !== undefined);
  if (here) return 'retake';
  return ours ? 'leave' : 'drop';
}

function apiStatus(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'status' in err && typeof err.status === 'number') return err.status;
  return undefined;
}

/**
 * The control service's LEASE_HELD texts that say only who holds the lease, used there (configuration.ts: a lease
 * POST's, a move's): the plugin's own words then say the same with the host's name and what to do.
 */
const PLAIN_LEASE_REFUSAL: readonly RegExp[] = [
  /^The dataset \S+ is already leased by node \S+(?: \(used there by [^)]*\))?\.$/,
  /^The dataset \S+ cannot move: node \S+(?: \(used there by [^)]*\))? holds a lease on it\. Release the lease first\.$/,
];

export type LeaseVerdict =
  /** No lease, or ours: try to take it (again). */
  | { kind: 'free' }
  /** Held by a node declared dead whose lease the control service releases at `releaseAt`: wait for it. */
  | { kind: 'wait'; message: string; releaseAt: string }
  /** Held by a live node, or pinned, or by a dead node the control service will not release: fail now. */
  | { kind: 'fail'; message: string };

/**
 * What a Mount can do about the lease another node holds on the volume, from the
 * snapshot: the control service releases the (unpinned) leases of a node dead for
 * lease_grace_seconds, so waiting is worth it only then. `refusal`: the control
 * service's description of its 409, which for a lease its holder lets go of on request
 * says why it did not (declined: a container there uses it; or it did not answer).
 */
export function leaseVerdict(
  s: ClusterSnapshot,
  datasetId: string,
  me: string,
  name: string,
  refusal?: string,
): LeaseVerdict {
  const lease = leaseOf(s, datasetId);
  if (!lease || lease.node_uuid === me) return { kind: 'free' };
  const holder = nodeOf(s, lease.node_uuid);
  const host = holder?.host ?? lease.node_uuid;
  const grace = s.lease_grace_seconds;
  if (lease.pinned === true) {
    return {
      kind: 'fail',
      message: `volume ${name} is leased to host ${host} and an admin pinned it there: it stays even if that host is down. To move it, release the lease first: flocker leases release ${name}`,
    };
  }
  if ((holder === undefined || holder.alive) && releasesOnRequest(lease)) {
    return {
      kind: 'fail',
      message:
        refusal !== undefined
          ? `volume ${name} is leased to host ${host}: ${refusal}`
          : `volume ${name} is leased to host ${host}, whose Docker plugin lets go of it when asked unless a container there uses it; it did not. Stop that container first, or if that host's plugin is not running: flocker leases release ${name}`,
    };
  }
  if (holder === undefined || holder.alive) {
    const timing =
      s.node_timeout_seconds !== undefined && grace !== undefined
        ? `if that host is down, the control service declares it dead after ${s.node_timeout_seconds} s without a report and releases its leases ${grace} s later`
        : '';
    // The control service's reason when it gave one beyond who holds the lease: the snapshot may not show why
    // (release_on_request is left out of the views while a node is behind or unreported since a restart), and "in use
    // by a container" would be a guess contradicting it ("kept while no container uses it", "has not reported").
    if (refusal !== undefined && !PLAIN_LEASE_REFUSAL.some((plain) => plain.test(refusal)))
      return {
        kind: 'fail',
        message: `volume ${name} is leased to host ${host}: ${refusal}${timing === '' ? '' : ` (${timing}.)`}`,
      };
    return {
      kind: 'fail',
      message: `volume ${name} is in use by a container on host ${host}${leaseUsers(lease, name)}. Stop that container first${timing === '' ? '' : `; ${timing}`}.`,
    };
  }
  const since = holder.dead_since ?? holder.last_seen;
  if (grace === undefined) {
    return {
      kind: 'fail',
      message:
        `volume ${name} is held by host ${host}, which has been unreachable since ${since}; ` +
        `this control service does not release the leases of dead hosts. Once that host is really down: flocker leases release ${name}`,
    };
  }
  const releaseAt = new Date(Date.parse(since) + grace * 1000).toISOString();
  return {
    kind: 'wait',
    releaseAt,
    message: `volume ${name} is held by host ${host}, which has been unreachable since ${since}; the control service releases it at ${releaseAt} (lease grace ${grace} s).`,
  };
}

export class FlockerVolumeBackend implements VolumeDriverBackend, ReconcileTarget {
  readonly watcher: ClusterWatcher;
  private readonly client: ControlClient;
  private readonly me: string;
  private readonly registry: MountRegistry;
  private readonly logger: Logger;
  private readonly opts: FlockerVolumeBackendOptions;
  /** Serialises Mount/Unmount/Remove per volume name so counts and leases stay consistent. */
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Volumes a Create here made or found afresh, until a lookup finds them in the followed snapshot. */
  private readonly createdHere = new Set<string>();
  /**
   * The dataset a Create here made, by name, until the followed snapshot knows its id: Docker's Get
   * right after Create answers from it instead of a fresh look (a round trip on `docker run`'s critical
   * path). Until the snapshot knows the id nothing later is known of it either (a delete comes after the
   * create), so the POST's answer is as current as any look.
   */
  private readonly madeHere = new Map<string, DatasetConfiguration>();
  /** When the Mount that made a volume used here (no mount IDs before it) answered, by name. */
  private readonly firstMountAt = new Map<string, number>();
  /**
   * Leases kept after the last Unmount, by dataset: for Docker's copy-up cycle, or idle (idleLeaseMs). A Mount
   * meanwhile keeps the lease; `until` (ms) the release is due. A crash leaves the entry without IDs: released at start.
   */
  private readonly idle = new Map<string, KeptLease>();
  /** Whether the control service echoed release_on_request in this plugin's last grant of the dataset's lease. */
  private readonly echoed = new Map<string, boolean>();
  /** The dataset's maximum_size when this plugin took its lease (resized since: an idle lease is let go of). */
  private readonly leasedSize = new Map<string, number | null>();
  /** The request (its `at`) this plugin declined, by dataset, until the snapshot stops showing it. */
  private readonly declined = new Map<string, string>();
  /** Datasets whose kept lease is queued for a look (so each snapshot does not queue it again). */
  private readonly reviewing = new Set<string>();
  /**
   * Requests being declined (declineKey: dataset and request), so one is not declined twice at once. By request, not
   * by dataset: a decline names only its own request, so a newer request must not wait for an older one's (review
   * s28 F5: its requester waited out the hand-over).
   */
  private readonly declining = new Set<string>();
  /** Lease fields the control service refused lately (older release): release_on_request, move_here. */
  private readonly refusedKeys: RefusedKeys;
  /**
   * Datasets a Remove here deleted, oldest first: lookups by name skip them at once, while the
   * followed snapshot may still show them live. A deleted dataset never comes back and its id is
   * never given again (the control service keeps it), so skipping one is never wrong; bounded.
   */
  private readonly removed = new Set<string>();
  /** Registry entries of deleted datasets whose drop is queued (so each snapshot does not queue it again). */
  private readonly dropping = new Set<string>();
  /** New datasets made here whose mount path the kernel's table is watched for, until their first Mount. */
  private readonly firstMounts = new Map<string, { tracker: MountTracker; timer: NodeJS.Timeout }>();
  private readonly now: () => number;

  constructor(opts: FlockerVolumeBackendOptions) {
    this.opts = opts;
    this.now = opts.now ?? Date.now;
    this.refusedKeys = new RefusedKeys(() => this.now());
    this.client = opts.client;
    this.me = opts.nodeUuid;
    this.registry = opts.registry;
    this.logger = opts.logger;
    const watch = this.client.watchCluster?.bind(this.client);
    this.watcher = new ClusterWatcher(
      (since, t) => this.client.waitForCluster(since, t),
      opts.logger,
      opts.pollMs,
      undefined,
      watch !== undefined ? (since, signal) => watch(undefined, since, { signal }) : undefined,
    );
    this.watcher.onSnapshot((s) => {
      this.dropDeleted(s);
      this.reviewKept(s);
      for (const [name, d] of this.madeHere)
        if (s.datasets.some((x) => x.dataset_id === d.dataset_id)) this.madeHere.delete(name);
    });
  }

  /**
   * A snapshot showing a dataset of the registry deleted: forget its entry (in the volume's
   * queue). Docker sends no Unmount for a volume deleted under a container, so the entry
   * would otherwise stay for good, and the name may already stand for a new volume.
   */
  private dropDeleted(s: ClusterSnapshot): void {
    for (const e of this.registry.entries()) {
      if (this.dropping.has(e.datasetId) || !datasetDeleted(s, e.datasetId)) continue;
      this.dropping.add(e.datasetId);
      this.serialised(e.name, () => this.dropIfDeleted(e.datasetId, 'snapshot'))
        .catch((err: unknown) =>
          this.logger.error('cannot forget the mount IDs of a deleted volume', {
            volume: e.name,
            dataset_id: e.datasetId,
            error: errorMessage(err),
          }),
        )
        .finally(() => this.dropping.delete(e.datasetId));
    }
  }

  /** In the volume's queue: forget the entry if the latest snapshot shows its dataset deleted. Whether it did. */
  private async dropIfDeleted(datasetId: string, reason: 'snapshot' | 'docker reconcile'): Promise<boolean> {
    const s = this.watcher.current();
    const e = this.registry.entries().find((x) => x.datasetId === datasetId);
    if (s === undefined || e === undefined || !datasetDeleted(s, datasetId)) return false;
    // A deleted dataset holds no lease (the control service refuses to delete a leased one): nothing to release.
    this.forgetKept(datasetId);
    this.logger.info('forgetting the mount IDs of a deleted volume (Docker sends no Unmount for it)', {
      volume: e.name,
      dataset_id: datasetId,
      ids: e.ids,
      reason,
    });
    await this.registry.drop(datasetId);
    return true;
  }

  /**
   * Follow the cluster and reconcile persisted mount IDs. If the control service does not
   * answer within `startTimeoutMs`, carry on (Docker must not wait on us) and reconcile
   * once it does; calls meanwhile fail with a clear error.
   */
  async start(startTimeoutMs = 10_000): Promise<void> {
    this.watcher.start();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), startTimeoutMs)));
    const first = await Promise.race([this.watcher.first, timeout]);
    clearTimeout(timer);
    if (first !== 'timeout') return this.reconcile();
    this.logger.warn('control service not reachable yet; serving Docker anyway and reconciling when it answers');
    void this.watcher.first
      .then(() => this.reconcile())
      .catch((err: unknown) => this.logger.error('reconcile failed', { error: errorMessage(err) }));
  }

  /**
   * Resolves when every queued Mount/Unmount/Remove (incl. lease releases) has finished; kept leases (copy-up, idle)
   * are let go of now unless `keepIdle`.
   */
  async settled(options: { keepIdle?: boolean } = {}): Promise<void> {
    if (options.keepIdle !== true) for (const datasetId of [...this.idle.keys()]) this.releaseKept(datasetId);
    while (this.locks.size > 0) await Promise.allSettled([...this.locks.values()]);
  }

  /** The datasets whose lease this plugin keeps with no container here using them (copy-up or idle). */
  keptIdle(): string[] {
    return [...this.idle.keys()];
  }

  async close(): Promise<void> {
    await this.settled();
    for (const id of [...this.firstMounts.keys()]) this.untrackFirstMount(id);
    await this.watcher.close();
  }

  /** Watch the kernel's table for the first mount of a dataset made here (when the table is followed). */
  private trackFirstMount(datasetId: string): void {
    const tracker = this.opts.mountTable?.table.track(datasetId);
    if (tracker === undefined) return;
    this.untrackFirstMount(datasetId);
    const timer = setTimeout(() => this.untrackFirstMount(datasetId), FIRST_MOUNT_TRACK_MS);
    timer.unref();
    this.firstMounts.set(datasetId, { tracker, timer });
  }

  private untrackFirstMount(datasetId: string): void {
    const t = this.firstMounts.get(datasetId);
    if (t === undefined) return;
    clearTimeout(t.timer);
    t.tracker.close();
    this.firstMounts.delete(datasetId);
  }

  /** This node's storage backend as its last report in the snapshot says (undefined: none seen yet). */
  private ownBackend(followed: ClusterSnapshot | undefined): string | undefined {
    const s = followed ?? this.watcher.current();
    return s === undefined ? undefined : nodeOf(s, this.me)?.backend;
  }

  async capabilities(): Promise<CapabilitiesResponse> {
    return { Capabilities: { Scope: 'global' } };
  }

  /** Serialised per name so two `docker run`s of a new volume at once make one dataset. */
  create(req: CreateRequest): Promise<void> {
    return this.serialised(req.Name, () => this.doCreate(req));
  }

  private async doCreate(req: CreateRequest): Promise<void> {
    validateVolumeName(req.Name);
    const options = parseCreateOptions(req.Opts, this.opts.defaultSize);
    const started = Date.now();
    // While the long-poll follows the cluster its snapshot lags only by the control
    // service's push: a miss there goes straight to the create, whose name-based id
    // makes a second plugin's create of the same name fail (see createNamed). Not
    // following: a fresh lookup first.
    const followed = this.watcher.followed();
    let existing = followed ? this.find(followed, req.Name) : await this.lookup(req.Name);
    // Only a volume that exists may have a UUID-shaped name (review TN F1); the followed snapshot may lag one
    // just made elsewhere (by an API user, say), so such a name is looked up afresh before it is refused.
    if (!existing && followed && UUID_SHAPED.test(req.Name)) existing = await this.lookup(req.Name);
    if (existing) {
      // Docker may create the same volume again; that is fine. Its next Get must find it too.
      this.createdHere.add(req.Name);
      this.adoptCreateLease(req.Name, existing);
      await this.honourRepeatedCreate(req.Name, existing, options);
      return;
    }
    validateNewVolumeName(req.Name);
    const looked = Date.now();
    const metadata: Record<string, string> = {
      [METADATA_NAME_KEY]: req.Name,
      [CREATED_AT_KEY]: new Date().toISOString(),
    };
    // The backend's profiles, from this node's last report (none seen yet: as given).
    if (options.profile) metadata[METADATA_PROFILE_KEY] = profileForBackend(options.profile, this.ownBackend(followed));
    if (options.filesystem) metadata[METADATA_FILESYSTEM_KEY] = options.filesystem;
    if (options.schedule) Object.assign(metadata, options.schedule);
    if (options.replicas) Object.assign(metadata, options.replicas);
    const clone = await this.cloneSource(req.Name, options);
    if (clone?.filesystem !== undefined) metadata[METADATA_FILESYSTEM_KEY] = clone.filesystem;
    // A clone without -o size: the control service gives it its source's size.
    const creating = this.createNamed(req.Name, {
      primary: this.me,
      ...(clone === undefined || options.sizeGiven ? { maximum_size: options.size } : {}),
      metadata,
      ...clone?.source,
    });
    // The kernel's table is paused while idle: resumed while the POST is on its way, for the agent's mount.
    this.opts.mountTable?.table.warm();
    const made = await creating;
    this.createdHere.add(req.Name);
    if (made === undefined) {
      // Made meanwhile: perhaps by this plugin's own create whose answer was lost (its lease then held by no one here).
      const s = this.watcher.current();
      const found = s === undefined ? undefined : this.find(s, req.Name);
      if (found !== undefined) this.adoptCreateLease(req.Name, found);
      return;
    }
    const { created, leased } = made;
    this.madeHere.set(req.Name, created);
    this.trackFirstMount(created.dataset_id);
    // The lease granted with the create is kept as an idle one (a new lease asked with the promise: granted with it):
    // the first Mount takes it over with no POST, and unused it goes as any idle lease (a request, the rm, or its time:
    // CREATE_LEASE_KEEP_MS here).
    if (leased) this.keepCreateLease(req.Name, created);
    this.logger.info('created dataset for volume', {
      volume: req.Name,
      dataset_id: created.dataset_id,
      size: options.size,
      ...(leased ? { lease: 'kept idle' } : {}),
    });
    // No refresh here (a round trip on `docker run`'s critical path): the long-poll brings the new
    // dataset within a push, and until a lookup sees it there, lookups of the name look afresh (createdHere).
    this.logger.debug('create timing', {
      volume: req.Name,
      lookup_ms: looked - started,
      create_ms: Date.now() - looked,
    });
  }

  /** Keeps the lease granted with a Create here for the new volume's first Mount (CREATE_LEASE_KEEP_MS). */
  private keepCreateLease(name: string, d: DatasetConfiguration): void {
    this.echoed.set(d.dataset_id, true);
    this.leasedSize.set(d.dataset_id, d.maximum_size ?? null);
    const keepMs = Math.min(this.opts.idleLeaseMs ?? 0, this.opts.createLeaseKeepMs ?? CREATE_LEASE_KEEP_MS);
    this.keepUntil(name, d.dataset_id, this.now() + keepMs, 0);
  }

  /**
   * A Create of a volume that exists: a lease of this plugin's on it that nothing here explains (no container, not
   * kept) is the one a Create of ours was granted when its answer was lost (review s28 F3: held by no one, a later
   * `docker volume rm` was refused "in use" until the Docker reconcile). Kept as a create's lease: the Mount that
   * follows takes it over, else it goes after the keep.
   */
  private adoptCreateLease(name: string, d: DatasetConfiguration): void {
    if ((this.opts.idleLeaseMs ?? 0) <= 0 || this.idle.has(d.dataset_id) || this.registry.count(d.dataset_id) > 0)
      return;
    const lease = this.watcher.current()?.leases.find((l) => l.dataset_id === d.dataset_id && l.node_uuid === this.me);
    if (lease?.release_on_request !== true || lease.expires !== null || !(lease.holders ?? []).includes(LEASE_HOLDER))
      return;
    this.keepCreateLease(name, d);
    this.logger.info("kept the lease of a volume created again: its create's answer was lost", {
      volume: name,
      dataset_id: d.dataset_id,
    });
  }

  /**
   * What a new volume is cloned from: `from-snapshot` (a live snapshot, by name or id), or
   * `clone-of` (a volume as it is now: the control service asks its primary for an implicit
   * snapshot, frozen for the instant, in the same request that makes the clone). The clone
   * keeps the source's file system; its size defaults to the source's.
   */
  private async cloneSource(
    name: string,
    options: CreateOptions,
  ): Promise<
    { source: { source_snapshot_id: string } | { source_dataset_id: string }; filesystem?: string } | undefined
  > {
    if (options.fromSnapshot === undefined && options.cloneOf === undefined) return undefined;
    const s = await this.watcher.refresh();
    if (options.fromSnapshot !== undefined) {
      const ref = options.fromSnapshot;
      const live = (s.snapshots ?? []).filter((x) => x.deleted !== true);
      const snap =
        live.find((x) => x.snapshot_id === ref.toLowerCase()) ??
        live.find((x) => x.metadata[METADATA_NAME_KEY] === ref);
      if (snap === undefined)
        throw new VolumePluginError(
          'NO_SUCH_SNAPSHOT',
          `no snapshot named or with id "${ref}" to create ${name} from.`,
        );
      const fs = s.datasets.find((d) => d.dataset_id === snap.dataset_id)?.metadata[METADATA_FILESYSTEM_KEY];
      return { source: { source_snapshot_id: snap.snapshot_id }, ...(fs !== undefined ? { filesystem: fs } : {}) };
    }
    const source = this.find(s, options.cloneOf ?? '');
    if (source === undefined)
      throw new VolumePluginError('NO_SUCH_VOLUME', `no volume ${String(options.cloneOf)} to clone ${name} from.`);
    const fs = source.metadata[METADATA_FILESYSTEM_KEY];
    return { source: { source_dataset_id: source.dataset_id }, ...(fs !== undefined ? { filesystem: fs } : {}) };
  }

  /**
   * `docker volume create -o snapshot-schedule=… [-o snapshot-keep=…]` of an existing volume
   * changes its schedule (a metadata update; a keep not given is left as it is).
   */
  private async honourRepeatedSchedule(name: string, d: DatasetConfiguration, options: CreateOptions): Promise<void> {
    if (options.schedule === undefined) return;
    const changed = Object.entries(options.schedule).filter(([k, v]) => d.metadata[k] !== v);
    if (changed.length === 0) return;
    await this.client.updateDataset(d.dataset_id, { metadata: Object.fromEntries(changed) });
    this.logger.info('changed the snapshot schedule of volume', {
      volume: name,
      dataset_id: d.dataset_id,
      schedule: options.schedule,
    });
  }

  /** `docker volume create -o replicas=N` of an existing volume sets its standby replica count (a metadata update). */
  private async honourRepeatedReplicas(name: string, d: DatasetConfiguration, options: CreateOptions): Promise<void> {
    const changed = Object.entries(options.replicas ?? {}).filter(([k, v]) => d.metadata[k] !== v);
    if (changed.length === 0) return;
    await this.client.updateDataset(d.dataset_id, { metadata: Object.fromEntries(changed) });
    this.logger.info('changed the standby replicas of volume', {
      volume: name,
      dataset_id: d.dataset_id,
      replicas: options.replicas,
    });
  }

  /**
   * `docker volume create` of an existing volume: a larger `size` grows it (online where the
   * file system can grow mounted), a smaller one or another file system is an error, rather
   * than options silently ignored.
   */
  private async honourRepeatedCreate(name: string, d: DatasetConfiguration, options: CreateOptions): Promise<void> {
    const fs = datasetFilesystem(d.metadata) ?? d.metadata[METADATA_FILESYSTEM_KEY];
    if (options.filesystem !== undefined && options.filesystem !== fs) {
      throw new VolumePluginError(
        'VOLUME_EXISTS',
        `volume ${name} exists with file system ${String(fs)}; it cannot become ${options.filesystem}.`,
      );
    }
    await this.honourRepeatedSchedule(name, d, options);
    await this.honourRepeatedReplicas(name, d, options);
    const current = d.maximum_size ?? 0;
    if (!options.sizeGiven || options.size === current) return;
    if (current > 0 && options.size < current) {
      throw new VolumePluginError(
        'INVALID_SIZE',
        `volume ${name} is ${formatSize(current)}; volumes do not shrink (asked for ${formatSize(options.size)}).`,
      );
    }
    await this.client.updateDataset(d.dataset_id, { maximum_size: options.size });
    this.logger.info('growing volume', { volume: name, dataset_id: d.dataset_id, from: current, to: options.size });
    await this.watcher.refresh();
  }

  /**
   * Creates the dataset of a new volume under its name-based id (volumeDatasetId);
   * undefined if a volume of that name was made meanwhile (by another host, or by an API
   * user under a random id). When the id is taken by something else (a deleted volume of
   * the same name), the volume gets a random id instead. Both creates ask the control
   * service for a name no live dataset has (unique_name): its check and its create are one
   * change, so a create of the name landing between our lookup and our POST is found, not
   * doubled (a 409 either way: the id or the name taken).
   */
  private async createNamed(
    name: string,
    req: Omit<CreateDatasetRequest, 'dataset_id'>,
  ): Promise<{ created: DatasetConfiguration; leased: boolean } | undefined> {
    const unique = { ...req, unique_name: true };
    try {
      return await this.createAsking({ ...unique, dataset_id: volumeDatasetId(name) });
    } catch (err) {
      if (!(err instanceof FlockerApiError) || err.status !== 409) throw err;
    }
    if (await this.lookup(name)) return undefined;
    try {
      return await this.createAsking(unique);
    } catch (err) {
      if (!(err instanceof FlockerApiError) || err.code !== 'DATASET_NAME_IN_USE') throw err;
      if (await this.lookup(name)) return undefined;
      throw err;
    }
  }

  /**
   * The create, asking for this plugin's lease on the new dataset in it when idle leases are on (issue 23: one commit
   * where the create and the first Mount's lease POST took two); whether it was granted. A control service of an older
   * release refuses the member (400 naming it, nothing done): created without it, as before, and so for
   * CREATE_LEASE_RETRY_MS. Refused NODE_DEAD (this node held dead: no lease for it until its agent reports again, as a
   * lease POST): created without it; the Mount asks for the lease as before.
   */
  private async createAsking(req: CreateDatasetRequest): Promise<{ created: DatasetConfiguration; leased: boolean }> {
    if ((this.opts.idleLeaseMs ?? 0) > 0 && !this.refusedKeys.lately('lease')) {
      try {
        return { created: await this.client.createDataset({ ...req, lease: CREATE_LEASE }), leased: true };
      } catch (err) {
        if (refusedUnknownKey(err, 'lease')) {
          this.refusedKeys.note('lease');
          this.logger.warn(
            "the control service does not know a create's lease (an older release): a new volume's first Mount takes its lease",
            { code: 'CREATE_LEASE_UNKNOWN', error: errorMessage(err) },
          );
        } else if (err instanceof FlockerApiError && err.code === 'NODE_DEAD') {
          this.logger.info('this node is held dead: created the volume without its lease', {
            dataset_id: req.dataset_id,
            error: errorMessage(err),
          });
        } else throw err;
      }
    }
    return { created: await this.client.createDataset(req), leased: false };
  }

  async list(): Promise<ListResponse> {
    const cached = this.watcher.current();
    // A volume Create made that the snapshot does not show yet is listed all the same.
    const s =
      cached === undefined || [...this.createdHere].some((n) => this.find(cached, n) === undefined)
        ? await this.fresh()
        : cached;
    const volumes: VolumeInfo[] = [];
    const seen = new Set<string>();
    for (const d of s.datasets) {
      const name = d.metadata[METADATA_NAME_KEY];
      if (d.deleted || this.removed.has(d.dataset_id) || name === undefined || seen.has(name)) continue;
      seen.add(name);
      const mountpoint = mountedPath(s, this.me, d.dataset_id);
      volumes.push(mountpoint ? { Name: name, Mountpoint: mountpoint } : { Name: name });
    }
    return { Volumes: volumes };
  }

  async get(req: NameRequest): Promise<GetResponse> {
    const d = await this.lookupFollowed(req.Name);
    if (!d) throw new VolumePluginError('NO_SUCH_VOLUME', `no such volume: ${req.Name}`);
    const s = await this.watcher.latest();
    // During a local move, where the data is now (the source) and where it goes, as the CLI's `volumes list/show`
    // say (one rule, @flocker/api localMoveOf): naming the target as node read as if the volume were already there.
    const move = localMoveOf(s, d);
    const real = realSize(d.maximum_size, deviceSize(s, d));
    const status: Record<string, string | number | boolean | null> = {
      dataset_id: d.dataset_id,
      // The size it really has (its node may round the size asked for up: 67108865 B is a 65 MiB device), as the CLI
      // and web UI show it (one rule: realSize); 'default' while neither is known.
      size: real ? formatSize(real) : 'default',
      node: move !== undefined ? move.from.host : hostOf(s, d.primary),
      node_uuid: move !== undefined ? move.from.uuid : d.primary,
      state: volumeState(s, d),
      ...(move !== undefined
        ? {
            moving_to: hostOf(s, move.to),
            moving_to_uuid: move.to,
            ...(move.whenReleased ? { when_released: true } : {}),
          }
        : {}),
    };
    const profile = d.metadata[METADATA_PROFILE_KEY];
    if (profile) status.profile = profile;
    const schedule = datasetSnapshotSchedule(d.metadata, 0);
    if (schedule) status.snapshot_schedule = `${schedule.text}, keep ${schedule.keep}`;
    const lease = leaseOf(s, d.dataset_id);
    if (lease) {
      // A lease its holder lets go of on request is in use only where a container uses it: here, the registry says;
      // elsewhere, not known (the other host's plugin hands it over unless one does).
      const host = hostOf(s, lease.node_uuid);
      if (!releasesOnRequest(lease) || (lease.node_uuid === this.me && this.registry.count(d.dataset_id) > 0))
        status.in_use_on = host;
      else if (lease.node_uuid === this.me) status.leased_to = `${host} (idle: handed over on request)`;
      else status.leased_to = `${host} (handed over on request unless a container there uses it)`;
    }
    const mountpoint = mountedPath(s, this.me, d.dataset_id);
    const createdAt = d.metadata[CREATED_AT_KEY];
    return {
      Volume: {
        Name: req.Name,
        ...(mountpoint ? { Mountpoint: mountpoint } : {}),
        ...(createdAt ? { CreatedAt: createdAt } : {}),
        Status: status,
      },
    };
  }

  async path(req: NameRequest): Promise<PathResponse> {
    const d = await this.require(req.Name);
    const mountpoint = mountedPath(await this.watcher.latest(), this.me, d.dataset_id);
    return mountpoint ? { Mountpoint: mountpoint } : {};
  }

  mount(req: MountRequest): Promise<MountResponse> {
    return this.serialised(req.Name, () => this.doMount(req));
  }

  /**
   * Docker gets its answer once the mount ID is forgotten (on disk); releasing the lease
   * follows in the volume's queue, off Docker's critical path. A later call on the same
   * volume waits for it, and a crash in between is finished by `reconcile`.
   */
  unmount(req: MountRequest): Promise<void> {
    // When Docker asked, not when the call's turn in the volume's queue and its registry write are done: on a
    // loaded host those stretched a copy-up Unmount past COPY_UP_MAX_MS, and the lease was released and taken
    // again (two round trips, one on `docker run`'s path): 2 of 45 copy-up cycles at a load of 10-16 on 2 cores
    // (issue 23).
    const arrived = this.now();
    return new Promise<void>((resolve, reject) => {
      this.serialised(req.Name, async () => {
        let release: string | undefined;
        try {
          release = await this.doUnmount(req);
        } catch (err) {
          reject(err);
          return;
        }
        resolve();
        if (!release) return;
        await this.afterLastUnmount(req.Name, release, this.isCopyUpUnmount(req.Name, arrived));
      }).catch((err: unknown) =>
        this.logger.error('lease release failed', { volume: req.Name, error: errorMessage(err) }),
      );
    });
  }

  /**
   * Whether the Unmount that let the volume go here, arrived at `at`, is Docker's copy-up one:
   * it came within COPY_UP_MAX_MS after the Mount that made the volume used here answered.
   */
  private isCopyUpUnmount(name: string, at: number): boolean {
    const mounted = this.firstMountAt.get(name);
    this.firstMountAt.delete(name);
    return mounted !== undefined && at >= mounted && at - mounted <= (this.opts.copyUpMaxMs ?? COPY_UP_MAX_MS);
  }

  /**
   * In the volume's queue, after the last Unmount: keep the lease a moment for Docker's copy-up cycle (its next Mount,
   * starting the container, then costs no release and re-acquire), or idle (idleLeaseMs) when the control service
   * asks for it when needed (it echoed release_on_request); else release it now. A kept lease is looked at at once
   * (a request may be waiting already), then on every snapshot and when its time is up (settleKept).
   */
  private async afterLastUnmount(name: string, datasetId: string, copyUp: boolean): Promise<void> {
    // Idle only when the control service will ask for it and this plugin will see that: the grant echoed the promise
    // and the followed views show it (they leave it out when this node counts as behind: review R1 F1).
    const followed = this.watcher.followed();
    const keepMs = keepAfterLastUnmountMs({
      idleLeaseMs: this.opts.idleLeaseMs ?? 0,
      echoed:
        this.echoed.get(datasetId) === true && followed !== undefined && promisedInView(followed, this.me, datasetId),
      copyUp,
      copyUpGraceMs: this.opts.createCycleGraceMs ?? CREATE_CYCLE_GRACE_MS,
    });
    if (keepMs <= 0) return this.releaseUnused(datasetId);
    const now = this.now();
    const graceMs = this.opts.createCycleGraceMs ?? CREATE_CYCLE_GRACE_MS;
    this.keepUntil(name, datasetId, now + keepMs, copyUp ? now + Math.min(graceMs, keepMs) : 0);
    // Docker's copy-up Unmount comes within milliseconds of each new container: only a container's exit says so.
    this.logger.log(copyUp ? 'debug' : 'info', 'keeping the lease of a volume no container here uses', {
      volume: name,
      dataset_id: datasetId,
      until: new Date(this.now() + keepMs).toISOString(),
    });
    await this.settleKept(datasetId);
  }

  /**
   * (Re)arms the kept lease's timer for `until` (and for the copy-up grace's end, `copyUpUntil`, when still ahead):
   * settleKept then decides in the volume's queue.
   */
  private keepUntil(name: string, datasetId: string, until: number, copyUpUntil: number): void {
    const had = this.idle.get(datasetId);
    if (had !== undefined) clearTimeout(had.timer);
    const now = this.now();
    const next = copyUpUntil > now ? Math.min(copyUpUntil, until) : until;
    const timer = setTimeout(() => this.queueSettleKept(name, datasetId), Math.max(0, next - now));
    timer.unref();
    this.idle.set(datasetId, { name, until, copyUpUntil, timer });
  }

  /**
   * A Mount of a volume whose lease is kept: stops keeping it, and whether the Mount may rely on it (no POST). A
   * copy-up keep (within its grace) is relied on unless the snapshot shows the lease another node's or the volume not here (the push of
   * the grant it follows may not have come yet); an idle one, taken long before, only while the followed snapshot
   * shows it ours: cut from the control service, the last snapshot says nothing of a lease released since (an
   * administrator's --force, the dead-node rule) and taken by another node, so the Mount POSTs (review R1 F2).
   */
  private takeOverKept(datasetId: string): boolean {
    const kept = this.idle.get(datasetId);
    if (!this.forgetKept(datasetId) || kept === undefined) return false;
    const inGrace = kept.copyUpUntil > this.now();
    const s = inGrace ? this.watcher.current() : this.watcher.followed();
    if (s === undefined) return inGrace;
    const f = snapshotFacts(s, this.me, datasetId);
    if (f.dataset !== 'here' || f.lease === 'other') return false;
    return f.lease === 'ours' || inGrace;
  }

  /**
   * Whether `s` shows the dataset's maximum_size other than when this plugin took its lease, or its node a grow
   * pending (TN F3). Not during Docker's copy-up grace: the container-start Mount follows at once, and a grow waits for
   * that container anyway.
   */
  private resizedSinceLeased(s: ClusterSnapshot | undefined, datasetId: string): boolean {
    if ((this.idle.get(datasetId)?.copyUpUntil ?? 0) > this.now()) return false;
    // Its node says a grow waits for no lease (TN F3): also when the lease was taken again after the resize (R1 F6).
    if (s !== undefined && growPendingHere(s, this.me, datasetId)) return true;
    if (s === undefined || !this.leasedSize.has(datasetId)) return false;
    const d = s.datasets.find((x) => x.dataset_id === datasetId);
    return d !== undefined && (d.maximum_size ?? null) !== this.leasedSize.get(datasetId);
  }

  /**
   * Whether `s` shows our lease of the dataset without release_on_request (KeptLeaseFacts.unheard). Not during Docker's
   * copy-up grace: that keep needs no request to be heard (it was kept so before session 21, and ends within a second).
   */
  private unheardKept(s: ClusterSnapshot | undefined, datasetId: string): boolean {
    if ((this.idle.get(datasetId)?.copyUpUntil ?? 0) > this.now()) return false;
    if (s === undefined) return false;
    return snapshotFacts(s, this.me, datasetId).lease === 'ours' && !promisedInView(s, this.me, datasetId);
  }

  /** Whether the dataset is one a Create here made that no snapshot has shown yet (madeHere). */
  private awaitingPush(datasetId: string): boolean {
    for (const d of this.madeHere.values()) if (d.dataset_id === datasetId) return true;
    return false;
  }

  /** Stops keeping the lease (a Mount takes it over, or it goes); whether it was kept. */
  private forgetKept(datasetId: string): boolean {
    const kept = this.idle.get(datasetId);
    if (kept === undefined) return false;
    clearTimeout(kept.timer);
    this.idle.delete(datasetId);
    return true;
  }

  /** Lets go of a kept lease now (in the volume's queue), unless a Mount took it over meanwhile. */
  private releaseKept(datasetId: string): void {
    const kept = this.idle.get(datasetId);
    if (kept === undefined) return;
    this.forgetKept(datasetId);
    this.serialised(kept.name, async () => {
      if (this.registry.count(datasetId) === 0) await this.releaseUnused(datasetId);
    }).catch((err: unknown) =>
      this.logger.error('lease release failed', { volume: kept.name, error: errorMessage(err) }),
    );
  }

  /**
   * A snapshot: queue a look (settleKept) at each kept lease it gives something to do (a request, its dataset
   * gone or moved), and at each lease of a volume in use here that someone asked for (to decline at once).
   */
  private reviewKept(s: ClusterSnapshot): void {
    const now = this.now();
    for (const [datasetId, kept] of this.idle) {
      const facts = snapshotFacts(s, this.me, datasetId);
      if (facts.dataset === 'unknown' && this.awaitingPush(datasetId)) continue;
      const step = keptLeaseStep({
        ...facts,
        resized: this.resizedSinceLeased(s, datasetId),
        unheard: this.unheardKept(s, datasetId),
        inUse: this.registry.count(datasetId) > 0,
        idleUntil: kept.until,
        declinedAt: this.declined.get(datasetId),
        now,
      });
      if (step.do === 'release' || step.do === 'decline') this.queueSettleKept(kept.name, datasetId);
    }
    if (this.registry.entries().length === 0) return;
    for (const lease of s.leases) {
      if (lease.node_uuid !== this.me) continue;
      const request = releaseRequestOf(lease);
      if (request === undefined) {
        this.declined.delete(lease.dataset_id);
        continue;
      }
      if (this.declined.get(lease.dataset_id) === request.at || this.idle.has(lease.dataset_id)) continue;
      const entry = this.registry.entries().find((e) => e.datasetId === lease.dataset_id && e.ids.length > 0);
      if (entry !== undefined) this.declineNow(entry.name, lease.dataset_id, request);
    }
  }

  /**
   * Declines at once, outside the volume's queue, a request for a lease a container here uses (or a Mount in flight
   * is taking: its container is about to): a decline lets nothing go, so it needs no order against the queue's Mounts
   * and Unmounts, and the requester hears now rather than after a slow Mount (a move here) or its own wait.
   */
  private declineNow(name: string, datasetId: string, request: ReleaseRequest): void {
    const key = declineKey(datasetId, request);
    if (this.declining.has(key)) return;
    this.declining.add(key);
    this.decline(name, datasetId, request)
      .catch((err: unknown) =>
        this.logger.error('cannot decline a lease request', { volume: name, error: errorMessage(err) }),
      )
      .finally(() => this.declining.delete(key));
  }

  private queueSettleKept(name: string, datasetId: string): void {
    if (this.reviewing.has(datasetId)) return;
    this.reviewing.add(datasetId);
    this.serialised(name, () => this.settleKept(datasetId))
      .catch((err: unknown) =>
        this.logger.error('cannot settle a kept lease', {
          volume: name,
          dataset_id: datasetId,
          error: errorMessage(err),
        }),
      )
      .finally(() => this.reviewing.delete(datasetId));
  }

  /**
   * In the volume's queue: what to do with this node's lease of the dataset now (keptLeaseStep), and do it. A failed
   * release leaves the entry without IDs and not kept: the Docker reconcile (or the next start) releases it.
   */
  private async settleKept(datasetId: string): Promise<void> {
    const kept = this.idle.get(datasetId);
    const s = this.watcher.current();
    const facts = s !== undefined ? snapshotFacts(s, this.me, datasetId) : undefined;
    const step: KeptLeaseStep = keptLeaseStep({
      resized: this.resizedSinceLeased(s, datasetId),
      unheard: this.unheardKept(s, datasetId),
      lease: facts?.lease ?? 'none',
      requested: facts?.requested,
      dataset: facts?.dataset ?? 'here',
      inUse: this.registry.count(datasetId) > 0,
      idleUntil: kept?.until,
      declinedAt: this.declined.get(datasetId),
      now: this.now(),
    });
    const name = kept?.name ?? this.registry.entries().find((e) => e.datasetId === datasetId)?.name ?? datasetId;
    // A lease granted with this plugin's Create, its dataset not in a snapshot yet (the push is on its way): not gone.
    if (facts?.dataset === 'unknown' && this.awaitingPush(datasetId) && kept !== undefined && this.now() < kept.until)
      return;
    if (step.do === 'nothing') return;
    if (step.do === 'keep') {
      // Re-armed even for the same time: a timer that fired early (another clock) would otherwise leave it kept for good.
      if (kept !== undefined) this.keepUntil(kept.name, datasetId, step.until, kept.copyUpUntil);
      return;
    }
    // A decline already on its way (declineNow, outside the queue) answers the same request: not sent twice.
    if (step.do === 'decline')
      return this.declining.has(declineKey(datasetId, step.request))
        ? undefined
        : this.decline(name, datasetId, step.request);
    this.forgetKept(datasetId);
    this.logger.info(
      step.why === 'requested'
        ? 'letting go of the lease of an idle volume: asked for by the control service'
        : 'letting go of the lease of an idle volume',
      {
        volume: name,
        dataset_id: datasetId,
        why: step.why,
        ...(facts?.requested !== undefined ? { requested_by: facts.requested.by } : {}),
      },
    );
    const remains = await this.letGo(datasetId);
    await this.registry.dropIfUnused(datasetId);
    this.forgetLeased(datasetId);
    // Another holder here (a pod through CSI) keeps the lease: the requester is told at once, not after its wait.
    if (remains && facts?.requested !== undefined) await this.decline(name, datasetId, facts.requested);
  }

  /** Tells the control service this node keeps the lease (a container here uses the volume): its requester hears at once. */
  private async decline(name: string, datasetId: string, request: ReleaseRequest): Promise<void> {
    if (this.client.declineReleaseRequest === undefined) return;
    try {
      // Only this request: a decline repeated or late (its container exited, another node asked since) must not
      // clear a newer one, whose requester would hear "a container uses it" of an idle volume (review R1 F5).
      await this.client.declineReleaseRequest(datasetId, { request: { by: request.by, at: request.at } });
    } catch (err) {
      if (apiStatus(err) !== 404) {
        this.logger.warn('cannot decline a request for the lease of a volume in use here; the requester waits it out', {
          volume: name,
          dataset_id: datasetId,
          error: errorMessage(err),
        });
        return;
      }
    }
    this.declined.set(datasetId, request.at);
    this.logger.info('declined a request for the lease of a volume in use here', {
      volume: name,
      dataset_id: datasetId,
      requested_by: request.by,
      requested_at: request.at,
    });
  }

  private async releaseUnused(datasetId: string): Promise<void> {
    this.forgetKept(datasetId);
    await this.letGo(datasetId);
    await this.registry.dropIfUnused(datasetId);
    this.forgetLeased(datasetId);
  }

  /** What this plugin remembered of a lease it no longer holds. */
  private forgetLeased(datasetId: string): void {
    this.echoed.delete(datasetId);
    this.declined.delete(datasetId);
    this.leasedSize.delete(datasetId);
  }

  remove(req: NameRequest): Promise<void> {
    return this.serialised(req.Name, () => this.doRemove(req));
  }

  // ---- behaviour -----------------------------------------------------------

  private async doMount(req: MountRequest): Promise<MountResponse> {
    const deadline = this.now() + this.opts.mountTimeoutMs;
    const d = await this.require(req.Name);
    const s = this.watcher.current() ?? (await this.watcher.refresh());
    // Only while this node is still the primary, and the kernel agrees: a local move when_released (issue 24) changes
    // the primary under this node's lease, and the agent then unmounts the host's mount at once (its containers keep
    // theirs); an answer from a report before that unmount would hand Docker an empty directory. Otherwise the
    // Mount goes the usual way (moving the volume back here cancels the move before its promote).
    const already = mountedUnderLease(s, this.me, d.dataset_id);
    if (already && this.registry.count(d.dataset_id) > 0 && !this.kernelShowsUnmounted(d.dataset_id)) {
      // Another container here already uses it (so we hold the lease): just count this one.
      await this.registry.add(d.dataset_id, req.Name, req.ID);
      return { Mountpoint: already };
    }
    const started = Date.now();
    // Recorded as begun before its lease or move (review T5 F9): killed before its answer, the plugin's next start
    // undoes what it did (reconcile), where a lease taken with no entry explaining it stayed held for good. Before the
    // deferred release is cancelled: should this write fail (a full disk), that release still runs.
    const recorded = await this.registry.addPending(d.dataset_id, req.Name, req.ID);
    return this.mountRecorded(req, d, deadline, started, recorded);
  }

  /** doMount once the Mount is recorded as begun; `recorded`: its ID is this Mount's (forgotten should it fail). */
  private async mountRecorded(
    req: MountRequest,
    d: DatasetConfiguration,
    deadline: number,
    started: number,
    recorded: boolean,
  ): Promise<MountResponse> {
    // A lease kept since the last Unmount (copy-up or idle) answers from memory: no POST (waitMounted still wants a
    // snapshot showing it ours and the volume mounted here). Unless the snapshot shows it gone elsewhere or the
    // volume moved (an administrator's release, a move when_released): then it is asked for as usual.
    const kept = this.takeOverKept(d.dataset_id);
    // Mounted here in the followed snapshot (an existing volume): the lease is asked for on that snapshot's
    // configuration, and granted the Mount answers at once, not after the push of its own lease (a wait on
    // `docker run`'s critical path). Refused because the configuration changed since, it is asked for again
    // without condition and the Mount waits as below.
    const followed = this.watcher.followed();
    const basis =
      !kept && d.primary === this.me && followed !== undefined
        ? mountedForConditionalLease(followed, this.me, d.dataset_id)
        : undefined;
    // A new volume made here, not reported anywhere yet, its mount path watched in the kernel since before the agent
    // could mount it: the lease is asked for on the followed configuration too, and granted, the Mount answers at the
    // first mount the kernel shows there (the agent's, of this dataset: ids are never reused) or at the snapshot
    // showing it mounted, whichever comes first: the report and its push are off the path.
    // So too with the lease this plugin's Create was granted and kept (no POST), once it is proven ours at a time after
    // this Mount began, as a grant would (keptLeaseProof, read beside the agent's mount; review s28 F4: the followed
    // snapshot alone may lag a release); the tracker still fresh says no Mount of it came since.
    const first = this.firstMounts.get(d.dataset_id)?.tracker;
    const firstMount =
      basis === undefined &&
      d.primary === this.me &&
      followed !== undefined &&
      first?.fresh() === true &&
      newHereForConditionalLease(followed, this.me, d.dataset_id)
        ? first
        : undefined;
    // Already this node's: its agent mounts it whatever the lease (which only keeps it from moving
    // away), so the wait for that runs while the lease is taken, not after. Should the lease be
    // refused, the wait ends by itself (mounted, or at the deadline).
    // Given up when the kernel's first mount answers (the snapshot may never show it under the lease: the volume
    // can be let go and removed first), so no waiter and timer outlive the Mount.
    const snapshotWait = new AbortController();
    const mounting =
      d.primary === this.me && (!kept || firstMount !== undefined) && basis === undefined
        ? this.waitMounted(req.Name, d.dataset_id, deadline, snapshotWait.signal)
        : undefined;
    mounting?.catch(() => undefined);
    // Another node's: the primary change goes out in the lease's own request (move_here: one request and one
    // commit, lease and move together), or, with a lease kept here, on its own. The control service moves no
    // dataset another node holds a lease on, so a volume in use elsewhere never moves.
    const movesHere = d.primary !== this.me;
    let moving: Promise<boolean> | undefined;
    if (movesHere) {
      this.logger.info('moving volume to this node', { volume: req.Name, dataset_id: d.dataset_id, from: d.primary });
      if (kept) {
        moving = this.moveHere(d.dataset_id);
        moving.catch(() => undefined);
      }
    }
    let proven = false;
    try {
      // A refused or failed request may still have taken the lease (its answer lost): the failure path lets it go.
      if (!kept)
        proven = await this.takeLease(
          d,
          req.Name,
          deadline,
          (basis !== undefined || firstMount !== undefined) && followed !== undefined
            ? followed.configuration_tag
            : undefined,
          movesHere,
        );
      const leased = Date.now();
      if (!kept) this.leasedSize.set(d.dataset_id, d.maximum_size ?? null);
      if (moving !== undefined && !(await moving)) await this.client.updateDataset(d.dataset_id, { primary: this.me });
      let seenBy: 'kernel' | 'snapshot' | undefined;
      let mountpoint: string;
      // The followed snapshot may show this node's report from before its agent unmounted the volume for a move
      // away (and the volume was moved back since): the kernel's table, where it can tell, has the last word.
      if (proven && basis !== undefined && !this.kernelShowsUnmounted(d.dataset_id))
        mountpoint = this.mountedAtGrant(basis);
      else if ((proven || kept) && firstMount !== undefined && mounting !== undefined) {
        const first = await this.firstMountOrSnapshot(
          firstMount,
          mounting,
          snapshotWait,
          proven ? undefined : (signal) => this.keptLeaseProof(d.dataset_id, deadline, signal),
        );
        mountpoint = first.path;
        seenBy = first.by;
      } else mountpoint = await this.mountedKeepingLease(req.Name, d, deadline, mounting);
      const mounted = Date.now();
      this.untrackFirstMount(d.dataset_id);
      await this.registry.add(d.dataset_id, req.Name, req.ID);
      this.firstMountAt.set(req.Name, this.now());
      this.logger.debug('mount timing', {
        volume: req.Name,
        lease: kept
          ? firstMount !== undefined
            ? 'kept from the create'
            : 'kept'
          : proven
            ? 'acquired on the followed configuration'
            : 'acquired',
        ...(seenBy !== undefined ? { first_mount_seen_by: seenBy } : {}),
        lease_ms: leased - started,
        wait_ms: mounted - leased,
        persist_ms: Date.now() - mounted,
      });
      return { Mountpoint: mountpoint };
    } catch (err) {
      // No wait of this Mount outlives it (a refused lease used to leave the mount's wait running to the deadline).
      snapshotWait.abort();
      await moving?.catch(() => undefined);
      this.untrackFirstMount(d.dataset_id);
      // Docker does not call Unmount after a failed Mount: forget its ID and let the volume go again.
      if (recorded)
        await this.registry.remove(d.dataset_id, req.ID).catch((e: unknown) =>
          this.logger.error('cannot forget the mount ID of a failed Mount; the Docker reconcile lets it go', {
            volume: req.Name,
            id: req.ID,
            error: errorMessage(e),
          }),
        );
      let released = false;
      if (this.registry.count(d.dataset_id) === 0)
        released = await this.releaseUnused(d.dataset_id).then(
          () => true,
          () => false,
        );
      // This Mount's move, refused until the user acts: the volume goes back where its data still is, not left
      // "moving" to a host whose user never got it. Not after a timeout: the move may only be slow (a takeover from
      // a dead node), and putting it back would undo it.
      const movedBack =
        movesHere && released && err instanceof MountRefusedError
          ? await this.putBack(req.Name, d.dataset_id, d.primary)
          : false;
      if (err instanceof MountRefusedError) {
        const pending = err.snapshot.datasets.some((x) => x.dataset_id === d.dataset_id && x.primary === this.me);
        const move = movedBack ? 'takenBack' : pending ? 'pending' : 'none';
        throw new VolumePluginError(
          'MOUNT_REFUSED',
          refusalMessage(err.snapshot, this.me, req.Name, d.dataset_id, err.refusal, move, this.now()),
        );
      }
      throw err;
    }
  }

  /**
   * Makes `from` the primary again after a Mount here gave up on the move it started, if the data never left it
   * (mayPutBack) and nothing changed the configuration between the look and the write (conditional on its tag; a
   * change meanwhile: looked at again, a few times). Whether it did; never throws (the Mount's own error goes on).
   */
  private async putBack(name: string, datasetId: string, from: string): Promise<boolean> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const s = await this.watcher.refresh();
        if (!mayPutBack(s, this.me, datasetId, from)) return false;
        await this.client.updateDataset(datasetId, { primary: from }, { ifConfigurationMatches: s.configuration_tag });
        this.logger.info('gave up moving the volume here: put it back where its data is', {
          volume: name,
          dataset_id: datasetId,
          primary: from,
        });
        return true;
      } catch (err) {
        if (apiStatus(err) === 412) continue;
        // 403: a control service before the put-back rule (its authorization let a node move datasets only to itself).
        this.logger.warn('cannot put the volume back where its data is', {
          volume: name,
          dataset_id: datasetId,
          error: errorMessage(err),
        });
        return false;
      }
    }
    return false;
  }

  /** Makes this node the dataset's primary; false if refused while another node's lease is on it (409). */
  private async moveHere(datasetId: string): Promise<boolean> {
    try {
      await this.client.updateDataset(datasetId, { primary: this.me });
      return true;
    } catch (err) {
      if (apiStatus(err) === 409) return false;
      throw err;
    }
  }

  /**
   * The first of: the kernel shows the new dataset's first mount (answered as the path the agent reports it
   * at, its mount root and the id), or the snapshot shows it mounted under the lease.
   */
  private async firstMountOrSnapshot(
    tracker: MountTracker,
    snapshot: Promise<string>,
    snapshotWait: AbortController,
    /** What the kernel's mount also needs to answer (a kept lease's proof); false: the snapshot decides. */
    proof?: (signal: AbortSignal) => Promise<boolean>,
  ): Promise<{ path: string; by: 'kernel' | 'snapshot' }> {
    const root = this.opts.mountTable?.hostMountRoot;
    if (root === undefined) return { path: await snapshot, by: 'snapshot' };
    const waited = process.hrtime.bigint();
    // Started now, beside the agent's mount: off the path unless it is slower than that mount.
    const proving = new AbortController();
    const proven = proof?.(proving.signal);
    const kernel = tracker.mounted().then(async () => {
      if (proven !== undefined && !(await proven)) return new Promise<never>(() => undefined);
      return { path: `${root.replace(/\/+$/, '')}/${tracker.datasetId}`, by: 'kernel' as const };
    });
    // The tracker goes in doMount, after this answers or throws.
    const first = await Promise.race([kernel, snapshot.then((path) => ({ path, by: 'snapshot' as const }))]).finally(
      () => proving.abort(),
    );
    if (first.by === 'kernel') {
      snapshotWait.abort();
      pluginMetrics(processRegistry('docker-plugin')).mountWaitSeconds.observe({ result: 'ok' }, secondsSince(waited));
    }
    return first;
  }

  /**
   * Whether the create's kept lease is this node's at a time after this Mount began (review s28 F4), as a grant would
   * prove: the configuration's tag read now (one small GET, no commit), then a followed snapshot at least that new
   * showing the lease ours. The followed snapshot alone may lag a release committed since the create (an API user's
   * `flocker leases release`, the dead-node sweep) whose push has not come. False (the snapshot wait decides) when the
   * client cannot read it, the read fails, or the lease is not ours then; a release after the read is the same window
   * as after a grant's.
   */
  private async keptLeaseProof(datasetId: string, deadline: number, signal: AbortSignal): Promise<boolean> {
    if (this.client.getDatasetTagged === undefined) return false;
    try {
      const at = configurationVersionOfTag((await this.client.getDatasetTagged(datasetId)).configurationTag);
      if (at === undefined || signal.aborted) return false;
      const s = await this.watcher.waitFor(
        (x) => ((configurationVersionOfTag(x.configuration_tag) ?? -1) >= at ? x : undefined),
        Math.max(0, deadline - this.now()),
        signal,
      );
      return snapshotFacts(s, this.me, datasetId).lease === 'ours';
    } catch {
      return false;
    }
  }

  /** Whether the kernel's table (when followed and able to tell) shows the dataset's mount path not mounted now. */
  private kernelShowsUnmounted(datasetId: string): boolean {
    return this.opts.mountTable?.table.isMounted(datasetId) === false;
  }

  /** A Mount answered from the lease's grant on the followed configuration: it waited for nothing. */
  private mountedAtGrant(path: string): string {
    pluginMetrics(processRegistry('docker-plugin')).mountWaitSeconds.observe({ result: 'ok' }, 0);
    return path;
  }

  /**
   * POST this plugin's share of the node's lease, with release_on_request when idle leases are on (it lets go of an
   * idle volume's lease when asked); records whether the grant echoed it (afterLastUnmount keeps nothing idle
   * otherwise). A control service of an older release refuses the field (400): the lease is asked for without it, and
   * so for RELEASE_ON_REQUEST_RETRY_MS. With idleLeaseMs 0 the lease is asked for as before session 21: a request for
   * it is refused at once, not after a decline.
   */
  private async acquire(datasetId: string, options: WriteOptions, moveHere: boolean): Promise<Lease> {
    const req = { dataset_id: datasetId, node_uuid: this.me, expires: null, holder: LEASE_HOLDER };
    if ((this.opts.idleLeaseMs ?? 0) > 0 && !this.refusedKeys.lately('release_on_request')) {
      try {
        const granted = await this.postLease({ ...req, release_on_request: true }, options, moveHere);
        this.echoed.set(datasetId, releasesOnRequest(granted));
        return granted;
      } catch (err) {
        if (!refusesReleaseOnRequest(err)) throw err;
        this.refusedKeys.note('release_on_request');
        this.logger.warn(
          'the control service does not know release_on_request (an older release): idle volumes release their lease at once',
          { code: 'RELEASE_ON_REQUEST_UNKNOWN', error: errorMessage(err) },
        );
      }
    }
    const granted = await this.postLease(req, options, moveHere);
    this.echoed.set(datasetId, false);
    return granted;
  }

  /**
   * The lease POST; with `moveHere`, the move to this node joins it (move_here: the control service leases and moves
   * in one write, all or nothing). A control service of an older release refuses the field (400, nothing done): the
   * move then goes beside the lease as before it (both wait for a hand-over; a move refused because the lease was not
   * ours yet is made again once it is), and so for MOVE_HERE_RETRY_MS.
   */
  private async postLease(req: CreateLeaseRequest, options: WriteOptions, moveHere: boolean): Promise<Lease> {
    if (!moveHere) return this.client.acquireLease(req, options);
    if (!this.refusedKeys.lately('move_here')) {
      try {
        return await this.client.acquireLease({ ...req, move_here: true }, options);
      } catch (err) {
        if (!refusedUnknownKey(err, 'move_here')) throw err;
        this.refusedKeys.note('move_here');
        this.logger.warn(
          'the control service does not know move_here (an older release): a volume moves here with a request of its own beside the lease',
          { code: 'MOVE_HERE_UNKNOWN', dataset_id: req.dataset_id, error: errorMessage(err) },
        );
      }
    }
    const moving = this.moveHere(req.dataset_id);
    moving.catch(() => undefined);
    const granted = await this.client.acquireLease(req, options);
    if (!(await moving)) await this.client.updateDataset(req.dataset_id, { primary: this.me });
    return granted;
  }

  /**
   * Take the lease for this node; the control service refuses while another node holds
   * it. A holder declared dead (lease not pinned) is waited out, up to the Mount's
   * deadline: the control service releases its leases after the lease grace, and the
   * wait follows the snapshot the watcher already follows. A live holder or a pinned
   * lease fails at once, unless the refusal carries a Retry-After (the holder has not reported since a control
   * service restart): asked again then, up to the deadline. With `onTag`, the first attempt asks for the lease only if the
   * configuration still has that tag; whether it was granted so (else it was asked for
   * again without condition: 412, the configuration changed).
   */
  private async takeLease(
    d: DatasetConfiguration,
    name: string,
    deadline: number,
    onTag: string | undefined,
    moveHere: boolean,
  ): Promise<boolean> {
    let waiting: string | undefined;
    let condition = onTag;
    let refusal: string | undefined;
    /** Whether a refusal with a Retry-After was logged: once per Mount (each text differs: it says the time waited). */
    let retrying = false;
    for (;;) {
      /** This refusal's Retry-After (ms), when it had one: asking again can work. */
      let retryAfterMs: number | undefined;
      try {
        await this.acquire(
          d.dataset_id,
          condition !== undefined ? { ifConfigurationMatches: condition } : {},
          moveHere,
        );
        if (waiting !== undefined)
          this.logger.info('took the lease the control service released from a dead host', {
            volume: name,
            dataset_id: d.dataset_id,
          });
        else if (retrying)
          this.logger.info('took the lease after asking again', { volume: name, dataset_id: d.dataset_id });
        return condition !== undefined;
      } catch (err) {
        const status = apiStatus(err);
        if (condition !== undefined && status === 412) {
          condition = undefined;
          continue;
        }
        // This node held dead (its agent unheard for T, as every node unheard since a control service restart is at
        // start + T): no lease until it reports again (session 27). Asked for again once the snapshot shows it alive,
        // within the Mount's deadline; a dead node's lease would be released at the control service's next sweep.
        if (status === 409 && err instanceof FlockerApiError && err.code === 'NODE_DEAD') {
          if (refusal !== err.description)
            this.logger.warn(
              'the control service holds this node dead: waiting for it to show alive to take the lease',
              {
                volume: name,
                dataset_id: d.dataset_id,
                detail: err.description,
              },
            );
          refusal = err.description;
          condition = undefined;
          // Past the deadline: no further ask (review s27 F6: the snapshot may show this node alive while the lease
          // route holds it dead, and the asks went on with no pause and no end).
          if (this.now() >= deadline)
            throw new VolumePluginError(
              'MOUNT_TIMEOUT',
              `${err.description} Gave up asking for the lease of volume ${name} after ${Math.round(this.opts.mountTimeoutMs / 1000)} s (the plugin's mount timeout).`,
            );
          await this.untilAlive(
            name,
            deadline,
            NODE_DEAD_RETRY_MS,
            'the control service declared this host dead and grants it no lease until its dataset agent reports again, which it has not.',
          );
          continue;
        }
        // With the move (move_here), a 409 not about the lease is the move's refusal (RESTORE_IN_PROGRESS): the Mount
        // fails with it, as when the move was a request of its own.
        if (status !== 409 || (moveHere && err instanceof FlockerApiError && err.code !== 'LEASE_HELD')) throw err;
        refusal = err instanceof FlockerApiError ? err.description : undefined;
        retryAfterMs = err instanceof FlockerApiError && err.code === 'LEASE_HELD' ? err.retryAfterMs : undefined;
      }
      condition = undefined;
      const verdict = leaseVerdict(await this.watcher.refresh(), d.dataset_id, this.me, name, refusal);
      if (verdict.kind === 'fail' && retryAfterMs !== undefined && refusal !== undefined) {
        // Refused with a Retry-After: the control service says asking again can work (review s28 G5: right after its
        // restart the holder has not reported yet, so its plugin cannot be asked to let go; its agent reports at its
        // next heartbeat). Asked again until the Mount's deadline, rather than failing the docker run at once.
        if (this.now() >= deadline)
          throw new VolumePluginError(
            'MOUNT_TIMEOUT',
            `volume ${name} is leased to another host: ${refusal} Gave up asking after ${Math.round(this.opts.mountTimeoutMs / 1000)} s (the plugin's mount timeout).`,
          );
        if (!retrying) {
          retrying = true;
          this.logger.warn('the control service asks to retry the lease later: asking again', {
            volume: name,
            dataset_id: d.dataset_id,
            detail: refusal,
            retry_after_ms: retryAfterMs,
          });
        }
        // At least 100 ms between asks whatever the header says (a 0 would spin).
        const pauseMs = Math.min(Math.max(100, retryAfterMs), Math.max(0, deadline - this.now()));
        await new Promise((r) => setTimeout(r, pauseMs));
        continue;
      }
      if (verdict.kind === 'fail') throw new VolumePluginError('VOLUME_IN_USE', verdict.message);
      const remaining = deadline - this.now();
      if (verdict.kind === 'free') {
        // Released (or taken and released elsewhere) between the refusal and the snapshot: try again.
        if (remaining <= 0)
          throw new VolumePluginError(
            'MOUNT_TIMEOUT',
            `Timed out taking the lease of volume ${name}: other hosts keep taking it.`,
          );
        await new Promise((r) => setTimeout(r, Math.min(200, remaining)));
        continue;
      }
      if (waiting !== verdict.message) {
        waiting = verdict.message;
        this.logger.warn('waiting for the control service to release the lease of a dead host', {
          volume: name,
          dataset_id: d.dataset_id,
          detail: verdict.message,
          release_at: verdict.releaseAt,
        });
      }
      const settled = (s: ClusterSnapshot) =>
        leaseVerdict(s, d.dataset_id, this.me, name).kind === 'wait' ? undefined : true;
      try {
        if (remaining <= 0) throw new WaitTimeoutError(undefined);
        await this.watcher.waitFor(settled, remaining);
      } catch (err) {
        if (!(err instanceof WaitTimeoutError)) throw err;
        throw new VolumePluginError(
          'MOUNT_TIMEOUT',
          `${verdict.message} Gave up waiting after ${Math.round(this.opts.mountTimeoutMs / 1000)} s (the plugin's mount timeout); retry after ${verdict.releaseAt}.`,
        );
      }
    }
  }

  /**
   * waitMounted (`first`: the wait already begun), taking this node's lease again whenever it is lost meanwhile
   * (LeaseLostError), up to the Mount's deadline. A node declared dead has its leases released after the grace; the
   * lease is asked for again once the snapshot shows this node alive (a lease granted to a node still dead is released
   * at the next sweep). Moved to another node meanwhile (a release and a move): the Mount fails (VOLUME_IN_USE), it
   * does not move it back; taken by another node: the Mount fails as takeLease says (VOLUME_IN_USE).
   */
  private async mountedKeepingLease(
    name: string,
    d: DatasetConfiguration,
    deadline: number,
    first: Promise<string> | undefined,
  ): Promise<string> {
    let waiting = first ?? this.waitMounted(name, d.dataset_id, deadline);
    for (;;) {
      try {
        return await waiting;
      } catch (err) {
        if (!(err instanceof LeaseLostError)) throw err;
      }
      this.logger.warn(
        'the lease of a volume this Mount took was released before the volume was mounted: taking it again',
        {
          volume: name,
          dataset_id: d.dataset_id,
        },
      );
      const alive = await this.untilAlive(
        name,
        deadline,
        0,
        'its lease was released (this host was declared dead) and the dataset agent on this host has not reported again.',
      );
      // Taken again only where the dataset still is: the lease's grant made this node the primary (with move_here),
      // and a lost lease moves nothing. A primary elsewhere now is somebody's move since (an administrator's release
      // and `flocker volumes move`): the Mount does not move it back (review S26B B6).
      const primary = alive.datasets.find((x) => x.dataset_id === d.dataset_id)?.primary;
      if (primary !== this.me)
        throw new VolumePluginError(
          'VOLUME_IN_USE',
          `Volume ${name} was moved to node ${primary ?? '(none: deleted)'} while this host waited for it to be mounted (its lease here was released): not moved back; run the container there, or move the volume here.`,
        );
      await this.takeLease(d, name, deadline, undefined, false);
      waiting = this.waitMounted(name, d.dataset_id, deadline);
    }
  }

  /**
   * The first snapshot showing this node alive, after `pauseMs` at least (a snapshot from before the control service
   * declared it dead may still show it alive), up to the Mount's deadline; else MOUNT_TIMEOUT saying `why` it waited.
   * The pause is cut only at the deadline, which the caller checks before it asks again (review s27 F6).
   */
  private async untilAlive(name: string, deadline: number, pauseMs: number, why: string): Promise<ClusterSnapshot> {
    const alive = (s: ClusterSnapshot) => (nodeOf(s, this.me)?.alive === true ? s : undefined);
    if (pauseMs > 0) {
      await new Promise((r) => setTimeout(r, Math.min(pauseMs, Math.max(0, deadline - this.now()))));
      // Read now, whatever the pause was: the watch may still be reconnecting to a control service that just
      // restarted (up to its backoff), and the snapshot it follows may be the one from before the refusal.
      const fresh = alive(await this.watcher.refresh());
      if (fresh !== undefined) return fresh;
    }
    return this.watcher.waitFor(alive, Math.max(0, deadline - this.now())).catch((err: unknown) => {
      if (!(err instanceof WaitTimeoutError)) throw err;
      throw new VolumePluginError(
        'MOUNT_TIMEOUT',
        `Timed out after ${Math.round(this.opts.mountTimeoutMs / 1000)} s waiting for volume ${name} to be mounted on this host: ${why}`,
      );
    });
  }

  private async waitMounted(name: string, datasetId: string, deadline: number, signal?: AbortSignal): Promise<string> {
    const timeoutMs = this.opts.mountTimeoutMs;
    const waited = process.hrtime.bigint();
    const mountWait = pluginMetrics(processRegistry('docker-plugin')).mountWaitSeconds;
    try {
      // Mounted under the lease in the snapshot, and not shown unmounted by the kernel: a report of this node from
      // before its agent unmounted for a move away (and back: moved back before that agent's next report came) is
      // stale. A snapshot the kernel contradicts is looked at again every KERNEL_RECHECK_MS, as the agent's mount
      // and report that end the wait may bring no new snapshot (a report the same as the stale one).
      // A refusal of this node's agent that only the user ends (mountRefusal), reported for the grace: no wait.
      const refusals = new RefusalClock(this.opts.refusalGraceMs ?? REFUSAL_GRACE_MS, this.now);
      // Once a snapshot showed this node's lease, one without it says the lease was lost (not a snapshot from before
      // the grant): the Mount takes it again (mountedKeepingLease) rather than waiting out its timeout.
      let leaseShown = false;
      const select = (
        s: ClusterSnapshot,
      ): { path: string } | { refused: FinalRefusal; s: ClusterSnapshot } | { lost: true } | undefined => {
        const p = mountedUnderLease(s, this.me, datasetId);
        if (p !== undefined && !this.kernelShowsUnmounted(datasetId)) return { path: p };
        if (leaseOf(s, datasetId)?.node_uuid === this.me) leaseShown = true;
        else if (leaseShown) return { lost: true };
        const refused = refusals.check(finalRefusal(s, this.me, datasetId), s.configuration_tag);
        return refused !== undefined ? { refused, s } : undefined;
      };
      const got = await this.watcher.waitFor(
        select,
        Math.max(0, deadline - this.now()),
        signal,
        this.opts.mountTable !== undefined ? KERNEL_RECHECK_MS : REFUSAL_RECHECK_MS,
      );
      if ('refused' in got) throw new MountRefusedError(got.refused, got.s);
      if ('lost' in got) throw new LeaseLostError();
      mountWait.observe({ result: 'ok' }, secondsSince(waited));
      return got.path;
    } catch (err) {
      // Given up because the kernel's table answered the Mount (firstMountOrSnapshot): no wait of ours failed.
      if (err instanceof WaitAbortedError) throw err;
      mountWait.observe({ result: 'error' }, secondsSince(waited));
      // Anything but the timeout (MountRefusedError: a final refusal) goes on as it is.
      if (!(err instanceof WaitTimeoutError)) throw err;
      const node = err.last ? nodeOf(err.last, this.me) : undefined;
      const problem = node?.errors.find((e) => e.dataset_id === datasetId);
      let reason = '';
      if (!node) reason = ' The dataset agent on this host has not reported to the control service.';
      else if (!node.alive) reason = ' The dataset agent on this host has stopped reporting.';
      else if (problem) reason = ` The dataset agent reports: ${problem.message}`;
      throw new VolumePluginError(
        'MOUNT_TIMEOUT',
        `Timed out after ${Math.round(timeoutMs / 1000)} s waiting for volume ${name} to be mounted on this host.${reason}`,
      );
    }
  }

  /**
   * Forget the mount ID; returns the dataset whose lease to release when it was the last.
   * The name resolves to its current dataset (see unmountTarget), from the snapshot in
   * memory; a round trip only when that has no live dataset of the name and no entry
   * holds the ID.
   */
  private async doUnmount(req: MountRequest): Promise<string | undefined> {
    const entries = this.registry.entries();
    const cached = this.watcher.current();
    let current = cached ? this.find(cached, req.Name)?.dataset_id : undefined;
    if (current === undefined && !entries.some((e) => e.name === req.Name && e.ids.includes(req.ID))) {
      current = (await this.lookup(req.Name))?.dataset_id;
    }
    const datasetId = unmountTarget(entries, req.Name, req.ID, current);
    if (!datasetId) return undefined; // Nothing of ours to let go.
    // An ID the volume's entry does not hold (a repeated or stray Unmount) forgets nothing and
    // lets nothing go: above all not a lease kept for Docker's copy-up cycle, which the
    // container-start Mount then relies on.
    const entry = entries.find((e) => e.datasetId === datasetId);
    if (entry !== undefined && !entry.ids.includes(req.ID)) return undefined;
    const remaining = await this.registry.remove(datasetId, req.ID);
    return remaining === 0 ? datasetId : undefined;
  }

  /**
   * Let go of our share of this node's lease (never another node's lease); the lease ends, and
   * the volume can move to another host, once no other holder here (a pod through CSI) uses it.
   */
  private async letGo(datasetId: string): Promise<boolean> {
    const cached = leaseOf(await this.watcher.latest(), datasetId);
    if (cached && cached.node_uuid !== this.me) {
      const fresh = leaseOf(await this.watcher.refresh(), datasetId);
      if (fresh && fresh.node_uuid !== this.me) return false;
    }
    try {
      return (await this.client.releaseLease(datasetId, { holder: LEASE_HOLDER })).remains === true;
    } catch (err) {
      if (apiStatus(err) !== 404) throw err;
      return false;
    }
  }

  private async doRemove(req: NameRequest): Promise<void> {
    this.createdHere.delete(req.Name);
    this.madeHere.delete(req.Name);
    const d = await this.lookup(req.Name);
    if (!d) return; // Already gone: removal is idempotent.
    this.untrackFirstMount(d.dataset_id);
    const count = this.registry.count(d.dataset_id);
    // A lease kept (Docker's copy-up cycle, or idle) is no container's: it ends in the DELETE's own change
    // (release_holder: one commit on the rm's path, where a release and a delete took two; issue 23). The control
    // service refuses to delete a leased dataset, even to its holder: refused so (a control service before
    // release_holder, or another holder of this node's lease), it is let go of first, then deleted, as before.
    const kept = this.forgetKept(d.dataset_id) && count === 0;
    const joined = kept && !this.refusedKeys.lately('release_holder') && (await this.deleteReleasing(d.dataset_id));
    if (kept && !joined) await this.releaseUnused(d.dataset_id);
    if (count > 0) {
      throw new VolumePluginError(
        'VOLUME_IN_USE',
        `volume ${req.Name} is in use by ${count} container${count > 1 ? 's' : ''} on this host; remove ${count > 1 ? 'them' : 'it'} first.`,
      );
    }
    // The control service refuses to delete a leased dataset (409; 403 to a node when another node holds
    // the lease); only then is a fresh look worth its round trip, to name the holder.
    try {
      if (!joined) await this.client.deleteDataset(d.dataset_id);
      // Deleted once this plugin's share was let go of on its own: a control service that ignored release_holder.
      if (kept && !joined && !this.refusedKeys.lately('release_holder')) this.refusedKeys.note('release_holder');
    } catch (err) {
      const status = apiStatus(err);
      if (status !== 409 && status !== 403) throw err;
      const s = await this.fresh();
      const lease = leaseOf(s, d.dataset_id);
      if (lease === undefined && status === 403) throw err;
      // A lease let go of on request was asked for and not handed over: the control service says why.
      const why = releasesOnRequest(lease) && err instanceof FlockerApiError ? err.description : undefined;
      throw new VolumePluginError(
        'VOLUME_IN_USE',
        lease && why !== undefined
          ? `volume ${req.Name} cannot be removed: it is leased to host ${hostOf(s, lease.node_uuid)}: ${why}`
          : lease
            ? `volume ${req.Name} is in use by a container on host ${hostOf(s, lease.node_uuid)}${leaseUsers(lease, req.Name)}.`
            : `volume ${req.Name} cannot be removed while it is in use: ${errorMessage(err)}`,
      );
    }
    // Marked deleted: it can no longer be leased, mounted or found by name, and a Create of the name makes
    // a new dataset (createNamed). The agent unmounts and destroys it in the background; Docker need not wait.
    this.forgetRemoved(d.dataset_id);
    // Written once Docker has its answer (the HTTP server answers in this turn): a log line is a synchronous write
    // to the plugin's output, and `docker volume rm` waits on nothing else of ours after the DELETE (issue 23).
    const removed = { volume: req.Name, dataset_id: d.dataset_id };
    setImmediate(() => this.logger.info('removed volume; the agent destroys its storage in the background', removed));
  }

  /**
   * The DELETE of a dataset whose lease this plugin kept idle, ending this plugin's share of it in the same change
   * (release_holder). False when refused (409 LEASE_HELD, 403: the lease remains: another holder, or a control service that
   * ignores release_holder): the caller lets go and deletes as before. Another failure lets go of the lease here
   * (it is no longer kept: nothing else would) and is thrown.
   */
  private async deleteReleasing(datasetId: string): Promise<boolean> {
    try {
      // Its own node named: on plain HTTP the plugin is an API user, and a stale idle entry (the lease released while
      // this node was held dead, then taken by another node) must not end that node's lease (review s27 F1).
      await this.client.deleteDataset(datasetId, { releaseHolder: LEASE_HOLDER, releaseNode: this.me });
    } catch (err) {
      const status = apiStatus(err);
      if (status === 409 || status === 403) return false;
      await this.releaseUnused(datasetId).catch(() => undefined);
      throw err;
    }
    await this.registry.dropIfUnused(datasetId);
    this.forgetLeased(datasetId);
    return true;
  }

  private forgetRemoved(datasetId: string): void {
    this.removed.add(datasetId);
    if (this.removed.size <= MAX_REMOVED_REMEMBERED) return;
    const oldest = this.removed.values().next();
    if (oldest.done !== true) this.removed.delete(oldest.value);
  }

  /** The live dataset of a volume name in `s`, skipping those a Remove here deleted. */
  private find(s: ClusterSnapshot, name: string): DatasetConfiguration | undefined {
    return s.datasets.find(
      (d) => !d.deleted && !this.removed.has(d.dataset_id) && d.metadata[METADATA_NAME_KEY] === name,
    );
  }

  /**
   * On start: forget the IDs of Mounts an earlier process began and never answered, drop mount IDs of volumes no
   * longer here, and re-take the leases of those still in use so they cannot be moved away from running containers;
   * a lease this node holds of a volume no longer here is left to the Docker reconcile (startReconcileStep).
   */
  async reconcile(): Promise<void> {
    const s = await this.watcher.latest();
    for (const listed of this.registry.entries()) {
      await this.serialised(listed.name, async () => {
        // Read again in the volume's queue: a Docker reconcile, an Unmount or Docker's retry of a cut Mount (which
        // records its ID again, as this process's own) may have changed it.
        const cut = this.registry.inheritedPending(listed.datasetId);
        if (cut.length > 0) {
          // Killed before their answer (review T5 F9): no container got the volume from them, so they hold nothing;
          // a lease they took goes below with the entry's last ID, as at a last Unmount (other IDs keep it).
          this.logger.info('forgetting the mount IDs of Mounts cut short by a plugin restart (never answered)', {
            volume: listed.name,
            dataset_id: listed.datasetId,
            ids: cut,
          });
          await this.registry.removeIds(listed.datasetId, cut);
        }
        const e = this.registry.entries().find((x) => x.datasetId === listed.datasetId);
        if (e === undefined) return;
        if (e.ids.length === 0) {
          // The last Unmount was answered but its lease release did not finish: finish it.
          await this.releaseUnused(e.datasetId).catch((err: unknown) =>
            this.logger.error('cannot release lease', { volume: e.name, error: errorMessage(err) }),
          );
          return;
        }
        const step = startReconcileStep(s, this.me, e.datasetId);
        if (step === 'drop') {
          this.logger.info('dropping stale mount IDs', { volume: e.name, dataset_id: e.datasetId, ids: e.ids });
          await this.registry.drop(e.datasetId);
          return;
        }
        if (step === 'leave') {
          this.logger.info(
            "keeping this node's lease of a volume no longer here until Docker shows no container uses it",
            { volume: e.name, dataset_id: e.datasetId, ids: e.ids },
          );
          return;
        }
        const lease = leaseOf(s, e.datasetId);
        if (lease && lease.node_uuid !== this.me) {
          this.logger.error('volume used here is leased by another node', { volume: e.name, holder: lease.node_uuid });
          return;
        }
        try {
          await this.acquire(e.datasetId, {}, false);
          this.leasedSize.set(e.datasetId, s.datasets.find((x) => x.dataset_id === e.datasetId)?.maximum_size ?? null);
        } catch (err) {
          this.logger.error('cannot re-acquire lease', { volume: e.name, error: errorMessage(err) });
        }
      });
    }
    await this.watcher.refresh();
  }

  /**
   * Reconcile the mount IDs with the containers this host's dockerd runs (see
   * DockerReconciler): a volume no container uses (running, paused, restarting, or
   * "created" within the safety window) and with no mount ID younger than the window
   * loses its IDs and its lease, as at its last Unmount. Each volume is decided in its
   * queue, against the registry as it is then, so a Mount answered after the list was
   * taken (a young ID) keeps it.
   */
  async reconcileWithDocker(
    containers: readonly DockerContainer[],
    driver: string,
    volumes: readonly DockerVolume[] = [],
    finishedAt?: FinishedAt,
  ): Promise<VolumeOutcome[]> {
    const windowMs = this.opts.mountSafetyWindowMs ?? DEFAULT_MOUNT_SAFETY_WINDOW_MS;
    const outcomes: VolumeOutcome[] = [];
    const unexplained = this.unexplainedLeases();
    const held = [...this.registry.entries(), ...unexplained].map((e) => this.volumeRef(e.name, e.datasetId));
    const sight = sightOf(containers, volumes, driver, held);
    for (const listed of this.registry.entries()) {
      const outcome = await this.serialised(listed.name, async (): Promise<VolumeOutcome> => {
        const base = { volume: listed.name, datasetId: listed.datasetId };
        if (!this.registry.entries().some((e) => e.datasetId === listed.datasetId))
          return { ...base, result: 'skipped', detail: 'gone meanwhile' };
        // A deleted dataset's entry goes whatever Docker shows: a container using the name now uses a new volume.
        if (await this.dropIfDeleted(listed.datasetId, 'docker reconcile'))
          return { ...base, result: 'dropped', detail: 'dataset deleted' };
        if (this.idle.has(listed.datasetId)) return { ...base, result: 'skipped', detail: 'lease kept while idle' };
        const mountedAt = this.registry.mountedAt(listed.datasetId);
        const ref = this.volumeRef(listed.name, listed.datasetId);
        const settled = await this.settledInherited(listed.datasetId, mountedAt, ref, sight, finishedAt);
        const now = this.now();
        const decision = decideInSight(mountedAt, ref, sight, now, windowMs, settled);
        if (decision.action === 'keep') {
          if (decision.reason === 'cannot tell') {
            this.logger.warn(
              'cannot tell whether containers mount this volume: none shows a mount of our volumes under our driver names; keeping it (set --driver-name to the name Docker uses for this plugin)',
              {
                volume: listed.name,
                dataset_id: listed.datasetId,
                containers: decision.containers,
                driver_names: [...sight.drivers],
                code: 'DRIVER_NAME_UNKNOWN',
              },
            );
            return {
              ...base,
              result: 'kept',
              detail: `cannot tell: mounted by name by ${decision.containers.join(', ')}`,
            };
          }
          const detail =
            decision.reason === 'in use'
              ? `in use by ${decision.containers.join(', ')}`
              : `young mount IDs ${decision.youngIds.join(', ')}`;
          return { ...base, result: 'kept', detail };
        }
        if (decision.staleIds.length > 0) {
          this.logger.info(
            'no container on this host uses the volume any more (Docker sent no Unmount): releasing it',
            {
              volume: listed.name,
              dataset_id: listed.datasetId,
              mount_ids: decision.staleIds,
            },
          );
        }
        try {
          const remaining = await this.registry.removeIds(listed.datasetId, decision.staleIds);
          if (remaining === 0) await this.releaseUnused(listed.datasetId);
          return { ...base, result: 'released' };
        } catch (err) {
          this.logger.error('cannot release the lease of an unused volume; retrying at the next reconcile', {
            volume: listed.name,
            error: errorMessage(err),
          });
          return { ...base, result: 'failed', detail: errorMessage(err) };
        }
      });
      outcomes.push(outcome);
    }
    for (const lease of unexplained)
      outcomes.push(await this.serialised(lease.name, () => this.reconcileUnexplained(lease, sight, windowMs)));
    return outcomes;
  }

  /**
   * This plugin's share of leases on this node that no registry entry explains, of live named datasets. This process
   * records a Mount (pending) before it asks for a lease and keeps the entry until the release is done, so such a
   * lease was left by a plugin from before that (killed mid-Mount: review T5 F9) or by a registry lost with both
   * slots; nothing else would ever let it go. A lease taken by hand (no holder named) or by the CSI driver is not ours.
   */
  private unexplainedLeases(): { name: string; datasetId: string }[] {
    const s = this.watcher.current();
    if (s === undefined) return [];
    const known = new Set(this.registry.entries().map((e) => e.datasetId));
    const out: { name: string; datasetId: string }[] = [];
    for (const l of s.leases) {
      if (l.node_uuid !== this.me || l.holders?.includes(LEASE_HOLDER) !== true || known.has(l.dataset_id)) continue;
      const d = s.datasets.find((x) => x.dataset_id === l.dataset_id && !x.deleted);
      const name = d?.metadata[METADATA_NAME_KEY];
      if (name !== undefined && !this.idle.has(l.dataset_id)) out.push({ name, datasetId: l.dataset_id });
    }
    return out;
  }

  /** In the volume's queue: let go of an unexplained lease (unexplainedLeases) unless a container uses the volume. */
  private async reconcileUnexplained(
    lease: { name: string; datasetId: string },
    sight: DockerSight,
    windowMs: number,
  ): Promise<VolumeOutcome> {
    const base = { volume: lease.name, datasetId: lease.datasetId };
    // A Mount meanwhile records its entry before its lease: then the lease is explained.
    if (this.registry.entries().some((e) => e.datasetId === lease.datasetId))
      return { ...base, result: 'skipped', detail: 'mounted meanwhile' };
    // A Create here meanwhile was granted it with the dataset (kept idle): explained too.
    if (this.idle.has(lease.datasetId)) return { ...base, result: 'skipped', detail: 'lease kept while idle' };
    const decision = decideInSight(new Map(), this.volumeRef(lease.name, lease.datasetId), sight, this.now(), windowMs);
    // No mount IDs, so never 'young mount': kept only for a container using the volume, or one Docker's sight cannot
    // tell from ours (a driver name it does not know).
    if (decision.action === 'keep' && decision.reason !== 'young mount')
      return { ...base, result: 'kept', detail: `${decision.reason} by ${decision.containers.join(', ')}` };
    this.logger.warn("releasing this node's docker lease of a volume no mount ID here explains and no container uses", {
      volume: lease.name,
      dataset_id: lease.datasetId,
    });
    try {
      await this.letGo(lease.datasetId);
      return { ...base, result: 'released', detail: 'lease no mount ID explained' };
    } catch (err) {
      this.logger.error('cannot release an unexplained lease; retrying at the next reconcile', {
        volume: lease.name,
        error: errorMessage(err),
      });
      return { ...base, result: 'failed', detail: errorMessage(err) };
    }
  }

  /**
   * The dataset's mount IDs recorded by an earlier plugin process that the list can decide alone (inheritedSettled):
   * every stopped container mounting the volume finished after their Mounts. Empty when there are none, or a
   * container's finish time cannot be had.
   */
  private async settledInherited(
    datasetId: string,
    mountedAt: ReadonlyMap<string, number>,
    ref: VolumeRef,
    sight: DockerSight,
    finishedAt: FinishedAt | undefined,
  ): Promise<ReadonlySet<string>> {
    const inherited = this.registry.inheritedIds(datasetId);
    if (inherited.size === 0 || finishedAt === undefined) return new Set();
    const stopped = stoppedMounting(ref, sight);
    const finished = await Promise.all(stopped.map(async (c) => ({ finishedMs: await finishedAt(c.id) })));
    const at = [...inherited].map((id) => mountedAt.get(id) ?? Number.POSITIVE_INFINITY);
    return inheritedSettled(at, finished) ? inherited : new Set();
  }

  /** A registry volume as the reconcile matches it: its name, and its mountpoint here if mounted. */
  private volumeRef(name: string, datasetId: string): VolumeRef {
    const s = this.watcher.current();
    return { name, mountpoint: s ? mountedPath(s, this.me, datasetId) : undefined };
  }

  private async lookup(name: string): Promise<DatasetConfiguration | undefined> {
    const cached = this.watcher.current();
    const hit = cached && this.find(cached, name);
    if (hit) return hit;
    // The cache may lag a write made elsewhere; ask once more before saying "no".
    return this.find(await this.fresh(), name);
  }

  /**
   * For Get, which Docker asks before creating a volume it does not know (so on the
   * critical path of `docker run` with a new volume): while the long-poll follows the
   * cluster, the snapshot lags only by the control service's push, so a miss is answered
   * from it; Create then looks afresh. Docker's Get right after Create must never miss the
   * volume: one Create made is answered from the POST's answer until the snapshot knows it
   * (madeHere), one it found is looked up afresh until the snapshot shows it.
   */
  private async lookupFollowed(name: string): Promise<DatasetConfiguration | undefined> {
    const followed = this.watcher.followed();
    const made = this.madeHere.get(name);
    if (followed !== undefined && made !== undefined) {
      if (!followed.datasets.some((d) => d.dataset_id === made.dataset_id)) return made;
      this.madeHere.delete(name);
    }
    if (!followed || this.createdHere.has(name)) {
      const d = await this.lookup(name);
      const now = this.watcher.followed();
      if (now && this.find(now, name)) this.createdHere.delete(name);
      return d;
    }
    return this.find(followed, name);
  }

  /** A fresh snapshot, or an error Docker's user can act on. */
  private async fresh(): Promise<ClusterSnapshot> {
    try {
      return await this.watcher.refresh();
    } catch (err) {
      throw new VolumePluginError(
        'CONTROL_SERVICE_UNAVAILABLE',
        `The Flocker control service cannot be reached: ${errorMessage(err)}`,
      );
    }
  }

  private async require(name: string): Promise<DatasetConfiguration> {
    const d = await this.lookup(name);
    if (!d) throw new VolumePluginError('NO_SUCH_VOLUME', `no such volume: ${name}`);
    return d;
  }

  private serialised<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(name) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.locks.set(name, next);
    void next
      .finally(() => {
        if (this.locks.get(name) === next) this.locks.delete(name);
      })
      .catch(() => undefined);
    return next;
  }
}
