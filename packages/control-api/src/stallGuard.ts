/**
 * Writes sent while this replica was frozen are refused (review S26 R3). A replica stopped (SIGSTOP, a paused VM, a
 * very long GC or synchronous block) keeps its connections open: a client with another replica to ask moves a request
 * safe to repeat there after its failover bound (FlockerClient failoverTimeoutMs: 1-10 s) and goes on working (a lease
 * taken, released, the dataset moved back). The request stays in this replica's socket buffers, and Node reads and
 * dispatches it when the process runs again, with nothing to tell that its client has gone (the socket is still open):
 * applied then, it undoes what was done since (the lease and the move come back). So a write read in the turns right
 * after a stall of the event loop longer than `thresholdMs` is refused with 503 REPLICA_STALLED before anything of it
 * is done: a client still waiting sends it again (to the next replica, or here), one that moved on never sees it.
 *
 * How a stall is seen: a timer ticks every `tickMs` (monotonic clock). After SIGCONT the loop resumes in its poll phase
 * (it was blocked in epoll_wait), so the buffered requests are dispatched BEFORE the overdue tick runs: the check is
 * synchronous at the start of a request ("the last tick is more than tickMs + thresholdMs ago"). The late tick then
 * opens a window of `windowMs` in which writes are still refused: requests on connections accepted after the stall are
 * read in the loop's next turns, after that tick. A stall shorter than thresholdMs (+ up to one tick) is never taken
 * for one: ordinary delays of a loaded host must not refuse writes.
 *
 * A write let through is marked with the count of stalls seen (WriteMark): frozen after the check, before its change
 * reached the store, it is not applied after the stall either - refused at the committer's apply, or, its commit lost
 * to another replica's newer one meanwhile, refused instead of re-applied on top of it (review S26B B1).
 *
 * Unless its client surely still waits for the answer (review s27 F9: every write in flight across a 0.6-s GC pause
 * was refused, though its client waits seconds). A client says how long it waits (CLIENT_WAIT_HEADER: its timeout for
 * this attempt, after which it may send the write elsewhere); the guard bounds how long the request may have waited
 * (unread for at most one late turn, or the stall it was read after, then the time since it was read) and refuses it
 * only when that bound plus its slack (clientWaitSlackMs: half the stated wait, at least 1 s) reaches the stated wait.
 * The threshold itself stays below the shortest failover bound (the container agent's 1 s): a request that states no
 * wait gets the old refusal.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { CLIENT_WAIT_HEADER } from '@flocker/api';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'winston';
import { z } from 'zod';
import { RequestError } from './errors';
import { sendError } from './httpErrors';

export interface StallGuardOptions {
  /** How often the monitor ticks. */
  tickMs: number;
  /**
   * A turn that starts more than tickMs + thresholdMs after the last tick follows a stall. Below the shortest client
   * failover bound that matters (the container agent's 1 s; the plugin, CLI and CSI use 4-10 s; the dataset agent
   * node timeout / 6, 5 s by default), with room for the answer's way back; above a loaded host's ordinary delays.
   */
  thresholdMs: number;
  /** Writes are refused for this long after the late tick that saw a stall. */
  windowMs: number;
  /**
   * Whether a write let through before a stall is refused when it reaches the committer after it (review S26B B1).
   * false for a sole replica (review s27 F9): its client has no other replica to have moved to, and a request it sends
   * again here is read after this one, so applying it cannot undo what the client did since.
   */
  inFlight: boolean;
}

export const DEFAULT_STALL_GUARD: StallGuardOptions = { tickMs: 100, thresholdMs: 500, windowMs: 500, inFlight: true };

/** The monitor's memory: when it last ticked, and until when writes are refused (monotonic ms). */
export interface StallState {
  lastTickAt: number;
  refuseUntil: number;
  /** The last stall seen (ms), for the refusal's description. */
  stalledMs: number;
  /** How many stalls were seen: a write let through when it was n is not applied once it is more (review S26B B1). */
  stalls: number;
  /** The tick the last counted stall followed: a stall seen again (by a write, then by its late tick) counts once. */
  countedAfter: number;
}

export function initialStallState(now: number): StallState {
  return { lastTickAt: now, refuseUntil: -Infinity, stalledMs: 0, stalls: 0, countedAfter: -Infinity };
}

/** How long the loop was stalled before `now`, beyond a tick period and the threshold; undefined when it was not. */
function overdue(state: StallState, now: number, o: StallGuardOptions): number | undefined {
  const gap = now - state.lastTickAt;
  return gap > o.tickMs + o.thresholdMs ? gap - o.tickMs : undefined;
}

/** `state` having seen, at `now`, the stall of `stalledMs` that followed its last tick: counted, the window open. */
function seen(state: StallState, now: number, stalledMs: number, o: StallGuardOptions): StallState {
  return {
    ...state,
    refuseUntil: Math.max(state.refuseUntil, now + o.windowMs),
    stalledMs,
    stalls: state.countedAfter === state.lastTickAt ? state.stalls : state.stalls + 1,
    countedAfter: state.lastTickAt,
  };
}

/** A tick at `now`: the next state, and the stall it ends (ms) when it ran late. */
export function tick(state: StallState, now: number, o: StallGuardOptions): { state: StallState; stalledMs?: number } {
  const stalled = overdue(state, now, o);
  if (stalled === undefined) return { state: { ...state, lastTickAt: now } };
  return {
    state: { ...seen(state, now, stalled, o), lastTickAt: now, refuseUntil: now + o.windowMs },
    stalledMs: stalled,
  };
}

/**
 * The state at `now`, any stall before it seen (counted, the window open): after SIGCONT the replica's I/O callbacks
 * (a request, an etcd answer) run before the overdue tick, so whatever must know of the stall asks synchronously.
 */
export function observe(
  state: StallState,
  now: number,
  o: StallGuardOptions,
): { state: StallState; stalledMs?: number } {
  const stalled = overdue(state, now, o);
  return stalled === undefined ? { state } : { state: seen(state, now, stalled, o), stalledMs: stalled };
}

/**
 * Whether a write read at `now` is refused: the tick is overdue (this turn follows a stall the monitor has not seen
 * yet) or the window after the last stall is open. The next state remembers an overdue stall, so the refusal is the
 * same for every request of the turn. `stalledMs`: the stall behind a refusal.
 */
export function checkWrite(
  state: StallState,
  now: number,
  o: StallGuardOptions,
): { state: StallState; stalledMs?: number } {
  const observed = observe(state, now, o);
  if (observed.stalledMs !== undefined) return observed;
  return now < state.refuseUntil ? { state, stalledMs: state.stalledMs } : { state };
}

/** The least slack (clientWaitSlackMs): the request's way here and its body, the answer's way back. */
export const CLIENT_WAIT_SLACK_MS = 1_000;

/**
 * Added to the guard's bound of a request's age before it is compared with its client's wait `clientWaitMs`: what the
 * guard cannot see of it. The client's timer (FlockerClient's headers timer) starts before it connects and nothing but
 * that timer bounds the connect: a SYN dropped on a full accept queue is sent again after 1 s (then 3 s), and TLS
 * handshakes queue on a busy loop (review s29 R1 F3). Half the wait: for the lease POST's 4-s failover bound, one
 * retransmitted SYN and 1 s of queued handshakes, with a 0.7-s GC stall still under the bound (its write up to 1.4 s
 * old in flight, 1.9 s read right after it); a longer wait covers more. Not covered: a client that spent more than
 * half its wait before this replica read the request (a 4-s one whose SYN was sent three times).
 */
export function clientWaitSlackMs(clientWaitMs: number): number {
  return Math.max(CLIENT_WAIT_SLACK_MS, clientWaitMs / 2);
}

/** The longest a write read with no stall seen may have waited unread: one turn late by up to the threshold. */
function unreadMs(o: StallGuardOptions): number {
  return o.tickMs + o.thresholdMs;
}

/** The longest a write read right after a stall of `stalledMs` (or in its window) may have waited unread. */
function unreadAfterStallMs(stalledMs: number, o: StallGuardOptions): number {
  return stalledMs + 2 * o.tickMs + o.thresholdMs + o.windowMs;
}

/** Whether a client that waits `clientWaitMs` may have given up on a request at most `ageMs` old; no wait stated: yes. */
export function clientMayHaveLeft(ageMs: number, clientWaitMs: number | undefined): boolean {
  return clientWaitMs === undefined || ageMs + clientWaitSlackMs(clientWaitMs) >= clientWaitMs;
}

/** A CLIENT_WAIT_HEADER value: whole ms, up to an hour; anything else is no stated wait. */
const ClientWait = z
  .string()
  .regex(/^\d{1,7}$/)
  .transform(Number)
  .pipe(z.number().int().min(1).max(3_600_000));

/** The wait a write's client stated (CLIENT_WAIT_HEADER), when it stated one the guard can read. */
export function clientWaitOf(req: Pick<Request, 'get'>): number | undefined {
  const parsed = ClientWait.safeParse(req.get(CLIENT_WAIT_HEADER));
  return parsed.success ? parsed.data : undefined;
}

/** The monitor: a timer (unref'd) over the pure state above. */
export class StallGuard {
  private state: StallState;
  private timer: NodeJS.Timeout | undefined;
  private refused = 0;
  readonly options: StallGuardOptions;

  constructor(
    private readonly monoNow: () => number,
    private readonly logger: Logger,
    options: Partial<StallGuardOptions> = {},
  ) {
    this.options = { ...DEFAULT_STALL_GUARD, ...options };
    this.state = initialStallState(monoNow());
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.state = initialStallState(this.monoNow());
    this.timer = setInterval(() => this.onTick(), this.options.tickMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * The stall (ms) a write read now follows, when it must be refused; undefined: apply it. `clientWaitMs`: how long its
   * client waits for the answer (CLIENT_WAIT_HEADER); a write read after a stall its client surely outwaits is applied.
   */
  refusesWrite(clientWaitMs?: number): number | undefined {
    if (this.timer === undefined) return undefined;
    const next = checkWrite(this.state, this.monoNow(), this.options);
    this.state = next.state;
    if (next.stalledMs === undefined) return undefined;
    if (!clientMayHaveLeft(unreadAfterStallMs(next.stalledMs, this.options), clientWaitMs)) return undefined;
    this.refused++;
    return next.stalledMs;
  }

  /** The mark of a write let through now (after refusesWrite): how many stalls were seen, how old it may be. */
  mark(clientWaitMs?: number): WriteMark {
    const now = this.monoNow();
    // Let through in the window after a stall (its client waits longer): it may have waited that stall unread.
    const unread =
      now < this.state.refuseUntil ? unreadAfterStallMs(this.state.stalledMs, this.options) : unreadMs(this.options);
    return {
      guard: this,
      stalls: this.state.stalls,
      ended: false,
      sentBy: now - unread,
      ...(clientWaitMs !== undefined ? { clientWaitMs } : {}),
    };
  }

  /**
   * The stall (ms) seen since `mark` was taken, when there was one: the write it marks, read before that stall, must
   * not be applied now (its client may have moved on; review S26B B1). A stall not yet seen is looked for now.
   */
  stalledSince(mark: WriteMark): number | undefined {
    if (this.timer === undefined || !this.options.inFlight) return undefined;
    const now = this.monoNow();
    const next = observe(this.state, now, this.options);
    this.state = next.state;
    if (this.state.stalls === mark.stalls) return undefined;
    // Its client surely still waits for this answer: it has sent the write nowhere else, so applying it undoes nothing.
    return clientMayHaveLeft(now - mark.sentBy, mark.clientWaitMs) ? this.state.stalledMs : undefined;
  }

  private onTick(): void {
    const now = this.monoNow();
    const next = tick(this.state, now, this.options);
    this.state = next.state;
    // Every stall ends with one late tick: logged there (the writes of its first turn were refused before it).
    if (next.stalledMs !== undefined) {
      this.logger.warn('the event loop was stalled; writes read right after it are refused', {
        code: 'REPLICA_STALLED',
        stalled_ms: Math.round(next.stalledMs),
        window_ms: this.options.windowMs,
      });
    } else if (this.refused > 0 && now >= this.state.refuseUntil) {
      this.logger.warn('writes read right after an event-loop stall were refused', {
        code: 'REPLICA_STALLED',
        refused: this.refused,
      });
      this.refused = 0;
    }
  }
}

/**
 * A write request let through by the guard: the stalls its guard had seen then. A stall after it, before the write is
 * applied or while its commit is in flight, fails it unapplied (Committer: at its apply, and instead of re-applying
 * it onto another replica's newer configuration after a lost compare-and-swap).
 */
export interface WriteMark {
  readonly guard: StallGuard;
  readonly stalls: number;
  /** The earliest its client may have sent it (monotonic ms): read then, less the longest it may have waited unread. */
  readonly sentBy: number;
  /** How long its client waits for the answer (CLIENT_WAIT_HEADER), when it said. */
  readonly clientWaitMs?: number;
  /**
   * The request's handler has ended: a write made later in its async context (a timer it armed, such as a lease's
   * expiry) is the service's own, not the request's.
   */
  ended: boolean;
}

/** The mark of the write request whose handler runs (handleMarked). */
const writeMarks = new AsyncLocalStorage<WriteMark>();
const marked = new WeakMap<Request, WriteMark>();

/** `handle` (a request's handler) run with the request's mark, if it has one, until it ends. */
export async function handleMarked<T>(mark: WriteMark | undefined, handle: () => Promise<T> | T): Promise<T> {
  if (mark === undefined) return handle();
  try {
    return await writeMarks.run(mark, handle);
  } finally {
    mark.ended = true;
  }
}

/** The mark of the request a write made now is made for, while its handler runs. */
export function currentMark(): WriteMark | undefined {
  const mark = writeMarks.getStore();
  return mark?.ended === false ? mark : undefined;
}

/** The mark the guard gave `req` when it let it through; undefined for reads and without a guard. */
export function markOf(req: Request): WriteMark | undefined {
  return marked.get(req);
}

/** The refusal of a write read before a stall (ms) and not applied; `when` says at what point it was refused. */
export function stalledError(stalledMs: number, when: string): RequestError {
  return new RequestError(
    'REPLICA_STALLED',
    `This control replica was stalled (its event loop did not run for ${Math.round(stalledMs)} ms: stopped, ` +
      `paused or overloaded) ${when}, so its client may have given up on it and sent it to another replica; this ` +
      // Only this request's own change (review s27 F9): a lease hand-over's release request, recorded before, stays.
      "request's change was not applied. Send it again.",
  );
}

/** What a REPLICA_STALLED answer carries besides its body: when to send the request again. */
export const STALLED_RETRY_AFTER_S = 1;

const WRITES: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Express middleware, first of all: a write read right after a stall is answered 503 REPLICA_STALLED, unread. */
export function refuseWritesAfterStall(guard: StallGuard): (req: Request, res: Response, next: NextFunction) => void {
  return (req, res, next) => {
    if (!WRITES.has(req.method)) return next();
    const clientWaitMs = clientWaitOf(req);
    const stalledMs = guard.refusesWrite(clientWaitMs);
    if (stalledMs === undefined) {
      marked.set(req, guard.mark(clientWaitMs));
      return next();
    }
    // Its body is not parsed: node discards it after the answer.
    res.setHeader('Retry-After', String(STALLED_RETRY_AFTER_S));
    sendError(res, stalledError(stalledMs, 'when the request was read'));
  };
}
