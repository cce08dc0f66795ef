/**
 * The control service's state without HTTP, composed of four parts:
 * - Committer (committer.ts): writes applied in order, group-committed, rebased onto
 *   other replicas' commits;
 * - NodeReports (nodeReports.ts): node and container reports, node liveness;
 * - ChangeNotifier (notifier.ts): the long-poll fan-out on the generation token;
 * - NodeViewIndex (nodeViews.ts): which nodes' views each change touched, so a node's
 *   long-poll is woken (and its delta built) only by changes to its own view;
 * - LeaseExpiryService (leaseExpiry.ts): expiring leases and releasing dead nodes' leases;
 * - SnapshotScheduler (snapshotScheduler.ts): the datasets' snapshot schedules and retention.
 * All read the injected clock `now`.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'winston';
import type {
  ActionError,
  ClusterEvent,
  ContainerReport,
  ContainerState,
  ForgottenNode,
  NodeReport,
  SnapshotConfiguration,
} from '@flocker/api';
import { MIN_SNAPSHOT_INTERVAL_MS } from '@flocker/api';
import { releaseVersion } from '@flocker/metrics';
import { type Clock, systemClock } from '@flocker/runtime';
import { type Applied, type Configuration, configurationTag, purgeSnapshots, registerNode } from './configuration';
import { endBackups, restoredDatasets, withoutReportedFilesystems } from './backups';
import { type ConfigurationStore, identityOf, type NodeIdentity, sameIdentity } from './ConfigurationStore';
import { aliveNodes, type ReportedNode, reportedSnapshotIds } from './clusterState';
import { Committer } from './committer';
import { ConfigurationError, StoreError } from './errors';
import { EventRing } from './events';
import { LeaseExpiryService } from './leaseExpiry';
import { SCHEDULE_HOLD_UNKNOWN_MS, SnapshotScheduler } from './snapshotScheduler';
import { serviceBackend } from './dataNode';
import { NodeReports } from './nodeReports';
import { ChangeNotifier, type ViewSubscription } from './notifier';
import { NodeViewIndex } from './nodeViews';
import { PersistentMap } from './PersistentMap';
import { NEW_MEMBERS_SINCE } from './releases';
import { withRegistering } from './reportClaims';
import {
  type ForgetFacts,
  forgetNodeInConfiguration,
  identitiesToKeep,
  nodeName,
  requireForgettable,
  resolveForgetTarget,
} from './forgetNode';

export { NOTIFY_COALESCE_MS, WAKE_BATCH } from './notifier';

const NO_STALE_MOUNTS: ReadonlyMap<NodeReport, ReadonlySet<string>> = new Map();

/** A dataset moved onto `node` by the commit of configuration `version` (ControlState.movedOnto). */
export interface MovedOnto {
  readonly node: string;
  readonly version: number;
  /** The node's report when it moved, if that showed the dataset mounted (the rule for reports without a version). */
  readonly reportThen?: NodeReport;
}

/**
 * Pure: whether the node's last report (carrying `version`, undefined from an older agent) can show where a dataset
 * moved onto it is. 'stale': a "mounted" there is not current (built before the agent acted on the move: a version
 * older than the move's; without a version, the very report the node had sent before the move); 'ended': it is,
 * and every later report is too (nothing to keep). (A node with no report yet is judged when one comes.)
 */
export function mountVerdict(moved: MovedOnto, report: NodeReport, version: number | undefined): 'stale' | 'ended' {
  if (version !== undefined) return version >= moved.version ? 'ended' : 'stale';
  return report === moved.reportThen ? 'stale' : 'ended';
}

/** ControlState.floor: a configuration version taken whole, and the nodes that reported it (or are held below it). */
interface LoadFloor {
  readonly version: number;
  readonly cleared: Set<string>;
  readonly held: Set<string>;
}

export interface ControlStateOptions {
  store: ConfigurationStore;
  nodeTimeoutMs: number;
  /** How long a node stays dead before the control service releases its unpinned leases; default 5 s. */
  leaseGraceMs?: number;
  logger: Logger;
  /** Wall-clock epoch ms: configuration times, last_seen shown and shared, events; default Date.now. */
  now?: () => number;
  /**
   * Monotonic ms: node liveness, the lease grace, the start timeout (a wall-clock step must not declare nodes dead
   * nor postpone it: runtime clock.ts). Default: systemClock.now, or `now` when that is given alone (one fake clock).
   */
  monoNow?: () => number;
  /**
   * How often liveness is re-checked, from serving() on (before it, only an explicit checkLiveness judges); default
   * min(1 s, nodeTimeout / 4).
   */
  livenessCheckMs?: number;
  /** The shortest snapshot schedule accepted and run; default MIN_SNAPSHOT_INTERVAL_MS (lower only in tests). */
  minSnapshotIntervalMs?: number;
  /** Timers of the snapshot scheduler (a ManualClock in tests); default setTimeout. */
  snapshotTimers?: Pick<Clock, 'setTimer'>;
  /**
   * How long a request blocked by a release_on_request lease waits for its holder to let go of it (handoverWait.ts);
   * default DEFAULT_HANDOVER_WAIT_MS.
   */
  handoverWaitMs?: number;
  /**
   * The first release whose nodes parse the members new in this release (releases.ts: the lease hand-over's and
   * grow_pending); default NEW_MEMBERS_SINCE, else this service's own release. Views leave the members out for nodes
   * reporting an older one.
   */
  newMembersSince?: string;
}

export const DEFAULT_LEASE_GRACE_MS = 5_000;
/** The lease hand-over's wait (docs: the lease hand-over): long enough for a live plugin, short for a user. */
export const DEFAULT_HANDOVER_WAIT_MS = 5_000;

/** A liveness tick this much later than its period (real time) follows a stall of this replica (see the timer). */
const OWN_STALL_MS = 1_000;

export class ControlState {
  /** Random per process start, so a restarted server never re-issues a generation. */
  readonly instanceId = randomBytes(6).toString('hex');
  readonly nodeTimeoutMs: number;
  readonly leaseGraceMs: number;
  readonly handoverWaitMs: number;
  /** ControlStateOptions.newMembersSince. */
  readonly newMembersSince: string;
  readonly now: () => number;
  /** Monotonic ms (ControlStateOptions.monoNow). */
  readonly monoNow: () => number;
  /** When this process started serving, in monotonic ms (NodeReportsOptions.startedAt). */
  private readonly startedAt: number;
  private readonly store: ConfigurationStore;
  private readonly events = new EventRing();
  private readonly committer: Committer;
  private readonly nodes: NodeReports;
  /** Reports whose node is being registered (report()): their claims hold from the check on. */
  private readonly registering = new Set<ReportedNode>();
  private readonly notifier: ChangeNotifier;
  /** Which nodes' views each change touched (per-node wake-ups and deltas on the agent channel). */
  readonly nodeViews: NodeViewIndex;
  private readonly leases: LeaseExpiryService;
  private readonly schedules: SnapshotScheduler;
  readonly minSnapshotIntervalMs: number;
  /** The service's structured log (the lease hand-over logs through it too). */
  readonly logger: Logger;
  /** Why the store does not answer this replica (its probe), while it does not; see storeReachable. */
  private storeDownWhy: string | undefined;
  private livenessTimer: NodeJS.Timeout | undefined;
  /** The liveness timer's period (ControlStateOptions.livenessCheckMs); the timer runs from serving(). */
  private readonly livenessCheckMs: number;
  private closed = false;
  /**
   * Datasets moved onto a node whose reports may not show that yet: dataset id → the node, the configuration version
   * of the commit that moved it there, and (for an agent that reports no version) its report then if that showed it
   * mounted. After a move away and straight back, the node's report built before its agent had acted on the move back
   * (it was unmounting for the move away: intermediate states are debounced, and the other node's "mounted" can come
   * first) may still show it mounted, even one received after the move; /v1/state/datasets does not show such a
   * "mounted" (flocker-go waits for primary == node with a path there). Session 10: the report's
   * configuration_version must be at least the move's version; a report without one (an older agent) counts from the
   * first report received after the move (session 9). Kept until the node reports that version (or a later move).
   */
  private readonly movedOnto = new Map<string, MovedOnto>();
  /** movedOnto's dataset ids by node (a version-only report looks up its node's moves: versionShows). */
  private readonly movesOnto = new Map<string, Set<string>>();
  /** The latest configuration whose moves onto nodes were noted: committed, or delivered by another replica. */
  private movesNotedTo: Configuration;
  /**
   * The load floor (session 11): movedOnto holds the moves seen live only, and the store keeps no move history (its
   * format is shared with the previous release, docs/compatibility.md). A configuration taken whole (loaded at start,
   * or read again after etcd compacted records this replica missed) may follow moves nobody noted here, so a report
   * whose configuration_version is below its version may predate its agent's acting on one. Until the node reports
   * that version or later (`cleared`; the agent does at once once it has acted on it, and an up-to-date agent's first
   * report after a restart carries it), the "mounted" of datasets it is primary of are hidden from its report
   * (`held`), its own or one shared through the store alike. A report without a version keeps the session-9 rule.
   * Dropped once every node the configuration knows cleared it: staleMounts stays O(1) then.
   */
  private floor: LoadFloor | undefined;
  /** Called with each committed configuration (ours or another replica's): onConfiguration. */
  private readonly configurationListeners = new Set<(config: Configuration, closing: boolean) => void>();
  private readonly latestListeners = new Set<(latest: Configuration) => void>();

  private constructor(
    options: ControlStateOptions,
    initial: Configuration,
    /** What each node last reported about itself (stores without node reports): see NodeReports.ghosts. */
    private readonly identities: Map<string, NodeIdentity> = new Map(),
  ) {
    this.store = options.store;
    this.nodeTimeoutMs = options.nodeTimeoutMs;
    this.leaseGraceMs = options.leaseGraceMs ?? DEFAULT_LEASE_GRACE_MS;
    this.handoverWaitMs = options.handoverWaitMs ?? DEFAULT_HANDOVER_WAIT_MS;
    this.newMembersSince = options.newMembersSince ?? NEW_MEMBERS_SINCE ?? releaseVersion();
    this.now = options.now ?? Date.now;
    this.monoNow = options.monoNow ?? (options.now !== undefined ? options.now : () => systemClock.now());
    const logger = options.logger;
    this.logger = logger;
    this.movesNotedTo = initial;
    const now = this.now;
    this.nodeViews = new NodeViewIndex(
      this.instanceId,
      initial,
      () => ({
        cv: this.committer.configuration.version,
        sg: this.nodes.generation,
      }),
      // Liveness as of the change being indexed: an orphan's caretaker (orphanViews.ts) is a live node.
      (uuid) => this.nodes.deadSince(uuid, this.now()) === undefined && this.nodes.reportedNode(uuid) !== undefined,
    );
    this.notifier = new ChangeNotifier(
      () => this.generation,
      (node, since) => this.nodeViews.changedSince(node, since),
    );
    this.committer = new Committer({
      store: options.store,
      logger,
      now,
      initial,
      onChange: () => {
        this.leases.scheduleLeaseExpiry();
        this.schedules.reschedule();
        const config = this.committer.configuration;
        if (config.version > this.movesNotedTo.version) this.movesNotedTo = config;
        this.notifier.notify(
          this.nodeViews.configurationChanged(config, (id, before, after) =>
            this.noteMove(id, before, after, config.version),
          ),
        );
        if (this.configurationListeners.size > 0)
          for (const listener of [...this.configurationListeners]) listener(config, false);
      },
      onApplied: (latest) => {
        if (this.latestListeners.size > 0) for (const listener of [...this.latestListeners]) listener(latest);
      },
    });
    this.startedAt = this.monoNow();
    this.nodes = new NodeReports({
      nodeTimeoutMs: this.nodeTimeoutMs,
      now,
      mono: this.monoNow,
      startedAt: this.startedAt,
      logger,
      events: this.events,
      configuration: () => this.committer.configuration,
      onStateChange: (uuids) => {
        const touched = new Set<string>();
        for (const uuid of uuids)
          for (const n of this.nodeViews.nodeChanged(uuid, this.nodes.reportedNode(uuid)?.report)) touched.add(n);
        // A node declared dead from its identity alone (or back) is in (or leaves) every view.
        if (this.nodes.ghosts !== this.nodeViews.ghosts) {
          this.nodeViews.ghostsChanged(this.nodes.ghosts);
          this.notifier.notify('all');
          return;
        }
        this.notifier.notify(touched);
      },
      onDeadNodesChanged: () => this.leases.scheduleDeadNodeRelease(),
      versionShows: (uuid, report, before, after) => this.versionShows(uuid, report, before, after),
      identities,
    });
    this.leases = new LeaseExpiryService({
      committer: this.committer,
      nodes: this.nodes,
      leaseGraceMs: this.leaseGraceMs,
      // Not while the store does not answer this replica: it heard no node then (FR19-10).
      paused: () => this.storeDownWhy !== undefined,
      events: this.events,
      logger,
      now,
      mono: this.monoNow,
    });
    this.minSnapshotIntervalMs = options.minSnapshotIntervalMs ?? MIN_SNAPSHOT_INTERVAL_MS;
    this.schedules = new SnapshotScheduler({
      configuration: () => this.committer.configuration,
      mutate: (change) => this.committer.mutate(change),
      now,
      ...(options.snapshotTimers !== undefined ? { timers: options.snapshotTimers } : {}),
      minIntervalMs: this.minSnapshotIntervalMs,
      logger,
      // A local dataset's schedule is not run (issue 24: no snapshots there); one whose node has not reported since
      // this start waits a moment for that report (the node timeout, at most 30 s) before it is taken for block storage.
      hold: {
        backendOf: serviceBackend(this),
        unknownUntil: now() + Math.min(this.nodeTimeoutMs, SCHEDULE_HOLD_UNKNOWN_MS),
      },
    });
    this.livenessCheckMs =
      options.livenessCheckMs ?? Math.max(50, Math.min(1000, Math.floor(options.nodeTimeoutMs / 4)));
    this.leases.scheduleLeaseExpiry();
    this.schedules.reschedule();
    if (initial.version > 0) this.raiseFloor(initial.version);
  }

  /**
   * The service began answering requests (startControlService, once it listens): nodes unheard since this start are
   * counted from now, not from this state's construction. The store's read and the listener's set-up before it (slow
   * on a loaded host) were time no agent could report in: a node reporting promptly after the listen was declared dead
   * at construction + T with the dead host of a restart (session 27, DEADHOST). As after a store outage (heardAll).
   */
  serving(): void {
    this.nodes.heardAll();
    // The timer starts here, not at construction (review s27 F8): a start slower than T (the store's read of every
    // report at 100,000 datasets, a loaded host) had it judge, before any agent could report, every node dead and
    // declare the unreported ones (unreportedChecked: heardAll then no longer moved their wait).
    if (this.livenessTimer === undefined && !this.closed) this.startLivenessTimer();
  }

  private startLivenessTimer(): void {
    const every = this.livenessCheckMs;
    // The timer's own lateness, on the real clock: a replica that did not run (SIGSTOP, a paused VM, a long GC) judges no
    // node on that time. The reports sent meanwhile wait in its sockets and, on etcd, the stall guard refuses them for a
    // moment (REPLICA_STALLED: their clients send them again); judged now, every node would be dead and, past T + G,
    // lose its leases. Every node counts as heard instead, as after a store outage (FR19-10; review S26B B2).
    let ranAt = performance.now();
    this.livenessTimer = setInterval(() => {
      const at = performance.now();
      const late = at - ranAt - every;
      ranAt = at;
      if (late > Math.max(OWN_STALL_MS, every)) {
        this.nodes.heardAll();
        this.logger.warn('this replica did not run for a while: no node is judged on that time', {
          stalled_ms: Math.round(late),
        });
        return;
      }
      void this.checkLiveness();
    }, every);
    this.livenessTimer.unref();
  }

  static async open(options: ControlStateOptions): Promise<ControlState> {
    const initial = await options.store.load();
    // Not configuration: unreadable, it costs only the naming of hosts dead since before this start (read as empty).
    const loaded = await options.store.loadNodeIdentities?.().catch((err: unknown) => {
      options.logger.warn(
        'node identities unreadable: read as empty (hosts dead since before this start are not named)',
        {
          error: String(err),
        },
      );
      return undefined;
    });
    if (loaded !== undefined && loaded.skipped > 0)
      options.logger.warn('node identities: unreadable entries skipped (those hosts are not named if dead)', {
        skipped: loaded.skipped,
      });
    // A forgotten node's identity whose removal a stop interrupted (forgetNode.ts identitiesToKeep): finished here.
    const { keep: identities, dropped } = identitiesToKeep(loaded?.identities ?? new Map(), initial);
    if (dropped.length > 0) {
      await options.store.forgetNodeIdentities?.(dropped).then(
        () => options.logger.info('node identities of forgotten nodes removed', { nodes: dropped }),
        (err: unknown) =>
          options.logger.warn('removing node identities of forgotten nodes failed; tried again at the next start', {
            nodes: dropped,
            error: String(err),
          }),
      );
    }
    const state = new ControlState(options, initial, identities);
    try {
      await options.store.subscribe?.({
        configuration: (config, whole) => state.externalConfiguration(config, whole),
        report: (report, lastSeen, stored) => state.externalReport(report, lastSeen, stored),
        containers: (uuid, report, lastSeen, stored) => state.nodes.externalContainers(uuid, report, lastSeen, stored),
        // etcd: forgotten through this replica or another (the store leaves out a node that reports here again).
        nodeGone: (uuid) => state.forgotten(uuid, true),
        reachable: (up, why) => state.storeReachable(up, why),
      });
    } catch (err) {
      await state.close();
      throw err;
    }
    return state;
  }

  get configuration(): Configuration {
    return this.committer.configuration;
  }

  /**
   * Calls `listener` with every configuration committed from now on, by this replica or adopted from another (etcd):
   * what a request waiting on the configuration (the lease hand-over) wakes on; once more with `closing` when the
   * service closes (the waiter answers then). Returns the unsubscribe.
   */
  onConfiguration(listener: (config: Configuration, closing: boolean) => void): () => void {
    this.configurationListeners.add(listener);
    return () => this.configurationListeners.delete(listener);
  }

  /** How many onConfiguration listeners are left (a test checks that none is left behind). */
  get configurationListenerCount(): number {
    return this.configurationListeners.size;
  }

  /**
   * Calls `listener` with the latest configuration each time a write of this replica changes it, before that write's
   * commit starts: a write the listener makes in the same turn (a microtask) is committed with it (session 22: the
   * lease hand-over grants the requester in the release's own commit). Returns the unsubscribe.
   */
  onLatestConfiguration(listener: (latest: Configuration) => void): () => void {
    this.latestListeners.add(listener);
    return () => this.latestListeners.delete(listener);
  }

  /** How many onLatestConfiguration listeners are left. */
  get latestListenerCount(): number {
    return this.latestListeners.size;
  }

  /**
   * The configuration including applied but not yet durable writes: what the next
   * mutate() will see. Authorization checks read it in the same turn of the event loop
   * as the handler's mutate(), so no write can slip between check and change.
   */
  get latestConfiguration(): Configuration {
    return this.committer.latestConfiguration;
  }

  get configurationTag(): string {
    return configurationTag(this.committer.configuration);
  }

  get generation(): string {
    return `${this.instanceId}.${this.committer.configuration.version}.${this.nodes.generation}`;
  }

  /** Counts node report and liveness changes (configuration changes not included). */
  get stateGeneration(): number {
    return this.nodes.generation;
  }

  reportedNodes(): Iterable<ReportedNode> {
    return this.nodes.reportedNodes();
  }

  reportedNodeIds(): Iterable<string> {
    return this.nodes.reportedNodeIds();
  }

  /** The node's last report as JSON, as received (validated) and stored. */
  reportJson(uuid: string): string | undefined {
    return this.nodes.reportJson(uuid);
  }

  reportedNode(uuid: string): ReportedNode | undefined {
    return this.nodes.reportedNode(uuid);
  }

  /** NodeReports.notHeardError: the note on a retired-looking stored report while it still counts alive (FR F2). */
  notHeardError(uuid: string): ActionError | undefined {
    return this.nodes.notHeardError(uuid);
  }

  /** The nodes alive with their state unknown (liveness-only reports, none of their state held): NodeReports. */
  unknownNodes(): Iterable<ReportedNode> {
    return this.nodes.unknownNodes();
  }

  /**
   * The reported nodes whose latest report names compute instance `instanceId` (alive or not), and the reports still
   * registering their node (report()).
   */
  nodesClaimingInstance(instanceId: string): Iterable<ReportedNode> {
    const recorded = this.nodes.claimingInstance(instanceId);
    return this.registering.size === 0 ? recorded : withRegistering(recorded, this.registering, instanceId);
  }

  /** The failover events this replica saw or decided (the last EVENT_CAPACITY), oldest first. */
  listEvents(): ClusterEvent[] {
    return this.events.list();
  }

  /** Records an event a route saw happen (a move cancelled), once the change it is about is committed; logged too. */
  recordEvent(event: ClusterEvent): void {
    this.events.push(event);
    this.logger.info(event.message, {
      event: event.kind,
      ...(event.dataset_id !== undefined ? { dataset: event.dataset_id } : {}),
      ...(event.node_uuid !== undefined ? { node: event.node_uuid } : {}),
    });
  }

  /**
   * Wall-clock epoch ms at which the node was declared dead, or undefined while it is alive (or unknown): when this
   * replica last heard from it plus the node timeout, timed on the monotonic clock (NodeReports.deadSince).
   */
  deadSince(uuid: string, now: number = this.now()): number | undefined {
    return this.nodes.deadSince(uuid, now);
  }

  /**
   * Applies `change` to the latest configuration and resolves once the result is
   * durable. Changes apply in arrival order; all that arrive while the store is busy
   * share the next commit (group commit).
   */
  mutate<T>(change: (config: Configuration, now: number) => Applied<T>, ifMatches?: string): Promise<Applied<T>> {
    // The store already known not to answer: refused at once, nothing sent (a clean STORE_UNAVAILABLE the clients
    // re-send elsewhere), rather than sent to a minority member and answered STORE_OUTCOME_UNKNOWN ~3 timeouts later
    // (review FR19-7).
    try {
      this.refuseIfStoreDown();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.committer.mutate(change, ifMatches);
  }

  /**
   * A configuration another replica committed (shared stores). Replaces ours when newer;
   * writes not yet committed here are re-applied onto it. `whole`: read whole again (StoreListener), the changes
   * since the last one delivered unseen here: a load floor at its version.
   */
  externalConfiguration(config: Configuration, whole?: boolean): void {
    // The committer adopts only the latest of those delivered while a commit of ours is in flight: a move away and
    // straight back between them would show it no move (the primary is the same), so moves are noted here too.
    const prev = this.movesNotedTo;
    if (config.version > prev.version) {
      this.movesNotedTo = config;
      for (const id of PersistentMap.diff(prev.datasets, config.datasets).sets) {
        const before = prev.datasets.get(id)?.primary;
        const after = config.datasets.get(id)?.primary;
        if (before !== after) this.noteMove(id, before, after, config.version);
      }
      if (whole === true) this.raiseFloor(config.version);
    }
    this.committer.externalConfiguration(config);
  }

  /** A node report received by another replica (shared stores). */
  externalReport(report: NodeReport, lastSeen: number, stored?: boolean): void {
    this.nodes.external(report, lastSeen, stored);
    // A liveness-only report (backend_unseen) is no news of the node's state.
    if (report.backend_unseen !== undefined) return;
    if (this.floor !== undefined) this.judgeFloor(report.uuid);
    this.schedules.nodeReported(report.uuid);
  }

  /**
   * Forgets a retired node named by UUID or host (forgetNode.ts; DELETE /v1/configuration/nodes/:node). In this order,
   * so a stop at any point converges: the configuration without it (its nodes entry, its accepted-loss names) is
   * committed first; then this process's memory of it goes and its identity is durably removed (a start finds an
   * identity whose node the configuration lacks and removes it: identitiesToKeep; so does the next identity write).
   * Repeating it once all is done answers NODE_NOT_FOUND.
   */
  async forgetNode(key: string): Promise<ForgottenNode> {
    const facts = (config: Configuration): ForgetFacts => {
      const reported = new Map<string, string>();
      for (const n of this.nodes.reportedNodes()) reported.set(n.report.uuid, n.report.host);
      for (const n of this.nodes.unknownNodes()) reported.set(n.report.uuid, n.report.host);
      return {
        config,
        identities: this.identities,
        reported,
        alive: (uuid) =>
          (this.nodes.reportedNode(uuid)?.heardSinceStart === true && this.deadSince(uuid) === undefined) ||
          this.nodes.unknownAlive(uuid),
        heardSinceStart: (uuid) => this.nodes.reportedNode(uuid)?.heardSinceStart !== false,
        attachedTo: (uuid) => {
          const instance = this.nodes.reportedNode(uuid)?.report.instance_id ?? this.identities.get(uuid)?.instance_id;
          if (instance === undefined) return [];
          const ids = new Set<string>();
          for (const n of aliveNodes(this.nodes.reportedNodes(), this.now(), this.nodeTimeoutMs))
            for (const v of n.report.volumes ?? []) if (v.attached_to === instance) ids.add(v.dataset_id);
          return [...ids].sort();
        },
        pastStartTimeout: this.monoNow() - this.startedAt > this.nodeTimeoutMs,
        nodeTimeoutMs: this.nodeTimeoutMs,
      };
    };
    const target = resolveForgetTarget(key, facts(this.latestConfiguration));
    // Checked on the configuration it changes, in the same turn as the change.
    const applied = await this.mutate((c) => {
      requireForgettable(target, facts(c));
      return forgetNodeInConfiguration(c, target.uuid);
    });
    // A node that reported since the check is back: its report registered it again, and its identity and state are
    // current (its next report records them if not); only a retired one's go. (etcd: the commit deleted its stored
    // reports, guarded by their revision; every replica's watch calls forgotten() too.)
    if (this.forgotten(target.uuid)) await this.store.forgetNodeIdentities?.([target.uuid]);
    this.logger.info(`forgot ${nodeName(target)}`, {
      node: target.uuid,
      ...(target.host !== undefined ? { host: target.host } : {}),
      accepted_loss_datasets: applied.result.acceptedLossDatasets,
    });
    return {
      uuid: target.uuid,
      ...(target.host !== undefined ? { host: target.host } : {}),
      accepted_loss_datasets: applied.result.acceptedLossDatasets,
      data_node_datasets: applied.result.dataNodeDatasets,
    };
  }

  /**
   * Drops a forgotten node from this process, as a restart without it would (NodeReports.forget: no ghost, no node-dead
   * event). False, and nothing done, when it reports again (it joins again as a new node: its report registers it),
   * unless `even` (etcd: its stored report was deleted, and the store judged it not back here).
   */
  private forgotten(uuid: string, even = false): boolean {
    if (!this.nodes.forget(uuid, even)) return false;
    this.identities.delete(uuid);
    if (this.floor !== undefined) {
      this.floor.held.delete(uuid);
      this.dropFloorIfCleared();
    }
    return true;
  }

  /**
   * Records a node's report; returns the generation after it. A liveness-only report (NodeReport.backend_unseen, T1 S0)
   * only keeps its node alive (NodeReports.recordLiveness); one of a node dead here is refused (NODE_DEAD).
   */
  async report(report: NodeReport): Promise<string> {
    const liveness = report.backend_unseen !== undefined;
    if (liveness && this.nodes.livenessRefused(report.uuid, this.now())) throw nodeDeadRefusal(report);
    const config = this.committer.latestConfiguration;
    const registers = registerNode(config, report) !== config;
    // Its identity is made durable before its report is accepted (stores without node reports): a restarted service can
    // name the node to the agents (NodeReports.ghosts) with the instance of its latest accepted report.
    const identity = identityOf(report);
    const record =
      this.store.recordNodeIdentity !== undefined && !sameIdentity(this.identities.get(report.uuid), identity);
    if (registers || record) {
      // Knowing a node is configuration (datasets may name it as primary), so it is durable first. Meanwhile its
      // claims hold (nodesClaimingInstance): the route checked them just before this call, in the same turn.
      const registering: ReportedNode = {
        report,
        lastSeen: this.now(),
        heardAt: this.monoNow(),
        clock: this.nodes.clock,
      };
      this.registering.add(registering);
      try {
        if (registers) await this.mutate((c) => ({ config: registerNode(c, report), result: undefined, status: 200 }));
        if (record) {
          // Not configuration: a failed write must not fail the report (the node would then look dead and be failed
          // over for a file). Its older identity, or none, only names it less well after a restart; tried again at its
          // next report.
          await this.store.recordNodeIdentity?.(identity).then(
            () => {
              // As the store dropped them: another node's identity naming this instance is superseded.
              for (const [uuid, other] of this.identities)
                if (uuid !== report.uuid && other.instance_id === identity.instance_id) this.identities.delete(uuid);
              this.identities.set(report.uuid, identity);
            },
            (err: unknown) =>
              this.logger.warn('recording a node identity failed; the report is taken, the write tried again', {
                node: report.uuid,
                error: String(err),
              }),
          );
        }
      } finally {
        this.registering.delete(registering);
      }
    }
    const now = this.now();
    if (liveness) {
      // Declared dead while registering: refused all the same. Nothing of its state is news (no floor, schedule,
      // snapshot or backup follows from it).
      const shared = this.nodes.recordLiveness(report, now);
      if (shared === undefined) throw nodeDeadRefusal(report);
      await this.store.publishReport?.(report, shared, now, this.nodeTimeoutMs);
      return this.generation;
    }
    // The file systems of mounted restores (T5 F8) are read from the report as received (settleBackups) only: never
    // kept, shared or answered (agents one release behind parse node states strictly, replicas the shared reports).
    // Not the general rule for a new optional member (sent only while used), nor configuration_version's (kept and
    // shared, not answered): either would put it in front of a strict reader during a rolling upgrade. So neither is
    // backend_unseen.fencing_stated shared (nodeReports heldCondition: its decision is in the shared report's fencing).
    const kept = withoutReportedFilesystems(report);
    const json = this.nodes.record(kept, now);
    if (this.floor !== undefined) this.judgeFloor(report.uuid);
    // Its backend is known now: a schedule held back for this first report is planned again.
    this.schedules.nodeReported(report.uuid);
    // Other replicas judge the node's liveness on what reaches etcd: a report not shared is not answered as received.
    await this.store.publishReport?.(kept, json, now, this.nodeTimeoutMs);
    // A report may be the first to show a deleted snapshot gone from its backend. A failed purge is
    // retried with the next report; the report itself was received.
    await this.purgeSnapshots(now).catch((err: unknown) =>
      this.logger.warn('purging deleted snapshots failed', { error: String(err) }),
    );
    await this.settleBackups(report).catch((err: unknown) =>
      this.logger.warn('recording ended backups and restores failed', { error: String(err) }),
    );
    return this.generation;
  }

  /**
   * Drops the deleted snapshots that no alive node reports any more (their backends
   * destroyed them); resolves with their ids once that is durable. While no alive node
   * reports snapshots at all, only those of datasets on local storage (issue 24: its agents
   * take none, so none is held; one asked for before the node reported its backend could
   * otherwise never go).
   */
  async purgeSnapshots(now: number = this.now()): Promise<string[]> {
    const config = this.committer.latestConfiguration;
    if (config.snapshots === undefined || ![...config.snapshots.values()].some((s) => s.deleted === true)) return [];
    const reported = reportedSnapshotIds(aliveNodes(this.nodes.reportedNodes(), now, this.nodeTimeoutMs));
    const backend = serviceBackend(this);
    const onLocal = (s: SnapshotConfiguration, datasets: Configuration['datasets']): boolean => {
      const d = datasets.get(s.dataset_id);
      return d !== undefined && backend(d.primary)?.kind === 'local';
    };
    if (purgeSnapshots(config, reported, onLocal).result.length === 0) return [];
    const applied = await this.mutate((c) => purgeSnapshots(c, reported, onLocal));
    if (applied.result.length > 0) this.logger.info('deleted snapshots purged', { snapshots: applied.result });
    return applied.result;
  }

  /**
   * What a report says of backups (issue 20, backups.ts): the implicit snapshots of backups
   * its agent finished are deleted, and restores its node mounted are marked done. A failed
   * write is retried with the next report (the agent repeats both facts).
   */
  async settleBackups(report: NodeReport): Promise<void> {
    const config = this.committer.latestConfiguration;
    if (endBackups(config, report).result.length > 0) {
      const applied = await this.mutate((c) => endBackups(c, report));
      if (applied.result.length > 0) this.logger.info('backups ended: snapshots deleted', { backups: applied.result });
    }
    if (restoredDatasets(config, report).result.length > 0) {
      const applied = await this.mutate((c) => restoredDatasets(c, report));
      if (applied.result.length > 0) this.logger.info('restores done', { datasets: applied.result });
    }
  }

  /** Records a container agent's report of the Flocker containers on its node (a known node). */
  reportContainers(uuid: string, report: ContainerReport): void {
    const now = this.now();
    this.nodes.recordContainers(uuid, report, now);
    this.store.publishContainers?.(uuid, report, now);
  }

  /** The containers the container agents' fresh reports show. */
  containerStates(): ContainerState[] {
    return this.nodes.containerStates();
  }

  /**
   * Marks nodes that stopped reporting as dead (and revived ones alive); bumps the
   * generation if any changed. Then releases the leases of nodes dead for the lease
   * grace; the promise settles when that release is durable (or failed and was logged).
   */
  checkLiveness(): Promise<void> {
    const now = this.now();
    // Cut off from the store, this replica hears no node: no death, no lease release judged on that (FR19-10).
    if (this.storeDownWhy !== undefined) {
      this.nodes.heardAll();
      return Promise.resolve();
    }
    this.nodes.checkLiveness(now);
    return this.leases.releaseDeadNodeLeases(now);
  }

  /** Applies the snapshot schedules now (what the scheduler's timer does); see SnapshotScheduler.run. */
  runSnapshotSchedules(): Promise<void> {
    return this.schedules.run();
  }

  /** See LeaseExpiryService.releaseDeadNodeLeases. */
  releaseDeadNodeLeases(now: number = this.now()): Promise<void> {
    return this.leases.releaseDeadNodeLeases(now);
  }

  /**
   * Resolves when the generation differs from `since` (with `node`: when that node's view
   * changed since `since`), or after `timeoutMs`.
   */
  waitForChange(since: string, timeoutMs: number, abort?: AbortSignal, node?: string): Promise<void> {
    return this.notifier.waitForChange(since, timeoutMs, abort, node);
  }

  /**
   * The store stopped (or started again) answering this replica (etcd: its probe): while it does not, the agents'
   * long-polls and watches here are ended and refused (refuseIfStoreDown), so they move to a replica that can.
   */
  storeReachable(up: boolean, why?: string): void {
    if (up) {
      if (this.storeDownWhy === undefined) return;
      this.storeDownWhy = undefined;
      // Every node heard now, as at a start: what they reported to other replicas meanwhile arrives through the
      // watch before this replica judges them (review FR19-10).
      this.nodes.heardAll();
      this.logger.info('the configuration store answers again: agent long-polls and watches are served again');
      return;
    }
    this.storeDownWhy = why ?? 'the configuration store does not answer';
    this.nodes.heardAll();
    this.logger.warn('the configuration store does not answer: ending agent long-polls and watches', {
      error: this.storeDownWhy,
      waiting: this.notifier.waiting,
    });
    this.notifier.releaseAll();
  }

  /** Throws 503 STORE_UNAVAILABLE while the store does not answer this replica (see storeReachable). */
  refuseIfStoreDown(): void {
    if (this.storeDownWhy === undefined) return;
    throw new StoreError(
      'STORE_UNAVAILABLE',
      `This replica cannot reach its configuration store (${this.storeDownWhy}): its view may be out of date; ` +
        'ask another replica.',
    );
  }

  /** A standing wait on node's view (the streaming watch); see ChangeNotifier.subscribe. */
  subscribeView(node: string, since: string, wake: (closing: boolean) => void): ViewSubscription {
    return this.notifier.subscribe(node, since, wake);
  }

  get waiting(): number {
    return this.notifier.waiting;
  }

  /**
   * The mounted manifestations /v1/state/datasets does not show (see movedOnto), by report: a dataset's "mounted" on
   * the node it last moved onto, from a report built before its agent had acted on that move; and those of a node
   * held below the load floor (see floor). Empty in the usual case.
   */
  staleMounts(): ReadonlyMap<NodeReport, ReadonlySet<string>> {
    // Read per state-list request: nothing to allocate in the usual case (no move pending, no node below a floor).
    const held = this.floor?.held;
    if (this.movedOnto.size === 0 && (held === undefined || held.size === 0)) return NO_STALE_MOUNTS;
    let out: Map<NodeReport, Set<string>> | undefined;
    const datasets = this.committer.configuration.datasets;
    for (const uuid of held ?? []) {
      const report = this.nodes.reportedNode(uuid)?.report;
      for (const m of report?.manifestations ?? []) {
        if (report === undefined || m.status !== 'mounted' || datasets.get(m.dataset_id)?.primary !== uuid) continue;
        out ??= new Map();
        let ids = out.get(report);
        if (ids === undefined) out.set(report, (ids = new Set()));
        ids.add(m.dataset_id);
      }
    }
    for (const [id, e] of this.movedOnto) {
      const report = this.nodes.reportedNode(e.node)?.report;
      const verdict =
        this.committer.configuration.datasets.get(id)?.primary !== e.node
          ? 'ended'
          : report === undefined
            ? 'unknown'
            : mountVerdict(e, report, this.nodes.configurationVersion(e.node));
      if (verdict === 'ended') this.dropMove(id);
      if (verdict !== 'stale' || report === undefined) continue;
      if (!report.manifestations.some((m) => m.dataset_id === id && m.status === 'mounted')) continue;
      out ??= new Map();
      let ids = out.get(report);
      if (ids === undefined) out.set(report, (ids = new Set()));
      ids.add(id);
    }
    return out ?? NO_STALE_MOUNTS;
  }

  /**
   * A committed configuration (of `version`) changed a dataset's primary (NodeViewIndex.configurationChanged, from its
   * one diff of the datasets): notes a move onto a node (see movedOnto).
   */
  private noteMove(id: string, before: string | undefined, after: string | undefined, version: number): void {
    // Noted already when another replica's configuration was delivered (externalConfiguration): its report then kept.
    const noted = this.movedOnto.get(id);
    if (noted !== undefined && noted.node === after && noted.version === version) return;
    this.dropMove(id);
    // A new dataset (no primary before) cannot have a stale mount; a deleted one is shown by nobody.
    if (before === undefined || after === undefined) return;
    const report = this.nodes.reportedNode(after)?.report;
    const mounted = report?.manifestations.some((m) => m.dataset_id === id && m.status === 'mounted') === true;
    this.movedOnto.set(id, { node: after, version, ...(mounted ? { reportThen: report } : {}) });
    let ids = this.movesOnto.get(after);
    if (ids === undefined) this.movesOnto.set(after, (ids = new Set()));
    ids.add(id);
    // The node's agent may have reported this version already, to us, before we had this commit (it follows another
    // replica): that version-only report was not shared (it showed nothing here then), and a replica that knows only
    // the older version from the store would hide the node's "mounted" until its next other change. Shared now.
    if (this.store.publishReport === undefined) return;
    const unshared = this.nodes.unsharedVersion(after, version);
    if (unshared === undefined) return;
    this.store
      .publishReport(unshared.report, unshared.json, unshared.lastSeen, this.nodeTimeoutMs)
      .catch((err: unknown) =>
        this.logger.warn('sharing a node report with its configuration version failed', {
          node: after,
          error: String(err),
        }),
      );
  }

  private dropMove(id: string): void {
    const node = this.movedOnto.get(id)?.node;
    if (node === undefined) return;
    this.movedOnto.delete(id);
    const ids = this.movesOnto.get(node);
    ids?.delete(id);
    if (ids?.size === 0) this.movesOnto.delete(node);
  }

  /**
   * NodeReports.versionShows: whether a report of `uuid` whose only news is its version (before → after) changes what
   * /v1/state/datasets shows: a "mounted" of a dataset moved onto the node, hidden at `before` and not at `after` (or
   * the other way). Cheap in the usual case (no move onto that node pending): one map lookup. Drops ended moves.
   */
  private versionShows(uuid: string, report: NodeReport, before: number, after: number): boolean {
    const f = this.floor;
    let shows =
      f !== undefined &&
      f.held.has(uuid) &&
      before < f.version !== after < f.version &&
      this.mountsAsPrimary(uuid, report);
    const ids = this.movesOnto.get(uuid);
    if (ids === undefined) return shows;
    for (const id of [...ids]) {
      const moved = this.movedOnto.get(id);
      if (moved === undefined) continue;
      if (this.committer.configuration.datasets.get(id)?.primary !== uuid) {
        this.dropMove(id);
        continue;
      }
      const was = mountVerdict(moved, report, before);
      const now = mountVerdict(moved, report, after);
      if (now === 'ended') this.dropMove(id);
      if (was !== now && report.manifestations.some((m) => m.dataset_id === id && m.status === 'mounted')) shows = true;
    }
    return shows;
  }

  /** Whether the report shows mounted a dataset whose primary the node is (what a load floor may hide). */
  private mountsAsPrimary(uuid: string, report: NodeReport): boolean {
    const datasets = this.committer.configuration.datasets;
    return report.manifestations.some((m) => m.status === 'mounted' && datasets.get(m.dataset_id)?.primary === uuid);
  }

  /** A load floor at `version` (see floor): the nodes whose reports held now carry an older version are held. */
  private raiseFloor(version: number): void {
    const floor: LoadFloor = { version, cleared: new Set(), held: new Set() };
    for (const uuid of this.nodes.reportedNodeIds()) {
      const v = this.nodes.configurationVersion(uuid);
      if (v === undefined) continue;
      if (v >= version) floor.cleared.add(uuid);
      else floor.held.add(uuid);
    }
    this.floor = floor;
    this.dropFloorIfCleared();
  }

  /** After a report of `uuid` (its own or shared by another replica): it clears the floor, or is held below it. */
  private judgeFloor(uuid: string): void {
    const f = this.floor;
    if (f === undefined || f.cleared.has(uuid)) return;
    const v = this.nodes.configurationVersion(uuid);
    if (v !== undefined && v >= f.version) {
      f.cleared.add(uuid);
      f.held.delete(uuid);
      this.dropFloorIfCleared();
    } else if (v === undefined) f.held.delete(uuid);
    else f.held.add(uuid);
  }

  /** Drops the floor once every node the configuration knows cleared it (a node that never reports again keeps it). */
  private dropFloorIfCleared(): void {
    const f = this.floor;
    if (f === undefined || f.held.size > 0) return;
    const known = this.committer.configuration.nodes;
    if (f.cleared.size < known.size) return;
    for (const uuid of known.keys()) if (!f.cleared.has(uuid)) return;
    this.floor = undefined;
  }

  /** Stops timers, releases long-polls and waits for a pending commit. */
  async close(): Promise<void> {
    this.closed = true;
    this.schedules.close();
    const committed = this.committer.close();
    for (const listener of [...this.configurationListeners]) listener(this.committer.configuration, true);
    this.nodes.close();
    if (this.livenessTimer !== undefined) clearInterval(this.livenessTimer);
    this.leases.close();
    this.notifier.close();
    await committed;
    await this.store.close?.();
  }
}

/** The refusal of a liveness-only report of a node dead here (NodeReports.livenessRefused). */
function nodeDeadRefusal(report: NodeReport): ConfigurationError {
  return new ConfigurationError(
    'NODE_DEAD',
    `Node ${report.uuid} was declared dead: a report without its state (backend_unseen) does not bring it back; ` +
      'its first full report does.',
  );
}
