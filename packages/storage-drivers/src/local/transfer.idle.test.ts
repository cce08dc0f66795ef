/**
 * Review F10 (s27, on 5caa5a6): a send had no timeout (TransferClient.receive set the socket's to
 * 0), so a receiver whose receive stalled held the send, and with it a replica round or a move,
 * for good. Now a send on which nothing moves for the idle bound fails (ConnectionLostError: the
 * mover and the replica round retry, the decision can stop the round); one that keeps moving,
 * however long it takes, does not.
 */
import { Readable } from 'node:stream';
import { MOVE_ID as ID, memoryEngine } from './moverTestSupport';
import { makeTestCluster, type TestCluster } from './testSupport';
import { TransferClient, TransferServer } from './transfer';

/** Up to `total` bytes in 64-KiB chunks, one every `everyMs` (0: as fast as they are read). */
function source(total: number, everyMs = 0): Readable {
  let left = total;
  return new Readable({
    read() {
      if (left <= 0) {
        this.push(null);
        return;
      }
      const n = Math.min(left, 64 * 1024);
      left -= n;
      if (everyMs === 0) this.push(Buffer.alloc(n, 7));
      else setTimeout(() => this.push(Buffer.alloc(n, 7)), everyMs);
    },
  });
}

describe('a send to a receiver that stops reading', () => {
  let cluster: TestCluster;
  beforeAll(() => {
    cluster = makeTestCluster();
  });
  afterAll(() => cluster.destroy());

  it('fails once nothing moved for the idle bound (before: waited for room for good)', async () => {
    const a = cluster.node();
    const b = cluster.node();
    // The receive never reads its stream (a hung zfs recv): the connection's buffers fill, then nothing moves.
    const stalled = {
      ...memoryEngine(),
      receive: (_d: string, _n: string, _i: string, stream: Readable) => {
        stream.on('error', () => undefined); // the cut-off stream's error, as a real engine's pipe would take it
        return new Promise<never>(() => undefined);
      },
    };
    const server = new TransferServer({ engine: stalled, credentials: b });
    const port = await server.listen(0, '127.0.0.1');
    try {
      const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: b.nodeUuid }, a, 60_000, 500);
      const t0 = Date.now();
      await expect(
        client.receive(
          { datasetId: ID, name: 'move-000001', parent: null, identity: 'x' },
          { stream: source(512 * 1024 * 1024), done: Promise.resolve() },
        ),
      ).rejects.toMatchObject({ code: 'TRANSFER_FAILED', message: expect.stringMatching(/nothing sent or received/) });
      expect(Date.now() - t0).toBeLessThan(15_000);
    } finally {
      await server.close();
    }
  }, 30_000);

  it('a stop (its signal) ends a send whose whole stream went into the buffers of a receiver that never answers', async () => {
    const a = cluster.node();
    const b = cluster.node();
    // The stream (64 KiB) is taken whole by the connection; the receive never ends, so no answer comes.
    const hung = {
      ...memoryEngine(),
      receive: (_d: string, _n: string, _i: string, stream: Readable) => {
        stream.on('error', () => undefined);
        stream.resume();
        return new Promise<never>(() => undefined);
      },
    };
    const server = new TransferServer({ engine: hung, credentials: b });
    const port = await server.listen(0, '127.0.0.1');
    try {
      const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: b.nodeUuid }, a);
      const stop = new AbortController();
      let sent = 0;
      const receiving = client.receive(
        { datasetId: ID, name: 'move-000001', parent: null, identity: 'x' },
        { stream: source(64 * 1024), done: Promise.resolve() },
        (n) => (sent = n),
        stop.signal,
      );
      receiving.catch(() => undefined);
      const t0 = Date.now();
      while (sent < 64 * 1024 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200));
      stop.abort();
      await expect(receiving).rejects.toMatchObject({
        code: 'TRANSFER_FAILED',
        message: expect.stringMatching(/stopped/),
      });
    } finally {
      await server.close();
    }
  }, 30_000);

  it('a slow send that keeps moving is not cut off by the idle bound', async () => {
    const a = cluster.node();
    const b = cluster.node();
    let got = 0;
    const reading = {
      ...memoryEngine(),
      receive: async (datasetId: string, name: string, identity: string, stream: Readable) => {
        for await (const chunk of stream) got += (chunk as Buffer).length;
        return { datasetId, name, identity, received: true };
      },
    };
    const server = new TransferServer({ engine: reading, credentials: b });
    const port = await server.listen(0, '127.0.0.1');
    try {
      const client = new TransferClient({ host: '127.0.0.1', port, nodeUuid: b.nodeUuid }, a, 60_000, 500);
      // 20 chunks 150 ms apart: 3 s in all, six times the idle bound, never 500 ms without a byte.
      const total = 20 * 64 * 1024;
      await expect(
        client.receive(
          { datasetId: ID, name: 'move-000001', parent: null, identity: 'x' },
          { stream: source(total, 150), done: Promise.resolve() },
        ),
      ).resolves.toBe(total);
      expect(got).toBe(total);
    } finally {
      await server.close();
    }
  }, 30_000);
});
