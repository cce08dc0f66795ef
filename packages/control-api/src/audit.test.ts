import { Writable } from 'node:stream';
import { FlockerClient } from '@flocker/api';
import winston from 'winston';
import { z } from 'zod';
import { auditEntry, isAudited, who } from './audit';
import { nodeReport, startOnLoopback } from './testing/httpService';

const D = '11111111-1111-4111-8111-111111111111';
const NODE = '22222222-2222-4222-8222-222222222222';

describe('audit trail (issue 21)', () => {
  it('audits the requests that change the configuration, not reads and not the agents’ own channel', () => {
    expect(isAudited('post', '/v1/configuration/datasets')).toBe(true);
    expect(isAudited('delete', '/v1/configuration/leases/:dataset_id')).toBe(true);
    expect(isAudited('get', '/v1/configuration/datasets')).toBe(false);
    expect(isAudited('post', '/v1/agent/nodes/:uuid')).toBe(false);
  });

  it('names who from the certificate identity, what, on what, and the result', () => {
    expect(who(undefined)).toBe('anonymous');
    expect(who({ kind: 'user', name: 'alice' })).toBe('user:alice');
    expect(who({ kind: 'node', uuid: NODE })).toBe(`node:${NODE}`);
    expect(
      auditEntry({
        method: 'post',
        route: '/v1/configuration/datasets',
        params: {},
        identity: { kind: 'user', name: 'alice' },
        status: 201,
        body: { dataset_id: D, primary: NODE, metadata: { name: 'pg' } },
      }),
    ).toEqual({
      who: 'user:alice',
      action: 'POST /v1/configuration/datasets',
      status: 201,
      result: 'ok',
      dataset_id: D,
    });
    expect(
      auditEntry({
        method: 'delete',
        route: '/v1/configuration/datasets/:id',
        params: { id: D },
        identity: { kind: 'node', uuid: NODE },
        status: 403,
        code: 'FORBIDDEN',
      }),
    ).toEqual({
      who: `node:${NODE}`,
      action: 'DELETE /v1/configuration/datasets/:id',
      status: 403,
      result: 'refused',
      target: D,
      code: 'FORBIDDEN',
    });
  });

  it('a write etcd did not confirm is not "refused": its outcome is unknown (it may still apply, review T4 finding 1)', () => {
    expect(
      auditEntry({
        method: 'post',
        route: '/v1/configuration/datasets',
        params: {},
        identity: undefined,
        status: 503,
        code: 'STORE_OUTCOME_UNKNOWN',
      }),
    ).toMatchObject({ status: 503, result: 'unknown', code: 'STORE_OUTCOME_UNKNOWN' });
  });

  it('the control service writes one audit line per change, ok or refused, and none for reads', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = winston.createLogger({
      format: winston.format.json(),
      transports: [
        new winston.transports.Stream({
          stream: new Writable({
            write(chunk: Buffer, _enc, done) {
              lines.push(z.record(z.string(), z.unknown()).parse(JSON.parse(chunk.toString())));
              done();
            },
          }),
        }),
      ],
    });
    const svc = await startOnLoopback({ logger });
    try {
      const client = new FlockerClient({ baseUrl: svc.url });
      await client.reportNodeState(nodeReport(NODE));
      const d = await client.createDataset({ primary: NODE, metadata: { name: 'pg' } });
      await client.listDatasets();
      await client.deleteDataset('33333333-3333-4333-8333-333333333333').catch(() => undefined);
      const audit = lines.filter((l) => l['message'] === 'audit');
      expect(audit).toEqual([
        expect.objectContaining({
          who: 'anonymous',
          action: 'POST /v1/configuration/datasets',
          status: 201,
          dataset_id: d.dataset_id,
        }),
        expect.objectContaining({
          action: 'DELETE /v1/configuration/datasets/:id',
          status: 404,
          result: 'refused',
          code: 'DATASET_NOT_FOUND',
          target: '33333333-3333-4333-8333-333333333333',
        }),
      ]);
    } finally {
      await svc.close();
    }
  });
});
