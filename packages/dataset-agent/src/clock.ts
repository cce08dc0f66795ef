/** The agent's Clock and backoff now live in @flocker/runtime; re-exported for the agent's modules. */
export { backoffDelay, systemClock, type Clock, type TimerHandle } from '@flocker/runtime';
