/** The options every agent test shares (test support; not exported by the package). */
import winston from 'winston';
import type { DatasetAgentOptions } from '../DatasetAgent';

export const TEST_NODE = '11111111-1111-4111-8111-111111111111';
const MiB = 1024 * 1024;

/** This node ("i-me" at 10.0.0.1, mounts under /flocker, 64 MiB default size, silent), the fakes and timings from the test. */
export function testAgentOptions(
  parts: Pick<DatasetAgentOptions, 'driver' | 'hostOps' | 'control'> & Partial<DatasetAgentOptions>,
): DatasetAgentOptions {
  return {
    nodeUuid: TEST_NODE,
    era: 'era-1',
    host: '10.0.0.1',
    instanceId: 'i-me',
    mountRoot: '/flocker',
    defaultSize: 64 * MiB,
    resyncIntervalMs: 200,
    concurrency: 2,
    backoffInitialMs: 20,
    backoffMaxMs: 50,
    logger: winston.createLogger({ silent: true }),
    pollWaitMs: 200,
    ...parts,
  };
}
