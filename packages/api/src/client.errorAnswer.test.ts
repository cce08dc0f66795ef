import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlockerClient } from './client';

/**
 * REVIEW-S26 R2: a replica that answers, even with an error (404, 409), is alive: the client uses it from then on.
 * Before, only a success moved the client, so after a read moved off a frozen first replica and was answered 404 by
 * the next, a write not safe to repeat went to the frozen one again and waited its whole timeoutMs (REQUEST_TIMEOUT,
 * its outcome unknown).
 */

const NODE = 'aaaaaaaa-0000-4000-8000-000000000001';
const ID = 'bbbbbbbb-0000-4000-8000-000000000002';

async function listen(srv: Server): Promise<string> {
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
}

function close(srv: Server): Promise<void> {
  return new Promise((resolve) => {
    srv.closeAllConnections();
    srv.close(() => resolve());
  });
}

describe('FlockerClient: an error answer from the next replica', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await close(s);
  });

  it('moves the client there: a write after it is not sent to the frozen first replica', async () => {
    const hits: string[] = [];
    // Never answers (as a SIGSTOPped replica: the connection is taken, nothing comes back).
    const frozen = createServer((req) => void hits.push(`A ${req.method ?? ''}`));
    const live = createServer((req, res) => {
      hits.push(`B ${req.method ?? ''}`);
      res.writeHead(req.method === 'GET' ? 404 : 200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          req.method === 'GET'
            ? { code: 'DATASET_NOT_FOUND', description: 'no such dataset' }
            : { dataset_id: ID, primary: NODE, metadata: {}, deleted: true },
        ),
      );
    });
    servers.push(frozen, live);
    const a = await listen(frozen);
    const b = await listen(live);
    // timeoutMs long (a write sent to A would fail after it), the failover bound short.
    const client = new FlockerClient({ baseUrl: `${a},${b}`, timeoutMs: 60_000, failoverTimeoutMs: 1_000 });
    await expect(client.getDataset(ID)).rejects.toMatchObject({ status: 404, code: 'DATASET_NOT_FOUND' });
    expect(client.controlUrls[0]).toBe(b);
    await expect(client.deleteDataset(ID)).resolves.toMatchObject({ dataset_id: ID, deleted: true });
    expect(hits).toEqual(['A GET', 'B GET', 'B DELETE']);
  }, 30_000);
});

describe('FlockerClient: an error answer marked retryable (review s28 G5)', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await close(s);
  });

  it("exposes the answer's Retry-After (ms) on the error; without the header, none", async () => {
    let retryAfter: string | undefined = '1';
    const srv = createServer((req, res) => {
      req.resume();
      res.writeHead(409, {
        'content-type': 'application/json',
        ...(retryAfter === undefined ? {} : { 'retry-after': retryAfter }),
      });
      res.end(JSON.stringify({ code: 'LEASE_HELD', description: 'Node a has not reported since the restart.' }));
    });
    servers.push(srv);
    const client = new FlockerClient({ baseUrl: await listen(srv), timeoutMs: 5_000 });
    const lease = { dataset_id: ID, node_uuid: NODE, expires: null };
    await expect(client.acquireLease(lease)).rejects.toMatchObject({
      status: 409,
      code: 'LEASE_HELD',
      retryAfterMs: 1_000,
    });
    retryAfter = undefined;
    const final = await client.acquireLease(lease).catch((err: unknown) => err);
    expect(final).toMatchObject({ status: 409, code: 'LEASE_HELD' });
    expect((final as { retryAfterMs?: number }).retryAfterMs).toBeUndefined();
  });
});
