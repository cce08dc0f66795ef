/** Test support (`@flocker/runtime/testing`): never imported by production code. */
export { ManualClock, settle } from './ManualClock';
export { logToFullDisk } from './logToFullDisk';
export { jsonLines, type LineSchema } from './jsonLines';
export { childServer } from './childServer';
