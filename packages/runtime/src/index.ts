/** Timing and retry primitives shared by every Flocker process (see README.md). */
export { backoffDelay, systemClock, wallNow, type Clock, type TimerHandle } from './clock';
