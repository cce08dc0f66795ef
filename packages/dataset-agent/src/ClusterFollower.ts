/**
 * Follows the cluster: keeps the latest snapshot and tells what changed in it. Also fetches at
 * once when asked (a report's answer named another configuration: what it follows may not show it).
 * Three ways, the best the control service offers first (ClusterFollowerMode):
 *  - a watch (issue 23, FlockerClient.watchCluster): one long-lived answer carrying the node's
 *    view, then a delta per change of it — each change reaches the agent with no request of its
 *    own. A cut stream is watched again from the generation it held (a change made meanwhile
 *    comes as one delta, or the whole view from a restarted service that does not know that
 *    generation), after the agent's backoff, and what changed is read at once besides (a
 *    refetch: the watch writes only changes, a read proves contact now). A delta the stream
 *    held cannot merge is followed by a watch without `since`: the whole view again;
 *  - long-polls of the node's view by deltas (`waitForClusterDelta`): each answer carries only
 *    what changed and is merged into the view held (applyClusterDelta); an answer it cannot merge
 *    (the delta is for another generation) is followed by a fresh read of the whole view;
 *  - long-polls of whole snapshots (the runtime's followLongPoll: a fresh read at start and after
 *    each failure, the agent's unjittered backoff between failures).
 * A control service that refuses the watch (404/400: an older version) is followed by long-poll
 * deltas, one that refuses deltas (400) by whole snapshots — until a read fails (the control
 * service may be restarting: upgraded), when the best is asked for again.
 *
 * What the node view holds (the control service's Views.snapshotFor) against what the agent
 * reads of the snapshot: the datasets whose primary this node is or that it holds (its report's
 * manifestations and volumes attached to its instance), their leases, its own state and the
 * states of the nodes holding a manifestation of those datasets, every configured snapshot, the
 * configuration tag and the timings. Enough for: its own datasets' decisions (calculateChanges,
 * the worker, fast starts), a move waiting on the node that held the volume (a holder: its
 * letting go wakes the poll), failover (the dead holder's state and instance), self-fencing (its
 * own liveness, the tag), backups (of its own datasets) and the snapshots of its datasets. Not in
 * it: datasets neither primary here nor held here, and nodes holding none of the view's datasets —
 * except the orphans this node takes care of (a deleted dataset whose primary is dead and that no
 * live node holds is in the view of one live node reporting its volume, with the dead primary's
 * state: the control service's orphanViews.ts), so a whole-cluster follower's "anyone may clean up
 * when the primary is gone" is that one node's. Still not in it: a volume attached to an instance
 * no node of the view reports, and nodes reporting volumes the pool cannot attribute. What the agent's pool shows and the view cannot explain
 * (viewGaps: such a volume, an unreadable record nothing attributes, an unattached volume of a
 * dataset outside the view) is looked up once in the whole cluster (lookWhole, rate-limited), and
 * the part that explains it is merged into the view for a short while (explanationOf).
 */
import { applyClusterDelta, type ClusterAnswer, type ClusterSnapshot, isClusterDelta } from '@flocker/api';
import { Backoff, followLongPoll, sleep } from '@flocker/runtime';
import type winston from 'winston';
import type { Clock } from './clock';
import {
  type FollowMode,
  type FollowOffers,
  initialMode,
  modeAfter,
  viewAfterLine,
  watchRefused,
} from './ClusterFollowerMode';
import { compareGenerations, replacesHeld } from './ClusterFollowerOrder';
import { errorCode, errorMessage } from './errors';
import { explanationOf, isEmptyGaps, supplementView, type ViewGaps } from './viewGaps';

/**
 * What a snapshot changed that can alter this node's decisions: 'config' (the
 * configuration or node liveness, or the first snapshot), 'others' (what the other
 * nodes report: a detach elsewhere lets us attach), 'own' (only our own report,
 * echoed back), 'none' (the same generation).
 */
export type SnapshotChange = 'config' | 'others' | 'own' | 'none';

export interface ClusterFollowerOptions {
  readonly waitForCluster: (since?: string, timeoutMs?: number) => Promise<ClusterSnapshot>;
  /**
   * The node's view by deltas (FlockerClient.waitForClusterDelta with this node). When given,
   * every read (long-polls and refetches) is of this node's view, merged from deltas.
   */
  readonly waitForClusterDelta?: (since: string | undefined, timeoutMs: number) => Promise<ClusterAnswer>;
  /**
   * The node's view as a stream (FlockerClient.watchCluster with this node): the whole view, or
   * from `since` what changed since it, then a delta per change; ends when `signal` aborts. Used
   * together with waitForClusterDelta (refetches, and long-polls from a service without the watch).
   */
  readonly watchCluster?: (since: string | undefined, signal: AbortSignal) => AsyncIterable<ClusterAnswer>;
  readonly nodeUuid: string;
  readonly clock: Clock;
  readonly logger: winston.Logger;
  /** How long one long-poll waits. */
  readonly pollWaitMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /** At least this long between two looks at the whole cluster (lookWhole); default 10 s. */
  readonly wholeLookIntervalMs?: number;
  /** A gap already looked up is looked up again only after this long; default 5 min. */
  readonly wholeLookAgainMs?: number;
  /**
   * How long an unattached volume of a dataset outside the view must stay so before it is looked up;
   * default 30 s. A move leaves one for a moment (detached there, not yet attached at the new primary),
   * and every node of a shared pool sees it: only one that stays (a dead primary's) is worth a look.
   */
  readonly wholeLookDatasetAfterMs?: number;
  /** How long what a whole look found is merged into the view (liveness goes stale); default 10 s. */
  readonly wholeLookFreshMs?: number;
  /** A snapshot answered to a question asked at `askedAt` was adopted (it is `snapshot` now). */
  readonly adopted: (snap: ClusterSnapshot, askedAt: number, change: SnapshotChange) => void;
}

export class ClusterFollower {
  private current: ClusterSnapshot | null = null;
  /** When the snapshot held was asked for: across epochs, an answer to an older question never replaces it. */
  private snapshotAskedAt = -Infinity;
  private refetching: Promise<void> | null = null;
  private readonly following = new AbortController();
  /** How it follows now: the best offered, less what the control service refused (ClusterFollowerMode). */
  private mode: FollowMode;
  private readonly offers: FollowOffers;
  /** The view the current watch's lines built: the base of its next delta, the `since` of the next watch. */
  private streamView: ClusterSnapshot | null = null;
  /** Pauses between failed watches (the agent's backoff, as the long-polls'). */
  private readonly watchBackoff: Backoff;
  /** Snapshots read whole (not a node's view): a delta never applies to one. */
  private readonly wholeReads = new WeakSet<ClusterSnapshot>();
  /**
   * Answers read, by kind (tests, the e2e's check that agents follow deltas): deltas merged and
   * whole views (long-polled or streamed), whole snapshots, whole looks, and lines of watches.
   */
  readonly answers = { delta: 0, view: 0, whole: 0, looks: 0, streamed: 0 };
  /** Gap (`i:`/`b:`/`d:` + id) → when it was last looked up in the whole cluster. */
  private readonly lookedUp = new Map<string, number>();
  private lastWholeLook = -Infinity;
  /** Dataset gap → since when it has been one (see wholeLookDatasetAfterMs). */
  private readonly datasetGapSince = new Map<string, number>();
  private lookingWhole = false;
  /** What the last whole look found that the view lacks, and when. */
  private explanation: { extra: Pick<ClusterSnapshot, 'datasets' | 'nodes'>; at: number } | null = null;
  private merged: { view: ClusterSnapshot; extra: object; snap: ClusterSnapshot } | null = null;

  constructor(private readonly o: ClusterFollowerOptions) {
    this.offers = { watch: o.watchCluster !== undefined, deltas: o.waitForClusterDelta !== undefined };
    this.mode = initialMode(this.offers);
    this.watchBackoff = new Backoff({ initialMs: o.backoffInitialMs, maxMs: o.backoffMaxMs, jitter: false });
  }

  /** How it follows the cluster now (tests, logs). */
  get followMode(): FollowMode {
    return this.mode;
  }

  /** The view held, with what a recent whole look found that it lacks (lookWhole). */
  get snapshot(): ClusterSnapshot | null {
    const view = this.current;
    const found = this.explanation;
    if (view === null || found === null) return view;
    if (this.o.clock.now() - found.at > (this.o.wholeLookFreshMs ?? 10_000)) {
      this.explanation = this.merged = null;
      return view;
    }
    if (this.merged?.view !== view || this.merged.extra !== found.extra)
      this.merged = { view, extra: found.extra, snap: supplementView(view, found.extra) };
    return this.merged.snap;
  }

  /**
   * Looks the gaps of this node's view up in the whole cluster (one whole snapshot), unless it
   * follows whole snapshots anyway, a look is out or was made less than wholeLookIntervalMs ago
   * (a dataset's gap counts once it has stayed wholeLookDatasetAfterMs),
   * or every gap was looked up within wholeLookAgainMs (a gap that stays — a dataset whose primary
   * is dead and that is not deleted — costs one look per that time, not one per turn). What explains
   * them is merged into the view for wholeLookFreshMs, and the agent told (a 'config' change).
   */
  lookWhole(found: ViewGaps): void {
    if (this.mode === 'whole' || this.stopped) return;
    const now = this.o.clock.now();
    const after = this.o.wholeLookDatasetAfterMs ?? 30_000;
    const current = new Set(found.datasets);
    for (const id of this.datasetGapSince.keys()) if (!current.has(id)) this.datasetGapSince.delete(id);
    for (const id of current) if (!this.datasetGapSince.has(id)) this.datasetGapSince.set(id, now);
    const gaps = {
      ...found,
      datasets: found.datasets.filter((id) => now - (this.datasetGapSince.get(id) ?? now) >= after),
    };
    if (this.lookingWhole || isEmptyGaps(gaps)) return;
    if (now - this.lastWholeLook < (this.o.wholeLookIntervalMs ?? 10_000)) return;
    const again = this.o.wholeLookAgainMs ?? 300_000;
    for (const [k, at] of this.lookedUp) if (now - at >= again) this.lookedUp.delete(k);
    const keys = [
      ...gaps.instances.map((i) => `i:${i}`),
      ...gaps.blockdevices.map((b) => `b:${b}`),
      ...gaps.datasets.map((d) => `d:${d}`),
    ];
    if (keys.every((k) => this.lookedUp.has(k))) return;
    for (const k of keys) this.lookedUp.set(k, now);
    this.lookingWhole = true;
    this.lastWholeLook = now;
    this.answers.looks++;
    void (async () => {
      try {
        const whole = await this.o.waitForCluster(undefined, 0);
        const extra = explanationOf(whole, gaps);
        this.explanation = { extra, at: this.o.clock.now() };
        this.o.logger.info("looked at the whole cluster for what this node's view lacks", {
          instances: gaps.instances,
          blockdevices: gaps.blockdevices,
          datasets: gaps.datasets,
          foundNodes: extra.nodes.map((n) => n.uuid),
          foundDatasets: extra.datasets.map((d) => d.dataset_id),
        });
        const snap = this.snapshot;
        if (snap !== null && !this.stopped) this.o.adopted(snap, now, 'config');
      } catch (e) {
        this.o.logger.debug('a look at the whole cluster failed', { code: errorCode(e), error: errorMessage(e) });
      } finally {
        this.lookingWhole = false;
      }
    })();
  }

  private get stopped(): boolean {
    return this.following.signal.aborted;
  }

  /** Starts following (not awaited by stop(): a pending long-poll just ends with its timeout, a watch at once). */
  start(): void {
    void this.follow();
  }

  /** Follows in the current mode until stopped; a change of mode ends one way and starts the next. */
  private async follow(): Promise<void> {
    let afterFailure = false;
    while (!this.stopped)
      afterFailure = this.mode === 'watch' ? await this.followWatch(afterFailure) : await this.followPolls();
  }

  /**
   * Long-polls until following stops or, after a failed poll, the watch is to be tried again
   * (true: it starts after a backoff pause).
   */
  private async followPolls(): Promise<boolean> {
    const polls = new AbortController();
    const end = (): void => polls.abort();
    this.following.signal.addEventListener('abort', end, { once: true });
    let toWatch = false;
    try {
      await followLongPoll<ClusterSnapshot>({
        // The control service's client takes no signal: a poll held when stopping ends with its timeout.
        wait: (since, timeoutMs) => this.read(since, timeoutMs),
        waitMs: this.o.pollWaitMs,
        // From the snapshot held, which a refetch may have moved past the last long-poll answer.
        since: () => this.current?.generation,
        onSnapshot: (snap, { askedAt }) => {
          this.o.logger.debug('cluster snapshot', {
            generation: snap.generation,
            waitedMs: this.o.clock.now() - askedAt,
          });
          this.adopt(snap, askedAt);
        },
        onError: (e) => {
          this.o.logger.warn('cannot reach the control service', { code: errorCode(e), error: errorMessage(e) });
          // The service may be restarting, perhaps upgraded (a rolling upgrade): ask for the best again.
          this.mode = modeAfter(this.mode, 'readFailed', this.offers);
          if (this.mode === 'watch') {
            toWatch = true;
            polls.abort();
          }
        },
        // The agent's documented retry times (agent.yml backoff_*): exact, no jitter.
        backoff: { initialMs: this.o.backoffInitialMs, maxMs: this.o.backoffMaxMs, jitter: false },
        signal: polls.signal,
        clock: this.o.clock,
      });
    } finally {
      this.following.signal.removeEventListener('abort', end);
    }
    return toWatch;
  }

  /**
   * Follows the node's view over watches until following stops or the control service refuses
   * the watch (then long-polls: false). Each watch asks from the view the last one held, so a
   * change made while none was open comes as the first line. A line is ordered against the view
   * held as asked on arrival (by generation within an epoch: ClusterFollowerOrder), and proves
   * contact as of the watch's request (a long-poll's answer proves it as of its question).
   */
  private async followWatch(afterFailure: boolean): Promise<boolean> {
    const watch = this.o.watchCluster;
    if (watch === undefined) {
      this.mode = modeAfter(this.mode, 'watchRefused', this.offers);
      return false;
    }
    let pause = afterFailure;
    let resync = afterFailure;
    /** Since a failure, no line yet: the first one says contact is back (logged). */
    let lost = afterFailure;
    while (!this.stopped && this.mode === 'watch') {
      if (pause) {
        await sleep(this.watchBackoff.next(), { clock: this.o.clock, signal: this.following.signal }).catch(
          () => undefined,
        );
        if (this.stopped) break;
      }
      const since = this.streamView?.generation;
      // After a failure, what changed since the view held, at once: the watch writes only changes,
      // and this answer is proof of contact (and of the tag) even if nothing did.
      if (resync && since !== undefined) this.refetch();
      let lines = 0;
      // What a line proves to self-fencing: the view was current when the watch was asked for, no
      // later. A line is written before it arrives, by up to the client's idle timeout (3 heartbeats)
      // after a stall, or longer behind a proxy that holds answers back: counted on arrival, it would
      // prove a configuration current that may not be. Reports and refetches confirm contact as with
      // long-polls (a report answered with the tag held; a read when the tag differs).
      const watchAskedAt = this.o.clock.now();
      try {
        for await (const line of watch(since, this.following.signal)) {
          if (this.stopped) return false;
          lines++;
          this.watchBackoff.reset();
          const next = viewAfterLine(this.streamView, line);
          if (next === undefined) {
            this.o.logger.info('a watch sent a delta for another view: watching the whole view again', {
              held: this.streamView?.generation,
              since: isClusterDelta(line) ? line.since : undefined,
            });
            this.streamView = null;
            break;
          }
          this.streamView = next.view;
          if (next.delta) this.answers.delta++;
          else this.answers.view++;
          if (this.answers.streamed++ === 0)
            this.o.logger.info("following this node's view over a watch", { generation: next.view.generation });
          else if (lost)
            this.o.logger.info("watching this node's view again", {
              since,
              generation: next.view.generation,
              // A whole view: the service did not know the generation held (it restarted).
              whole: !next.delta,
            });
          lost = false;
          this.o.logger.debug('cluster snapshot', { generation: next.view.generation, streamed: true });
          this.adopt(next.view, this.o.clock.now(), watchAskedAt);
        }
        // Ended by the service (closing: its successor or another replica answers) or for a
        // whole view: watch again — at once, unless nothing came (no loop against a service
        // that ends every watch).
        pause = lines === 0;
        resync = false;
      } catch (e) {
        if (this.stopped) return false;
        if (watchRefused(errorStatus(e))) {
          this.o.logger.info('the control service does not offer the watch: following long-polls', {
            code: errorCode(e),
            error: errorMessage(e),
          });
          this.mode = modeAfter(this.mode, 'watchRefused', this.offers);
          this.streamView = null;
          return false;
        }
        // A watch that had answered and was then cut (its replica killed or restarted): watched again
        // at once, through the next replica if this one is gone (the client tries them in turn) —
        // as a long-poll in progress fails over inside the client. Unreachable only if that fails too.
        if (lines > 0) {
          this.o.logger.info('the watch was cut: watching again at once', {
            code: errorCode(e),
            error: errorMessage(e),
          });
          pause = false;
        } else {
          this.o.logger.warn('cannot reach the control service', { code: errorCode(e), error: errorMessage(e) });
          pause = true;
        }
        resync = lost = true;
      }
    }
    return false;
  }

  stop(): void {
    this.following.abort();
  }

  /**
   * Fetches the current snapshot now (one at a time). Following deltas, what changed in the view
   * held, at once: the configuration tag is the whole cluster's, so a report's answer names another
   * one after any change elsewhere, which does not wake this view's poll — a delta of nothing
   * (hundreds of bytes) brings the tag, where a read of the whole view would cost kilobytes.
   */
  refetch(): void {
    if (this.refetching !== null || this.stopped) return;
    this.refetching = (async () => {
      const asked = this.o.clock.now();
      try {
        this.adopt(await this.read(this.mode !== 'whole' ? this.current?.generation : undefined, 0), asked);
      } catch (e) {
        this.o.logger.debug('refetch of the configuration failed', { code: errorCode(e), error: errorMessage(e) });
      }
    })().finally(() => {
      this.refetching = null;
    });
  }

  /**
   * One read: a whole snapshot, or (deltas on) the node's view from a delta merged into the
   * view held — or, when the delta is not for that view (a refetch moved it on meanwhile),
   * the whole view read again.
   */
  private async read(since: string | undefined, timeoutMs: number): Promise<ClusterSnapshot> {
    const delta = this.o.waitForClusterDelta;
    if (this.mode === 'whole' || delta === undefined) return this.whole(this.sinceOf(since, true), timeoutMs);
    // The view the delta is asked against: the long-poll and a refetch may both be out, and the
    // other's answer may move the view held on before this one comes back.
    const base = this.current;
    let answer: ClusterAnswer;
    try {
      answer = await delta(this.sinceOf(since, false), timeoutMs);
    } catch (e) {
      // Refused while watching (a refetch): the watch goes on, this read just failed.
      if (errorStatus(e) !== 400 || this.mode !== 'deltas') throw e;
      this.o.logger.info('the control service does not answer deltas: following whole snapshots', {
        error: errorMessage(e),
      });
      this.mode = modeAfter(this.mode, 'deltasRefused', this.offers);
      return this.whole(this.sinceOf(since, true), timeoutMs);
    }
    if (!isClusterDelta(answer)) {
      this.answers.view++;
      return answer;
    }
    const held = this.current;
    const merged =
      (base !== null ? applyClusterDelta(base, answer) : undefined) ??
      (held !== null && held !== base ? applyClusterDelta(held, answer) : undefined);
    if (merged !== undefined) {
      if (this.answers.delta++ === 0)
        this.o.logger.info("following this node's view by deltas", { generation: merged.generation });
      return merged;
    }
    const whole = await delta(undefined, 0);
    if (isClusterDelta(whole)) throw new Error('the control service answered a delta to a read without since');
    this.answers.view++;
    return whole;
  }

  /** A whole-cluster snapshot (a control service without deltas). */
  private async whole(since: string | undefined, timeoutMs: number): Promise<ClusterSnapshot> {
    this.answers.whole++;
    const snap = await this.o.waitForCluster(since, timeoutMs);
    this.wholeReads.add(snap);
    return snap;
  }

  /**
   * `since` when the snapshot held is of the kind asked for (`whole`: a whole snapshot, else a
   * node's view), else undefined (a read at once): after a change of mode the generation held is
   * of the other kind — a delta would not apply to it, a whole long-poll would wait on a view.
   */
  private sinceOf(since: string | undefined, whole: boolean): string | undefined {
    const held = this.current;
    return held !== null && this.wholeReads.has(held) === whole ? since : undefined;
  }

  /**
   * Takes a snapshot asked for at `askedAt` unless the view held is newer (ClusterFollowerOrder: by
   * generation within the control service's epoch, else by when asked — a restart is adopted).
   * `confirmedAt` is what it proves to self-fencing: the configuration it holds was current then
   * (a read: when asked; a watch's line: when the watch was asked for, see followWatch). An older
   * view than the one held is not taken, but the held one was current at least as late: contact.
   */
  private adopt(snap: ClusterSnapshot, askedAt: number, confirmedAt = askedAt): void {
    const before = this.current;
    const held = before === null ? null : { generation: before.generation, askedAt: this.snapshotAskedAt };
    if (!replacesHeld(held, { generation: snap.generation, askedAt })) {
      if (before !== null && compareGenerations(snap.generation, before.generation) === -1) {
        this.o.logger.debug('an older view than the one held: kept the held one', {
          held: before.generation,
          answered: snap.generation,
        });
        this.o.adopted(before, confirmedAt, 'none');
      }
      return;
    }
    this.snapshotAskedAt = Math.max(this.snapshotAskedAt, askedAt);
    let change: SnapshotChange = 'none';
    if (snap.generation !== before?.generation) {
      change =
        before === null || configKey(snap) !== configKey(before)
          ? 'config'
          : othersKey(snap, this.o.nodeUuid) !== othersKey(before, this.o.nodeUuid)
            ? 'others'
            : 'own';
      this.current = snap;
    }
    this.o.adopted(snap, confirmedAt, change);
  }
}

/**
 * What in a snapshot can change this node's decisions: the configuration and
 * node liveness (configKey), and what the other nodes did (othersKey). Our own
 * report, echoed back, is in neither.
 */
function configKey(s: ClusterSnapshot): string {
  // Snapshots asked for or deleted are configuration too: the source's primary takes them.
  return JSON.stringify([s.datasets, s.snapshots ?? [], s.nodes.map((n) => [n.uuid, n.instance_id, n.alive])]);
}

function othersKey(s: ClusterSnapshot, self: string): string {
  return JSON.stringify(s.nodes.filter((n) => n.uuid !== self).map((n) => [n.uuid, n.manifestations, n.volumes]));
}

/** The HTTP status of a FlockerApiError (0: no answer), undefined for other errors. */
function errorStatus(e: unknown): number | undefined {
  return typeof e === 'object' && e !== null && 'status' in e && typeof e.status === 'number' ? e.status : undefined;
}
