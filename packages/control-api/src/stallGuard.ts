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
 */
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'winston';
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
}

export const DEFAULT_STALL_GUARD: StallGuardOptions = { tickMs: 100, thresholdMs: 500, windowMs: 500 };

/** The monitor's memory: when it last ticked, and until when writes are refused (monotonic ms). */
export interface StallState {
  lastTickAt: number;
  refuseUntil: number;
  /** The last stall seen (ms), for the refusal's description. */
  stalledMs: number;
}

export function initialStallState(now: number): StallState {
  return { lastTickAt: now, refuseUntil: -Infinity, stalledMs: 0 };
}

/** How long the loop was stalled before `now`, beyond a tick period and the threshold; undefined when it was not. */
function overdue(state: StallState, now: number, o: StallGuardOptions): number | undefined {
  const gap = now - state.lastTickAt;
  return gap > o.tickMs + o.thresholdMs ? gap - o.tickMs : undefined;
}

/** A tick at `now`: the next state, and the stall it ends (ms) when it ran late. */
export function tick(state: StallState, now: number, o: StallGuardOptions): { state: StallState; stalledMs?: number } {
  const stalled = overdue(state, now, o);
  if (stalled === undefined) return { state: { ...state, lastTickAt: now } };
  return { state: { lastTickAt: now, refuseUntil: now + o.windowMs, stalledMs: stalled }, stalledMs: stalled };
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
  const stalled = overdue(state, now, o);
  if (stalled !== undefined) {
    return {
      state: { ...state, refuseUntil: Math.max(state.refuseUntil, now + o.windowMs), stalledMs: stalled },
      stalledMs: stalled,
    };
  }
  return now < state.refuseUntil ? { state, stalledMs: state.stalledMs } : { state };
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

  /** The stall (ms) a write read now follows, when it must be refused; undefined: apply it. */
  refusesWrite(): number | undefined {
    if (this.timer === undefined) return undefined;
    const next = checkWrite(this.state, this.monoNow(), this.options);
    this.state = next.state;
    if (next.stalledMs !== undefined) this.refused++;
    return next.stalledMs;
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

const WRITES: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Express middleware, first of all: a write read right after a stall is answered 503 REPLICA_STALLED, unread. */
export function refuseWritesAfterStall(guard: StallGuard): (req: Request, res: Response, next: NextFunction) => void {
  return (req, res, next) => {
    if (!WRITES.has(req.method)) return next();
    const stalledMs = guard.refusesWrite();
    if (stalledMs === undefined) return next();
    // Its body is not parsed: node discards it after the answer.
    res.setHeader('Retry-After', '1');
    sendError(
      res,
      new RequestError(
        'REPLICA_STALLED',
        `This control replica was stalled (its event loop did not run for ${Math.round(stalledMs)} ms: stopped, ` +
          'paused or overloaded) when the request was read, so its client may have given up on it and sent it to ' +
          'another replica; it was not applied. Send it again.',
      ),
    );
  };
}
