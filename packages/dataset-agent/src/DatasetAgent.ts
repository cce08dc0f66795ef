/**
 * The level-triggered loop: observe -> decide -> act -> report -> wait.
 *
 * A turn observes everything, decides, and queues each dataset that needs
 * work. Up to `concurrency` workers take datasets off the queue and run them
 * one step at a time: look at that dataset afresh, decide, act, report,
 * repeat until it needs nothing. Turns run on a pushed cluster change
 * (the streaming watch, or a long-poll), when the queue drains, when a
 * backoff expires, and on the resync timer. Decisions are never made from
 * remembered state, only from an observation taken just before, or, between the setup steps of a new volume
 * (create, attach, format), from what the step just done was answered by the
 * driver (see stateAfter), or, for the first step of a move, on the view where
 * that step checks its own precondition (moveStart: the old primary's unmount of
 * the dataset's own path, the new primary's attach on a pool change, which the
 * backend refuses unless the volume is free); the agent keeps only the latest observation (for
 * reports) and failure counts (for backoff and reporting).
 *
 * DatasetAgent is the coordinator; each concern is its own class:
 * loopState (the main loop's states), WorkQueue (the workers), ClusterFollower
 * (this node's view: the streaming watch, or long-polls without it),
 * SelfFencing (contact, fencing, heartbeats), Reporter (the node report),
 * ObservationView, PoolKnowledge and FailureLog (what the agent knows).
 */
import { basename } from 'node:path';
import {
  BackendSnapshot,
  configurationVersionOfTag,
  METADATA_NAME_KEY,
  type ClusterSnapshot,
  type GrowPending,
  type NodeReport,
} from '@flocker/api';
import { hasSpares, type BlockDeviceSnapshot } from '@flocker/storage-drivers';
import type winston from 'winston';
import { ActedVersion } from './actedVersion';
import { BackupRunner, RestoreAborts, restoreOnto, s3StoreFor } from './backups';
import { reportedAvailableBytes } from './capacity';
import {
  calculateChanges,
  leaseGone,
  mountPathOf,
  resizesWaiting,
  growPendingOf,
  type GrowingDecisionContext,
} from './calculateChanges';
import { viewGaps } from './viewGaps';
import { ClusterFollower, type SnapshotChange } from './ClusterFollower';
import { followerReads } from './controlChannel';
import { systemClock, type Clock } from './clock';
import type { StopTargets } from './containers';
import type { DatasetAgentOptions } from './DatasetAgentOptions';
import { DatasetWorker, nextAction, type ViewObservation } from './DatasetWorker';
import { desiredStateOf } from './desiredState';
import { discoverLocalState } from './discoverLocalState';
import { AgentError, errorCode, errorMessage } from './errors';
import { FailureLog } from './FailureLog';
import { fillsDevice, type HostMount } from './HostOps';
import type { Action, DesiredState, LocalState } from './LocalState';
import { INITIAL_LOOP_STATE, loopTransition, type LoopEvent, type LoopPhase, type LoopState } from './loopState';
import {
  assumeReleased,
  attachOnRelease,
  configChangeNeedsLook,
  deleteStarts,
  moveStarts,
  releaseNeedsLook,
  unmountOnView,
  type MoveTrigger,
} from './moveStart';
import { ObservationView, type Observation } from './ObservationView';
import { PoolKnowledge } from './PoolKnowledge';
import { ReadOnlyMounts } from './readOnlyMounts';
import { Reporter } from './Reporter';
import { UsedBytesCache } from './usedSpace';
import { SelfFencing } from './SelfFencing';
import { SparePool } from './SparePool';
import { leasesHereChanged } from './spareDecisions';
import { livenessReport, refusesLiveness, withoutFencingStated } from './livenessReport';
import { WorkQueue } from './WorkQueue';

export { backoffDelay } from './clock';
export { parseCrashAfter, type ControlChannel, type CrashAfter, type DatasetAgentOptions } from './DatasetAgentOptions';
export { desiredStateOf } from './desiredState';

/**
 * At most how long a full look is held for the creates a fast start began (see lookHeld): a
 * create's claim, mount and report take tens of ms, a create without a spare (make, attach, mkfs)
 * a second or so; a worker that fails ends the hold at once, one that hangs holds no longer than this.
 */
export const CREATE_HOLD_MS = 2_000;

/** What only the start-up steps find (startDatasetAgent, after the pool check): reported once started. */
export interface StartUpFindings {
  readonly maxVolumeSize?: number;
  readonly zone?: string;
}

export class DatasetAgent {
  private readonly clock: Clock;
  private readonly now: () => number;
  private loop: LoopState = INITIAL_LOOP_STATE;
  /** Ends the loop's sleep (set while sleeping). */
  private endSleep: (() => void) | null = null;
  private loopDone: Promise<void> | null = null;
  private unwatchPool: (() => void) | undefined;
  /** Datasets waiting for a worker (in decision order) and being worked on. */
  private readonly work: WorkQueue<Observation>;
  private readonly cluster: ClusterFollower;
  private readonly fencing: SelfFencing;
  private readonly reporter: Reporter;
  private readonly view = new ObservationView();
  /** The configuration version reports carry (session 10: what a "mounted" in them is current for). */
  private readonly acted = new ActedVersion(
    () => configurationVersionOfTag(this.cluster.snapshot?.configuration_tag),
    () => this.reportVersion(),
  );
  private readonly pool: PoolKnowledge;
  private readonly failures: FailureLog;
  private readonly worker: DatasetWorker;
  /** Datasets whose worker a move started (startMoves), while it runs (see moveInFlight). */
  private readonly moveWorkers = new Set<string>();
  /** A change's full look was put off until the move's workers are done (lookAfterMoves). */
  private lookDeferred = false;
  /** Datasets whose worker a fast start began (startNewDatasets) since the last full look (see lookHeld). */
  private readonly createWorkers = new Set<string>();
  /** Until when (clock ms) the full look may be held for them; undefined: not held. */
  private lookHeldUntil: number | undefined;
  /** The snapshot adopted last (the configuration a change is compared with: configNeedsLook). */
  private lastAdopted: ClusterSnapshot | null = null;
  /** Whether a full look has filled the view: before it only liveness-only reports go out, and nothing acts. */
  private poolSeen = false;
  /** The backend's free bytes as last looked at (reported as available_bytes); undefined: no figure. */
  private availableBytes: number | undefined;
  /** used_bytes of mounted datasets: statfs at report time, reused for a few seconds. */
  private readonly used: UsedBytesCache;
  /** Mounts whose file system went read-only, from each full look's mount table (review T3 finding 2). */
  private readonly readOnly = new ReadOnlyMounts();
  private readonly decision: GrowingDecisionContext;
  /**
   * Datasets mounted here whose ext4 file system waits for an offline grow (online growth refused, a lease on it).
   * In memory: a restarted agent finds them again at its first look (findPendingGrows: smaller than the volume).
   */
  private readonly growPending = new Set<string>();
  /** Datasets whose grow waits for a lease to go (resizesWaiting), as last said in the log. */
  private resizeWaitSaid: ReadonlySet<string> = new Set();
  /** The backend's snapshots at the latest look that listed them (issue 20); reported as they are. */
  private snapshotsSeen: readonly BlockDeviceSnapshot[] | undefined;
  /** Runs this node's backups (issue 20); absent without S3 settings. */
  private readonly backups: BackupRunner | undefined;
  /** The restores running here, aborted when their dataset is deleted or moved, or the agent stops (T5 F3b). */
  private readonly restores = new RestoreAborts();
  /** Spare volumes (issue 23); absent when off or the backend keeps none. */
  readonly spares: SparePool | undefined;
  /** Fencing and the follower run (guard); until start() they only fence: no turn, no worker, no move. */
  private guarded = false;
  private started = false;
  private findings: StartUpFindings;
  /** Since when (ISO) this agent waits for its first full look: the liveness-only reports say so. */
  private readonly unseenSince: string;
  /** The control service refused a liveness-only report (an older one): none is sent for the rest of this run. */
  private livenessRefused = false;
  /** The control service refused backend_unseen.fencing_stated (before it): liveness reports leave it out this run. */
  private fencingStatedRefused = false;

  constructor(private readonly o: DatasetAgentOptions) {
    this.clock = o.clock ?? systemClock;
    this.now = () => this.clock.now();
    this.used = new UsedBytesCache(o.usedBytes, this.now);
    this.unseenSince = new Date(this.clock.wallNow()).toISOString();
    this.findings = {
      ...(o.maxVolumeSize !== undefined ? { maxVolumeSize: o.maxVolumeSize } : {}),
      ...(o.zone !== undefined ? { zone: o.zone } : {}),
    };
    this.work = new WorkQueue<Observation>(
      o.concurrency,
      (id, fresh) => this.acted.track(() => this.worker.converge(id, fresh)),
      () => !this.stopping,
      () => this.workerDone(),
      (id) => this.recheckAfterWorker(id),
    );
    const { clock, logger } = this;
    const settings = o.backups;
    this.failures = new FailureLog({
      clock,
      logger,
      backoffInitialMs: o.backoffInitialMs,
      backoffMaxMs: o.backoffMaxMs,
    });
    this.cluster = new ClusterFollower({
      ...followerReads(o.control, o.nodeUuid),
      nodeUuid: o.nodeUuid,
      clock,
      logger,
      pollWaitMs: o.pollWaitMs ?? 25_000,
      backoffInitialMs: o.backoffInitialMs,
      backoffMaxMs: o.backoffMaxMs,
      adopted: (snap, askedAt, change) => this.adopted(snap, askedAt, change),
    });
    this.pool = new PoolKnowledge(o.driver, clock, () => this.cluster.snapshot);
    this.reporter = new Reporter({
      clock,
      logger,
      send: (report) => this.sendReport(report),
      build: () => this.reportNow(),
      resyncIntervalMs: o.resyncIntervalMs,
      progressReportMs: o.progressReportMs ?? 250,
      answered: (answer, sentAt) => this.fencing.reportAnswered(answer, sentAt),
    });
    this.fencing = new SelfFencing(
      {
        ...o,
        clock,
        logger,
        hostOps: {
          listMounts: () => o.hostOps.listMounts(),
          // What the fence (or a stale mount's removal) takes off is not mounted any more: the next
          // report must not say it is (its look comes only after contact is back, after that report).
          unmount: async (mountPoint) => {
            await o.hostOps.unmount(mountPoint);
            this.view.recordUnmount(mountPoint);
          },
        },
      },
      {
        stopTargets: (paths) => this.stopTargets(paths),
        sendReportNow: async () => this.sendReport(this.reportNow()),
        requestReport: () => this.reporter.request(),
        heartbeat: () => this.reporter.heartbeat(),
        configurationTag: () => this.cluster.snapshot?.configuration_tag,
        refetch: () => this.cluster.refetch(),
        fencingStarted: () => this.work.clearWaiting(),
        wake: () => this.wake(),
      },
    );
    const growPending = this.growPending;
    const resizeUnmounted = o.resizeUnmounted === true;
    const leasedNow = (): ReadonlySet<string> =>
      new Set((this.cluster.snapshot?.leases ?? []).map((l) => l.dataset_id));
    this.decision = {
      nodeUuid: o.nodeUuid,
      mountRoot: o.mountRoot,
      defaultSize: o.defaultSize,
      allocationUnit: o.driver.allocationUnit(),
      canResize: o.driver.resizeVolume !== undefined,
      // Read at each decision: the datasets waiting, and the leases of the latest configuration seen.
      get offlineGrow() {
        return growPending.size > 0 ? { pending: growPending, leased: leasedNow() } : undefined;
      },
      get resizeUnmounted() {
        return resizeUnmounted ? { leased: leasedNow() } : undefined;
      },
    };
    const driver = o.driver;
    this.spares =
      (o.spares ?? 0) > 0 && hasSpares(driver)
        ? new SparePool({
            driver,
            perClass: o.spares ?? 0,
            pinned: [o.defaultSize, ...(o.spareSizes ?? [])].map(
              (size) => Math.ceil(size / this.decision.allocationUnit) * this.decision.allocationUnit,
            ),
            logger,
            clock,
            queueIdle: () => this.work.idle,
          })
        : undefined;
    this.worker = new DatasetWorker({
      ...o,
      ...(this.spares !== undefined ? { sparePool: this.spares } : {}),
      logger,
      clock,
      decision: this.decision,
      offlineGrow: {
        mountPath: (datasetId) => mountPathOf(datasetId, this.decision),
        leaseFree: (datasetId) => !leasedNow().has(datasetId),
        settled: (datasetId, grown) => {
          if (grown) growPending.delete(datasetId);
          else growPending.add(datasetId);
        },
      },
      view: this.view,
      pool: this.pool,
      failures: this.failures,
      fencing: this.fencing,
      reporter: this.reporter,
      snapshot: () => this.cluster.snapshot,
      stopping: () => this.stopping,
      missed: () => this.dispatch('missed'),
      snapshotsSeen: (snapshots) => {
        this.snapshotsSeen = snapshots;
      },
      ...(settings !== undefined
        ? {
            restoreBackup: (action: Extract<Action, { kind: 'restore' }>) =>
              this.restores.run(action, (signal) =>
                restoreOnto(s3StoreFor(settings, action.target), action, logger, {
                  signal,
                  ...(o.availableBytes !== undefined ? { poolFreeBytes: o.availableBytes } : {}),
                }),
              ),
          }
        : {}),
    });
    this.backups =
      settings !== undefined
        ? new BackupRunner({
            driver: o.driver,
            settings,
            logger,
            now: () => clock.now(),
            changed: () => this.reporter.requestProgress(),
          })
        : undefined;
  }

  private get logger(): winston.Logger {
    return this.o.logger;
  }

  private get stopping(): boolean {
    return this.loop.phase === 'stopping';
  }

  /**
   * The self-fence bound from the agent's first instant (FR F4, review T1 S0): self-fencing and the follower run
   * while the start-up steps do (a cloud API that hangs at a restart holds them up for as long as it hangs), so an
   * agent with no accepted report for its bound fences what its predecessor left (stops the containers using its
   * mounts, unmounts) before the control service declares the node dead and hands its volumes out. The follower
   * is needed for the fence: a plugin volume's users are found by the dataset's name in the configuration (Docker
   * shows no Source for it). Until start() a snapshot only feeds the fence: no turn, no worker, no move.
   */
  guard(): void {
    if (this.guarded) return;
    this.guarded = true;
    this.fencing.start();
    this.cluster.start();
  }

  /**
   * guard(), then the start-up steps, then start() with what they found. A step that fails stops the agent (its
   * timers) and is rethrown.
   */
  async startAfter(startUp: () => Promise<StartUpFindings>): Promise<void> {
    this.guard();
    let findings: StartUpFindings;
    try {
      findings = await startUp();
    } catch (e) {
      await this.stop();
      throw e;
    }
    if (!this.stopping) this.start(findings);
  }

  start(findings: StartUpFindings = {}): void {
    if (this.started || this.stopping) return;
    this.findings = { ...this.findings, ...findings };
    this.started = true;
    this.dispatch('start');
    this.unwatchPool = this.o.poolChanges?.(() => this.poolChanged());
    this.guard();
    this.loopDone = this.mainLoop();
    this.spares?.start();
  }

  /** Finish the running steps, start no new ones, stop. */
  async stop(): Promise<void> {
    this.dispatch('stop');
    // Backups and restores are aborted first (T5 F2): a store hung on S3 must not hold up the stop, which leaves the
    // node silent from here on (the backup runner abandons a backup that does not end within a few seconds).
    const backupsStopped = this.backups?.stop();
    this.restores.abortAll();
    this.cluster.stop();
    this.unwatchPool?.();
    this.reporter.stop();
    this.fencing.stop();
    this.work.clearWaiting();
    await this.spares?.stop();
    await backupsStopped;
    await this.work.settled();
    await this.loopDone;
    await this.reporter.settled();
    await this.fencing.settled();
  }

  // ---- the main loop (states and transitions: loopState.ts) -------------------

  /** Applies a loop event and carries out its effect; returns the phase now. */
  private dispatch(event: LoopEvent): LoopPhase {
    const { state, effect } = loopTransition(this.loop, event);
    this.loop = state;
    if (effect === 'endSleep') {
      const end = this.endSleep;
      this.endSleep = null;
      end?.();
    } else if (effect === 'wakeAfterReport') {
      void this.reporter.settled().then(() => this.wake());
    }
    return state.phase;
  }

  private wake(): void {
    this.dispatch('wake');
  }

  private async mainLoop(): Promise<void> {
    while (this.dispatch('turnStarted') === 'observing') {
      let wait = this.o.resyncIntervalMs;
      try {
        wait = await this.turn();
      } catch (e) {
        this.logger.error('observation failed', { code: errorCode(e), error: errorMessage(e) });
        wait = Math.min(wait, this.o.backoffInitialMs);
      }
      if (this.dispatch('turnEnded') === 'sleeping') await this.sleep(wait);
    }
  }

  /**
   * What goes to the control service now: the node report once a full look has filled the view, and before it a
   * liveness-only report (livenessReport.ts): the view is empty then, and a report of it would say "nothing attached
   * or mounted here" (the control service would then let another host take this node's volumes).
   */
  private reportNow(): NodeReport {
    const report = this.buildReport();
    return this.poolSeen || this.livenessRefused
      ? report
      : livenessReport(report, this.unseenSince, !this.fencingStatedRefused);
  }

  /**
   * A report to the control service. Before the first full look only a liveness-only report goes out (review T1 S0):
   * accepted, it counts as the report half of contact (the control service then holds the node alive and its leases
   * kept, so nobody takes its volumes; its T counts from it as from any report), so a restart whose look waits on a
   * hung cloud API does not fence. It never lets the agent act: nothing acts before the first full look (mayActNow).
   * A control service that refuses it (an older one: 400) gets none for the rest of this run, and nothing goes out
   * until the look ends: without an accepted report the node is out of contact, and at its bound it fences (the last
   * chance fails too) before the node timeout declares it dead.
   */
  private async sendReport(report: NodeReport): Promise<unknown> {
    if (this.poolSeen) return this.o.control.reportNodeState(report);
    if (report.backend_unseen === undefined)
      throw new AgentError(
        'BACKEND_NOT_AVAILABLE',
        'no look at the storage backend has finished yet: nothing to report',
      );
    try {
      return await this.o.control.reportNodeState(report);
    } catch (e) {
      if (refusesLiveness(e) && report.backend_unseen.fencing_stated === true && !this.fencingStatedRefused) {
        // A control service before the marker (review s27 F12) refuses the member (its report schema is strict): the
        // report again without it, and so for the rest of this run. A refusal of that too is the older one's, below.
        this.fencingStatedRefused = true;
        this.logger.info('the control service refuses backend_unseen.fencing_stated (an older release): left out', {
          code: errorCode(e),
        });
        return this.sendReport(withoutFencingStated(report));
      }
      if (refusesLiveness(e) && !this.livenessRefused) {
        this.livenessRefused = true;
        this.logger.warn(
          'the control service refuses liveness-only reports (an older release): nothing is reported until the first look at the backend ends',
          { code: errorCode(e), error: errorMessage(e) },
        );
      }
      throw e;
    }
  }

  /** Whether this node may start work now: its first full look done, and its configuration confirmed (mayAct). */
  private mayActNow(): boolean {
    return this.poolSeen && this.fencing.mayAct();
  }

  /** Until the timer or a wake (the loop is in 'sleeping'). */
  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = this.clock.setTimer(() => this.dispatch('timerFired'), Math.max(0, ms));
      this.endSleep = () => {
        timer.cancel();
        resolve();
      };
    });
  }

  /** A snapshot was adopted: contact (see SelfFencing), and a turn if it can change a decision. */
  private adopted(snap: ClusterSnapshot, askedAt: number, change: SnapshotChange): void {
    this.fencing.snapshotSeen(snap, askedAt);
    if (!this.started) {
      // Guarding (start-up steps under way): the first turn looks at everything, this configuration included.
      this.lastAdopted = snap;
      this.fencing.evaluate();
      return;
    }
    // Our own reports move the generation too; what other nodes did matters only to a
    // dataset waiting for one of them to let go.
    const before = this.lastAdopted;
    this.lastAdopted = snap;
    // A container started or stopped here (a lease taken or let go): a spare refill waits until that settles too.
    if (this.spares !== undefined && leasesHereChanged(before, snap, this.o.nodeUuid)) this.spares.kick();
    // A file system waiting for its offline grow whose last lease went: a look decides the grow.
    if (this.growPending.size > 0 && before !== null && leaseGone(before, snap, this.growPending)) this.wake();
    const waiting = change === 'others' ? this.waitingForOtherNodes(snap) : [];
    if (change === 'others') this.markRecheck(snap);
    if (change === 'config') {
      this.logger.debug('cluster changed', { generation: snap.generation, configChanged: true });
      this.abortUnwanted(desiredStateOf(snap));
      const started = this.startMoves(snap, 'config');
      // New datasets and deletions of datasets held here get their workers now too (issue 23, session 12): when that
      // is all the change is, it needs no full look (configChangeNeedsLook).
      const created = new Set<string>();
      if (before !== null && !this.stopping && this.mayActNow()) {
        for (const id of this.fastStart(snap)) created.add(id);
        for (const id of this.startDeletes(before, snap)) started.add(id);
      }
      if (before !== null && !this.configNeedsLook(before, snap, new Set([...started, ...created]))) {
        this.logger.debug('configuration change in hand: no full look', { generation: snap.generation });
        // No look to end with a report: the version, if risen and no work runs, is reported now (ActedVersion).
        this.acted.adopted();
      } else this.lookAfterMoves(started.size);
    } else if (waiting.length > 0) {
      this.logger.debug('cluster changed', { generation: snap.generation, configChanged: false });
      this.lookAfterRelease(snap, waiting, this.startMoves(snap, 'released'));
    }
    this.fencing.evaluate();
  }

  /**
   * Restores and backups the configuration no longer wants (the dataset deleted or moved, the backup's request
   * deleted) are aborted at once (T5 F3, F3b): one hung on S3 would hold its dataset, or every other backup, for
   * as long as its requests hang.
   */
  private abortUnwanted(desired: DesiredState): void {
    for (const id of this.restores.update(desired, this.o.nodeUuid))
      this.logger.info('restore aborted: no longer wanted here', { datasetId: id });
    this.backups?.cancelUnwanted(desired);
  }

  /**
   * The pool changed (a record was written by some host). Only worth a look
   * when a dataset that should be here is, as last seen, attached elsewhere.
   */
  private poolChanged(): void {
    const snapshot = this.cluster.snapshot;
    if (snapshot === null || this.stopping) return;
    const waiting = this.waitingForOtherNodes(snapshot);
    this.markRecheck(snapshot);
    if (waiting.length > 0) {
      this.logger.debug('pool changed while waiting for another node', { datasetId: waiting[0] });
      this.lookAfterRelease(snapshot, waiting, this.startMoves(snapshot, 'released', true));
    }
  }

  /**
   * After a sign of a release: the full look once the workers it started are done, unless those workers are all
   * it could be for (moveStart.releaseNeedsLook). Only in contact: otherwise the look decides as before.
   */
  private lookAfterRelease(snapshot: ClusterSnapshot, waiting: readonly string[], started: ReadonlySet<string>): void {
    const withSnapshots = new Set((snapshot.snapshots ?? []).map((s) => s.dataset_id));
    if (this.fencing.phase === 'inContact' && this.poolSeen && !releaseNeedsLook(waiting, started, withSnapshots))
      this.logger.debug('release in hand: no full look', { datasets: [...started] });
    else this.lookAfterMoves(started.size);
  }

  /**
   * A sign of a release that came while the worker of a dataset this node should hold (and, as last seen, does
   * not) was running: that worker may end on a look listed before the release, and the sign would be lost
   * (waitingForOtherNodes leaves running datasets out). Its dataset is marked dirty in the queue: looked at
   * again once its worker ends (recheckAfterWorker).
   */
  private markRecheck(snapshot: ClusterSnapshot): void {
    for (const d of snapshot.datasets)
      if (
        !d.deleted &&
        d.primary === this.o.nodeUuid &&
        this.work.isRunning(d.dataset_id) &&
        this.view.volumesOf(d.dataset_id).every((v) => v.attachedTo !== this.o.instanceId)
      )
        this.work.markDirty(d.dataset_id);
  }

  /**
   * Whether a dataset marked by markRecheck gets another worker now that its worker ended: only if that left it
   * not attached here (the new primary's own attach record marks it, and its worker ends attached: no extra look
   * on a move's normal path) and this node may still act on it.
   */
  private recheckAfterWorker(id: string): boolean {
    const snapshot = this.cluster.snapshot;
    if (snapshot === null || this.stopping || !this.mayActNow()) return false;
    const d = snapshot.datasets.find((x) => x.dataset_id === id);
    if (d === undefined || d.deleted || d.primary !== this.o.nodeUuid) return false;
    if (this.view.volumesOf(id).some((v) => v.attachedTo === this.o.instanceId)) return false;
    if (this.failures.retryAt(id) > this.now()) return false;
    this.logger.debug('release seen while its worker ran: looked at again', { datasetId: id });
    this.moveWorkers.add(id);
    return true;
  }

  /**
   * The workers a move waits on, started at once rather than after the full look (moveStart.ts):
   * each looks at its own dataset first, and the full look that follows leaves it to them.
   */
  private startMoves(snapshot: ClusterSnapshot, trigger: MoveTrigger, poolChange = false): Set<string> {
    const started = new Set<string>();
    if (this.stopping || !this.mayActNow()) return started;
    const now = this.now();
    const desired = desiredStateOf(snapshot);
    const ids = moveStarts(desired.datasets, trigger, {
      nodeUuid: this.o.nodeUuid,
      instanceId: this.o.instanceId,
      volumesOf: (id) => this.view.volumesOf(id),
      heldElsewhere: this.heldElsewhere(snapshot),
    });
    for (const id of ids) {
      if (this.work.isRunning(id) || this.failures.retryAt(id) > now || !this.work.hasRoom()) continue;
      this.logger.debug('move start', { datasetId: id, trigger });
      this.moveWorkers.add(id);
      this.work.start(
        id,
        trigger === 'config'
          ? this.unmountFirst(desired, id)
          : poolChange
            ? this.attachOnPoolChange(desired, id)
            : undefined,
      );
      started.add(id);
    }
    return started;
  }

  /**
   * The workers of datasets this configuration deleted that are held here (moveStart.deleteStarts), started with no
   * observation: each looks at its dataset first.
   */
  private startDeletes(before: ClusterSnapshot, after: ClusterSnapshot): Set<string> {
    const started = new Set<string>();
    const now = this.now();
    const ids = deleteStarts(before, after, {
      nodeUuid: this.o.nodeUuid,
      instanceId: this.o.instanceId,
      volumesOf: (id) => this.view.volumesOf(id),
    });
    for (const id of ids) {
      if (this.work.isRunning(id) || this.failures.retryAt(id) > now || !this.work.hasRoom()) continue;
      this.logger.debug('delete start', { datasetId: id });
      this.work.start(id);
      started.add(id);
    }
    return started;
  }

  /**
   * Whether a configuration change is worth a full look (moveStart.configChangeNeedsLook): not when all it
   * changed is in the hands of the workers it started, waits for another node's release, or left this
   * node's view with nothing of it here. Only in contact: otherwise the look decides as before.
   */
  private configNeedsLook(before: ClusterSnapshot, after: ClusterSnapshot, started: ReadonlySet<string>): boolean {
    if (this.stopping || this.fencing.phase !== 'inContact' || !this.poolSeen) return true;
    return configChangeNeedsLook(before, after, {
      nodeUuid: this.o.nodeUuid,
      instanceId: this.o.instanceId,
      volumesOf: (id) => this.view.volumesOf(id),
      heldElsewhere: this.heldElsewhere(after),
      started,
    });
  }

  /**
   * A move away's unmount, decided on the view: the worker's first step without a look of its own
   * (moveStart.unmountOnView says when that is safe); undefined: the worker looks first.
   */
  private unmountFirst(desired: DesiredState, datasetId: string): ViewObservation | undefined {
    const dataset = desired.datasets.find((d) => d.datasetId === datasetId);
    if (dataset === undefined) return undefined;
    const local = this.pool.withUnreadable({ instanceId: this.o.instanceId, volumes: this.view.volumesOf(datasetId) });
    const action = nextAction(dataset, desired, local, this.decision);
    if (!unmountOnView(dataset, action, this.o.nodeUuid, mountPathOf(datasetId, this.decision))) return undefined;
    return { seq: this.view.nextSeq(), local, fromView: true };
  }

  /**
   * A move here's attach, decided on the view with the release a pool change signals assumed
   * (moveStart.assumeReleased, attachOnRelease say when): the worker's first step without a look of its own; the
   * backend refuses it if the release was not made, and the worker then looks. Undefined: the worker looks first.
   * Only on the pool watch: another node's report says nothing of the pool.
   */
  private attachOnPoolChange(desired: DesiredState, datasetId: string): ViewObservation | undefined {
    const dataset = desired.datasets.find((d) => d.datasetId === datasetId);
    const seen = this.view.volumesOf(datasetId);
    const volumes = assumeReleased(seen, this.o.instanceId);
    if (dataset === undefined || volumes === undefined) return undefined;
    const local = this.pool.withUnreadable({ instanceId: this.o.instanceId, volumes });
    const onView = nextAction(
      dataset,
      desired,
      this.pool.withUnreadable({ instanceId: this.o.instanceId, volumes: seen }),
      this.decision,
    );
    if (!attachOnRelease(dataset, onView, nextAction(dataset, desired, local, this.decision), this.o.nodeUuid))
      return undefined;
    return { seq: this.view.nextSeq(), local, fromView: true, releaseAssumed: true };
  }

  /**
   * The full look a change is worth: after the workers a move started, once the queue is idle, so that it
   * does not compete with them (a move waits on them; any other change waits for one look either way).
   */
  private lookAfterMoves(started: number): void {
    if (started > 0) this.dispatch('missed');
    else if (this.moveInFlight()) {
      this.dispatch('missed');
      this.lookDeferred = true;
    } else this.wake(); // held for creates (lookHeld): the turn holds it, its timer at the hold's bound
  }

  /**
   * Whether a worker a move started is still on its steps. A change that arrives meanwhile (the other end's
   * report of the release, the new holder's of the mount: each changes who is in this node's view) is looked
   * at once they are done, not during them: a full look then competes with the move's steps, and a turn
   * while datasets are worked on asks for another look once idle anyway. Bounded by the move's own steps
   * (unmount and detach here, or attach and mount), not by other work.
   */
  private moveInFlight(): boolean {
    for (const id of this.moveWorkers) if (this.work.isRunning(id)) return true;
    return false;
  }

  /**
   * Whether the full look is held for the creates a fast start began (issue 23): a new volume's claim,
   * mount and report are what Docker's first Mount waits on, and a full look beside them competes with
   * them for the CPUs; it runs once they are done instead (their datasets need nothing of it: each
   * worker looks at its own). Bounded by those workers only (a failed one ends at once), and by
   * lookHeldUntil: a hung one holds no longer than CREATE_HOLD_MS from the first hold, and creates
   * that keep coming do not push that back.
   */
  private lookHeld(): boolean {
    if (this.lookHeldUntil === undefined || this.stopping || this.fencing.phase !== 'inContact') return false;
    if (this.now() >= this.lookHeldUntil) return false;
    for (const id of this.createWorkers) if (this.work.isRunning(id)) return true;
    return false;
  }

  /**
   * A dataset that should be here but, as last seen, is attached to another node, or to no one while no
   * worker has it (moveStarts leaves such a dataset to the release when another node reports it as its
   * own: the release, this node's news of it, must start it); every such dataset, in the snapshot's order.
   */
  private waitingForOtherNodes(snapshot: ClusterSnapshot): string[] {
    const waiting: string[] = [];
    for (const d of snapshot.datasets) {
      if (d.deleted || d.primary !== this.o.nodeUuid) continue;
      const volumes = this.view.volumesOf(d.dataset_id);
      if (volumes.some((v) => v.attachedTo !== null && v.attachedTo !== this.o.instanceId)) {
        waiting.push(d.dataset_id);
        continue;
      }
      if (volumes.some((v) => v.attachedTo === this.o.instanceId)) continue;
      // Not one queued or whose own step failed: the queue, or its backoff's turn, comes back for it (no look per
      // change meanwhile).
      const id = d.dataset_id;
      if (
        volumes.length > 0 &&
        !this.work.isRunning(id) &&
        !this.work.isWaiting(id) &&
        this.failures.retryAt(id) <= this.now()
      )
        waiting.push(id);
    }
    return waiting;
  }

  /** Whether another live node reports `datasetId` as its own in `snapshot` (moveStart.heldElsewhere). */
  private heldElsewhere(snapshot: ClusterSnapshot): (datasetId: string) => boolean {
    const held = new Set<string>();
    for (const n of snapshot.nodes)
      if (n.alive && n.uuid !== this.o.nodeUuid) for (const m of n.manifestations) held.add(m.dataset_id);
    return (id) => held.has(id);
  }

  /**
   * The users to stop of mounts at dataset paths: the paths themselves (bind mounts)
   * and the Docker volume names of those datasets (a plugin volume shows no source).
   */
  private stopTargets(paths: readonly string[]): StopTargets {
    const ids = new Set(paths.map((p) => basename(p)));
    const volumes = (this.cluster.snapshot?.datasets ?? [])
      .filter((d) => ids.has(d.dataset_id))
      .map((d) => d.metadata[METADATA_NAME_KEY])
      .filter((n): n is string => n !== undefined && n !== '');
    return { paths, volumes };
  }

  // ---- turns and workers -------------------------------------------------------

  /**
   * The datasets a full look leaves without device details: those being worked on
   * (noDetails). Invariant: a busy dataset is its worker's to look at, which it does
   * before every step; probing its devices here could, say, hold a device open just
   * as its worker detaches it, and its view entry stays as the worker left it.
   */
  private busyDatasets(): ReadonlySet<string> {
    return this.work.runningIds();
  }

  /** Observes everything, queues the datasets that need work; returns how long to wait at most. */
  private async turn(): Promise<number> {
    this.fencing.evaluate();
    // A turn that runs while datasets are worked on may miss what they need next.
    if (this.work.runningCount > 0) this.dispatch('missed');
    this.startNewDatasets();
    if (this.lookHeld()) {
      // Once the creates are done (workerDone), or at the bound: the loop's timer.
      this.dispatch('missed');
      this.lookDeferred = true;
      this.logger.debug('full look held for creates', { datasets: this.createWorkers.size });
      return Math.max(0, Math.min((this.lookHeldUntil ?? 0) - this.now(), this.o.resyncIntervalMs));
    }
    this.createWorkers.clear();
    this.lookHeldUntil = undefined;
    let seq = this.view.nextSeq();
    const t0 = this.now();
    const busy = this.busyDatasets();
    const look = async (): Promise<LocalState> =>
      this.pool.withUnreadable(
        await discoverLocalState({
          driver: this.o.driver,
          host: this.o.hostOps,
          instanceId: this.o.instanceId,
          listVolumes: this.pool.listPool,
          noDetails: busy,
          mountRoot: this.o.mountRoot,
          withSnapshots: true,
          onSnapshotListFailed: (e) =>
            this.logger.warn('listing snapshots failed', { code: errorCode(e), error: errorMessage(e) }),
          onMounts: (mounts) => this.sawMounts(mounts),
        }),
      );
    let local = await look();
    if (local.snapshots !== undefined) this.snapshotsSeen = local.snapshots;
    this.logger.debug('observed all', { volumes: local.volumes.length, durationMs: this.now() - t0 });
    // Stale mounts (of a volume this node lost) go first, before any decision. While
    // fencing, the fence pass unmounts everything anyway.
    const strays = (local.strayMounts ?? []).filter((s) => !this.work.isRunning(s.datasetId));
    if ((local.strayMounts ?? []).length > 0 && this.fencing.phase !== 'fencing' && !this.view.actionEndedSince(seq)) {
      if (await this.fencing.removeStrayMounts(strays)) {
        seq = this.view.nextSeq();
        local = await look();
      }
    }
    this.fencing.looked(local);
    this.worker.sawFilesystems(local, true);
    this.view.update(local, seq, undefined, busy);
    // The first look: file systems left smaller than their grown volume (online growth refused before a restart, or
    // under an agent without the offline grow) wait for it again.
    if (!this.poolSeen) await this.findPendingGrows(local);
    this.poolSeen = true;
    const now = this.now();
    // The next full look; reports have their own heartbeat timer. (Counting from the last
    // successful report made a failing control service spin the loop without pause.)
    let wait = this.o.resyncIntervalMs;
    const snapshot = this.cluster.snapshot;
    if (snapshot !== null && !this.stopping && this.fencing.phase === 'inContact') {
      // What this node's view cannot explain (issue 23): looked up once in the whole cluster.
      this.cluster.lookWhole(viewGaps(snapshot, local));
      const desired = desiredStateOf(snapshot);
      this.abortUnwanted(desired);
      this.backups?.update(desired, local.snapshots, this.o.nodeUuid);
      const actions = calculateChanges(desired, local, this.decision);
      this.sayResizesWaiting(resizesWaiting(desired, local, this.decision));
      this.failures.prune(new Set(actions.map((a) => a.datasetId)), (id) => this.work.isRunning(id));
      for (const action of actions) {
        const retryAt = this.failures.retryAt(action.datasetId);
        if (retryAt > now) {
          wait = Math.min(wait, retryAt - now);
          continue;
        }
        this.work.add(action.datasetId);
      }
      // Workers started right now decide their first step on this very observation,
      // unless some action ended while it was made (it may not show that action's effect).
      this.logger.debug('decided', { actions: actions.length, queued: this.work.waitingCount });
      this.work.pump(this.view.actionEndedSince(seq) ? undefined : { seq, local });
    }
    await this.lookAtCapacity();
    // Working datasets report when their work ends.
    if (this.work.runningCount > 0) this.reporter.requestProgress();
    else this.reporter.request();
    return Math.max(0, Math.min(wait, this.o.resyncIntervalMs));
  }

  /** Logs each dataset whose grow starts waiting for its lease to go (once, not at every look). */
  private sayResizesWaiting(waiting: readonly string[]): void {
    for (const datasetId of waiting) {
      if (this.resizeWaitSaid.has(datasetId)) continue;
      this.logger.warn(
        'volume grow pending: the backend grows a volume only detached (extend_attached: reattach), and a container or pod uses it (a lease): it grows once the lease goes',
        { datasetId },
      );
    }
    this.resizeWaitSaid = new Set(waiting);
  }

  /**
   * Datasets mounted here at their own path whose ext4 file system is smaller than the volume: growPending. Short of
   * it by no more than mke2fs and resize2fs leave off is full size (FR finding 7): no grow would change it.
   */
  private async findPendingGrows(local: LocalState): Promise<void> {
    for (const v of local.volumes) {
      if (v.attachedTo !== local.instanceId || v.devicePath === undefined) continue;
      if (!(v.mountPoints ?? []).includes(mountPathOf(v.datasetId, this.decision))) continue;
      const fs = await this.o.hostOps.filesystemOf(v.devicePath).catch(() => null);
      if (fs?.fstype === 'ext4' && !fillsDevice(fs, v.size)) {
        this.growPending.add(v.datasetId);
        this.logger.info('file system smaller than its volume: grows when no container uses it', {
          datasetId: v.datasetId,
          filesystemBytes: fs.size,
          volumeBytes: v.size,
        });
      }
    }
  }

  /** A full look's mount table: mounts gone read-only are logged once (each is reported as its dataset's error). */
  private sawMounts(mounts: readonly HostMount[]): void {
    // Only this agent's mounts (the host has read-only mounts of its own: /sys, /proc/sys …).
    const root = this.o.mountRoot.endsWith('/') ? this.o.mountRoot : `${this.o.mountRoot}/`;
    const ours = mounts.filter((m) => m.mountPoint.startsWith(root));
    const turned = this.readOnly.saw(ours, new Date(this.clock.wallNow()).toISOString());
    for (const mountPoint of turned) {
      const m = ours.find((x) => x.mountPoint === mountPoint);
      this.logger.warn('a mount went read-only: writes to it fail (see the kernel log; a full pool?)', {
        mountPoint,
        device: m?.device,
        options: m?.superOptions,
      });
    }
  }

  /** The backend's free bytes as reported (see capacity.ts); a failed look reports no figure rather than an old one. */
  private async lookAtCapacity(): Promise<void> {
    if (this.o.availableBytes === undefined) return;
    try {
      this.availableBytes = reportedAvailableBytes(await this.o.availableBytes());
    } catch (e) {
      if (this.availableBytes !== undefined)
        this.logger.warn('cannot find the free capacity of the backend', {
          code: errorCode(e),
          error: errorMessage(e),
        });
      this.availableBytes = undefined;
    }
  }

  /**
   * The fast start of a dataset this node should hold that has no volume in the
   * pool at all (typically one just created): its first step (create) needs no
   * look at devices and mounts, so its worker starts without waiting for the
   * full look at every other dataset. Invariant: the create action itself re-checks
   * the pool just before creating (never a second volume), and finding a volume
   * there it does nothing and the worker looks; so a candidate wrongly thought new
   * costs one futile step, never data.
   */
  private startNewDatasets(): void {
    const snapshot = this.cluster.snapshot;
    // Only once a full look has shown the pool (mayActNow): a dataset it showed no volume for starts at once
    // (fastStart finds the candidates). Before it nothing acts, whatever contact a liveness report confirmed.
    if (snapshot === null || this.stopping || !this.mayActNow()) return;
    this.fastStart(snapshot);
  }

  /** The datasets this node should hold that the view shows no volume of and no worker has (or waits for). */
  private newDatasets(desired: DesiredState): DesiredState['datasets'] {
    const now = this.now();
    return desired.datasets.filter(
      (d) =>
        !d.deleted &&
        d.primary === this.o.nodeUuid &&
        // Seen with a volume at the last look: the full look decides (no extra listing).
        this.view.volumesOf(d.datasetId).length === 0 &&
        !this.work.isRunning(d.datasetId) &&
        !this.work.isWaiting(d.datasetId) &&
        this.failures.retryAt(d.datasetId) <= now,
    );
  }

  /**
   * The fast starts of the new datasets, once a full look has shown the pool (its callers check mayActNow); returns
   * those started. Called by a turn and on a new configuration (adopted): no listing, so no wait for a turn. The first
   * full look is never held for them: none starts before it.
   */
  private fastStart(snapshot: ClusterSnapshot): Set<string> {
    const started = new Set<string>();
    const seq = this.view.nextSeq();
    const desired = desiredStateOf(snapshot);
    const now = this.now();
    const candidates = this.newDatasets(desired);
    if (candidates.length === 0 || !this.work.hasRoom()) return started;
    // The hold's bound counts from the first of creates that overlap; with none left running (no turn cleared them:
    // the change needed no look), a new one starts a new bound.
    for (const id of this.createWorkers) if (!this.work.isRunning(id)) this.createWorkers.delete(id);
    if (this.createWorkers.size === 0) this.lookHeldUntil = undefined;
    for (const dataset of candidates) {
      if (this.work.isRunning(dataset.datasetId) || !this.work.hasRoom()) continue;
      const local: LocalState = this.pool.withUnreadable({ instanceId: this.o.instanceId, volumes: [] });
      const action = nextAction(dataset, desired, local, this.decision);
      if (action === undefined) continue;
      this.logger.debug('fast start', { datasetId: dataset.datasetId, kind: action.kind });
      this.view.update(local, seq, dataset.datasetId);
      this.work.start(dataset.datasetId, { seq, local });
      started.add(dataset.datasetId);
      this.createWorkers.add(dataset.datasetId);
      this.lookHeldUntil ??= now + CREATE_HOLD_MS;
    }
    return started;
  }

  /** A worker ended (the queue already started the next ones). */
  private workerDone(): void {
    for (const id of this.moveWorkers) if (!this.work.isRunning(id)) this.moveWorkers.delete(id);
    // A look put off for a move or a create (lookAfterMoves, turn) waits for their workers only, not for other work.
    const held = this.lookHeld();
    if (this.lookDeferred && !this.moveInFlight() && !held) {
      this.lookDeferred = false;
      if (!this.work.idle) this.wake();
    } else if (held && this.work.hasRoom()) this.wake(); // a turn (held) fast-starts the next new datasets
    if (!this.work.idle) return;
    this.dispatch('queueIdle');
    // Lower priority than every real operation: spares are made only while nothing else is to do.
    this.spares?.kick();
  }

  /**
   * A risen configuration version (ActedVersion) goes out at once only while something is mounted here: the control
   * service counts a node's "mounted" of a dataset moved onto it from a report of at least the move's version, so the
   * version can change what it shows only in a report with a mount (ControlState.versionShows). With nothing mounted
   * here it shows nothing new, and goes as progress (with the next report, or within progressReportMs). Issue 23: a
   * move's new primary sent one at the configuration, beside the old primary's unmount: a request, and with what it
   * held as progress (the pool's volumes) a state change the service pushed to every follower and waiter.
   */
  private reportVersion(): void {
    // On every version rise: a walk of the pool's view that stops at the first mount (a shared pool lists thousands).
    const mountedHere = this.view.some((v) => v.attachedTo === this.o.instanceId && (v.mountPoints ?? []).length > 0);
    if (mountedHere) this.reporter.request();
    else this.reporter.requestProgress();
  }

  /** Leases held on this node in the last configuration seen (flocker_leases). */
  leasesHere(): number {
    return this.cluster.snapshot?.leases.filter((l) => l.node_uuid === this.o.nodeUuid).length ?? 0;
  }

  buildReport(): NodeReport {
    const volumes = this.view.all();
    const restoring = pendingRestores(this.cluster.snapshot);
    const manifestations: NodeReport['manifestations'] = [];
    const mountedPaths = new Set<string>();
    const mountedAt: { datasetId: string; path: string }[] = [];
    for (const v of volumes) {
      if (v.attachedTo !== this.o.instanceId) continue;
      const path = mountPathOf(v.datasetId, this.decision);
      const mounted = (v.mountPoints ?? []).includes(path);
      const used = mounted ? this.used.usedBytes(path) : undefined;
      if (mounted) {
        mountedPaths.add(path);
        mountedAt.push({ datasetId: v.datasetId, path });
      }
      manifestations.push({
        dataset_id: v.datasetId,
        blockdevice_id: v.blockdeviceId,
        size: v.size,
        status: mounted ? 'mounted' : 'attached',
        ...(v.devicePath !== undefined ? { device_path: v.devicePath } : {}),
        ...(mounted ? { path } : {}),
        ...(used !== undefined ? { used_bytes: used } : {}),
        // Only while its restore is not marked done (T5 F8): the mark records it in the metadata.
        ...(mounted && v.filesystem !== undefined && restoring.has(v.datasetId) ? { filesystem: v.filesystem } : {}),
        // A grow waiting until nothing uses the volume (TN F3): the grown block device is not a grown volume yet.
        ...growPendingMember(growPendingOf(v.datasetId, mounted, this.growPending, this.resizeWaitSaid)),
      });
    }
    this.used.retain(mountedPaths);
    // A volume whose record went bad is still there (as last known), not gone: other nodes learn whose it is.
    const unreadable = this.pool.stillThere(new Set(volumes.map((v) => v.blockdeviceId)));
    const fencing = this.fencing.report;
    const backups = this.backups?.report();
    return {
      uuid: this.o.nodeUuid,
      era: this.o.era,
      host: this.o.host,
      instance_id: this.o.instanceId,
      backend: this.o.driver.backend,
      manifestations,
      ...(fencing !== undefined ? { fencing } : {}),
      volumes: [...volumes, ...unreadable]
        .sort((a, b) => (a.blockdeviceId < b.blockdeviceId ? -1 : 1))
        .map((v) => ({
          blockdevice_id: v.blockdeviceId,
          dataset_id: v.datasetId,
          size: v.size,
          attached_to: v.attachedTo,
        })),
      ...(this.snapshotsSeen !== undefined ? { snapshots: this.snapshotsSeen.flatMap(reportedSnapshot) } : {}),
      ...(this.backups !== undefined ? { backup_store: true as const } : {}),
      ...(backups !== undefined ? { backups } : {}),
      errors: [...this.failures.reportErrors(), ...this.pool.reportErrors(), ...this.readOnly.errors(mountedAt)],
      ...(this.findings.maxVolumeSize !== undefined ? { max_volume_size: this.findings.maxVolumeSize } : {}),
      ...(this.findings.zone !== undefined ? { zone: this.findings.zone } : {}),
      ...(this.o.version !== undefined ? { version: this.o.version } : {}),
      ...this.acted.reported(),
      ...(this.availableBytes !== undefined ? { available_bytes: this.availableBytes } : {}),
    };
  }
}

function growPendingMember(pending: GrowPending | undefined): { grow_pending?: GrowPending } {
  return pending !== undefined ? { grow_pending: pending } : {};
}

/** Per snapshot: the datasets whose restore (source_backup) the control service has not marked done. */
const restoresOf = new WeakMap<ClusterSnapshot, ReadonlySet<string>>();
const NO_RESTORES: ReadonlySet<string> = new Set();

/**
 * The datasets of the snapshot whose restore is not marked done yet: a report says the file system of those it
 * has mounted (ManifestationState.filesystem, T5 F8), which the control service records with the restore's mark.
 * Only those: agents one release behind parse node states strictly, so the member shows only until that mark.
 */
export function pendingRestores(snapshot: ClusterSnapshot | null): ReadonlySet<string> {
  if (snapshot === null) return NO_RESTORES;
  let set = restoresOf.get(snapshot);
  if (set === undefined) {
    const ids = snapshot.datasets
      .filter((d) => d.source_backup !== undefined && d.source_backup.restored !== true && !d.deleted)
      .map((d) => d.dataset_id);
    set = ids.length > 0 ? new Set(ids) : NO_RESTORES;
    restoresOf.set(snapshot, set);
  }
  return set;
}

/**
 * A snapshot of the backend as the node report carries it; none for one the report's schema
 * refuses (not a Flocker snapshot id: made by hand), which would make the whole report fail.
 */
function reportedSnapshot(s: BlockDeviceSnapshot): BackendSnapshot[] {
  const parsed = BackendSnapshot.safeParse({
    snapshot_id: s.snapshotId,
    dataset_id: s.datasetId,
    size: s.size,
    created_at: s.createdAt,
    status: s.status,
    backend_id: s.backendId,
    source_blockdevice_id: s.sourceBlockdeviceId,
  });
  return parsed.success ? [parsed.data] : [];
}
