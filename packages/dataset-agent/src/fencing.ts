/**
 * Self-fencing: pure rules for when a node must stop using its volumes because
 * it cannot confirm its configuration with the control service.
 *
 * Timing invariant (README "Failover"): with T the control service's node timeout
 * and G its lease grace, a cut-off node starts fencing F = selfFenceBoundMs(T) <= T/2
 * after its last confirmed contact. The control service declares it dead at the
 * earliest T after the report that confirmed that contact was sent, and only then
 * may another node force-detach its volumes (unleased: at T; leased: at T + G).
 * So F < T <= T + G, and the T - F >= T/2 in between is the time fencing has
 * (stopping containers, unmounting) before anyone takes over.
 */

/** Where the node stands with the control service. */
export type ContactPhase =
  | 'inContact' //  configuration confirmed within the bound (or fencing off): may act
  | 'fencing' //    cut off for longer than the bound: stopping containers and unmounting
  | 'fenced' //     stopped and unmounted; waits for a configuration confirmed after the cut
  | 'recovering'; // confirmed again: removes stale mounts before anything else

export interface ContactFacts {
  /** The bound has passed since the last confirmation (or since start, before any). */
  readonly expired: boolean;
  /** A configuration was confirmed after fencing began, within the bound. */
  readonly confirmedSinceFence: boolean;
  /** The fencing pass (containers stopped, mounts removed) finished. */
  readonly fenceDone: boolean;
  /** The stale-mount cleanup after contact came back finished. */
  readonly cleanupDone: boolean;
}

// prettier-ignore
export function nextPhase(phase: ContactPhase, f: ContactFacts): ContactPhase {
  switch (phase) {
    case 'inContact':  return f.expired ? 'fencing' : 'inContact';
    case 'fencing':    return f.fenceDone ? 'fenced' : 'fencing';
    case 'fenced':     return f.confirmedSinceFence && !f.expired ? 'recovering' : 'fenced';
    case 'recovering': return f.expired ? 'fencing' : f.cleanupDone ? 'inContact' : 'recovering';
  }
}

/**
 * The self-fence bound: half the node timeout, or the configured value when
 * shorter (a longer one would leave too little time to fence before takeover).
 * undefined: the control service told no node timeout and none is configured —
 * fencing is off (an old control service).
 */
export function selfFenceBoundMs(nodeTimeoutMs: number | undefined, configuredMs: number | undefined): number | undefined {
  if (nodeTimeoutMs === undefined) return configuredMs;
  const half = nodeTimeoutMs / 2;
  return configuredMs === undefined ? half : Math.min(configuredMs, half);
}

/** How often to confirm contact: three chances within the bound, never less often than the resync interval. */
export function heartbeatMs(boundMs: number | undefined, resyncIntervalMs: number): number {
  return boundMs === undefined ? resyncIntervalMs : Math.max(10, Math.min(resyncIntervalMs, Math.floor(boundMs / 3)));
}

/**
 * When contact was last confirmed. A confirmation is the time a request was
 * *sent* whose answer shows the configuration this node holds is the current
 * one: the answer can only be newer than its question, so the node's
 * configuration was current at least then.
 */
export class ContactTracker {
  private confirmedAt: number | undefined;
  private fenceStartedAt: number | undefined;
  phase: ContactPhase = 'inContact';

  constructor(private readonly startedAt: number) {}

  /** The holder's configuration was current at `sentAt`. */
  confirm(sentAt: number): void {
    if (this.confirmedAt === undefined || sentAt > this.confirmedAt) this.confirmedAt = sentAt;
  }

  get lastConfirmed(): number | undefined {
    return this.confirmedAt;
  }

  /** When the bound runs out (from start, before any confirmation); undefined with fencing off. */
  deadline(boundMs: number | undefined): number | undefined {
    return boundMs === undefined ? undefined : (this.confirmedAt ?? this.startedAt) + boundMs;
  }

  expired(now: number, boundMs: number | undefined): boolean {
    const d = this.deadline(boundMs);
    return d !== undefined && now >= d;
  }

  /** Whether the node may act on its configuration now: create, attach, format, mount, resize, destroy. */
  mayAct(now: number, boundMs: number | undefined): boolean {
    if (boundMs === undefined) return this.phase === 'inContact';
    return this.phase === 'inContact' && this.confirmedAt !== undefined && now - this.confirmedAt < boundMs;
  }

  /** Applies the rules; returns the phase entered, if it changed. */
  step(now: number, boundMs: number | undefined, done: { fenceDone: boolean; cleanupDone: boolean }): ContactPhase | undefined {
    const expired = this.expired(now, boundMs);
    const confirmedSinceFence =
      this.fenceStartedAt !== undefined && this.confirmedAt !== undefined && this.confirmedAt > this.fenceStartedAt;
    const next = nextPhase(this.phase, { expired, confirmedSinceFence, ...done });
    if (next === this.phase) return undefined;
    if (next === 'fencing') this.fenceStartedAt = now;
    this.phase = next;
    return next;
  }

  get fencedSince(): number | undefined {
    return this.phase === 'inContact' ? undefined : this.fenceStartedAt;
  }
}

/** Actions that take or change a volume: never on a configuration older than the bound. */
export const ACQUIRING_ACTIONS = new Set(['create', 'attach', 'format', 'mount', 'resize', 'destroy', 'forceDetach']);
