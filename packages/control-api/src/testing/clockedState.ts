/**
 * A ControlState on a test's clock: wall and monotonic time read through `wall`/`mono` (a test moves both), its
 * liveness judged only when the test calls checkLiveness (the timer's period an hour), a silent logger.
 */
import winston from 'winston';
import { ControlState, type ControlStateOptions } from '../ControlState';

const HOUR_MS = 3_600_000;

export function openOnTestClock(
  store: ControlStateOptions['store'],
  clock: { nodeTimeoutMs: number; leaseGraceMs: number; wall: () => number; mono: () => number },
): Promise<ControlState> {
  return ControlState.open({
    store,
    nodeTimeoutMs: clock.nodeTimeoutMs,
    leaseGraceMs: clock.leaseGraceMs,
    logger: winston.createLogger({ silent: true }),
    now: clock.wall,
    monoNow: clock.mono,
    livenessCheckMs: HOUR_MS,
  });
}
