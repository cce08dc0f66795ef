import winston from 'winston';
import { cachedCheck, sampleOfReport, startAgentMetrics } from './metrics';

const D1 = '11111111-1111-4111-8111-111111111111';
const D2 = '22222222-2222-4222-8222-222222222222';
const silent = winston.createLogger({ silent: true });

describe('dataset agent metrics', () => {
  it('samples volumes by state, used bytes of mounted ones, datasets in backoff and leases from the report', () => {
    const sample = sampleOfReport(
      {
        manifestations: [
          { dataset_id: D1, blockdevice_id: 'b1', size: 1 << 30, status: 'mounted', path: '/flocker/d1' },
          { dataset_id: D2, blockdevice_id: 'b2', size: 2 << 30, status: 'attached' },
        ],
        errors: [
          { dataset_id: D2, action: 'mount', code: 'MOUNT_FAILED', message: 'x', attempts: 2, since: 'now' },
          { dataset_id: D2, action: 'format', code: 'X', message: 'x', attempts: 1, since: 'now' },
          { action: 'list', code: 'POOL', message: 'x', attempts: 1, since: 'now' },
        ],
      },
      3,
      (path) => (path === '/flocker/d1' ? 4096 : undefined),
    );
    expect(sample).toEqual({
      volumes: [
        { datasetId: D1, state: 'mounted', maximumBytes: 1 << 30, usedBytes: 4096 },
        { datasetId: D2, state: 'attached', maximumBytes: 2 << 30 },
      ],
      backoff: 1,
      leases: 3,
    });
  });

  it('a driver check remembers success for a while, never failure', async () => {
    let t = 0;
    let calls = 0;
    let fail = false;
    const c = cachedCheck(
      'driver',
      () => {
        calls++;
        return fail ? Promise.reject(new Error('down')) : Promise.resolve();
      },
      1000,
      () => t,
    );
    await c.check();
    t = 500;
    await c.check();
    expect(calls).toBe(1);
    t = 1500;
    fail = true;
    await expect(c.check()).rejects.toThrow('down');
    await expect(c.check()).rejects.toThrow('down');
    expect(calls).toBe(3);
  });

  it('/readyz names control when the control service does not answer; a taken port is no failure', async () => {
    let up = false;
    const server = await startAgentMetrics({
      listen: { host: '127.0.0.1', port: 0 },
      logger: silent,
      control: () => (up ? Promise.resolve() : Promise.reject(new Error('connect ECONNREFUSED'))),
      driver: () => Promise.resolve(),
    });
    try {
      expect(server).toBeDefined();
      const url = server?.url ?? '';
      let res = await fetch(`${url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ failed: ['control'], description: 'not ready: control failed' });
      up = true;
      res = await fetch(`${url}/readyz`);
      expect(res.status).toBe(200);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const again = await startAgentMetrics({
        listen: { host: '127.0.0.1', port: server?.port ?? 0 },
        logger: silent,
        control: () => Promise.resolve(),
      });
      expect(again).toBeUndefined();
    } finally {
      await server?.close();
    }
  });
});
