import winston from 'winston';
import { FailureLog } from './FailureLog';
import type { Action } from './LocalState';
import { ManualClock } from '@flocker/runtime/testing';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const mount: Action = {
  kind: 'mount',
  datasetId: A,
  blockdeviceId: 'v',
  devicePath: '/dev/x',
  mountPath: `/flocker/${A}`,
  size: 1,
};
const create: Action = { kind: 'create', datasetId: A, size: 1 };

describe('FailureLog', () => {
  it('backs off per dataset, doubling for the same kind, and reports the failure since its first attempt', async () => {
    const clock = new ManualClock();
    const log = new FailureLog({
      clock,
      logger: winston.createLogger({ silent: true }),
      backoffInitialMs: 100,
      backoffMaxMs: 300,
    });
    expect(log.retryAt(A)).toBe(0);
    const first = clock.now();
    log.record(mount, 'BACKEND_ERROR', 'no luck', first);
    expect(log.retryAt(A)).toBe(first + 100);
    await clock.advance(100);
    log.record(mount, 'BACKEND_ERROR', 'no luck', clock.now());
    expect(log.retryAt(A)).toBe(clock.now() + 200);
    log.record(mount, 'BACKEND_ERROR', 'no luck', clock.now());
    expect(log.retryAt(A)).toBe(clock.now() + 300);
    expect(log.reportErrors()).toEqual([
      {
        dataset_id: A,
        action: 'mount',
        code: 'BACKEND_ERROR',
        message: 'no luck',
        attempts: 3,
        since: new Date(first).toISOString(),
      },
    ]);
    // Another kind starts over.
    log.record(create, 'INVALID_SIZE', 'too big', clock.now());
    expect(log.reportErrors()[0]).toMatchObject({ action: 'create', attempts: 1 });
    expect(log.retryAt(A)).toBe(clock.now() + 100);
  });

  it('forgets datasets that need nothing any more unless a worker is on them', () => {
    const clock = new ManualClock();
    const log = new FailureLog({
      clock,
      logger: winston.createLogger({ silent: true }),
      backoffInitialMs: 100,
      backoffMaxMs: 300,
    });
    log.record(mount, 'E', 'm', clock.now());
    log.prune(new Set(), () => true);
    expect(log.reportErrors()).toHaveLength(1);
    log.prune(new Set([A]), () => false);
    expect(log.reportErrors()).toHaveLength(1);
    log.prune(new Set(), () => false);
    expect(log.reportErrors()).toEqual([]);
    log.record(mount, 'E', 'm', clock.now());
    log.clear(A);
    expect(log.retryAt(A)).toBe(0);
  });
});
