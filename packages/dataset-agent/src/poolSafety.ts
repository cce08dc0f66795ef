/**
 * Never a second volume for a dataset, never a pool of another cluster (issue 17).
 *
 * Pure rules (poolVerdict, createRefusal, attributeProblems, reportedVolumes)
 * and the start-up check that applies them (checkPoolAtStart):
 * - a pool carries the identity of the cluster that first claimed it (loopback:
 *   `<root>/pool.json`); an agent of another cluster refuses it;
 * - an unclaimed or empty pool is claimed only after the control service's
 *   snapshot shows that no node reports a volume (of a dataset that exists) which
 *   this pool lacks: a valid agent.yml with the wrong root_path (or cluster_id)
 *   must not create empty volumes for existing datasets and hide their data;
 * - a create is refused while the pool has an unreadable record that is (or may
 *   be) the dataset's, or while a node reports a volume of the dataset that this
 *   pool does not have.
 */
import { backoffDelay, systemClock, type Clock } from './clock';
import type { ClusterSnapshot } from '@flocker/api';
import type { BlockDeviceApi, PoolIdentity, PoolListing, VolumeProblem } from '@flocker/storage-drivers';
import type winston from 'winston';
import { AgentError, errorCode, errorMessage, type AgentErrorCode } from './errors';

/** A volume some node of the cluster reports, with the dataset it holds. */
export interface ReportedVolume {
  readonly blockdeviceId: string;
  readonly datasetId: string;
  /** The reporting node's UUID. */
  readonly reportedBy: string;
}

/** The cluster's identity as this agent knows it, and where that came from (for messages). */
export interface ClusterIdentity {
  readonly id: string | null;
  readonly source: string;
}

/**
 * Volumes that nodes of this backend report (their backend listing, else their
 * manifestations) for datasets that exist and are not deleted. One entry per volume.
 */
export function reportedVolumes(snapshot: ClusterSnapshot, backend: string): ReportedVolume[] {
  const live = new Set(snapshot.datasets.filter((d) => !d.deleted).map((d) => d.dataset_id));
  const found = new Map<string, ReportedVolume>();
  for (const node of snapshot.nodes) {
    if (node.backend !== backend) continue;
    const volumes = [...(node.volumes ?? []), ...node.manifestations];
    for (const v of volumes) {
      if (!live.has(v.dataset_id) || found.has(v.blockdevice_id)) continue;
      found.set(v.blockdevice_id, { blockdeviceId: v.blockdevice_id, datasetId: v.dataset_id, reportedBy: node.uuid });
    }
  }
  return [...found.values()].sort((a, b) => (a.blockdeviceId < b.blockdeviceId ? -1 : 1));
}

/**
 * Gives each unreadable record the dataset it belongs to when anything knows:
 * what is left of the record, what this agent saw before (`remembered`:
 * blockdevice id → dataset id), or what a node reports.
 */
export function attributeProblems(
  problems: readonly VolumeProblem[],
  remembered: ReadonlyMap<string, string>,
  reported: readonly ReportedVolume[],
): VolumeProblem[] {
  const byReport = new Map(reported.map((r) => [r.blockdeviceId, r.datasetId]));
  return problems.map((p) => {
    const datasetId = p.datasetId ?? remembered.get(p.blockdeviceId) ?? byReport.get(p.blockdeviceId);
    return datasetId === undefined ? p : { ...p, datasetId };
  });
}

export interface Refusal {
  readonly code: AgentErrorCode;
  readonly message: string;
}

/**
 * Whether creating a volume for `datasetId` could make a second one: undefined
 * when it is safe. `listing` is the pool just listed (with no volume of the
 * dataset in it); its problems must be attributed already (attributeProblems).
 */
export function createRefusal(
  datasetId: string,
  listing: PoolListing,
  reported: readonly ReportedVolume[],
  where: string,
): Refusal | undefined {
  const own = listing.problems.find((p) => p.datasetId === datasetId);
  if (own !== undefined) {
    return {
      code: 'CORRUPT_RECORD',
      message:
        `the record of volume ${own.blockdeviceId} of dataset ${datasetId} cannot be read (${own.message}); ` +
        `not creating a second volume for the dataset. Repair or restore the record in ${where}`,
    };
  }
  const unknown = listing.problems.find((p) => p.datasetId === undefined);
  if (unknown !== undefined) {
    return {
      code: 'CORRUPT_RECORD',
      message:
        `the record of volume ${unknown.blockdeviceId} cannot be read and nothing tells which dataset it holds (${unknown.message}); ` +
        `it may be dataset ${datasetId}'s, so no new volume is created until the record is repaired or restored in ${where}`,
    };
  }
  const inPool = new Set([
    ...listing.volumes.map((v) => v.blockdeviceId),
    ...listing.problems.map((p) => p.blockdeviceId),
  ]);
  const elsewhere = reported.find((r) => r.datasetId === datasetId && !inPool.has(r.blockdeviceId));
  if (elsewhere !== undefined) {
    return {
      code: 'VOLUME_ELSEWHERE',
      message:
        `node ${elsewhere.reportedBy} reports volume ${elsewhere.blockdeviceId} for dataset ${datasetId}, which ${where} does not have: ` +
        `this node probably uses another pool than that node (check dataset.root_path / cluster_id in agent.yml); ` +
        'not creating a second volume for the dataset',
    };
  }
  return undefined;
}

export type PoolVerdict =
  | { readonly kind: 'ok'; readonly claim: boolean }
  | { readonly kind: 'needSnapshot' }
  | ({ readonly kind: 'refuse' } & Refusal);

export interface PoolFacts {
  /** The pool's identity; null: not claimed yet; undefined: the backend keeps none (EBS, Cinder: cluster_id tags). */
  readonly identity: PoolIdentity | null | undefined;
  readonly cluster: ClusterIdentity;
  /** Every volume id the pool has, readable or not. */
  readonly poolIds: ReadonlySet<string>;
  /** What nodes report (reportedVolumes), once the snapshot is known. */
  readonly reported?: readonly ReportedVolume[];
  /** The pool, for messages ("pool /var/lib/flocker/loopback"). */
  readonly where: string;
  readonly backend: string;
}

/** The start-up decision about the pool (see the file comment). */
export function poolVerdict(f: PoolFacts): PoolVerdict {
  if (f.identity !== null && f.identity !== undefined && f.identity.clusterId !== f.cluster.id) {
    return {
      kind: 'refuse',
      code: 'POOL_OF_ANOTHER_CLUSTER',
      message:
        `${f.where} belongs to cluster ${f.identity.clusterId ?? '(none: claimed without a cluster identity)'} (claimed ${f.identity.created}), ` +
        `but this agent is in cluster ${f.cluster.id ?? '(none)'} (from ${f.cluster.source}). dataset.root_path probably names another cluster's pool: fix it. ` +
        `If the pool really is this cluster's (say the cluster CA was re-created), set cluster_id in its pool.json to ${JSON.stringify(f.cluster.id)}.`,
    };
  }
  const unclaimed = f.identity === null;
  const empty = f.poolIds.size === 0;
  if (!unclaimed && !empty) return { kind: 'ok', claim: false };
  if (f.reported === undefined) return { kind: 'needSnapshot' };
  const missing = f.reported.filter((r) => !f.poolIds.has(r.blockdeviceId));
  if (missing.length > 0) {
    const examples = missing
      .slice(0, 3)
      .map((r) => `volume ${r.blockdeviceId} of dataset ${r.datasetId} (reported by node ${r.reportedBy})`)
      .join(', ');
    return {
      kind: 'refuse',
      code: 'POOL_MISSING_VOLUMES',
      message:
        `${f.where} is ${unclaimed ? 'not initialised (it has no pool.json)' : 'empty'}, but nodes of this cluster report ${missing.length} ${f.backend} volume(s) ` +
        `of existing datasets that it does not have: ${examples}${missing.length > 3 ? ', …' : ''}. dataset.root_path (or cluster_id) in agent.yml probably names the wrong pool; ` +
        `using it would create empty volumes for those datasets and mount them in place of their data. Fix the configuration and start the agent again.`,
    };
  }
  return { kind: 'ok', claim: unclaimed };
}

/** The pool as listPool shows it (drivers without it: every volume readable). */
export async function listPoolOf(driver: BlockDeviceApi): Promise<PoolListing> {
  return driver.listPool !== undefined ? driver.listPool() : { volumes: await driver.listVolumes(), problems: [] };
}

export interface PoolCheckOptions {
  readonly driver: BlockDeviceApi;
  readonly cluster: ClusterIdentity;
  readonly where: string;
  /** The control service's current snapshot; called only when needed (retried by the caller's implementation). */
  readonly fetchSnapshot: () => Promise<ClusterSnapshot>;
  readonly logger: winston.Logger;
  /** This node: its own earlier report does not count as "another node has reported". */
  readonly nodeUuid: string;
  /** Default: the system clock. */
  readonly clock?: Clock;
}

/**
 * Whether the snapshot cannot tell yet: datasets exist that have no volume in this
 * pool (`inPool`: the datasets it has volumes of), but no other node of this backend
 * has reported (say the control service just restarted and the other agents'
 * reports are still to come). Their reports are what shows volumes this pool lacks.
 */
export function awaitingReports(
  snapshot: ClusterSnapshot,
  backend: string,
  nodeUuid: string,
  inPool: ReadonlySet<string> = new Set(),
): boolean {
  return (
    snapshot.datasets.some((d) => !d.deleted && !inPool.has(d.dataset_id)) &&
    !snapshot.nodes.some((n) => n.uuid !== nodeUuid && n.backend === backend)
  );
}

/**
 * Before the agent touches anything: refuses (AgentError) a pool of another
 * cluster, or an unclaimed or empty one while nodes report volumes it lacks;
 * otherwise claims an unclaimed pool for this cluster.
 */
export async function checkPoolAtStart(o: PoolCheckOptions): Promise<void> {
  let identity: PoolIdentity | null | undefined;
  try {
    identity = o.driver.poolIdentity !== undefined ? await o.driver.poolIdentity() : undefined;
  } catch (e) {
    throw new AgentError('CORRUPT_RECORD', `cannot tell which cluster ${o.where} belongs to: ${errorMessage(e)}`);
  }
  const idsOf = (l: PoolListing): Set<string> =>
    new Set([...l.volumes.map((v) => v.blockdeviceId), ...l.problems.map((p) => p.blockdeviceId)]);
  const facts = { identity, cluster: o.cluster, where: o.where, backend: o.driver.backend };
  const first = await listPoolOf(o.driver);
  let verdict = poolVerdict({ ...facts, poolIds: idsOf(first) });
  if (verdict.kind === 'needSnapshot') {
    o.logger.info(
      'the pool is new or empty: asking the control service whether volumes exist elsewhere before using it',
      { pool: o.where },
    );
    let snapshot = await o.fetchSnapshot();
    // An unclaimed pool (a directory this cluster never used: typically a wrong root_path), datasets,
    // but no other node's report yet: wait for the reports (up to the node timeout, by which a live
    // node has reported), since they are what shows volumes this pool lacks. (A claimed pool that is
    // empty is checked on the snapshot as it is; the create re-check covers what it cannot show.)
    const clock = o.clock ?? systemClock;
    const waitMs = (snapshot.node_timeout_seconds ?? 30) * 1000;
    const since = clock.now();
    const inPool = new Set([
      ...first.volumes.map((v) => v.datasetId),
      ...first.problems.flatMap((p) => (p.datasetId !== undefined ? [p.datasetId] : [])),
    ]);
    const waitForReports = (snap: ClusterSnapshot): boolean =>
      identity === null && awaitingReports(snap, o.driver.backend, o.nodeUuid, inPool);
    if (waitForReports(snapshot)) {
      o.logger.warn(
        'datasets exist but no other node has reported yet: waiting for their reports before using a new or empty pool',
        { pool: o.where, waitMs },
      );
      while (waitForReports(snapshot) && clock.now() - since < waitMs) {
        await clock.sleep(1000);
        snapshot = await o.fetchSnapshot();
      }
      if (waitForReports(snapshot)) o.logger.warn('no other node reported: going on with the pool', { pool: o.where });
    }
    // Listed after the snapshot: a volume reported in it was created before this listing.
    verdict = poolVerdict({
      ...facts,
      poolIds: idsOf(await listPoolOf(o.driver)),
      reported: reportedVolumes(snapshot, o.driver.backend),
    });
  }
  if (verdict.kind === 'refuse') throw new AgentError(verdict.code, verdict.message);
  if (verdict.kind === 'ok' && verdict.claim && o.driver.claimPool !== undefined) {
    const claimed = await o.driver.claimPool(o.cluster.id);
    // Another cluster's agent may have claimed it first.
    const again = poolVerdict({ ...facts, identity: claimed, poolIds: new Set(['claimed']) });
    if (again.kind === 'refuse') throw new AgentError(again.code, again.message);
    o.logger.info('pool claimed for this cluster', {
      pool: o.where,
      clusterId: o.cluster.id,
      source: o.cluster.source,
    });
  }
}

/** Fetches the snapshot, retrying (with backoff up to maxMs) until the control service answers. */
export async function fetchSnapshotPatiently(
  fetch: () => Promise<ClusterSnapshot>,
  logger: winston.Logger,
  clock: Pick<Clock, 'sleep'> = systemClock,
  initialMs = 500,
  maxMs = 30_000,
): Promise<ClusterSnapshot> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetch();
    } catch (e) {
      const delay = backoffDelay(attempt, initialMs, maxMs);
      logger.warn('cannot reach the control service to check the pool; retrying', {
        code: errorCode(e),
        error: errorMessage(e),
        retryInMs: delay,
      });
      await clock.sleep(delay);
    }
  }
}
