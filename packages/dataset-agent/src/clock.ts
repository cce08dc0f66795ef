/** The agent's Clock lives in @flocker/runtime; re-exported for the agent's modules. */
import { backoffDelay as runtimeBackoffDelay } from '@flocker/runtime';

export { systemClock, type Clock, type TimerHandle } from '@flocker/runtime';

/**
 * The agent's retry delays: the runtime's backoff without jitter (`attempts` counts
 * from 1), so backoff_initial_seconds/backoff_max_seconds of agent.yml are exact.
 */
export function backoffDelay(attempts: number, initialMs: number, maxMs: number): number {
  return runtimeBackoffDelay(attempts - 1, { initialMs, maxMs, jitter: false });
}
