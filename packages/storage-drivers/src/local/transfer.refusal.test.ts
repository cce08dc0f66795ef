/**
 * Session 26 (CI of 0638b82, e2e local-failover-return): a listener refusing data it does not take
 * (mayReceive: not the dataset's primary as it last saw the configuration, the dataset deleted, a
 * replica beside a live copy here) answers PEER_REFUSED as before, and logs it as what it is: the
 * listener doing its job for a sender that acted on an older view (a replica round that began just
 * before the delete; the sender logs and handles its side), at info, with the code, the op and the
 * dataset. Before, it was logged at warn as 'local transfer request failed', as a request that broke;
 * the e2e grep of a node's log for PEER_REFUSED then read it as a move retrying.
 */
import { Readable } from 'node:stream';
import winston from 'winston';
import { MOVE_ID as ID, memoryEngine } from './moverTestSupport';
import { makeTestCluster, type TestCluster } from './testSupport';
import { TransferClient, TransferServer } from './transfer';

/** A logger keeping every entry in memory. */
function memoryLogger(): { logger: winston.Logger; entries: Array<Record<string, unknown>> } {
  const entries: Array<Record<string, unknown>> = [];
  const keep = winston.format((info) => {
    entries.push({ ...info });
    return false;
  });
  return {
    logger: winston.createLogger({ level: 'debug', format: keep(), transports: [new winston.transports.Console()] }),
    entries,
  };
}

describe("a listener refusing a dataset's data", () => {
  let cluster: TestCluster;
  beforeAll(() => {
    cluster = makeTestCluster();
  });
  afterAll(() => cluster.destroy());

  it('answers PEER_REFUSED and logs the refusal at info (the op, the dataset, the peer), never as a failed request', async () => {
    const a = cluster.node();
    const b = cluster.node();
    const { logger, entries } = memoryLogger();
    const server = new TransferServer({ engine: memoryEngine(), credentials: b, mayReceive: () => false, logger });
    const port = await server.listen(0, '127.0.0.1');
    try {
      const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: b.nodeUuid }, a);
      await expect(
        client.receive(
          { datasetId: ID, name: 'move-000002', parent: 'move-000001', identity: 'x' },
          { stream: Readable.from([Buffer.from('data')]), done: Promise.resolve() },
        ),
      ).rejects.toMatchObject({ code: 'PEER_REFUSED', message: expect.stringMatching(/takes no data of it/) });
      await expect(client.prune(ID, 'move-000002')).rejects.toMatchObject({ code: 'PEER_REFUSED' });
      // Status is answered still.
      await expect(client.status(ID)).resolves.toMatchObject({ ok: true });
      expect(entries.filter((e) => e.level === 'warn' || e.level === 'error')).toEqual([]);
      expect(entries.filter((e) => e.message === 'refused a transfer request')).toEqual([
        expect.objectContaining({
          level: 'info',
          code: 'PEER_REFUSED',
          op: 'receive',
          datasetId: ID,
          peer: a.nodeUuid,
        }),
        expect.objectContaining({ level: 'info', code: 'PEER_REFUSED', op: 'prune', datasetId: ID, peer: a.nodeUuid }),
      ]);
    } finally {
      await server.close();
    }
  });

  it('a mayReceive that throws is answered as a failed request (BACKEND_ERROR; the sender retries it as TRANSFER_FAILED), not an unhandled rejection (review S26B B11)', async () => {
    const a = cluster.node();
    const b = cluster.node();
    const { logger, entries } = memoryLogger();
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown): void => void unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    const mayReceive = (): boolean => {
      throw new Error('unreadable replica settings');
    };
    const server = new TransferServer({ engine: memoryEngine(), credentials: b, mayReceive, logger });
    const port = await server.listen(0, '127.0.0.1');
    try {
      const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: b.nodeUuid }, a);
      await expect(client.prune(ID, 'move-000002')).rejects.toMatchObject({
        code: 'TRANSFER_FAILED',
        message: expect.stringMatching(/unreadable replica settings/),
      });
      await new Promise((r) => setImmediate(r));
      expect(unhandled).toEqual([]);
      expect(entries.filter((e) => e.message === 'local transfer request failed')).toEqual([
        expect.objectContaining({ level: 'warn', code: 'BACKEND_ERROR', op: 'prune' }),
      ]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await server.close();
    }
  });
});
