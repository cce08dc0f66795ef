/**
 * Timing and retry primitives shared by every Flocker process (see README.md). A browser bundle imports
 * `@flocker/runtime/browser` (browser.ts): the same without the Host check, which needs node:net.
 */
export * from './browser';
export { hostAllowList, type HostAllowList, hostRefusal, parseHost, type RefusalWording } from './hostCheck';
