/**
 * Test support for the snapshot scheduler's tests (snapshotSchedule, snapshotSchedule.local): a
 * ControlState driven by a ManualClock, and a way to let its timers run.
 */
import type { ManualClock } from '@flocker/runtime/testing';
import type { ConfigurationStore } from '../ConfigurationStore';
import { ControlState } from '../ControlState';
import { silentLogger } from './httpService';

const MIN = 60_000;
const HOUR = 60 * MIN;

/**
 * The control state on `store` with `clock` as its time and its snapshot timers: no node times out
 * (10 days), liveness looked at daily, snapshots at most every 5 minutes.
 */
export function openOnManualClock(store: ConfigurationStore, clock: ManualClock): Promise<ControlState> {
  return ControlState.open({
    store,
    nodeTimeoutMs: 10 * 24 * HOUR,
    logger: silentLogger,
    now: () => clock.now(),
    snapshotTimers: clock,
    livenessCheckMs: 24 * HOUR,
    minSnapshotIntervalMs: 5 * MIN,
  });
}

/** Moves `clock` on by `ms` in steps of `step`, letting what each step fired run (a turn of the event loop) after it. */
export async function advanceInSteps(clock: ManualClock, ms: number, step = MIN): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    await clock.advance(step);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
