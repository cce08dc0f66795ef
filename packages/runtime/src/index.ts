/** Timing and retry primitives shared by every Flocker process (see README.md). */
export { Backoff, backoffDelay, type BackoffPolicy, type Random } from './backoff';
export { systemClock, wallNow, type Clock, type TimerHandle } from './clock';
export { errorCode, errorMessage } from './errors';
export { followLongPoll, type FollowLongPollOptions, type Generational } from './follow';
export { FreshRead } from './FreshRead';
export { pollUntil, PollTimeoutError, type PollOptions } from './poll';
export { sleep, type SleepOptions } from './sleep';
export { hostAllowList, type HostAllowList, hostRefusal, parseHost, type RefusalWording } from './hostCheck';
