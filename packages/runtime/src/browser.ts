/**
 * The browser-safe entry, `@flocker/runtime/browser`: every helper of the main entry except the Host check
 * (hostCheck.ts needs node:net). The web UI's Vite bundle imports this one, so it pulls in no Node built-in
 * (browser.test walks the compiled graph).
 */
export { Backoff, backoffDelay, type BackoffPolicy, type Random } from './backoff';
export { systemClock, wallNow, type Clock, type TimerHandle } from './clock';
export { errorCode, errorMessage } from './errors';
export { followLongPoll, type FollowLongPollOptions, type Generational } from './follow';
export { FreshRead } from './FreshRead';
export { pollUntil, PollTimeoutError, type PollOptions } from './poll';
export { sleep, type SleepOptions } from './sleep';
