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
  | 'inContact' //  contact confirmed within the bound (or fencing off): may act
  | 'checking' //   the bound ran out: one last report, bounded, before fencing (a pause of this process is not lost contact)
  | 'fencing' //    cut off (or declared dead): stopping containers and unmounting
  | 'fenced' //     stopped and unmounted; waits for contact confirmed after the cut
  | 'recovering'; // confirmed again: removes stale mounts before anything else

export interface ContactFacts {
  /** The bound has passed since the last confirmation (or since start, before any). */
  readonly expired: boolean;
  /** A snapshot shows the control service has declared this node dead (and no later report revived it). */
  readonly deadSeen: boolean;
  /** The last-chance report failed or timed out. */
  readonly lastChanceFailed: boolean;
  /** Contact was confirmed after fencing began, within the bound. */
  readonly confirmedSinceFence: boolean;
  /** The fencing pass (containers stopped, mounts removed) finished. */
  readonly fenceDone: boolean;
  /** The stale-mount cleanup after contact came back finished. */
  readonly cleanupDone: boolean;
}

// prettier-ignore
export function nextPhase(phase: ContactPhase, f: ContactFacts): ContactPhase {
  switch (phase) {
    case 'inContact':  return f.deadSeen ? 'fencing' : f.expired ? 'checking' : 'inContact';
    case 'checking':   return f.deadSeen ? 'fencing' : !f.expired ? 'inContact' : f.lastChanceFailed ? 'fencing' : 'checking';
    case 'fencing':    return f.fenceDone ? 'fenced' : 'fencing';
    case 'fenced':     return f.confirmedSinceFence && !f.expired && !f.deadSeen ? 'recovering' : 'fenced';
    case 'recovering': return f.expired || f.deadSeen ? 'fencing' : f.cleanupDone ? 'inContact' : 'recovering';
  }
}

/**
 * The self-fence bound: half the node timeout, or the configured value when
 * shorter (a longer one would leave too little time to fence before takeover).
 * undefined: the control service told no node timeout and none is configured —
 * fencing is off (an old control service).
 */
export function selfFenceBoundMs(
  nodeTimeoutMs: number | undefined,
  configuredMs: number | undefined,
): number | undefined {
  if (nodeTimeoutMs === undefined) return configuredMs;
  const half = nodeTimeoutMs / 2;
  return configuredMs === undefined ? half : Math.min(configuredMs, half);
}

/** How often to confirm contact: three chances within the bound, never less often than the resync interval. */
export function heartbeatMs(boundMs: number | undefined, resyncIntervalMs: number): number {
  return boundMs === undefined ? resyncIntervalMs : Math.max(10, Math.min(resyncIntervalMs, Math.floor(boundMs / 3)));
}

/**
 * How long a request to one control replica may go unanswered before the next is asked (FlockerClient
 * failoverTimeoutMs): one heartbeat period of the bound. A heartbeat held by a frozen replica (stopped, its
 * connections open) then reaches the next one two periods after the last confirmation, within the bound (three).
 * With the client's 5 s alone, a frozen first replica fenced every node naming it first at node timeout 10 s
 * (bound 5 s: heartbeat at 1.7 s, moved on at 6.7 s; review T4). undefined: no bound known, the client's timeout.
 */
export function replicaFailoverMs(boundMs: number | undefined): number | undefined {
  return boundMs === undefined ? undefined : Math.max(10, Math.floor(boundMs / 3));
}

/**
 * How long the last-chance report may take: a third of what is left between the
 * bound and the node timeout, so that fencing still starts by F + (T - F)/3 < T.
 */
export function lastChanceMs(boundMs: number, nodeTimeoutMs: number | undefined): number {
  const room = nodeTimeoutMs !== undefined ? (nodeTimeoutMs - boundMs) / 3 : boundMs / 3;
  return Math.max(10, Math.floor(room));
}

/**
 * When contact was last confirmed. Contact needs both halves:
 * - the control service heard this node: the send time of the latest report it
 *   accepted (it declares a node dead T after the last report it received, so a
 *   node whose reports are refused or lost must fence even if it still reads the
 *   configuration);
 * - the configuration this node holds is the current one: the time a question was
 *   sent whose answer showed it (a long-poll or fetch, or a report answered with
 *   our configuration tag).
 * The confirmation is the older of the two. A snapshot showing this node declared
 * dead (asked after the latest accepted report was answered) fences at once.
 */
export class ContactTracker {
  private configConfirmedAt: number | undefined;
  private reportSentAt: number | undefined;
  private reportAnsweredAt: number | undefined;
  private deadSeenAt: number | undefined;
  private fenceStartedAt: number | undefined;
  phase: ContactPhase = 'inContact';

  constructor(readonly startedAt: number) {}

  /** The configuration held was current at `at` (when the question was sent). */
  configConfirmed(at: number): void {
    if (this.configConfirmedAt === undefined || at > this.configConfirmedAt) this.configConfirmedAt = at;
  }

  /** The control service accepted a report sent at `sentAt`; its answer came at `answeredAt`. */
  reportAccepted(sentAt: number, answeredAt: number): void {
    if (this.reportSentAt === undefined || sentAt > this.reportSentAt) this.reportSentAt = sentAt;
    if (this.reportAnsweredAt === undefined || answeredAt > this.reportAnsweredAt) this.reportAnsweredAt = answeredAt;
    if (this.deadSeenAt !== undefined && answeredAt > this.deadSeenAt) this.deadSeenAt = undefined;
  }

  /** A snapshot asked for at `askedAt` shows this node declared dead. */
  seenDead(askedAt: number): void {
    // Asked before our latest accepted report was answered: it may predate that report.
    if (this.reportAnsweredAt !== undefined && askedAt < this.reportAnsweredAt) return;
    if (this.deadSeenAt === undefined || askedAt > this.deadSeenAt) this.deadSeenAt = askedAt;
  }

  get deadSeen(): boolean {
    return this.deadSeenAt !== undefined;
  }

  /** The older of the two halves of contact; undefined until both were seen. */
  get lastConfirmed(): number | undefined {
    if (this.configConfirmedAt === undefined || this.reportSentAt === undefined) return undefined;
    return Math.min(this.configConfirmedAt, this.reportSentAt);
  }

  /** When the bound runs out (from start, before any confirmation); undefined with fencing off. */
  deadline(boundMs: number | undefined): number | undefined {
    return boundMs === undefined ? undefined : (this.lastConfirmed ?? this.startedAt) + boundMs;
  }

  expired(now: number, boundMs: number | undefined): boolean {
    const d = this.deadline(boundMs);
    return d !== undefined && now >= d;
  }

  /** Whether the node may act on its configuration now: create, attach, format, mount, resize, destroy. */
  mayAct(now: number, boundMs: number | undefined): boolean {
    if (boundMs === undefined) return this.phase === 'inContact';
    const last = this.lastConfirmed;
    return this.phase === 'inContact' && !this.deadSeen && last !== undefined && now - last < boundMs;
  }

  /** Applies the rules; returns the phase entered, if it changed. */
  step(
    now: number,
    boundMs: number | undefined,
    done: { fenceDone: boolean; cleanupDone: boolean; lastChanceFailed: boolean },
  ): ContactPhase | undefined {
    if (boundMs === undefined) return undefined; // fencing off
    const expired = this.expired(now, boundMs);
    const last = this.lastConfirmed;
    const confirmedSinceFence = this.fenceStartedAt !== undefined && last !== undefined && last > this.fenceStartedAt;
    const next = nextPhase(this.phase, { expired, deadSeen: this.deadSeen, confirmedSinceFence, ...done });
    if (next === this.phase) return undefined;
    if (next === 'fencing') this.fenceStartedAt = now;
    this.phase = next;
    return next;
  }

  get fencedSince(): number | undefined {
    return this.phase === 'inContact' || this.phase === 'checking' ? undefined : this.fenceStartedAt;
  }
}

/** Actions that take or change a volume: never on a configuration older than the bound. */
export const ACQUIRING_ACTIONS = new Set(['create', 'attach', 'format', 'mount', 'resize', 'destroy', 'forceDetach']);

/**
 * Why the node fences, for its log and report. `lastConfirmedAgoMs`: since contact was last confirmed, undefined
 * when it never was since this agent started (`startedAgoMs` ago). Declared dead by the control service, the node
 * fences at once, however recent its contact: a boot after a power-off is such a fence, not one "for 0 ms".
 */
export function fenceReason(f: {
  deadSeen: boolean;
  lastConfirmedAgoMs: number | undefined;
  startedAgoMs: number;
  boundMs: number | undefined;
}): string {
  const bound = f.boundMs !== undefined ? ` (self-fence bound ${Math.round(f.boundMs)} ms)` : '';
  const contact =
    f.lastConfirmedAgoMs === undefined
      ? `no configuration confirmed by the control service since this agent started ${Math.round(f.startedAgoMs)} ms ago`
      : `no confirmed configuration from the control service for ${Math.round(f.lastConfirmedAgoMs)} ms`;
  if (f.deadSeen) {
    return f.lastConfirmedAgoMs === undefined
      ? `the control service had declared this node dead when this agent started ${Math.round(f.startedAgoMs)} ms ago (a host coming back), before its first confirmed contact`
      : `the control service has declared this node dead (contact last confirmed ${Math.round(f.lastConfirmedAgoMs)} ms ago)`;
  }
  return `${contact}${bound}`;
}

/**
 * What a fence pass that could not stop the containers using its mounts says (`why`: Docker's error): the host's
 * unmount only detached the host's view; such a container keeps the file system through its own mount namespace,
 * its writes (fsync included) succeeding until another host's force detach fences the device (loopback: the image
 * made immutable; EBS, Cinder: the detach). Nothing acknowledged is lost: the new host gets what was written.
 */
export function unstoppedNote(why: string): string {
  return (
    `could not stop the containers using its volumes (${why}): only the host's mounts came off (a lazy unmount), ` +
    "so such a container keeps writing through its own mount namespace until another host's force detach fences the device"
  );
}
