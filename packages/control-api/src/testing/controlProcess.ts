/** Test support: running flocker-control as a child process, and a minimal node report. */
import * as path from 'node:path';
import type { NodeReport } from '@flocker/api';

/** The compiled flocker-control entry point. */
export const CONTROL_MAIN = path.resolve(__dirname, '..', 'main.js');

/** flocker-control's argv for a test: plain HTTP on a free loopback port over `dataDir`, then `extra`. */
export function controlArgv(dataDir: string, ...extra: string[]): string[] {
  return [CONTROL_MAIN, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--insecure-http', ...extra];
}

/** A node's report with no volumes: enough for the control service to count the node alive. */
export function emptyNodeReport(uuid: string): NodeReport {
  return {
    uuid,
    era: 'era-a',
    host: '10.0.0.1',
    instance_id: 'i-a',
    backend: 'loopback',
    manifestations: [],
    errors: [],
  };
}
