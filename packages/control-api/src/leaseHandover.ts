/**
 * The lease hand-over (session 21, README: the lease hand-over): a lease its holder took with `release_on_request` (the Docker
 * plugin's lease of a volume no container uses any more) is asked for, rather than refused at once, by a request it
 * blocks; the holder lets go (or declines) and the request is evaluated again. Pure decisions only: which refusal
 * becomes a request, the request recorded or declined, what a waiter sees at each change and what it answers after
 * the wait. The wait itself is in handoverWait.ts.
 */
import type { Lease, LeaseReleaseRequest } from '@flocker/api';
import { type Applied, type Configuration, leaseView, liveLease, type StoredLease } from './configuration';
import { ConfigurationError } from './errors';
import { PersistentMap, setEntry } from './PersistentMap';

/** Who asks: the UUID of the node whose request the lease blocks (its lease, a move to it, its delete), or "api". */
export type Requester = string;

/**
 * What a LEASE_HELD refusal of `requester`'s request on `datasetId` becomes:
 * - 'refuse': the refusal stands as it is: no live lease, a lease whose holder did not promise to let go (the CLI's,
 *   the CSI driver's: as before), the requester's own lease, a holder node declared dead (the lease grace decides
 *   then), or a holder that cannot hear a request and is not about to (`canHear` false: its plugin is served views
 *   without release_requested, Views.newMembersHidden — a node one release behind — so it could neither let go nor
 *   decline, and the requester would wait out the hand-over for nothing: review R1 F1);
 * - 'ask': the holder is asked to let go (requestRelease) and the request waits;
 * - 'await-report': the holder cannot hear only because its node has not reported since this control service started
 *   (`reportedSinceStart` false: no report, no release known, so its views leave the members out): its agent reports
 *   within seconds of a restart, so the request waits for that (bounded by the hand-over wait) and is judged again,
 *   rather than refused at once for what is only the restart's doing (a `docker run` that would work seconds later).
 * Pure.
 */
export type HandoverStep =
  | {
      readonly do: 'refuse';
      /** The lease, when refused because its holder cannot hear a request (an older release): refusalUnheard. */
      readonly unheard?: StoredLease;
    }
  | { readonly do: 'ask' | 'await-report'; readonly lease: StoredLease };

export function handoverStep(
  config: Configuration,
  datasetId: string,
  requester: Requester,
  now: number,
  isDead: (node: string) => boolean,
  canHear: (node: string) => boolean,
  reportedSinceStart: (node: string) => boolean,
): HandoverStep {
  const lease = liveLease(config, datasetId, now);
  if (lease?.release_on_request !== true) return { do: 'refuse' };
  if (lease.node_uuid === requester || isDead(lease.node_uuid)) return { do: 'refuse' };
  if (canHear(lease.node_uuid)) return { do: 'ask', lease };
  return reportedSinceStart(lease.node_uuid) ? { do: 'refuse', unheard: lease } : { do: 'await-report', lease };
}

/**
 * The Retry-After (s) of a refusal because the holder has not reported since this start (refusalUnreported): its agent
 * reports at its next heartbeat (every few seconds), and each retry waits for that report within the hand-over wait
 * again, so a short pause between retries is enough.
 */
export const UNREPORTED_RETRY_AFTER_S = 1;

/**
 * The refusal answered when the holder of `lease` did not report within the hand-over wait after this control
 * service started ('await-report' throughout): says so, for how long it waited (`waitMs`: the time actually waited),
 * and when a retry can work (once the node reports; its host may be down: then once it is declared dead) — not that
 * something uses the volume there. Marked retryable (Retry-After: UNREPORTED_RETRY_AFTER_S; the code stays LEASE_HELD
 * for older clients): the Docker plugin asks again within its Mount's deadline (review s28 G5), where a refusal
 * because a container uses the volume there fails at once. Any refusal other than LEASE_HELD is answered as it is.
 */
export function refusalUnreported(
  refusal: unknown,
  lease: Pick<StoredLease, 'dataset_id' | 'node_uuid'>,
  waitMs: number,
  where: string | undefined,
): unknown {
  if (!(refusal instanceof ConfigurationError) || refusal.code !== 'LEASE_HELD') return refusal;
  const node = where === undefined ? `Node ${lease.node_uuid}` : `Node ${lease.node_uuid} (${where})`;
  return new ConfigurationError(
    'LEASE_HELD',
    `${refusal.message} ${node} has not reported since the control service restarted, so its Docker plugin cannot ` +
      `be asked to let go of the lease yet (waited ${seconds(waitMs)}). Retry once that node reports again; if its host ` +
      'is down, the control service declares it dead after the node timeout and its leases are let go of.',
    undefined,
    UNREPORTED_RETRY_AFTER_S,
  );
}

/**
 * The refusal answered when the holder of a lease kept on a promise cannot hear a request (handoverStep 'refuse' with
 * `unheard`: its node, or on plain HTTP any node, runs an older release: Views.newMembersHidden): it will not be asked, so the text does not say it lets go when asked,
 * but what to do (review s28 G4). Any refusal other than LEASE_HELD is answered as it is.
 */
export function refusalUnheard(refusal: unknown): unknown {
  if (!(refusal instanceof ConfigurationError) || refusal.code !== 'LEASE_HELD') return refusal;
  return new ConfigurationError(
    'LEASE_HELD',
    `${refusal.message} Its holder's Docker plugin cannot hear a release request: its node (without certificates: ` +
      'any node) runs an older release. Upgrade it, or release the lease (flocker leases release) once no container ' +
      'there uses the volume.',
  );
}

/**
 * Records the request on `holder`'s lease of `datasetId` (release_requested: by, at), unless one is pending already
 * (the first asker's stays: the holder answers every waiter with one release or one decline) or the lease is no longer
 * that holder's promise (gone, another node's, the promise withdrawn): then nothing changes. `result`: the request
 * pending on the lease afterwards, if any.
 */
export function requestRelease(
  config: Configuration,
  datasetId: string,
  holder: string,
  by: Requester,
  at: string,
  now: number,
): Applied<LeaseReleaseRequest | undefined> {
  const lease = liveLease(config, datasetId, now);
  if (lease === undefined || lease.node_uuid !== holder || lease.release_on_request !== true) {
    return { config, result: undefined, status: 200 };
  }
  if (lease.release_requested !== undefined) return { config, result: lease.release_requested, status: 200 };
  const request: LeaseReleaseRequest = { by, at };
  return {
    config: withLease(config, { ...lease, release_requested: request }),
    result: request,
    status: 200,
  };
}

/**
 * The holder's "no" (DELETE …/release-request): clears the pending request, which answers every waiter at once.
 * `answers` (its by and at, each when given): the request the decline answers; another one pending (a newer asker's,
 * after a late or repeated decline: review R1 F5) is left as it is. A lease with none pending (or another) is answered
 * unchanged (a repeated decline); no live lease is LEASE_NOT_FOUND.
 */
export function declineReleaseRequest(
  config: Configuration,
  datasetId: string,
  now: number,
  answers: Partial<LeaseReleaseRequest> = {},
): Applied<Lease> {
  const lease = liveLease(config, datasetId, now);
  if (lease === undefined) {
    throw new ConfigurationError('LEASE_NOT_FOUND', `There is no lease on the dataset ${datasetId}.`);
  }
  const pending = lease.release_requested;
  const other =
    pending !== undefined &&
    ((answers.by !== undefined && answers.by !== pending.by) ||
      (answers.at !== undefined && !sameInstant(answers.at, pending.at)));
  if (pending === undefined || other) return { config, result: leaseView(lease, now), status: 200 };
  const { release_requested: _declined, ...kept } = lease;
  return { config: withLease(config, kept), result: leaseView(kept, now), status: 200 };
}

/** Whether two ISO times name the same instant (a client may send `at` with another offset or precision). */
function sameInstant(a: string, b: string): boolean {
  return a === b || Date.parse(a) === Date.parse(b);
}

function withLease(config: Configuration, lease: StoredLease): Configuration {
  return { ...config, version: config.version + 1, leases: setEntry(config.leases, lease.dataset_id, lease) };
}

/**
 * What a waiter reads in a configuration: 'gone' (the holder let go, or the lease ended or changed hands: evaluate
 * the request again), 'declined' (its request is no longer the one pending, or the holder withdrew its promise) or
 * 'waiting'. `request`: the request pending when the waiter began.
 */
export type HandoverProgress = 'waiting' | 'gone' | 'declined';

export function handoverProgress(
  config: Configuration,
  datasetId: string,
  holder: string,
  request: LeaseReleaseRequest,
  now: number,
): HandoverProgress {
  const lease = liveLease(config, datasetId, now);
  if (lease === undefined || lease.node_uuid !== holder) return 'gone';
  if (lease.release_on_request !== true) return 'declined';
  const pending = lease.release_requested;
  // A new request after a decline (another asker) is not ours: ours was declined in between.
  if (pending === undefined || pending.by !== request.by || pending.at !== request.at) return 'declined';
  return 'waiting';
}

/**
 * Whether a waiter ends on what it read, and how. `on`: 'committed' (a durable configuration, this replica's commit or
 * another's adopted) or 'applied' (this replica's latest, a write applied whose commit has not started yet). Any
 * answer ends the wait on a committed configuration. On an applied one only 'gone' does (session 22): the request is
 * then applied again at once and so shares the release's commit (the grant needs no commit of its own, and the agents
 * hear the release and the grant in one push); should that commit fail, the request fails with it, as a write would.
 * A decline is answered on its commit (a refusal gains nothing from being early, and it might not be made durable).
 */
export function handoverWake(on: 'applied' | 'committed', progress: HandoverProgress): HandoverOutcome | undefined {
  if (progress === 'waiting') return undefined;
  if (on === 'applied' && progress !== 'gone') return undefined;
  return progress;
}

/** How the wait ended: the holder let go (or the lease went), declined, or did not answer in time. */
export type HandoverOutcome = 'gone' | 'declined' | 'timeout';

/**
 * The refusal of the request evaluated again after the wait (`refusal`), with why the hand-over did not happen when
 * the same holder still blocks it; any other refusal is answered as it is.
 */
export function refusalAfterHandover(
  refusal: unknown,
  config: Configuration,
  datasetId: string,
  holder: string,
  outcome: HandoverOutcome,
  waitMs: number,
  now: number,
  hostOf: (node: string) => string | undefined,
): unknown {
  if (!(refusal instanceof ConfigurationError) || refusal.code !== 'LEASE_HELD') return refusal;
  const lease = liveLease(config, datasetId, now);
  if (lease === undefined || lease.node_uuid !== holder || outcome === 'gone') return refusal;
  const where = hostOf(holder) ?? `node ${holder}`;
  const why =
    outcome === 'declined'
      ? `Its holder's Docker plugin declined to let go of it: a container on ${where} uses it.`
      : `Its holder was asked to let go of it and did not within ${seconds(waitMs)} (is the Docker plugin on ${where} running?).`;
  return new ConfigurationError('LEASE_HELD', `${refusal.message} ${why}`);
}

/** "5 s", "0.5 s": the wait as the operator set it. */
function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/**
 * Whether `current` differs from `seen` in nothing but the lease of `datasetId` (the hand-over's own writes: the
 * request recorded, the holder's release or decline): a request conditional on `seen`'s tag still holds then.
 * Conservative: maps rebuilt whole (a configuration read again) count as changed.
 */
export function unchangedButLease(seen: Configuration, current: Configuration, datasetId: string): boolean {
  if (seen === current) return true;
  const same = <V>(a: ReadonlyMap<string, V> | undefined, b: ReadonlyMap<string, V> | undefined): boolean =>
    a === b || ((a?.size ?? 0) === 0 && (b?.size ?? 0) === 0);
  if (!same(seen.datasets, current.datasets) || !same(seen.nodes, current.nodes)) return false;
  if (!same(seen.containers, current.containers) || !same(seen.snapshots, current.snapshots)) return false;
  if (seen.leases === current.leases) return true;
  const changed = PersistentMap.changedKeys(seen.leases, current.leases);
  return [...changed].every((id) => id === datasetId);
}
