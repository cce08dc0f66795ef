/**
 * Idle leases (issue 23, session 21): after the last Unmount of a volume the plugin keeps its lease for
 * idle_lease_seconds, so the next `docker run` here takes and lets go of no lease (docs/performance.md, "Session 14").
 * It took the lease with `release_on_request: true`: another node's Mount, a move or a delete of the volume makes the
 * control service record `release_requested` on it and wait for this plugin to let go. This module decides, from the
 * followed snapshot and the plugin's own state, what to do with each such lease; the backend does it in the volume's
 * queue (so never between a Mount's check and its answer).
 */
import type { ClusterSnapshot, Lease } from '@flocker/api';

/**
 * Default idle_lease_seconds: how long a lease no container here uses is kept (on by default: issue 23's target is
 * for the default install). Its cost: a move or delete of an idle volume waits for this plugin's hand-over, and a
 * host whose plugin is down keeps its idle volumes until the plugin is back (or `flocker leases release`).
 */
export const DEFAULT_IDLE_LEASE_SECONDS = 60;

/** A request of another client for the lease (who asked, and when, by the control service's clock). */
export interface ReleaseRequest {
  readonly by: string;
  readonly at: string;
}

/** Whether a granted lease says its holder lets go of it on request (a control service that knows the field echoes it). */
export function releasesOnRequest(lease: Lease | undefined): boolean {
  return lease?.release_on_request === true;
}

/** The request for the lease recorded on it, if any. */
export function releaseRequestOf(lease: Lease | undefined): ReleaseRequest | undefined {
  return lease?.release_requested;
}

/** What the plugin knows of one volume whose lease it holds (or held), at `now`. */
export interface KeptLeaseFacts {
  /** Mount IDs here: a container on this node uses the volume. */
  readonly inUse: boolean;
  /** Kept idle: when the idle time ends (ms); undefined when not kept idle. */
  readonly idleUntil: number | undefined;
  /** Whose lease the snapshot shows on the dataset. */
  readonly lease: 'ours' | 'other' | 'none';
  /** The request recorded on our lease, if any. */
  readonly requested: ReleaseRequest | undefined;
  /** The `at` of the request this plugin already declined (it stays in the snapshot until the decline is pushed). */
  readonly declinedAt: string | undefined;
  /** Where the snapshot shows the dataset: live with this node its primary, live elsewhere, deleted, or unknown. */
  readonly dataset: 'here' | 'elsewhere' | 'deleted' | 'unknown';
  /**
   * Its maximum_size is not what it was when this plugin took the lease: a grow the agent may do only once no lease
   * is on the volume (offline, or a backend that extends only detached) would wait for the idle time.
   */
  readonly resized: boolean;
  /**
   * The followed snapshot shows our lease without release_on_request (outside Docker's copy-up grace): this plugin is
   * served views without the hand-over's members (its node counts as behind, or on plain HTTP another alive node does),
   * so it would never see a request, and the control service does not ask it (review R1 F1): kept, the lease would
   * only block moves and Mounts elsewhere.
   */
  readonly unheard: boolean;
  readonly now: number;
}

export type KeptLeaseStep =
  /** Nothing to do now. */
  | { readonly do: 'nothing' }
  /** Keep the idle lease until `until` (ms), then decide again. */
  | { readonly do: 'keep'; readonly until: number }
  /** Let go of it now. */
  | {
      readonly do: 'release';
      readonly why: 'requested' | 'idle' | 'gone' | 'moved' | 'taken' | 'unheard' | 'resized';
    }
  /** A container here uses it: tell the control service, whose waiting requester is then refused at once. */
  | { readonly do: 'decline'; readonly request: ReleaseRequest };

/**
 * - In use here: a request on our lease is declined (once per request); nothing else.
 * - Not kept idle (a release already under way, or nothing of ours): nothing.
 * - Kept idle: released when asked for, when its dataset is deleted or unknown, moved away from this node (a move
 *   when_released waits for the release), leased to another node (an administrator released ours), shown without
 *   release_on_request (this plugin could not hear a request), or resized since
 *   the lease was taken (a grow may wait for no lease); else when the idle time is over; else kept. A snapshot not showing our lease yet (it may lag the grant) keeps it: the idle
 *   time ends it, and a Mount meanwhile takes it again rather than trusting it.
 */
export function keptLeaseStep(f: KeptLeaseFacts): KeptLeaseStep {
  if (f.inUse) {
    if (f.lease === 'ours' && f.requested !== undefined && f.requested.at !== f.declinedAt)
      return { do: 'decline', request: f.requested };
    return { do: 'nothing' };
  }
  if (f.idleUntil === undefined) return { do: 'nothing' };
  if (f.lease === 'ours' && f.requested !== undefined) return { do: 'release', why: 'requested' };
  if (f.dataset === 'deleted' || f.dataset === 'unknown') return { do: 'release', why: 'gone' };
  if (f.dataset === 'elsewhere') return { do: 'release', why: 'moved' };
  if (f.lease === 'other') return { do: 'release', why: 'taken' };
  if (f.unheard) return { do: 'release', why: 'unheard' };
  if (f.resized) return { do: 'release', why: 'resized' };
  if (f.now >= f.idleUntil) return { do: 'release', why: 'idle' };
  return { do: 'keep', until: f.idleUntil };
}

/** The snapshot's side of KeptLeaseFacts for `datasetId`, as seen by node `me`. */
export function snapshotFacts(
  s: ClusterSnapshot,
  me: string,
  datasetId: string,
): Pick<KeptLeaseFacts, 'lease' | 'requested' | 'dataset'> {
  const lease = s.leases.find((l) => l.dataset_id === datasetId);
  const d = s.datasets.find((x) => x.dataset_id === datasetId);
  return {
    lease: lease === undefined ? 'none' : lease.node_uuid === me ? 'ours' : 'other',
    requested: lease?.node_uuid === me ? releaseRequestOf(lease) : undefined,
    dataset: d === undefined ? 'unknown' : d.deleted ? 'deleted' : d.primary === me ? 'here' : 'elsewhere',
  };
}

/**
 * Whether `s` shows node `me`'s lease of the dataset with release_on_request: the views this plugin follows carry the
 * hand-over's members, so it will see a request for it (and the control service asks it). The grant's echo alone
 * does not say so: the v1 lease route echoes the field whatever views this node is served (review R1 F1).
 */
export function promisedInView(s: ClusterSnapshot, me: string, datasetId: string): boolean {
  const lease = s.leases.find((l) => l.dataset_id === datasetId);
  return lease?.node_uuid === me && releasesOnRequest(lease);
}

/**
 * How long to keep a lease after the last Unmount: the idle time when the control service lets go of it on request
 * (`echoed`: it echoed release_on_request in the grant, and the followed snapshot shows it: promisedInView); else only Docker's copy-up grace (0 for any other Unmount), since a
 * lease nobody can ask for would block moves for the whole idle time.
 */
export function keepAfterLastUnmountMs(o: {
  idleLeaseMs: number;
  echoed: boolean;
  copyUp: boolean;
  copyUpGraceMs: number;
}): number {
  const grace = o.copyUp ? o.copyUpGraceMs : 0;
  return o.echoed ? Math.max(o.idleLeaseMs, grace) : grace;
}
