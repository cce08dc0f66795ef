/**
 * The control service's routes: the contract of @flocker/api (`apiRoutes`: method, path,
 * schemas, responses) with a handler attached to each. Express registration, input
 * validation, 405 answers and the OpenAPI document are all generated from this table.
 */
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import {
  apiRoutes,
  ClusterEventsResponse,
  DatasetConfiguration,
  DatasetState,
  DEFAULT_WAIT_MS,
  EraResponse,
  FLOCKER_VERSION,
  ForgottenNode,
  type Identity,
  Lease,
  MAX_WAIT_MS,
  type NodeReport,
  ReleasedLease,
  ReportResponse,
  type RouteName,
  snapshotScheduleIssues,
  type UpdateDatasetRequest,
  VersionResponse,
} from '@flocker/api';
import {
  acquireLease,
  type Applied,
  type Configuration,
  deleteDataset,
  listLeases,
  releaseLease,
  requireDataset,
  updateDataset,
} from './configuration';
import { type CancelledMove, cancelledMove, moveCancelledEvent } from './events';
import { jsonOf } from './json';
import {
  lossMarksToSettle,
  markersToSettle,
  optInsToSettle,
  replicaOptInRule,
  serviceBackend,
  serviceDataNodeRule,
  settledDataNodes,
  settledLossMarks,
  type SettledLossMark,
  type SettledMarker,
  type SettledOptIn,
  settledOptIns,
  stillAsSeen,
} from './dataNode';
import { createRefusal, updateRefusal } from './localStorage';
import { createDatasetLeased } from './createLeased';
import { aliveNodes, isAlive, nodeByEra } from './clusterState';
import { reportClaimConflict } from './reportClaims';
import { sizeBeyondBackend } from './backendLimits';
import { ConfigurationError, RequestError } from './errors';
import { containerHandlers } from './containerRoutes';
import { reportedSnapshotSize, snapshotHandlers } from './snapshotRoutes';
import { backupHandlers } from './backupRoutes';
import { requireBackupNode } from './backups';
import { type Handlers, implement, type RouteSpec } from './routeSpec';
import { watchContentType, watchNode } from './agentWatch';
import { WHOLE_CLUSTER } from './nodeViews';
import { API_VIEWER, type Viewer, type Views } from './Views';
import { declineReleaseRequest } from './leaseHandover';
import { mutateWithHandover } from './handoverWait';
import type { ControlState } from './ControlState';

export { canonicalInput } from './routeSpec';
export type { Reply, RouteContext, RouteSpec } from './routeSpec';

/** A snapshot schedule (metadata) more frequent than the control service runs is refused (400). */
function requireScheduleInterval(
  metadata: Readonly<Record<string, string | null>> | undefined,
  minIntervalMs: number,
): void {
  const issue = snapshotScheduleIssues(metadata ?? {}, minIntervalMs)[0];
  if (issue !== undefined) {
    throw new ConfigurationError('SNAPSHOT_SCHEDULE_TOO_FREQUENT', `${issue.key}: ${issue.message}.`);
  }
}

/** Who asks for a lease's hand-over: the node by its certificate, else an API user. */
function requesterOf(identity: Identity | undefined): string {
  return identity?.kind === 'node' ? identity.uuid : 'api';
}

/**
 * Whether a holder node's plugin sees release requests (handoverWait.HandoverAsk.canHear): the whole view it follows
 * carries the lease hand-over's members. With certificates (every request has an identity) it follows with its node's;
 * on plain HTTP every plugin follows the view served to an unknown viewer, which leaves them out while any alive node
 * is behind (Views.newMembersHidden).
 */
function hearsRequests(views: Views, identity: Identity | undefined): (node: string) => boolean {
  return (node) => !views.newMembersHidden(identity === undefined ? undefined : node.toLowerCase());
}

/** Who a whole view is served to (Views.Viewer): the certificate's node, an API user, or unknown (plain HTTP). */
function viewerOf(identity: Identity | undefined): Viewer {
  return identity === undefined ? undefined : identity.kind === 'node' ? identity.uuid.toLowerCase() : API_VIEWER;
}

/**
 * The checks and the change of POST /v1/configuration/datasets/:id (a move, a resize, a schedule), shared with a lease
 * taken with move_here. The checks read the configuration as the request finds it (they throw); `change` is applied by
 * the committer (maybe again, onto a newer configuration); `committed` records what the durable change did (a
 * when_released move it cancelled: an event, so a crash before the commit records nothing).
 */
function datasetUpdate(
  state: ControlState,
  id: string,
  body: UpdateDatasetRequest,
): { change: (c: Configuration, now: number) => Applied<DatasetConfiguration>; committed: () => void } {
  requireScheduleInterval(body.metadata, state.minSnapshotIntervalMs);
  const current = state.configuration.datasets.get(id);
  const backend = serviceBackend(state);
  if (current !== undefined) {
    // A restore not finished yet stays on its node: another node would find the volume unmounted and write the
    // backup over it again, so the move waits until the primary reported it mounted (backups.ts).
    const unfinished = current.source_backup !== undefined && current.source_backup.restored !== true;
    if (unfinished && body.primary !== undefined && body.primary !== current.primary) {
      throw new ConfigurationError(
        'RESTORE_IN_PROGRESS',
        `The dataset ${current.dataset_id} is being restored from a backup on its node: move it once it is mounted there.`,
      );
    }
    const onLocal = updateRefusal(current, body, backend);
    if (onLocal !== undefined) throw onLocal;
    const size = body.maximum_size !== undefined ? body.maximum_size : current.maximum_size;
    const tooLarge = sizeBeyondBackend(size, state.reportedNode(body.primary ?? current.primary));
    if (tooLarge !== undefined) throw tooLarge;
  }
  // A move records the node that may hold the data in its own commit (dataNode.ts); accept-replica-loss set
  // before it stays only for leaving a dead primary that held the live copy.
  const holdersOf = (dataset: string) => state.nodeViews.holdersOf(dataset);
  const kind = (node: string) => backend(node)?.kind;
  // Whether the change cancels a when_released move, as of the configuration it is applied to (the committer may
  // apply it again onto a newer one): told once the commit is durable, so a crash before it records nothing.
  let cancelled: CancelledMove | undefined;
  const change = (c: Configuration, now: number): Applied<DatasetConfiguration> => {
    const dead = (node: string): boolean => {
      const reported = state.reportedNode(node);
      return reported !== undefined && !isAlive(reported, now, state.nodeTimeoutMs);
    };
    const optIn = replicaOptInRule(holdersOf, dead);
    cancelled = cancelledMove(c, id, body, now, { holdersOf, backend: kind });
    return updateDataset(c, id, body, now, serviceDataNodeRule(state), kind, optIn);
  };
  const committed = (): void => {
    if (cancelled === undefined) return;
    const config = state.configuration;
    const hostOf = (node: string) => state.reportedNode(node)?.report.host ?? config.nodes.get(node)?.host;
    state.recordEvent(moveCancelledEvent(cancelled, hostOf, state.now()));
  };
  return { change, committed };
}

const datasetHandlers: Omit<
  Handlers,
  keyof typeof containerHandlers | keyof typeof snapshotHandlers | keyof typeof backupHandlers
> = {
  version: () => ({ status: 200, body: VersionResponse.parse({ flocker: FLOCKER_VERSION }) }),
  // Built across event-loop turns (issue 23: the first read after a start at 100,000 datasets held the loop 0.3-2 s).
  listDatasets: async (_state, _ctx, views) => {
    const { body, tag } = await views.datasetsSliced();
    return { status: 200, json: body, tag };
  },
  createDataset: async (state, { body, ifMatches }) => {
    requireScheduleInterval(body.metadata, state.minSnapshotIntervalMs);
    // What local storage cannot do (a clone or restore would come out empty): refused before anything else.
    const onLocal = createRefusal(body, serviceBackend(state), (id) => state.configuration.datasets.get(id));
    if (onLocal !== undefined) throw onLocal;
    if (body.source_backup !== undefined) {
      requireBackupNode(
        aliveNodes(state.reportedNodes(), state.now(), state.nodeTimeoutMs),
        body.primary,
        'its primary',
      );
    }
    const tooLarge = sizeBeyondBackend(body.maximum_size, state.reportedNode(body.primary));
    if (tooLarge !== undefined) throw tooLarge;
    // With `lease`: the primary's lease in the create's own change (createLeased.ts), refused for a primary held
    // dead as a lease POST is (its lease would go at the next sweep).
    const applied = await state.mutate((c, now) => {
      if (body.lease !== undefined) refuseDeadRequester(state, body.primary, now);
      return createDatasetLeased(c, body, undefined, (id) => reportedSnapshotSize(state, id), now);
    }, ifMatches);
    return { status: 201, body: DatasetConfiguration.parse(applied.result), tag: state.configurationTag };
  },
  // The narrow read (issue 23): the dataset's cached JSON fragment (jsonOf), no walk of the other 100,000.
  getDataset: (state, { params }) => ({
    status: 200,
    json: jsonOf(requireDataset(state.configuration, params.id)),
    tag: state.configurationTag,
  }),
  updateDataset: async (state, { params, body, ifMatches, signal, identity, reauthorize }, views) => {
    const update = datasetUpdate(state, params.id, body);
    // A move an idle volume's lease refuses asks its holder for it first (handoverWait.ts).
    const ask = {
      datasetId: params.id,
      requester: requesterOf(identity),
      ifMatches,
      signal,
      authorize: reauthorize,
      canHear: hearsRequests(views, identity),
    };
    const applied = await mutateWithHandover(state, ask, update.change);
    update.committed();
    return { status: 200, body: DatasetConfiguration.parse(applied.result), tag: state.configurationTag };
  },
  deleteDataset: async (state, { params, query, ifMatches, signal, identity, reauthorize }, views) => {
    const ask = {
      datasetId: params.id,
      requester: requesterOf(identity),
      ifMatches,
      signal,
      authorize: reauthorize,
      canHear: hearsRequests(views, identity),
    };
    const release =
      query.release_holder === undefined
        ? undefined
        : {
            holder: query.release_holder,
            requester: ask.requester,
            ...(query.release_node === undefined ? {} : { node: query.release_node }),
          };
    const applied = await mutateWithHandover(state, ask, (c, now) => deleteDataset(c, params.id, now, release));
    return { status: 200, body: DatasetConfiguration.parse(applied.result), tag: state.configurationTag };
  },
  // With ?dataset_id= (a waiter confirming a "mounted"): that dataset's entry of the whole list (the same alive nodes
  // and stale "mounted" hidden), from a scan of the alive reports, not the list. A new body: no ETag, so an
  // If-None-Match naming the whole list's never answers it 304.
  listDatasetState: async (_state, { query }, views) => ({
    status: 200,
    json:
      query.dataset_id === undefined
        ? await views.datasetStateSliced()
        : await views.datasetStateOfSliced(query.dataset_id),
  }),
  listNodes: (_state, _ctx, views) => ({ status: 200, json: views.nodes() }),
  nodeByEra: (state, { params }) => {
    const uuid = nodeByEra(state.reportedNodes(), params.era);
    if (uuid === undefined) throw new RequestError('NODE_ERA_UNKNOWN', `No node is in era ${params.era}.`);
    return { status: 200, body: EraResponse.parse({ uuid }) };
  },
  // A retired node (forgetNode.ts): API users only, as every route a node certificate is not given (authorization.ts).
  forgetNode: async (state, { params }) => ({
    status: 200,
    body: ForgottenNode.parse(await state.forgetNode(params.node)),
  }),
  listEvents: (state) => ({ status: 200, body: ClusterEventsResponse.parse({ events: state.listEvents() }) }),
  listLeases: (state) => ({
    status: 200,
    body: z.array(Lease).parse(listLeases(state.configuration, state.now())),
    tag: state.configurationTag,
  }),
  acquireLease: async (state, { body, ifMatches, signal, identity, reauthorize }, views) => {
    // Asked for by the node that would hold it (authorization: a node takes leases only for itself).
    const ask = {
      datasetId: body.dataset_id,
      requester: body.node_uuid,
      ifMatches,
      signal,
      authorize: reauthorize,
      canHear: hearsRequests(views, identity),
    };
    // move_here: the move to the lease's node, checked and applied as POST …/datasets/:id {primary} would, joins the
    // lease's write (all or nothing): one request and one commit for the Docker plugin's Mount of a volume last used
    // elsewhere, where a move and a lease took two requests (and, the lease's arriving after the hand-over's
    // release, two commits). The lease first: the move then sees the requester's lease, not the holder's.
    const { move_here: moveHere, ...lease } = body;
    const move = moveHere === true ? datasetUpdate(state, body.dataset_id, { primary: body.node_uuid }) : undefined;
    const apply = (c: Configuration, now: number): Applied<Lease> => {
      const leased = acquireLease(c, lease, now);
      return move === undefined ? leased : { ...leased, config: move.change(leased.config, now).config };
    };
    const applied = await mutateWithHandover(state, ask, (c, now) => {
      if (state.deadSince(body.node_uuid, now) === undefined) return apply(c, now);
      // Held dead: only the lease it already holds, asked for again with nothing changed (review s27 F7: the
      // plugin's start reconcile, an older plugin's Mount of a volume already here), is answered, and nothing is
      // written; a new lease, a new share or a move is refused before any hand-over could start.
      if (c.leases.get(body.dataset_id)?.node_uuid !== body.node_uuid) refuseDeadRequester(state, body.node_uuid, now);
      const again = apply(c, now);
      if (!sameLeaseAndDataset(c, again.config, body.dataset_id)) refuseDeadRequester(state, body.node_uuid, now);
      return { ...again, config: c };
    });
    move?.committed();
    return { status: applied.status, body: Lease.parse(applied.result), tag: state.configurationTag };
  },
  releaseLease: async (state, { params, query, ifMatches }) => {
    const applied = await state.mutate((c, now) => releaseLease(c, params.dataset_id, now, query.holder), ifMatches);
    return { status: 200, body: ReleasedLease.parse(applied.result), tag: state.configurationTag };
  },
  // The holder's "no" to a release request (leaseHandover.ts): its waiters are answered at once.
  // With the request it answers (?by=&at=), only that one: a late or repeated decline leaves a newer one pending.
  declineReleaseRequest: async (state, { params, query, ifMatches }) => {
    const answers = {
      ...(query.by !== undefined ? { by: query.by } : {}),
      ...(query.at !== undefined ? { at: query.at } : {}),
    };
    const applied = await state.mutate(
      (c, now) => declineReleaseRequest(c, params.dataset_id, now, answers),
      ifMatches,
    );
    return { status: 200, body: Lease.parse(applied.result), tag: state.configurationTag };
  },
  reportNodeState: async (state, { params, body: report }, views) => {
    if (report.uuid !== params.uuid) {
      throw new RequestError(
        'NODE_UUID_MISMATCH',
        `The report is for node ${report.uuid} but was sent to ${params.uuid}.`,
      );
    }
    const now = state.now();
    const conflict = reportClaimConflict(
      report,
      (instance) => state.nodesClaimingInstance(instance),
      (n) => isAlive(n, now, state.nodeTimeoutMs),
    );
    if (conflict !== undefined) throw conflict;
    const previous = state.reportedNode(report.uuid)?.report;
    const generation = await state.report(report);
    // A completed local move's data-node marker and loss opt-ins go (dataNode.ts markersToSettle, optInsToSettle); a
    // failed write (or a service killed before it) is retried with the primary's next report. Not on a liveness-only
    // report: its lists say nothing.
    if (report.backend_unseen === undefined)
      await settleDataNodes(state, views, report, previous).catch(() => undefined);
    // The committed tag at this moment: an agent whose snapshot carries another knows it is not current.
    return {
      status: 200,
      body: ReportResponse.parse({
        generation,
        configuration_tag: state.configurationTag,
        node_timeout_seconds: state.nodeTimeoutMs / 1000,
        lease_grace_seconds: state.leaseGraceMs / 1000,
      }),
    };
  },
  waitForCluster: async (state, { query, signal, identity }, views) => {
    // A replica that cannot reach its store holds a view that may be stale: the agent is sent elsewhere (T4 F2).
    state.refuseIfStoreDown();
    if (query.since !== undefined) {
      const wait = Math.min(query.timeout_ms ?? DEFAULT_WAIT_MS, MAX_WAIT_MS);
      // A node's poll waits on its own view: changes elsewhere do not wake it (issue 23).
      await state.waitForChange(query.since, wait, signal, query.node);
      state.refuseIfStoreDown();
    }
    // A delta only when asked for (older agents and other clients read full snapshots) and known; without `node`,
    // of the whole cluster.
    // A node's view carries what its node parses; the whole view, what its asker does (Views.newMembersHidden).
    const viewer = query.node ?? viewerOf(identity);
    const delta =
      query.since !== undefined && query.delta === 'true'
        ? views.deltaFor(query.node ?? WHOLE_CLUSTER, query.since, viewer)
        : undefined;
    return {
      status: 200,
      json:
        delta ??
        (query.node !== undefined ? views.snapshotFor(query.node) : views.snapshot(views.newMembersHidden(viewer))),
      tag: state.configurationTag,
    };
  },
  // One long-lived answer per agent, a line per change of its node's view (agentWatch.ts, issue 23); with `whole=true`
  // (the contract takes exactly one of them), of the whole cluster (the plugins).
  watchCluster: (state, { query, identity }, views) => {
    // As waitForCluster; a watch under way when the store stops answering is ended (ChangeNotifier.releaseAll).
    state.refuseIfStoreDown();
    return {
      status: 200,
      stream: {
        contentType: watchContentType(),
        run: (sink) =>
          watchNode(state, views, query.node ?? WHOLE_CLUSTER, query.since, sink, undefined, viewerOf(identity)),
      },
    };
  },
};

/** What a report's settle works on (the report route's state and views). */
type ReportState = Parameters<Handlers['reportNodeState']>[0];
type ReportViews = Parameters<Handlers['reportNodeState']>[2];

/**
 * Removes the data-node markers, loss opt-ins and accepted-loss markers' nodes `report` lets go, and records with a
 * consumed opt-in the nodes its loss covers (dataNode.ts), in one commit. A settle skipped because its dataset's entry
 * changed while it was computed (stillAsSeen) is computed again once that change is committed, while `report` is still
 * the node's latest (review RV3, Q2): otherwise it waited for the node's next report, and for good if the node died
 * first (a completed move's opt-in left over then covers a failover from it: replicaOptInRule keeps one set before).
 */
async function settleDataNodes(
  state: ReportState,
  views: ReportViews,
  report: NodeReport,
  previous: NodeReport | undefined,
): Promise<void> {
  const latest = state.reportedNode(report.uuid)?.report;
  for (let pass = 1; pass <= SETTLE_PASSES; pass++) {
    const skipped = await settleOnce(state, views, report, previous);
    if (skipped === 0 || state.reportedNode(report.uuid)?.report !== latest) return;
  }
}

/** How often one report's settle is computed at most: each pass but the first follows a commit of its dataset. */
const SETTLE_PASSES = 3;

/** What one settle of `report` removes, computed on the committed configuration (`seen`). */
function settlesOf(
  state: ReportState,
  report: NodeReport,
  previous: NodeReport | undefined,
  mountedOnPrimary: (datasetId: string, primary: string) => boolean,
): {
  seen: Configuration;
  settled: SettledMarker[];
  optIns: SettledOptIn[];
  lossMarks: SettledLossMark[];
} {
  // Computed on the committed configuration, applied onto the latest: only to entries unchanged since (stillAsSeen).
  const seen = state.configuration;
  const holders = (id: string): ReadonlySet<string> | undefined => state.nodeViews.holdersOf(id);
  const reported = (node: string): boolean => state.reportedNode(node) !== undefined;
  return {
    seen,
    settled: markersToSettle(seen, report, previous, mountedOnPrimary, holders, reported),
    optIns: optInsToSettle(seen, report, mountedOnPrimary, holders, reported),
    lossMarks: lossMarksToSettle(seen, report, previous, holders, reported),
  };
}

/** One settle of `report` (settleDataNodes); answers how many it skipped (stillAsSeen: entry changed since). */
async function settleOnce(
  state: ReportState,
  views: ReportViews,
  report: NodeReport,
  previous: NodeReport | undefined,
): Promise<number> {
  const mountedOnPrimary = (id: string, primary: string): boolean => {
    // The dataset's entry in /v1/state/datasets: a "mounted" built before the agent acted on the move is hidden there.
    const entries = z.array(DatasetState).safeParse(JSON.parse(views.datasetStateOf(id)));
    return entries.success && entries.data.some((e) => e.primary === primary && e.path !== undefined);
  };
  // The first dataset-state read after a start learns every alive report (~180 ms at 10,000 nodes, in which every
  // heartbeat and lease waited; issue 23): a settle that reads one (a marker or opt-in left) has them learnt across
  // turns first, then is computed again in the turn that ends. Most reports ask none: computed once.
  let asked = false;
  let found = settlesOf(state, report, previous, () => {
    asked = true;
    return false;
  });
  if (asked) {
    await views.datasetStatesLearnt();
    found = settlesOf(state, report, previous, mountedOnPrimary);
  }
  const { seen, settled, optIns, lossMarks } = found;
  const all = settled.length + optIns.length + lossMarks.length;
  if (all === 0) return 0;
  let kept = all;
  await state.mutate((c) => {
    const markersKept = stillAsSeen(seen, c, settled);
    const marksKept = stillAsSeen(seen, c, lossMarks);
    const optInsKept = stillAsSeen(seen, c, optIns);
    // Re-run on the configuration another replica committed first (Committer.adopt): the last run counts.
    kept = markersKept.length + marksKept.length + optInsKept.length;
    const markers = settledDataNodes(c, markersKept);
    const marks = settledLossMarks(markers.config, marksKept);
    const both = settledOptIns(marks.config, optInsKept);
    const result = [...markers.result, ...marks.result, ...both.result];
    // One commit, one version step.
    return result.length === 0 ? markers : { ...both, config: { ...both.config, version: c.version + 1 }, result };
  });
  return all - kept;
}

const handlers: Handlers = { ...datasetHandlers, ...containerHandlers, ...snapshotHandlers, ...backupHandlers };

/** Every route of the contract with its handler, in the contract's order. */
export const routes: RouteSpec[] = (Object.keys(apiRoutes) as RouteName[]).map(<K extends RouteName>(name: K) =>
  implement(apiRoutes[name], handlers[name]),
);

/**
 * No lease (and so no move_here) for a node this service holds dead (session 27, DEADHOST): the dead-node sweep would
 * release it at its next round (the node dead for the grace already, as every node unheard since a restart is at
 * start + T), and grant and release could both fall between two snapshots the node's plugin reads: its Mount never
 * saw the lease it lost and waited out its timeout. Checked in the commit's change, on the liveness of that moment.
 */
function refuseDeadRequester(state: ControlState, node: string, now: number): void {
  const deadSince = state.deadSince(node, now);
  if (deadSince === undefined) return;
  // Answered with a Retry-After (server.ts): this release's clients wait it out; older ones do not read it on a 409
  // (docs/compatibility.md), so it does not throttle them (review s28 F7).
  throw new ConfigurationError(
    'NODE_DEAD',
    `Node ${node} was declared dead (not heard from since ${new Date(deadSince - state.nodeTimeoutMs).toISOString()}): ` +
      'no lease is granted to it until its dataset agent reports again.',
  );
}

/** Whether `after` holds the same lease and dataset entry for `datasetId` as `before` (a re-acquire changed nothing). */
function sameLeaseAndDataset(before: Configuration, after: Configuration, datasetId: string): boolean {
  return (
    isDeepStrictEqual(before.leases.get(datasetId), after.leases.get(datasetId)) &&
    isDeepStrictEqual(before.datasets.get(datasetId), after.datasets.get(datasetId))
  );
}
