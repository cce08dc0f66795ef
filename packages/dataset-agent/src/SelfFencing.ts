/**
 * Self-fencing orchestration: applies ContactTracker's rules (fencing.ts) on the
 * clock, and does what each phase asks — the last-chance report at the bound, the
 * fence pass (stop the containers using our mounts, unmount everything under the
 * mount root), the heartbeat that keeps contact confirmed, stale-mount cleanup,
 * and the fencing part of the node report.
 */
import { dirname } from 'node:path';
import { ReportResponse, type ClusterSnapshot, type NodeReport } from '@flocker/api';
import type winston from 'winston';
import type { Clock, TimerHandle } from './clock';
import { compareGenerations } from './ClusterFollowerOrder';
import type { ContainerStopper, StopTargets } from './containers';
import { errorCode, errorMessage } from './errors';
import {
  ContactTracker,
  fenceReason,
  heartbeatMs,
  lastChanceMs,
  selfFenceBoundMs,
  unstoppedNote,
  type ContactPhase,
} from './fencing';
import type { FenceReportStore, KeptFence } from './fenceReportFile';
import type { HostOps } from './HostOps';
import type { LocalState, StrayMount } from './LocalState';
import type { ReportAnswer } from './Reporter';

export type FenceReport = NonNullable<NodeReport['fencing']>;

/**
 * How long a stop waits for the fence report's writes (and the background release) at most (FR's F14): they are
 * best effort, and a stalled state disk must not hold a stop until the supervisor's SIGKILL.
 */
export const SETTLE_MS = 5_000;

/**
 * How long a fence lifted ('recovered') stays in the node report, from the lift (TN F7/F9: `flocker status` showed
 * one for good, through restarts). Long enough for the container agent to start the fence's victims again (it reads
 * the report as soon as it changes, and remembers a lift it saw beyond the hour while it runs) and for someone to see
 * what happened; after it, the agent's log has it. Counted on the monotonic clock within a process (review R2-3: a
 * wall-clock step must neither drop it at once nor keep it for days); the wall time of the lift serves only the kept
 * file, across a restart.
 */
export const RECOVERED_REPORT_MS = 3_600_000;

export interface SelfFencingOptions {
  readonly nodeUuid: string;
  readonly clock: Clock;
  readonly logger: winston.Logger;
  readonly mountRoot: string;
  readonly hostOps: Pick<HostOps, 'listMounts' | 'unmount'>;
  readonly resyncIntervalMs: number;
  readonly containers?: ContainerStopper;
  readonly releaseFenced?: () => Promise<unknown>;
  /** Configured bound (ms); see selfFenceBoundMs. */
  readonly selfFenceMs?: number;
  readonly lastNodeTimeoutMs?: number;
  readonly onNodeTimeout?: (seconds: number) => void;
  /** Keeps the fence report over a restart (fenceReportFile); absent: in memory only. */
  readonly fenceReports?: FenceReportStore;
}

/** What self-fencing asks of the rest of the agent. */
export interface SelfFencingHooks {
  /** The users to stop of these mounts at dataset paths. */
  stopTargets(paths: readonly string[]): StopTargets;
  /** One report straight to the control service, past any queued (the last chance). */
  sendReportNow(): Promise<unknown>;
  /** A report through the usual queue. */
  requestReport(): void;
  /** A report that goes out even if unchanged (confirms contact). */
  heartbeat(): void;
  /** The configuration tag of the snapshot held, if any. */
  configurationTag(): string | undefined;
  /** Fetch the current configuration now (a report's answer named another). */
  refetch(): void;
  /** Fencing began: no new work may start. */
  fencingStarted(): void;
  /** Take a turn (contact came back). */
  wake(): void;
}

export class SelfFencing {
  private readonly contact: ContactTracker;
  /** The control service's node timeout, once told. */
  private nodeTimeoutMs: number | undefined;
  private fenceTimer: TimerHandle | null = null;
  private heartbeatTimer: TimerHandle | null = null;
  private fencePass: Promise<void> | null = null;
  private fenceDone = false;
  private cleanupDone = false;
  private lastChanceFailed = false;
  private releasing: Promise<void> | null = null;
  private lastReleaseAt = -Infinity;
  private stopped = false;
  /** What the last self-fence did; reported until the next one, or once lifted for RECOVERED_REPORT_MS. */
  private fenceReport: FenceReport | undefined;
  /** When the fence was lifted (wall clock ms, never ahead of the wall clock at load): kept in the file. */
  private recoveredAt: number | undefined;
  /** The same moment on the monotonic clock, from which the report ages: set with recoveredAt. */
  private recoveredMono: number | undefined;
  /** Asks for a report when a recovered fence ages out of it. */
  private ageTimer: TimerHandle | undefined;
  /** The report was read at start still 'fenced': lifted once this process has confirmed contact (liftRestored). */
  private restored = false;
  /** The generation our newest accepted report was answered with (snapshotSeen orders a death after it). */
  private reportGeneration: string | undefined;
  /** The newest report not yet handed to the store (keep). */
  private unsaved: KeptFence | undefined;
  /** The store's write in flight, then the newer ones (one at a time); null when idle. */
  private saving: Promise<void> | null = null;

  constructor(
    private readonly o: SelfFencingOptions,
    private readonly hooks: SelfFencingHooks,
  ) {
    this.contact = new ContactTracker(o.clock.now());
    this.nodeTimeoutMs = o.lastNodeTimeoutMs;
    const kept = o.fenceReports?.load();
    this.fenceReport = kept?.report;
    if (this.fenceReport !== undefined) {
      this.restored = this.fenceReport.state === 'fenced';
      if (this.fenceReport.state === 'recovered') {
        // The file's wall time, as an age now. Ahead of the wall clock (written while it was ahead) or unparsable:
        // lifted now, so that the report leaves an hour from here, not an hour after some future date (R2-3).
        const wall = o.clock.wallNow();
        const at = kept?.recoveredAt;
        this.recoveredAt = at !== undefined && Number.isFinite(at) && at <= wall ? at : wall;
        this.recoveredMono = o.clock.now() - (wall - this.recoveredAt);
        // Kept as taken, so that a restart within the hour does not take "now" again.
        if (this.recoveredAt !== at) this.keep(this.fenceReport);
      }
      o.logger.info('fence report kept from before the restart', {
        ...this.fenceReport,
        ...(this.recoveredAt !== undefined ? { recoveredAt: new Date(this.recoveredAt).toISOString() } : {}),
      });
    }
  }

  /** The report changed: kept in the state directory too, in the background (keep). A lift starts its age. */
  private setReport(report: FenceReport): void {
    const lifted = report.state === 'recovered' && this.fenceReport?.state !== 'recovered';
    this.fenceReport = report;
    if (report.state !== 'recovered') this.recoveredAt = this.recoveredMono = undefined;
    else if (lifted || this.recoveredAt === undefined) {
      this.recoveredAt = this.o.clock.wallNow();
      this.recoveredMono = this.now();
      this.scheduleAgeOut();
    }
    this.keep(report);
  }

  /** A report asked for once the recovered fence is older than RECOVERED_REPORT_MS (it then leaves the report). */
  private scheduleAgeOut(): void {
    this.ageTimer?.cancel();
    this.ageTimer = undefined;
    if (this.stopped || this.recoveredMono === undefined) return;
    const left = this.recoveredMono + RECOVERED_REPORT_MS - this.now();
    this.ageTimer = this.o.clock.setTimer(
      () => {
        this.ageTimer = undefined;
        this.o.logger.info(
          'the recovered fence leaves the node report (lifted over an hour ago)',
          this.fenceReport ?? {},
        );
        this.hooks.requestReport();
      },
      Math.max(0, left),
    );
  }

  /**
   * Hands the report to the store without waiting (FR's F10): keeping it only serves availability (the victims start
   * again after a restart), so a slow or stalled state disk must never hold up a fence or the agent. One write at a
   * time, the newest report last: a stalled disk holds one write and one thread of the pool, not one per change.
   */
  private keep(report: FenceReport): void {
    const store = this.o.fenceReports;
    if (store === undefined) return;
    this.unsaved = { report, ...(this.recoveredAt !== undefined ? { recoveredAt: this.recoveredAt } : {}) };
    if (this.saving === null) this.saving = this.saveAll(store);
  }

  private async saveAll(store: FenceReportStore): Promise<void> {
    for (let kept = this.unsaved; kept !== undefined; kept = this.unsaved) {
      this.unsaved = undefined;
      try {
        await store.save(kept.report, kept.recoveredAt);
      } catch (e) {
        this.o.logger.warn('cannot keep the fence report', { code: errorCode(e), error: errorMessage(e) });
      }
    }
    this.saving = null;
  }

  /**
   * A report read at start still 'fenced' (the agent restarted while fenced): lifted ('recovered', which lets the
   * container agent start the fence's victims) once this process has both a configuration confirmed and a report
   * accepted, and is not seen dead: what the in-memory fence's way back (recovering, inContact) needs too.
   */
  private liftRestored(): void {
    if (!this.restored || this.fenceReport?.state !== 'fenced') return;
    if (this.contact.phase !== 'inContact' || this.contact.lastConfirmed === undefined || this.contact.deadSeen) return;
    this.restored = false;
    this.setReport({ ...this.fenceReport, state: 'recovered' });
    this.o.logger.info('back in contact after a restart while fenced: the fence is lifted', this.fenceReport);
    this.hooks.requestReport();
  }

  get phase(): ContactPhase {
    return this.contact.phase;
  }

  /** The fencing part of the node report: a recovered fence only for RECOVERED_REPORT_MS after its lift. */
  get report(): FenceReport | undefined {
    const r = this.fenceReport;
    if (r?.state === 'recovered' && this.recoveredMono !== undefined)
      return this.now() - this.recoveredMono < RECOVERED_REPORT_MS ? r : undefined;
    return r;
  }

  private get boundMs(): number | undefined {
    return selfFenceBoundMs(this.nodeTimeoutMs, this.o.selfFenceMs);
  }

  private now(): number {
    return this.o.clock.now();
  }

  private isoNow(): string {
    return new Date(this.o.clock.wallNow()).toISOString();
  }

  start(): void {
    this.scheduleHeartbeat();
    this.scheduleAgeOut();
    this.evaluate();
  }

  /** No more timers, no more phase changes. */
  stop(): void {
    this.stopped = true;
    this.fenceTimer?.cancel();
    this.heartbeatTimer?.cancel();
    this.ageTimer?.cancel();
  }

  /**
   * Resolves once the background release of what fences left (if any) and the fence report's writes are through (a
   * stop waits for them, as for any step in flight: the newest report is then the one kept), or after SETTLE_MS.
   */
  async settled(): Promise<void> {
    const through = (async () => {
      await this.releasing;
      while (this.saving !== null) await this.saving;
    })();
    let timer: TimerHandle | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = this.o.clock.setTimer(() => resolve('late'), SETTLE_MS);
    });
    const outcome = await Promise.race([through, late]);
    timer?.cancel();
    if (outcome !== 'late') return;
    if (this.saving !== null)
      this.o.logger.warn('fence report not kept: its write to the state directory did not finish in time', {
        waitedMs: SETTLE_MS,
        ...(this.unsaved?.report ?? this.fenceReport ?? {}),
      });
    else this.o.logger.warn('the release of what fences left did not finish in time', { waitedMs: SETTLE_MS });
  }

  /** Whether acquiring actions may run now: configuration confirmed within the bound. */
  mayAct(): boolean {
    return this.contact.mayAct(this.now(), this.boundMs);
  }

  /**
   * A snapshot asked for at `askedAt` was answered: the configuration it holds was current then.
   *
   * One showing this node dead counts as of `askedAt` too (ContactTracker.seenDead ignores it if asked
   * before our latest accepted report was answered: it may predate that report) — except when its
   * generation is newer than the one our latest accepted report was answered with, in the same epoch of
   * the same service: it was then written after that report was applied (the counters only grow), so
   * this node was declared dead since — as of now, whenever its question was asked. That is a watch's
   * line, proved only as of the watch's request: it fences at once instead of when the bound runs out.
   */
  snapshotSeen(snap: ClusterSnapshot, askedAt: number): void {
    this.learnNodeTimeout(snap.node_timeout_seconds);
    this.contact.configConfirmed(askedAt);
    if (snap.nodes.find((n) => n.uuid === this.o.nodeUuid)?.alive === false) {
      const afterOurReport =
        this.reportGeneration !== undefined && compareGenerations(snap.generation, this.reportGeneration) === 1;
      this.contact.seenDead(afterOurReport ? Math.max(askedAt, this.now()) : askedAt);
    }
  }

  /** A report's answer confirms contact when it names the configuration we hold. */
  reportAnswered(answer: ReportAnswer, sentAt: number): void {
    // The newest generation a report of ours was answered with (another epoch's: the latest answer).
    if (this.reportGeneration === undefined || compareGenerations(answer.generation, this.reportGeneration) !== -1)
      this.reportGeneration = answer.generation;
    this.learnNodeTimeout(answer.node_timeout_seconds);
    this.contact.reportAccepted(sentAt, this.now());
    const tag = answer.configuration_tag;
    const held = this.hooks.configurationTag();
    if (tag !== undefined && held !== undefined) {
      if (tag === held) this.contact.configConfirmed(sentAt);
      else this.hooks.refetch();
    }
    this.evaluate();
  }

  /** The control service's node timeout sets the self-fence bound and so the heartbeat. */
  private learnNodeTimeout(seconds: number | undefined): void {
    if (seconds === undefined || seconds * 1000 === this.nodeTimeoutMs) return;
    this.nodeTimeoutMs = seconds * 1000;
    this.o.onNodeTimeout?.(seconds);
    this.o.logger.info('self-fence timing', { nodeTimeoutMs: this.nodeTimeoutMs, selfFenceBoundMs: this.boundMs });
    this.scheduleHeartbeat();
  }

  /** Applies the contact rules now, and sets the timer for when the bound runs out. */
  evaluate(): void {
    if (this.stopped) return;
    const bound = this.boundMs;
    const entered = this.contact.step(this.now(), bound, {
      fenceDone: this.fenceDone,
      cleanupDone: this.cleanupDone,
      lastChanceFailed: this.lastChanceFailed,
    });
    if (entered !== undefined) this.entered(entered);
    this.liftRestored();
    this.fenceTimer?.cancel();
    this.fenceTimer = null;
    const deadline = this.contact.deadline(bound);
    if (deadline !== undefined && (this.contact.phase === 'inContact' || this.contact.phase === 'recovering')) {
      this.fenceTimer = this.o.clock.setTimer(() => this.evaluate(), Math.max(0, deadline - this.now()));
    }
  }

  private entered(phase: ContactPhase): void {
    const bound = this.boundMs;
    const last = this.contact.lastConfirmed;
    switch (phase) {
      case 'checking':
        this.lastChance();
        break;
      case 'fencing': {
        this.lastChanceFailed = false;
        this.fenceDone = false;
        this.cleanupDone = false;
        const reason = fenceReason({
          deadSeen: this.contact.deadSeen,
          lastConfirmedAgoMs: last === undefined ? undefined : this.now() - last,
          startedAgoMs: this.now() - this.contact.startedAt,
          boundMs: bound,
        });
        this.o.logger.warn('fencing this node: stopping containers that use its volumes and unmounting them', {
          reason,
        });
        // A fence not lifted yet (a restart while fenced, or contact lost again while recovering) goes on: its
        // start and what it stopped stay, so its victims are still started again once it is lifted.
        const going = this.fenceReport?.state === 'fenced' ? this.fenceReport : undefined;
        this.restored = false;
        // Reported at once; kept in the state directory only once the pass has killed (F10: nothing before the kill).
        this.fenceReport = going ?? { state: 'fenced', since: this.isoNow(), reason };
        this.recoveredAt = this.recoveredMono = undefined;
        this.ageTimer?.cancel();
        this.hooks.fencingStarted();
        this.runFencePass();
        break;
      }
      case 'fenced':
        this.o.logger.warn(
          'node fenced: waiting for a configuration confirmed by the control service',
          this.fenceReport ?? {},
        );
        break;
      case 'recovering':
        this.o.logger.info('contact with the control service is back: removing stale mounts before anything else');
        this.hooks.wake();
        break;
      case 'inContact':
        this.lastChanceFailed = false;
        if (this.fenceReport !== undefined) this.setReport({ ...this.fenceReport, state: 'recovered' });
        this.o.logger.info('back in contact: converging again', this.fenceReport ?? {});
        this.hooks.requestReport();
        this.hooks.wake();
        break;
    }
    this.scheduleHeartbeat();
  }

  /**
   * The bound ran out: one report straight to the control service (past any report
   * stuck in the queue), bounded by lastChanceMs. Its answer confirms contact if it
   * can; otherwise the node fences. A pause of this process (GC, CPU starvation) that
   * outlasted the bound but not the node timeout then fences nothing: the answers
   * waiting on the sockets are read first.
   */
  private lastChance(): void {
    const bound = this.boundMs;
    if (bound === undefined) return;
    const limit = lastChanceMs(bound, this.nodeTimeoutMs);
    const sent = this.now();
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      this.o.logger.warn('last-chance report failed: fencing', { why, limitMs: limit });
      this.lastChanceFailed = true;
      this.evaluate();
    };
    const timer = this.o.clock.setTimer(() => fail(`no answer within ${limit} ms`), limit);
    this.hooks
      .sendReportNow()
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

  /**
   * Stops the containers using our mounts, then unmounts everything under the mount root. The report is kept after
   * the kills (what a restart needs to start the victims again: a crash before that write leaves them stopped) and
   * again at the end, never waited for.
   */
  runFencePass(): void {
    if (this.fencePass !== null) return;
    this.fencePass = (async () => {
      const root = this.o.mountRoot.replace(/\/+$/, '');
      const ours = (await this.o.hostOps.listMounts()).filter((m) => dirname(m.mountPoint) === root);
      const paths = [...new Set(ours.map((m) => m.mountPoint))];
      let stopped: string[] = [];
      /** Why the containers using these mounts could not be stopped, if they could not. */
      let cannotStop: string | undefined;
      if (paths.length > 0 && this.o.containers !== undefined) {
        try {
          stopped = await this.o.containers.stopContainersUsing(this.hooks.stopTargets(paths));
          if (stopped.length > 0) this.o.logger.warn('fence: stopped containers', { containers: stopped });
        } catch (e) {
          cannotStop = errorMessage(e);
          this.o.logger.error('fence: cannot stop containers through Docker', {
            code: errorCode(e),
            error: errorMessage(e),
          });
        }
      }
      if (this.fenceReport !== undefined)
        this.setReport({
          ...this.fenceReport,
          stopped_containers: [...(this.fenceReport.stopped_containers ?? []), ...stopped],
        });
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
              this.o.logger.error('fence: cannot unmount', {
                mountPath: m.mountPoint,
                code: errorCode(e),
                error: errorMessage(e),
              });
              break;
            }
            await this.o.clock.sleep(100 * attempt);
          }
        }
      }
      // The host's mounts came off, but a container that could not be stopped keeps each file system in its own
      // mount namespace (the unmount only detached the host's view) and goes on writing until another host's force
      // detach fences the device. Said in the reason too: the report has no other free-text field.
      const note = cannotStop !== undefined && removed.length > 0 ? unstoppedNote(cannotStop) : undefined;
      if (note !== undefined)
        this.o.logger.error(`fence: ${note}`, { mounts: removed, code: 'FENCE_CONTAINERS_NOT_STOPPED' });
      if (this.fenceReport !== undefined) {
        this.setReport({
          ...this.fenceReport,
          ...(note !== undefined && !this.fenceReport.reason.includes(note)
            ? { reason: `${this.fenceReport.reason}; ${note}` }
            : {}),
          removed_mounts: [...(this.fenceReport.removed_mounts ?? []), ...removed],
        });
      }
    })()
      .catch((e: unknown) => {
        this.o.logger.error('fence pass failed', { code: errorCode(e), error: errorMessage(e) });
        if (this.fenceReport !== undefined) this.keep(this.fenceReport);
      })
      .finally(() => {
        this.fencePass = null;
        this.fenceDone = true;
        this.evaluate();
        this.hooks.requestReport();
      });
  }

  /** Reports (and so confirms contact) at least every heartbeatMs. */
  private scheduleHeartbeat(): void {
    this.heartbeatTimer?.cancel();
    if (this.stopped) return;
    this.heartbeatTimer = this.o.clock.setTimer(
      () => {
        this.hooks.heartbeat();
        this.scheduleHeartbeat();
      },
      heartbeatMs(this.boundMs, this.o.resyncIntervalMs),
    );
  }

  /**
   * What a full look found, for fencing: recovering with no stale mount left ends the
   * cleanup; what a fence left is released now and then; fenced, anything still (or
   * newly: a worker's last step) mounted under the mount root comes off.
   */
  looked(local: LocalState): void {
    if (this.contact.phase === 'recovering' && (local.strayMounts ?? []).length === 0) {
      this.cleanupDone = true;
      this.evaluate();
    }
    this.releaseFencedNowAndThen();
    if (this.contact.phase === 'fenced' && local.volumes.some((v) => (v.mountPoints ?? []).length > 0))
      this.runFencePass();
  }

  /**
   * What a fence left (an old loop device once nothing holds it, then its frozen image)
   * goes once nothing uses it, which may be a while after its mount came off (a
   * deferred detach): asked again at most once per resync interval, in the background.
   */
  private releaseFencedNowAndThen(): void {
    const release = this.o.releaseFenced;
    if (release === undefined || this.releasing !== null || this.now() - this.lastReleaseAt < this.o.resyncIntervalMs)
      return;
    this.lastReleaseAt = this.now();
    this.releasing = release()
      .then((released) => this.o.logger.debug('released what fences left behind', { released }))
      .catch((e: unknown) =>
        this.o.logger.warn('cannot release fenced devices', { code: errorCode(e), error: errorMessage(e) }),
      )
      .then(() => {
        this.releasing = null;
      });
  }

  /**
   * Unmounts mounts left at dataset paths by volumes this node no longer holds (the
   * caller leaves out datasets being worked on), then lets the driver release what a
   * fence left behind. True if any came off.
   */
  async removeStrayMounts(todo: readonly StrayMount[]): Promise<boolean> {
    const removed: string[] = [];
    // Whatever still uses a volume this node lost writes into nothing (a fenced device fails
    // its writes): stop it, so that the mount can come off.
    if (todo.length > 0 && this.o.containers !== undefined) {
      try {
        const stopped = await this.o.containers.stopContainersUsing(
          this.hooks.stopTargets([...new Set(todo.map((s) => s.mountPath))]),
        );
        if (stopped.length > 0)
          this.o.logger.warn('stopped containers using a volume this node no longer holds', { containers: stopped });
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
      this.setReport({
        ...this.fenceReport,
        removed_mounts: [...(this.fenceReport.removed_mounts ?? []), ...removed],
      });
    }
    return removed.length > 0;
  }
}
