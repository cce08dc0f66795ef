/** Test support: the ManualClock of @flocker/runtime, re-exported for the agent's tests. */
export { ManualClock, settle } from '@flocker/runtime/testing';
