/** Test support (`@flocker/runtime/testing`): never imported by production code. */
export { ManualClock, settle } from './ManualClock';
export { logToFullDisk } from './logToFullDisk';
