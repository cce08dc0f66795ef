/**
 * The main loop's states and transitions, as pure logic: DatasetAgent's mainLoop,
 * wake, stop and workers only dispatch events and carry out the effect returned.
 *
 *   idle --start--> due --turnStarted--> observing --turnEnded--> sleeping --wake | timerFired--> due
 *                                        observing --turnEnded, woken meanwhile--> due
 *   any --stop--> stopping (final: the loop ends after the turn in progress)
 *
 * Invariants: a wake that arrives while a turn observes is never lost (its look may
 * predate the change, so another turn follows at once); a wake while a turn is due
 * or asleep costs exactly one turn; something missed while datasets were worked on
 * (lookWhenIdle) costs one full look once the work queue is idle.
 */
export type LoopPhase =
  | 'idle' //      not started
  | 'due' //       a turn starts next (wakes are absorbed: that turn looks after them)
  | 'observing' // a turn runs (observes, decides, queues work)
  | 'sleeping' //  waiting for a wake or the turn's timer (resync, a backoff's end)
  | 'stopping'; // final

export interface LoopState {
  readonly phase: LoopPhase;
  /** A wake came while observing (or before the start): another turn follows the current one at once. */
  readonly wokenMeanwhile: boolean;
  /**
   * Something may have been missed while datasets were worked on: a turn ran meanwhile
   * (it leaves busy datasets alone, and a worker decides on a snapshot read before its
   * observation), an action failed (its retry time needs a turn to set the timer), or a
   * worker could not look or act. One full look once the queue is idle.
   */
  readonly lookWhenIdle: boolean;
}

export type LoopEvent =
  | 'start'
  | 'turnStarted'
  | 'turnEnded'
  | 'wake' //       a change worth a turn (cluster, pool, contact, the queue drained)
  | 'timerFired' // the sleep's timer ran out
  | 'stop'
  | 'missed' //     see lookWhenIdle
  | 'queueIdle'; // the last worker ended

export type LoopEffect =
  | 'none'
  | 'endSleep' //        end the sleep now (cancel its timer)
  | 'wakeAfterReport'; // wake once the report in flight is through (the look must not compete with it)

export const LOOP_EVENTS: readonly LoopEvent[] = [
  'start',
  'turnStarted',
  'turnEnded',
  'wake',
  'timerFired',
  'stop',
  'missed',
  'queueIdle',
];
export const LOOP_PHASES: readonly LoopPhase[] = ['idle', 'due', 'observing', 'sleeping', 'stopping'];

export const INITIAL_LOOP_STATE: LoopState = { phase: 'idle', wokenMeanwhile: false, lookWhenIdle: false };

type PhaseEvent = Exclude<LoopEvent, 'missed' | 'queueIdle'>;
/** What a phase event does in a phase; 'ignored' where it cannot matter (a stale timer, a second start). */
type Cell = readonly [LoopPhase, LoopEffect] | 'ignored' | 'remember' | 'afterTurn';

// 'remember': the wake is kept in wokenMeanwhile. 'afterTurn': due if woken meanwhile, else sleeping.
// prettier-ignore
const TABLE: Record<LoopPhase, Record<PhaseEvent, Cell>> = {
  idle:      { start: ['due', 'none'], turnStarted: 'ignored',                 turnEnded: 'ignored',   wake: 'remember',            timerFired: 'ignored',            stop: ['stopping', 'none'] },
  due:       { start: 'ignored',       turnStarted: ['observing', 'none'],     turnEnded: 'ignored',   wake: 'ignored',             timerFired: 'ignored',            stop: ['stopping', 'none'] },
  observing: { start: 'ignored',       turnStarted: 'ignored',                 turnEnded: 'afterTurn', wake: 'remember',            timerFired: 'ignored',            stop: ['stopping', 'none'] },
  sleeping:  { start: 'ignored',       turnStarted: 'ignored',                 turnEnded: 'ignored',   wake: ['due', 'endSleep'],   timerFired: ['due', 'endSleep'],  stop: ['stopping', 'endSleep'] },
  stopping:  { start: 'ignored',       turnStarted: 'ignored',                 turnEnded: 'ignored',   wake: 'ignored',             timerFired: 'ignored',            stop: 'ignored' },
};

export function loopTransition(s: LoopState, event: LoopEvent): { state: LoopState; effect: LoopEffect } {
  if (event === 'missed') return { state: { ...s, lookWhenIdle: true }, effect: 'none' };
  if (event === 'queueIdle') {
    if (!s.lookWhenIdle) return { state: s, effect: 'none' };
    return { state: { ...s, lookWhenIdle: false }, effect: s.phase === 'stopping' ? 'none' : 'wakeAfterReport' };
  }
  const cell = TABLE[s.phase][event];
  switch (cell) {
    case 'ignored':
      return { state: s, effect: 'none' };
    case 'remember':
      return { state: { ...s, wokenMeanwhile: true }, effect: 'none' };
    case 'afterTurn':
      return { state: { ...s, phase: s.wokenMeanwhile ? 'due' : 'sleeping', wokenMeanwhile: false }, effect: 'none' };
    default:
      return { state: { ...s, phase: cell[0] }, effect: cell[1] };
  }
}
