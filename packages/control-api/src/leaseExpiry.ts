/**
 * Leases that end on their own: expired leases (a timer at the next expiry) and the
 * unpinned leases of nodes dead for the lease grace (a timer at the next grace end,
 * plus a sweep at every liveness check). Both are configuration writes through the
 * committer, re-applied on whatever configuration is current.
 */
import type { Logger } from 'winston';
import {
  type Configuration,
  configurationTag,
  expireLeases,
  nextLeaseExpiry,
  releaseDeadNodeLeases,
} from './configuration';
import type { Committer } from './committer';
import { type EventRing, leaseReleasedEvent } from './events';
import type { NodeReports } from './nodeReports';

export interface LeaseExpiryOptions {
  committer: Committer;
  nodes: NodeReports;
  leaseGraceMs: number;
  events: EventRing;
  logger: Logger;
  /** Wall-clock ms (the configuration's time: lease expiries, events). */
  now: () => number;
  /** Monotonic ms: what the time dead (NodeReports.deadNodeTimes) and the grace are measured on; default `now`. */
  mono?: () => number;
  /** While true, no dead node's lease is released (the store does not answer this replica: FR19-10). */
  paused?: () => boolean;
}

/** Timers cap at ~24.8 days; a later moment is simply re-checked then. */
const MAX_DELAY_MS = 2 ** 31 - 1;

export class LeaseExpiryService {
  private leaseTimer: NodeJS.Timeout | undefined;
  private deadReleaseTimer: NodeJS.Timeout | undefined;
  /** The release of dead nodes' leases in flight, if any (one at a time). */
  private releasing: Promise<void> | undefined;
  /** The leases and due nodes of the last sweep that found nothing to release (skips rescanning them). */
  private cleanSweep: { leases: ReadonlyMap<string, unknown>; due: string } | undefined;
  private closed = false;

  constructor(private readonly options: LeaseExpiryOptions) {}

  /** Monotonic ms at wall-clock `now` (an explicit now earlier or later than the clock's shifts it along). */
  private monoAt(now: number = this.options.now()): number {
    return (this.options.mono ?? this.options.now)() + now - this.options.now();
  }

  /** A timer at the next lease expiry of the committed configuration (replacing the previous one). */
  scheduleLeaseExpiry(): void {
    if (this.leaseTimer !== undefined) clearTimeout(this.leaseTimer);
    this.leaseTimer = undefined;
    if (this.closed) return;
    const next = nextLeaseExpiry(this.options.committer.configuration);
    if (next === undefined) return;
    const delay = Math.min(Math.max(0, next - this.options.now()) + 5, MAX_DELAY_MS);
    this.leaseTimer = setTimeout(() => {
      this.leaseTimer = undefined;
      this.options.committer
        .mutate((c, now) => {
          const config = expireLeases(c, now);
          return { config, result: undefined, status: 200 };
        })
        .catch((err: unknown) => {
          this.options.logger.error('expiring leases failed', { error: String(err) });
        });
    }, delay);
    this.leaseTimer.unref();
  }

  /** A timer at the next moment a dead node's grace ends (ones already due are swept by the liveness check). */
  scheduleDeadNodeRelease(): void {
    if (this.deadReleaseTimer !== undefined) clearTimeout(this.deadReleaseTimer);
    this.deadReleaseTimer = undefined;
    if (this.closed) return;
    const now = this.monoAt();
    let next: number | undefined;
    for (const [, dead] of this.options.nodes.deadNodeTimes()) {
      const due = dead.deadSince + this.options.leaseGraceMs;
      if (due > now && (next === undefined || due < next)) next = due;
    }
    if (next === undefined) return;
    const delay = Math.min(next - now + 5, MAX_DELAY_MS);
    this.deadReleaseTimer = setTimeout(() => {
      this.deadReleaseTimer = undefined;
      void this.releaseDeadNodeLeases();
      this.scheduleDeadNodeRelease();
    }, delay);
    this.deadReleaseTimer.unref();
  }

  /**
   * Releases (one configuration commit) every unpinned lease whose node has been dead
   * for the lease grace. Idempotent: re-applied on whatever configuration is current
   * (another replica's included), it releases only what is still held by a node still
   * dead. Failures are logged and retried on the next liveness check.
   */
  releaseDeadNodeLeases(now: number = this.options.now()): Promise<void> {
    if (this.closed || this.options.paused?.() === true) return Promise.resolve();
    if (this.releasing !== undefined) return this.releasing;
    const { committer, nodes, leaseGraceMs, events, logger } = this.options;
    const due: string[] = [];
    const mono = this.monoAt(now);
    for (const [uuid, dead] of nodes.deadNodeTimes()) if (mono - dead.deadSince >= leaseGraceMs) due.push(uuid);
    if (due.length === 0) return Promise.resolve();
    const key = due.sort().join(',');
    const leases = committer.latestConfiguration.leases;
    if (this.cleanSweep !== undefined && this.cleanSweep.leases === leases && this.cleanSweep.due === key)
      return Promise.resolve();
    const change = (c: Configuration, t: number) =>
      releaseDeadNodeLeases(c, (uuid) => nodes.deadSince(uuid, t), t, leaseGraceMs);
    if (change(committer.latestConfiguration, now).result.length === 0) {
      this.cleanSweep = { leases, due: key };
      return Promise.resolve();
    }
    const releasing = committer
      .mutate(change)
      .then((applied) => {
        const at = this.options.now();
        const committed = committer.configuration;
        for (const { lease, deadSince } of applied.result) {
          const host =
            nodes.reportedNode(lease.node_uuid)?.report.host ??
            committed.nodes.get(lease.node_uuid)?.host ??
            lease.node_uuid;
          const volume = committed.datasets.get(lease.dataset_id)?.metadata['name'];
          const event = leaseReleasedEvent(lease.dataset_id, volume, lease.node_uuid, host, deadSince, at);
          events.push(event);
          logger.warn(event.message, {
            event: event.kind,
            dataset: lease.dataset_id,
            node: lease.node_uuid,
            host,
            configuration: configurationTag(committed),
          });
        }
      })
      .catch((err: unknown) => {
        if (this.closed) return;
        logger.warn('releasing the leases of dead nodes failed; retrying at the next liveness check', {
          error: String(err),
        });
      })
      .finally(() => {
        this.releasing = undefined;
      });
    this.releasing = releasing;
    return releasing;
  }

  close(): void {
    this.closed = true;
    if (this.leaseTimer !== undefined) clearTimeout(this.leaseTimer);
    if (this.deadReleaseTimer !== undefined) clearTimeout(this.deadReleaseTimer);
  }
}
