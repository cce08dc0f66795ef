/**
 * The level-triggered loop: observe -> decide -> act -> report -> wait.
 *
 * A turn observes everything, decides, and queues each dataset that needs
 * work. Up to `concurrency` workers take datasets off the queue and run them
 * one step at a time: look at that dataset afresh, decide, act, report,
 * repeat until it needs nothing. Turns run on a pushed cluster change
 * (long-poll), when the queue drains, when a backoff expires, and on the
 * resync timer. Decisions are never made from remembered state, only from an
 * observation taken just before, or, between the setup steps of a new volume
 * (create, attach, format), from what the step just done was answered by the
 * driver (see stateAfter); the agent keeps only the latest observation (for
 * reports) and failure counts (for backoff and reporting).
 */
import { basename, dirname } from 'node:path';
import { METADATA_NAME_KEY, METADATA_PROFILE_KEY, ReportResponse, type ActionError, type ClusterSnapshot, type NodeReport } from '@flocker/api';
import type { BlockDeviceApi, BlockDeviceVolume, PoolListing, VolumeProblem } from '@flocker/storage-drivers';
import type winston from 'winston';
import type { z } from 'zod';
import { calculateChanges, mountPathOf } from './calculateChanges';
import { backoffDelay, systemClock, type Clock, type TimerHandle } from './clock';
import type { ContainerStopper, StopTargets } from './containers';
import { discoverLocalState } from './discoverLocalState';
import { ACQUIRING_ACTIONS, ContactTracker, heartbeatMs, lastChanceMs, selfFenceBoundMs, type ContactPhase } from './fencing';
import { errorCode, errorMessage } from './errors';
import { executeAction, type ActionResult } from './executeAction';
import { FreshRead } from './FreshRead';
import type { HostOps } from './HostOps';
import { attributeProblems, listPoolOf, reportedVolumes, type ReportedVolume } from './poolSafety';
import { stateAfter } from './stateAfter';
import { WorkQueue } from './WorkQueue';
import { ACTION_KINDS, type Action, type ActionKind, type DecisionContext, type DesiredState, type DiscoveredVolume, type LocalState, type StrayMount } from './LocalState';

/** The part of FlockerClient the agent uses. */
export interface ControlChannel {
  reportNodeState(report: NodeReport): Promise<unknown>;
  waitForCluster(since?: string, timeoutMs?: number): Promise<ClusterSnapshot>;
}

export interface CrashAfter {
  readonly kind: ActionKind;
  readonly count: number;
}

export interface DatasetAgentOptions {
  readonly nodeUuid: string;
  readonly era: string;
  readonly host: string;
  readonly instanceId: string;
  readonly driver: BlockDeviceApi;
  readonly hostOps: HostOps;
  readonly control: ControlChannel;
  readonly mountRoot: string;
  readonly defaultSize: number;
  readonly resyncIntervalMs: number;
  readonly concurrency: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly logger: winston.Logger;
  /** Test hook: die (SIGKILL) right after the count-th successful action of this kind. */
  readonly crashAfter?: CrashAfter;
  readonly crash?: () => void;
  /** How long one long-poll waits. */
  readonly pollWaitMs?: number;
  /**
   * Subscribes to "the shared pool changed" hints (the loopback driver's
   * watchPool); returns an unsubscribe function. Lets a node waiting for
   * another node to let go of a volume look again at once, not only after
   * the control service relays that node's report.
   */
  readonly poolChanges?: (onChange: () => void) => () => void;
  /**
   * While a dataset is still stepping towards its goal, how long the report of
   * its intermediate states may wait (default 250 ms). A report goes out at once
   * when a dataset's work ends (converged, failed, or waiting); in between, each
   * step's report would only make the control service, its watchers and this
   * agent (the echoed snapshot) work on the critical path of the next step.
   */
  readonly progressReportMs?: number;
  /** Every timer and timestamp of the agent (default: the system clock). */
  readonly clock?: Clock;
  /**
   * Self-fence bound from agent.yml (ms); the bound used is the shorter of this and
   * half the control service's node timeout (see fencing.ts).
   */
  readonly selfFenceMs?: number;
  /** Stops this host's containers that use Flocker volumes when the node fences itself. */
  readonly containers?: ContainerStopper;
  /** Releases what fences left behind on this host (the loopback driver's releaseFenced). */
  readonly releaseFenced?: () => Promise<unknown>;
  /** The node timeout (ms) last learned by an earlier run: the bound holds from start even when cut off then. */
  readonly lastNodeTimeoutMs?: number;
  /** Told when the control service's node timeout is learned or changes (seconds), to keep it for the next start. */
  readonly onNodeTimeout?: (seconds: number) => void;
  /** The largest volume the backend can create (driver.maximumVolumeSize), reported as max_volume_size. */
  readonly maxVolumeSize?: number;
}

/** One observation and its sequence number (see updateView). */
interface Observation {
  readonly seq: number;
  readonly local: LocalState;
}

interface Failure {
  readonly action: Action;
  readonly attempts: number;
  readonly since: string;
  readonly code: string;
  readonly message: string;
  readonly retryAt: number;
}

export { backoffDelay } from './clock';

/** Parses FLOCKER_AGENT_CRASH_AFTER=<kind>:<n>. */
export function parseCrashAfter(value: string | undefined): CrashAfter | undefined {
  if (value === undefined || value === '') return undefined;
  const m = /^([a-zA-Z]+):(\d+)$/.exec(value);
  const kinds: readonly string[] = ACTION_KINDS;
  if (!m || !kinds.includes(m[1]!) || Number(m[2]) < 1) {
    throw new Error(`FLOCKER_AGENT_CRASH_AFTER must be <action kind>:<n> (n >= 1), got ${JSON.stringify(value)}`);
  }
  return { kind: m[1] as ActionKind, count: Number(m[2]) };
}

export function desiredStateOf(snapshot: ClusterSnapshot): DesiredState {
  return {
    datasets: snapshot.datasets.map((d) => {
      const profile = d.metadata[METADATA_PROFILE_KEY];
      return {
        datasetId: d.dataset_id,
        primary: d.primary,
        maximumSize: d.maximum_size ?? null,
        deleted: d.deleted,
        ...(profile !== undefined ? { profile } : {}),
      };
    }),
    nodes: snapshot.nodes.map((n) => ({ uuid: n.uuid, instanceId: n.instance_id, alive: n.alive })),
  };
}

export class DatasetAgent {
  private snapshot: ClusterSnapshot | null = null;
  /** Datasets waiting for a worker (in decision order) and being worked on. */
  private readonly work: WorkQueue<Observation>;
  private readonly failures = new Map<string, Failure>();
  private readonly successes = new Map<ActionKind, number>();
  /** The latest observation of each dataset's volumes, and when (sequence number) it was made. */
  private readonly view = new Map<string, { seq: number; volumes: DiscoveredVolume[] }>();
  /**
   * Volumes this process created and has not yet tried to format or touched
   * otherwise (attach aside): their look skips the filesystem probe (see
   * discoverLocalState's knownBlank). In memory only: after a restart every
   * volume is probed again.
   */
  private readonly blank = new Set<string>();
  private readonly isBlank = (blockdeviceId: string): boolean => this.blank.has(blockdeviceId);
  private seq = 0;
  /**
   * Set when something may have been missed while datasets were worked on: a
   * turn ran meanwhile (it leaves busy datasets alone, and a worker decides on a
   * snapshot read before its observation), or an action failed (its retry time
   * needs a turn to set the timer). Then the agent takes a full look once idle.
   */
  private lookWhenIdle = false;
  /** Whether a full look has filled the view (see startNewDatasets). */
  private poolSeen = false;
  /** The sequence number taken when the latest action ended. */
  private lastActionEnd = 0;
  private wakeUp: (() => void) | null = null;
  private woken = false;
  private stopping = false;
  private lastReport = '';
  private lastReportAt = 0;
  private reportWanted = false;
  private reporting: Promise<void> | null = null;
  private progressTimer: TimerHandle | null = null;
  private loopDone: Promise<void> | null = null;
  private unwatchPool: (() => void) | undefined;
  private readonly clock: Clock;
  private readonly now: () => number;
  // ---- self-fencing (fencing.ts has the rules) ----
  private readonly contact: ContactTracker;
  /** The control service's node timeout, once told. */
  private nodeTimeoutMs: number | undefined;
  /** When the snapshot held was asked for: an answer to an older question never replaces it. */
  private snapshotAskedAt = -Infinity;
  private fenceTimer: TimerHandle | null = null;
  private heartbeatTimer: TimerHandle | null = null;
  private fencePass: Promise<void> | null = null;
  private fenceDone = false;
  private cleanupDone = false;
  private refetching: Promise<void> | null = null;
  /** What the last self-fence did; reported until the next one. */
  private fenceReport: NonNullable<NodeReport['fencing']> | undefined;
  private readonly decision: DecisionContext;
  /** Concurrent observations share pool listings (each still started after its caller asked). */
  private readonly poolListing: FreshRead<PoolListing>;
  /** Unreadable records of the latest listing (reported as errors; their datasets are left alone). */
  private problems: readonly VolumeProblem[] = [];
  /** When each unreadable record was first seen. */
  private readonly problemSince = new Map<string, string>();
  /**
   * Every volume as last listed, kept while its record is unreadable (else taken from a
   * node's report): attributes a record that goes bad to its dataset, and keeps the volume
   * in this node's reports, so that every other node knows whose it is too.
   */
  private readonly lastKnown = new Map<string, BlockDeviceVolume>();

  constructor(private readonly o: DatasetAgentOptions) {
    this.work = new WorkQueue<Observation>(
      o.concurrency,
      (id, fresh) => this.converge(id, fresh),
      () => !this.stopping,
      () => this.workerDone(),
    );
    this.clock = o.clock ?? systemClock;
    this.now = () => this.clock.now();
    this.contact = new ContactTracker(this.now());
    this.nodeTimeoutMs = o.lastNodeTimeoutMs;
    this.poolListing = new FreshRead(() => listPoolOf(o.driver));
    this.decision = {
      nodeUuid: o.nodeUuid,
      mountRoot: o.mountRoot,
      defaultSize: o.defaultSize,
      allocationUnit: o.driver.allocationUnit(),
      canResize: o.driver.resizeVolume !== undefined,
    };
  }

  private readonly listPool = async (): Promise<BlockDeviceVolume[]> => {
    const listing = await this.poolListing.get();
    this.notePool(listing);
    return listing.volumes;
  };

  /** Keeps what a listing says about unreadable records and about which dataset each volume holds. */
  private notePool(listing: PoolListing): void {
    const bad = new Set(listing.problems.map((p) => p.blockdeviceId));
    for (const v of listing.volumes) this.lastKnown.set(v.blockdeviceId, v);
    const listed = new Set(listing.volumes.map((v) => v.blockdeviceId));
    for (const id of [...this.lastKnown.keys()]) if (!listed.has(id) && !bad.has(id)) this.lastKnown.delete(id);
    for (const id of bad) {
      if (this.lastKnown.has(id)) continue;
      const reported = this.snapshot?.nodes.flatMap((n) => (n.backend === this.o.driver.backend ? (n.volumes ?? []) : [])).find((v) => v.blockdevice_id === id);
      if (reported !== undefined) {
        this.lastKnown.set(id, { blockdeviceId: id, datasetId: reported.dataset_id, size: reported.size, attachedTo: reported.attached_to });
      }
    }
    for (const id of [...this.problemSince.keys()]) if (!bad.has(id)) this.problemSince.delete(id);
    for (const id of bad) if (!this.problemSince.has(id)) this.problemSince.set(id, new Date(this.clock.wallNow()).toISOString());
    this.problems = listing.problems;
  }

  /** Volumes the nodes of this backend report for existing datasets (empty without a snapshot). */
  private reportedVolumes(): ReportedVolume[] {
    return this.snapshot === null ? [] : reportedVolumes(this.snapshot, this.o.driver.backend);
  }

  /** The unreadable records, each with its dataset when anything tells. */
  private unreadableVolumes(): VolumeProblem[] {
    return attributeProblems(this.problems, this.rememberedDatasets(), this.reportedVolumes());
  }

  private rememberedDatasets(): Map<string, string> {
    return new Map([...this.lastKnown].map(([id, v]) => [id, v.datasetId]));
  }

  /**
   * An observation with the pool's unreadable records added (calculateChanges leaves
   * their datasets alone), and without "stray" mounts that may be theirs: a mount of a
   * volume whose record cannot be read is not stale, and must not be taken away.
   */
  private withUnreadable(local: LocalState): LocalState {
    const unreadable = this.unreadableVolumes();
    if (unreadable.length === 0) return local;
    const held = new Set(unreadable.flatMap((u) => (u.datasetId !== undefined ? [u.datasetId] : [])));
    const devices = new Set(unreadable.flatMap((u) => u.devices ?? []));
    const strays = (local.strayMounts ?? []).filter((s) => !held.has(s.datasetId) && !devices.has(s.device));
    const { strayMounts: _ignored, ...rest } = local;
    return {
      ...rest,
      ...(strays.length > 0 ? { strayMounts: strays } : {}),
      unreadable: unreadable.map((u) => ({ blockdeviceId: u.blockdeviceId, ...(u.datasetId !== undefined ? { datasetId: u.datasetId } : {}) })),
    };
  }

  start(): void {
    this.unwatchPool = this.o.poolChanges?.(() => this.poolChanged());
    this.scheduleHeartbeat();
    this.evaluateContact();
    this.loopDone = this.mainLoop();
    // Not awaited by stop(): a pending long-poll just ends with its timeout.
    void this.watchCluster();
  }

  /** Finish the running steps, start no new ones, stop. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.unwatchPool?.();
    this.progressTimer?.cancel();
    this.progressTimer = null;
    this.fenceTimer?.cancel();
    this.heartbeatTimer?.cancel();
    this.work.clearWaiting();
    this.wake();
    await this.work.settled();
    await this.loopDone;
    await this.reporting;
    await this.releasing;
  }

  private wake(): void {
    this.woken = true;
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  private sleep(ms: number): Promise<void> {
    if (this.woken || this.stopping) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = this.clock.setTimer(() => {
        this.wakeUp = null;
        resolve();
      }, Math.max(0, ms));
      this.wakeUp = () => {
        timer.cancel();
        resolve();
      };
    }).then(() => {
      this.woken = false;
    });
  }

  private async mainLoop(): Promise<void> {
    while (!this.stopping) {
      let wait = this.o.resyncIntervalMs;
      try {
        wait = await this.turn();
      } catch (e) {
        this.o.logger.error('observation failed', { code: errorCode(e), error: errorMessage(e) });
        wait = Math.min(wait, this.o.backoffInitialMs);
      }
      await this.sleep(wait);
    }
  }

  /**
   * The pool changed (a record was written by some host). Only worth a look
   * when a dataset that should be here is, as last seen, attached elsewhere.
   */
  private poolChanged(): void {
    if (this.snapshot === null || this.stopping) return;
    const waiting = this.waitingForOtherNode(this.snapshot);
    if (waiting !== undefined) {
      this.o.logger.debug('pool changed while waiting for another node', { datasetId: waiting });
      this.wake();
    }
  }

  /** A dataset that should be here but, as last seen, is attached to another node; undefined if none. */
  private waitingForOtherNode(snapshot: ClusterSnapshot): string | undefined {
    for (const d of snapshot.datasets) {
      if (d.deleted || d.primary !== this.o.nodeUuid) continue;
      const volumes = this.view.get(d.dataset_id)?.volumes ?? [];
      if (volumes.some((v) => v.attachedTo !== null && v.attachedTo !== this.o.instanceId)) return d.dataset_id;
    }
    return undefined;
  }

  /** Long-polls the control service and wakes the loop on every new generation. */
  private async watchCluster(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      try {
        const asked = this.now();
        const snap = await this.o.control.waitForCluster(this.snapshot?.generation, this.o.pollWaitMs ?? 25_000);
        failures = 0;
        this.o.logger.debug('cluster snapshot', { generation: snap.generation, waitedMs: this.now() - asked });
        this.adopt(snap, asked);
      } catch (e) {
        if (this.stopping) return;
        failures++;
        this.o.logger.warn('cannot reach the control service', { code: errorCode(e), error: errorMessage(e) });
        await this.clock.sleep(backoffDelay(failures, this.o.backoffInitialMs, this.o.backoffMaxMs));
      }
    }
  }

  /**
   * Takes a snapshot the control service answered to a question asked at
   * `askedAt`: the configuration it holds was current then (one half of
   * contact: see ContactTracker), unless a snapshot asked for later is already
   * held. A snapshot that shows this node declared dead fences it.
   */
  private adopt(snap: ClusterSnapshot, askedAt: number): void {
    if (askedAt < this.snapshotAskedAt) return;
    this.snapshotAskedAt = askedAt;
    this.learnNodeTimeout(snap.node_timeout_seconds);
    this.contact.configConfirmed(askedAt);
    if (snap.nodes.find((n) => n.uuid === this.o.nodeUuid)?.alive === false) this.contact.seenDead(askedAt);
    if (snap.generation !== this.snapshot?.generation) {
      const before = this.snapshot;
      const configChanged = before === null || configKey(snap) !== configKey(before);
      // What other nodes did matters only to a dataset waiting for one of them to let go.
      const othersChanged = !configChanged && othersKey(snap, this.o.nodeUuid) !== othersKey(before, this.o.nodeUuid);
      this.snapshot = snap;
      // Our own reports move the generation too; only a change that can alter a decision needs a turn.
      if (configChanged || (othersChanged && this.waitingForOtherNode(snap) !== undefined)) {
        this.o.logger.debug('cluster changed', { generation: snap.generation, configChanged });
        this.wake();
      }
    }
    this.evaluateContact();
  }

  /** A report's answer named another configuration than ours: fetch the current one now (the long-poll may be stuck). */
  private refetch(): void {
    if (this.refetching !== null || this.stopping) return;
    this.refetching = (async () => {
      const asked = this.now();
      try {
        this.adopt(await this.o.control.waitForCluster(undefined, 0), asked);
      } catch (e) {
        this.o.logger.debug('refetch of the configuration failed', { code: errorCode(e), error: errorMessage(e) });
      }
    })().finally(() => {
      this.refetching = null;
    });
  }

  // ---- self-fencing ----------------------------------------------------------

  private get fenceBoundMs(): number | undefined {
    return selfFenceBoundMs(this.nodeTimeoutMs, this.o.selfFenceMs);
  }

  /** The control service's node timeout sets the self-fence bound and so the heartbeat. */
  private learnNodeTimeout(seconds: number | undefined): void {
    if (seconds === undefined || seconds * 1000 === this.nodeTimeoutMs) return;
    this.nodeTimeoutMs = seconds * 1000;
    this.o.onNodeTimeout?.(seconds);
    this.o.logger.info('self-fence timing', { nodeTimeoutMs: this.nodeTimeoutMs, selfFenceBoundMs: this.fenceBoundMs });
    this.scheduleHeartbeat();
  }

  /** Whether acquiring actions may run now: configuration confirmed within the bound. */
  private mayAct(): boolean {
    return this.contact.mayAct(this.now(), this.fenceBoundMs);
  }

  /** Applies the contact rules now, and sets the timer for when the bound runs out. */
  private evaluateContact(): void {
    if (this.stopping) return;
    const bound = this.fenceBoundMs;
    const entered = this.contact.step(this.now(), bound, {
      fenceDone: this.fenceDone,
      cleanupDone: this.cleanupDone,
      lastChanceFailed: this.lastChanceFailed,
    });
    if (entered !== undefined) this.entered(entered);
    this.fenceTimer?.cancel();
    this.fenceTimer = null;
    const deadline = this.contact.deadline(bound);
    if (deadline !== undefined && (this.contact.phase === 'inContact' || this.contact.phase === 'recovering')) {
      this.fenceTimer = this.clock.setTimer(() => this.evaluateContact(), Math.max(0, deadline - this.now()));
    }
  }

  private entered(phase: ContactPhase): void {
    const bound = this.fenceBoundMs;
    const last = this.contact.lastConfirmed;
    switch (phase) {
      case 'checking':
        this.lastChance();
        break;
      case 'fencing': {
        this.lastChanceFailed = false;
        this.fenceDone = false;
        this.cleanupDone = false;
        const reason = `no confirmed configuration from the control service for ${Math.round(this.now() - (last ?? this.now()))} ms (self-fence bound ${bound} ms)`;
        this.o.logger.warn('fencing this node: stopping containers that use its volumes and unmounting them', { reason });
        this.fenceReport = { state: 'fenced', since: new Date(this.clock.wallNow()).toISOString(), reason };
        this.work.clearWaiting();
        this.runFencePass();
        break;
      }
      case 'fenced':
        this.o.logger.warn('node fenced: waiting for a configuration confirmed by the control service', this.fenceReport ?? {});
        break;
      case 'recovering':
        this.o.logger.info('contact with the control service is back: removing stale mounts before anything else');
        this.wake();
        break;
      case 'inContact':
        this.lastChanceFailed = false;
        if (this.fenceReport !== undefined) this.fenceReport = { ...this.fenceReport, state: 'recovered' };
        this.o.logger.info('back in contact: converging again', this.fenceReport ?? {});
        this.requestReport();
        this.wake();
        break;
    }
    this.scheduleHeartbeat();
  }

  private lastChanceFailed = false;

  /**
   * The bound ran out: one report straight to the control service (past any report
   * stuck in the queue), bounded by lastChanceMs. Its answer confirms contact if it
   * can; otherwise the node fences. A pause of this process (GC, CPU starvation) that
   * outlasted the bound but not the node timeout then fences nothing: the answers
   * waiting on the sockets are read first.
   */
  private lastChance(): void {
    const bound = this.fenceBoundMs;
    if (bound === undefined) return;
    const limit = lastChanceMs(bound, this.nodeTimeoutMs);
    const sent = this.now();
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      this.o.logger.warn('last-chance report failed: fencing', { why, limitMs: limit });
      this.lastChanceFailed = true;
      this.evaluateContact();
    };
    const timer = this.clock.setTimer(() => fail(`no answer within ${limit} ms`), limit);
    this.o.control
      .reportNodeState(this.buildReport())
      .then((answer) => {
        if (settled) return;
        const parsed = ReportResponse.safeParse(answer);
        if (!parsed.success) return fail('an answer off its schema');
        settled = true;
        timer.cancel();
        this.reportAnswered(parsed.data, sent);
      })
      .catch((e: unknown) => {
        timer.cancel();
        fail(errorMessage(e));
      });
  }

  /** Stops the containers using our mounts, then unmounts everything under the mount root. */
  private runFencePass(): void {
    if (this.fencePass !== null) return;
    this.fencePass = (async () => {
      const root = this.o.mountRoot.replace(/\/+$/, '');
      const ours = (await this.o.hostOps.listMounts()).filter((m) => dirname(m.mountPoint) === root);
      const paths = [...new Set(ours.map((m) => m.mountPoint))];
      let stopped: string[] = [];
      if (paths.length > 0 && this.o.containers !== undefined) {
        try {
          stopped = await this.o.containers.stopContainersUsing(this.stopTargets(paths));
          if (stopped.length > 0) this.o.logger.warn('fence: stopped containers', { containers: stopped });
        } catch (e) {
          this.o.logger.error('fence: cannot stop containers through Docker', { code: errorCode(e), error: errorMessage(e) });
        }
      }
      const removed: string[] = [];
      // Stacked mounts come off top first; a container just killed may hold its mount a moment.
      for (const m of [...ours].reverse()) {
        for (let attempt = 1; ; attempt++) {
          try {
            await this.o.hostOps.unmount(m.mountPoint);
            removed.push(m.mountPoint);
            break;
          } catch (e) {
            if (attempt >= 10) {
              this.o.logger.error('fence: cannot unmount', { mountPath: m.mountPoint, code: errorCode(e), error: errorMessage(e) });
              break;
            }
            await this.clock.sleep(100 * attempt);
          }
        }
      }
      if (this.fenceReport !== undefined) {
        this.fenceReport = {
          ...this.fenceReport,
          stopped_containers: [...(this.fenceReport.stopped_containers ?? []), ...stopped],
          removed_mounts: [...(this.fenceReport.removed_mounts ?? []), ...removed],
        };
      }
    })()
      .catch((e: unknown) => {
        this.o.logger.error('fence pass failed', { code: errorCode(e), error: errorMessage(e) });
      })
      .finally(() => {
        this.fencePass = null;
        this.fenceDone = true;
        this.evaluateContact();
        this.requestReport();
      });
  }

  /**
   * The users to stop of mounts at dataset paths: the paths themselves (bind mounts)
   * and the Docker volume names of those datasets (a plugin volume shows no source).
   */
  private stopTargets(paths: readonly string[]): StopTargets {
    const ids = new Set(paths.map((p) => basename(p)));
    const volumes = (this.snapshot?.datasets ?? [])
      .filter((d) => ids.has(d.dataset_id))
      .map((d) => d.metadata[METADATA_NAME_KEY])
      .filter((n): n is string => n !== undefined && n !== '');
    return { paths, volumes };
  }

  /** Reports (and so confirms contact) at least every heartbeatMs. */
  private scheduleHeartbeat(): void {
    this.heartbeatTimer?.cancel();
    if (this.stopping) return;
    this.heartbeatTimer = this.clock.setTimer(() => {
      this.heartbeatWanted = true;
      this.requestReport();
      this.scheduleHeartbeat();
    }, heartbeatMs(this.fenceBoundMs, this.o.resyncIntervalMs));
  }

  private heartbeatWanted = false;

  /** Observes everything, queues the datasets that need work; returns how long to wait at most. */
  private async turn(): Promise<number> {
    this.evaluateContact();
    // A turn that runs while datasets are worked on may miss what they need next.
    if (this.work.runningCount > 0) this.lookWhenIdle = true;
    await this.startNewDatasets();
    let seq = ++this.seq;
    const t0 = this.now();
    // Datasets being worked on are the workers' to look at: probing their devices
    // here could, say, hold a device open just as its worker detaches it.
    const busy = this.work.runningIds();
    const look = async (): Promise<LocalState> =>
      this.withUnreadable(
        await discoverLocalState({ driver: this.o.driver, host: this.o.hostOps, instanceId: this.o.instanceId, listVolumes: this.listPool, noDetails: busy, mountRoot: this.o.mountRoot }),
      );
    let local = await look();
    this.o.logger.debug('observed all', { volumes: local.volumes.length, durationMs: this.now() - t0 });
    // Stale mounts (of a volume this node lost) go first, before any decision. While
    // fencing, the fence pass unmounts everything anyway.
    if ((local.strayMounts ?? []).length > 0 && this.contact.phase !== 'fencing' && this.lastActionEnd < seq) {
      if (await this.removeStrayMounts(local.strayMounts ?? [])) {
        seq = ++this.seq;
        local = await look();
      }
    }
    if (this.contact.phase === 'recovering' && (local.strayMounts ?? []).length === 0) {
      this.cleanupDone = true;
      this.evaluateContact();
    }
    this.releaseFencedNowAndThen();
    // Fenced: anything still (or newly: a worker's last step) mounted under the mount root comes off.
    if (this.contact.phase === 'fenced' && local.volumes.some((v) => (v.mountPoints ?? []).length > 0)) this.runFencePass();
    this.updateView(local, seq, undefined, busy);
    this.poolSeen = true;
    const now = this.now();
    // The next full look; reports have their own heartbeat timer. (Counting from the last
    // successful report made a failing control service spin the loop without pause.)
    let wait = this.o.resyncIntervalMs;
    if (this.snapshot !== null && !this.stopping && this.contact.phase === 'inContact') {
      const actions = calculateChanges(desiredStateOf(this.snapshot), local, this.decision);
      const wanted = new Set(actions.map((a) => a.datasetId));
      for (const id of this.failures.keys()) if (!wanted.has(id) && !this.work.isRunning(id)) this.failures.delete(id);
      for (const action of actions) {
        const failure = this.failures.get(action.datasetId);
        if (failure && failure.retryAt > now) {
          wait = Math.min(wait, failure.retryAt - now);
          continue;
        }
        this.work.add(action.datasetId);
      }
      // Workers started right now decide their first step on this very observation,
      // unless some action ended while it was made (it may not show that action's effect).
      this.o.logger.debug('decided', { actions: actions.length, queued: this.work.waitingCount });
      this.work.pump(this.lastActionEnd < seq ? { seq, local } : undefined);
    }
    // Working datasets report when their work ends.
    if (this.work.runningCount > 0) this.requestProgressReport();
    else this.requestReport();
    return Math.max(0, Math.min(wait, this.o.resyncIntervalMs));
  }

  /**
   * The fast start of a dataset this node should hold that has no volume in the
   * pool at all (typically one just created): its first step (create) needs no
   * look at devices and mounts, so its worker starts without waiting for the
   * full look at every other dataset.
   */
  private async startNewDatasets(): Promise<void> {
    const snapshot = this.snapshot;
    if (snapshot === null || this.stopping || !this.mayAct()) return;
    const desired = desiredStateOf(snapshot);
    const now = this.now();
    const candidates = desired.datasets.filter(
      (d) =>
        !d.deleted &&
        d.primary === this.o.nodeUuid &&
        // Seen with a volume at the last look: the full look decides (no extra listing).
        (this.view.get(d.datasetId)?.volumes.length ?? 0) === 0 &&
        !this.work.isRunning(d.datasetId) &&
        !this.work.isWaiting(d.datasetId) &&
        (this.failures.get(d.datasetId)?.retryAt ?? 0) <= now,
    );
    if (candidates.length === 0 || !this.work.hasRoom()) return;
    const seq = ++this.seq;
    // Once a full look has shown the pool, a dataset it showed no volume for starts
    // at once: the create action itself re-checks the pool just before creating, and
    // finding a volume there it does nothing and the worker looks. Before the first
    // full look (just started), one listing spares every dataset that futile create.
    let inPool = new Set<string>();
    if (!this.poolSeen) {
      const pool = await this.listPool();
      // An action that ended meanwhile may not show in this listing: leave it to the full look.
      if (this.lastActionEnd > seq || this.stopping) return;
      inPool = new Set(pool.map((v) => v.datasetId));
    }
    for (const dataset of candidates) {
      if (inPool.has(dataset.datasetId) || this.work.isRunning(dataset.datasetId) || !this.work.hasRoom()) continue;
      const local: LocalState = this.withUnreadable({ instanceId: this.o.instanceId, volumes: [] });
      const [action] = calculateChanges({ datasets: [dataset], nodes: desired.nodes }, local, this.decision);
      if (action === undefined) continue;
      this.o.logger.debug('fast start', { datasetId: dataset.datasetId, kind: action.kind });
      this.updateView(local, seq, dataset.datasetId);
      this.work.start(dataset.datasetId, { seq, local });
    }
  }

  /**
   * A worker ended (the queue already started the next ones). Idle again: one full
   * look if anything may have been missed meanwhile (see lookWhenIdle); once the
   * report that just went out is through, so that look does not compete with it.
   */
  private workerDone(): void {
    if (this.work.idle && this.lookWhenIdle) {
      this.lookWhenIdle = false;
      void (this.reporting ?? Promise.resolve()).then(() => this.wake());
    }
  }

  /**
   * One dataset, one step at a time, each decided on a fresh look at that
   * dataset. The first look may be the turn's own (`fresh`), made just before;
   * after a setup step, stateAfter may stand in for the look.
   */
  private async converge(datasetId: string, fresh?: Observation): Promise<void> {
    let previous = '';
    let first = fresh;
    while (!this.stopping && this.snapshot !== null) {
      const desired = desiredStateOf(this.snapshot);
      const dataset = desired.datasets.find((d) => d.datasetId === datasetId);
      if (dataset === undefined) return;
      let local: LocalState;
      if (first !== undefined) {
        local = first.local;
        first = undefined;
      } else {
        const seq = ++this.seq;
        const t0 = this.now();
        try {
          local = this.withUnreadable(
            await discoverLocalState({
              driver: this.o.driver,
              host: this.o.hostOps,
              instanceId: this.o.instanceId,
              onlyDataset: datasetId,
              listVolumes: this.listPool,
              knownBlank: this.isBlank,
            }),
          );
          this.o.logger.debug('observed dataset', { datasetId, durationMs: this.now() - t0 });
        } catch (e) {
          this.o.logger.warn('observation failed', { datasetId, code: errorCode(e), error: errorMessage(e) });
          this.lookWhenIdle = true;
          return;
        }
        this.updateView(local, seq, datasetId);
      }
      const [action] = calculateChanges({ datasets: [dataset], nodes: desired.nodes }, local, this.decision);
      if (action === undefined) {
        this.failures.delete(datasetId);
        this.requestReport();
        return;
      }
      const failure = this.failures.get(datasetId);
      if (failure && failure.retryAt > this.now()) {
        this.requestReport();
        return; // the turn's timer comes back for it
      }
      // Never take or change a volume on a configuration not confirmed within the self-fence bound.
      if (ACQUIRING_ACTIONS.has(action.kind) && !this.mayAct()) {
        this.o.logger.warn('not acting on an unconfirmed configuration', { datasetId, kind: action.kind, phase: this.contact.phase });
        this.lookWhenIdle = true;
        this.requestReport();
        return;
      }
      // More steps follow at once: their outcome is reported when they end (or after progressReportMs).
      this.requestProgressReport();
      // The same action again right after it succeeded: it has no effect we can see. Back off instead of spinning.
      const key = JSON.stringify(action);
      if (key === previous) {
        this.recordFailure(action, 'NO_PROGRESS', `${action.kind} succeeded but the next observation still asks for it`, this.now());
        this.requestReport();
        return;
      }
      previous = key;
      const result = await this.run(action);
      if (result === undefined) {
        this.requestReport();
        return;
      }
      // A setup step whose own answer tells all it changed: the next step is decided on that.
      const after = stateAfter(local, action, result, this.isBlank);
      if (after !== undefined) {
        const seq = ++this.seq;
        this.updateView(after, seq, datasetId);
        first = { seq, local: after };
      }
    }
  }

  /** Runs one action; undefined if it failed (recorded for backoff and reporting). */
  private async run(action: Action): Promise<ActionResult | undefined> {
    const started = this.now();
    this.o.logger.debug('action start', { datasetId: action.datasetId, kind: action.kind });
    // Formatting (or anything but attaching) ends what we know of a volume's blankness.
    if ('blockdeviceId' in action && action.kind !== 'attach') this.blank.delete(action.blockdeviceId);
    let result: ActionResult;
    try {
      result = await executeAction(action, {
        driver: this.o.driver,
        host: this.o.hostOps,
        instanceId: this.o.instanceId,
        logger: this.o.logger,
        onCreated: (v) => this.blank.add(v.blockdeviceId),
        knownVolumes: () => ({ reported: this.reportedVolumes(), remembered: this.rememberedDatasets() }),
        // Only a volume known blank skips the look after its attach (stateAfter).
        wantDevicePath: this.isBlank,
      });
    } catch (e) {
      this.lastActionEnd = ++this.seq;
      this.recordFailure(action, errorCode(e), errorMessage(e), started);
      return undefined;
    }
    this.lastActionEnd = ++this.seq;
    this.failures.delete(action.datasetId);
    // A dataset mounted at its path is what waiters (the Docker plugin's Mount) wait
    // for: report it at once, before the look that confirms it (it normally ends the work).
    if (action.kind === 'mount') this.reportMounted(action.datasetId, action.blockdeviceId, action.mountPath);
    this.o.logger.info('action done', { ...action, durationMs: this.now() - started });
    this.maybeCrash(action.kind);
    return result;
  }

  /** Records in the view the effect of a successful mount, and reports it. */
  private reportMounted(datasetId: string, blockdeviceId: string, mountPath: string): void {
    const entry = this.view.get(datasetId);
    if (entry === undefined) return;
    let changed = false;
    const volumes = entry.volumes.map((v) => {
      if (v.blockdeviceId !== blockdeviceId || v.attachedTo !== this.o.instanceId || (v.mountPoints ?? []).includes(mountPath)) return v;
      changed = true;
      return { ...v, hasFilesystem: true, mountPoints: [...(v.mountPoints ?? []), mountPath].sort() };
    });
    if (!changed) return;
    this.view.set(datasetId, { seq: entry.seq, volumes });
    this.requestReport();
  }

  private recordFailure(action: Action, code: string, message: string, started: number): void {
    this.lookWhenIdle = true;
    const prev = this.failures.get(action.datasetId);
    const attempts = (prev && prev.action.kind === action.kind ? prev.attempts : 0) + 1;
    const delay = backoffDelay(attempts, this.o.backoffInitialMs, this.o.backoffMaxMs);
    this.failures.set(action.datasetId, {
      action,
      attempts,
      since: prev?.since ?? new Date(this.clock.wallNow()).toISOString(),
      code,
      message,
      retryAt: this.now() + delay,
    });
    this.o.logger.warn('action failed', { ...action, durationMs: this.now() - started, attempts, retryInMs: delay, code, error: message });
  }

  /** Records an observation, unless a fresher one of the same dataset is already there. */
  /** `notLooked`: datasets whose devices this observation did not probe; their entries stay. */
  private updateView(local: LocalState, seq: number, onlyDataset: string | undefined, notLooked: ReadonlySet<string> = new Set()): void {
    const byDataset = new Map<string, DiscoveredVolume[]>();
    for (const v of local.volumes) byDataset.set(v.datasetId, [...(byDataset.get(v.datasetId) ?? []), v]);
    if (onlyDataset !== undefined) {
      this.view.set(onlyDataset, { seq, volumes: byDataset.get(onlyDataset) ?? [] });
      return;
    }
    for (const [id, entry] of this.view) if (entry.seq < seq && !byDataset.has(id) && !notLooked.has(id)) this.view.delete(id);
    for (const [id, volumes] of byDataset) {
      if (notLooked.has(id)) continue;
      const entry = this.view.get(id);
      if (entry === undefined || entry.seq < seq) this.view.set(id, { seq, volumes });
    }
  }

  private maybeCrash(kind: ActionKind): void {
    const n = (this.successes.get(kind) ?? 0) + 1;
    this.successes.set(kind, n);
    const c = this.o.crashAfter;
    if (c && c.kind === kind && c.count === n) {
      this.o.logger.warn('crashing on purpose (FLOCKER_AGENT_CRASH_AFTER)', { kind, count: n });
      (this.o.crash ?? (() => process.kill(process.pid, 'SIGKILL')))();
    }
  }

  /** A report of an intermediate state: sent within progressReportMs, or with the next immediate one. */
  private requestProgressReport(): void {
    if (this.progressTimer !== null || this.stopping) return;
    this.progressTimer = this.clock.setTimer(() => {
      this.progressTimer = null;
      this.requestReport();
    }, this.o.progressReportMs ?? 250);
  }

  /** Sends the node report when it changed (and at least every resync interval); one request at a time. */
  private requestReport(): void {
    if (this.progressTimer !== null) {
      this.progressTimer.cancel();
      this.progressTimer = null;
    }
    this.reportWanted = true;
    if (this.reporting !== null) return;
    this.reporting = (async () => {
      while (this.reportWanted) {
        this.reportWanted = false;
        await this.sendReport();
      }
    })().finally(() => {
      this.reporting = null;
    });
  }

  private async sendReport(): Promise<void> {
    const report = this.buildReport();
    const text = JSON.stringify(report);
    const now = this.now();
    const heartbeat = this.heartbeatWanted;
    this.heartbeatWanted = false;
    if (!heartbeat && text === this.lastReport && now - this.lastReportAt < this.o.resyncIntervalMs) return;
    try {
      this.o.logger.debug('reporting', { manifestations: report.manifestations.length });
      const answer = ReportResponse.safeParse(await this.o.control.reportNodeState(report));
      this.o.logger.debug('reported', { durationMs: this.now() - now });
      this.lastReport = text;
      this.lastReportAt = now;
      if (answer.success) this.reportAnswered(answer.data, now);
    } catch (e) {
      this.o.logger.warn('cannot report node state', { code: errorCode(e), error: errorMessage(e) });
    }
  }

  /** A report's answer confirms contact when it names the configuration we hold. */
  private reportAnswered(answer: z.infer<typeof ReportResponse>, sentAt: number): void {
    this.learnNodeTimeout(answer.node_timeout_seconds);
    this.contact.reportAccepted(sentAt, this.now());
    const tag = answer.configuration_tag;
    if (tag !== undefined && this.snapshot !== null) {
      if (tag === this.snapshot.configuration_tag) this.contact.configConfirmed(sentAt);
      else this.refetch();
    }
    this.evaluateContact();
  }

  private releasing: Promise<void> | null = null;
  private lastReleaseAt = -Infinity;

  /**
   * What a fence left (an old loop device once nothing holds it, then its frozen image)
   * goes once nothing uses it, which may be a while after its mount came off (a
   * deferred detach): asked again at most once per resync interval, in the background.
   */
  private releaseFencedNowAndThen(): void {
    const release = this.o.releaseFenced;
    if (release === undefined || this.releasing !== null || this.now() - this.lastReleaseAt < this.o.resyncIntervalMs) return;
    this.lastReleaseAt = this.now();
    this.releasing = release()
      .then((released) => this.o.logger.debug('released what fences left behind', { released }))
      .catch((e: unknown) => this.o.logger.warn('cannot release fenced devices', { code: errorCode(e), error: errorMessage(e) }))
      .then(() => {
        this.releasing = null;
      });
  }

  /**
   * Unmounts mounts left at dataset paths by volumes this node no longer holds,
   * then lets the driver release what a fence left behind. True if any came off.
   */
  private async removeStrayMounts(strays: readonly StrayMount[]): Promise<boolean> {
    const removed: string[] = [];
    const todo = strays.filter((s) => !this.work.isRunning(s.datasetId));
    // Whatever still uses a volume this node lost writes into nothing (a fenced device fails
    // its writes): stop it, so that the mount can come off.
    if (todo.length > 0 && this.o.containers !== undefined) {
      try {
        const stopped = await this.o.containers.stopContainersUsing(this.stopTargets([...new Set(todo.map((s) => s.mountPath))]));
        if (stopped.length > 0) this.o.logger.warn('stopped containers using a volume this node no longer holds', { containers: stopped });
      } catch (e) {
        this.o.logger.warn('cannot stop containers through Docker', { code: errorCode(e), error: errorMessage(e) });
      }
    }
    for (const stray of todo) {
      try {
        await this.o.hostOps.unmount(stray.mountPath);
        removed.push(stray.mountPath);
        this.o.logger.warn('removed a stale mount of a volume this node no longer holds', { ...stray });
      } catch (e) {
        this.o.logger.error('cannot remove a stale mount', { ...stray, code: errorCode(e), error: errorMessage(e) });
      }
    }
    if (removed.length > 0 && this.o.releaseFenced !== undefined) {
      try {
        const released = await this.o.releaseFenced();
        this.o.logger.info('released what fences left behind', { released });
      } catch (e) {
        this.o.logger.warn('cannot release fenced devices', { code: errorCode(e), error: errorMessage(e) });
      }
    }
    if (removed.length > 0 && this.fenceReport !== undefined) {
      this.fenceReport = { ...this.fenceReport, removed_mounts: [...(this.fenceReport.removed_mounts ?? []), ...removed] };
    }
    return removed.length > 0;
  }

  buildReport(): NodeReport {
    const volumes = [...this.view.values()]
      .flatMap((e) => e.volumes)
      .sort((a, b) => (a.blockdeviceId < b.blockdeviceId ? -1 : 1));
    const manifestations: NodeReport['manifestations'] = [];
    for (const v of volumes) {
      if (v.attachedTo !== this.o.instanceId) continue;
      const path = mountPathOf(v.datasetId, this.decision);
      const mounted = (v.mountPoints ?? []).includes(path);
      manifestations.push({
        dataset_id: v.datasetId,
        blockdevice_id: v.blockdeviceId,
        size: v.size,
        status: mounted ? 'mounted' : 'attached',
        ...(v.devicePath !== undefined ? { device_path: v.devicePath } : {}),
        ...(mounted ? { path } : {}),
      });
    }
    const errors: ActionError[] = [...this.failures.entries()].map(([datasetId, f]) => ({
      dataset_id: datasetId,
      action: f.action.kind,
      code: f.code,
      message: f.message,
      attempts: f.attempts,
      since: f.since,
    }));
    // An unreadable record: an error on its dataset (on the node when nothing tells which).
    for (const p of this.unreadableVolumes()) {
      errors.push({
        ...(p.datasetId !== undefined && UUID.test(p.datasetId) ? { dataset_id: p.datasetId } : {}),
        action: 'observe',
        code: p.code,
        message: p.message,
        attempts: 1,
        since: this.problemSince.get(p.blockdeviceId) ?? new Date(this.clock.wallNow()).toISOString(),
      });
    }
    // A volume whose record went bad is still there (as last known), not gone: other nodes learn whose it is.
    const unreadable = this.problems.flatMap((p) => {
      const known = this.lastKnown.get(p.blockdeviceId);
      return known !== undefined && !volumes.some((v) => v.blockdeviceId === p.blockdeviceId) ? [known] : [];
    });
    return {
      uuid: this.o.nodeUuid,
      era: this.o.era,
      host: this.o.host,
      instance_id: this.o.instanceId,
      backend: this.o.driver.backend,
      manifestations,
      ...(this.fenceReport !== undefined ? { fencing: this.fenceReport } : {}),
      volumes: [...volumes, ...unreadable]
        .sort((a, b) => (a.blockdeviceId < b.blockdeviceId ? -1 : 1))
        .map((v) => ({
          blockdevice_id: v.blockdeviceId,
          dataset_id: v.datasetId,
          size: v.size,
          attached_to: v.attachedTo,
        })),
      errors,
      ...(this.o.maxVolumeSize !== undefined ? { max_volume_size: this.o.maxVolumeSize } : {}),
    };
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * What in a snapshot can change this node's decisions: the configuration and
 * node liveness (configKey), and what the other nodes did (othersKey: a detach
 * elsewhere lets us attach). Our own report, echoed back, is in neither.
 */
function configKey(s: ClusterSnapshot): string {
  return JSON.stringify([s.datasets, s.nodes.map((n) => [n.uuid, n.instance_id, n.alive])]);
}

function othersKey(s: ClusterSnapshot, self: string): string {
  return JSON.stringify(s.nodes.filter((n) => n.uuid !== self).map((n) => [n.uuid, n.manifestations, n.volumes]));
}
