import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlockerClient, retryAfterMs } from './client';

/**
 * A control replica refuses a write it read right after its event loop stalled (REPLICA_STALLED, nothing applied:
 * its client may have moved on). The last replica asked (a lone one: the Docker plugin, the CLI) is asked once more a
 * moment later, so such a client does not fail on it; a second refusal is thrown.
 */

const NODE = 'aaaaaaaa-0000-4000-8000-000000000001';
const ID = 'bbbbbbbb-0000-4000-8000-000000000002';

it('Retry-After is read as seconds or as an HTTP date; anything else is no wait', () => {
  const now = Date.parse('2026-12-07T14:00:00Z');
  expect(retryAfterMs('2', now)).toBe(2_000);
  expect(retryAfterMs(' 0 ', now)).toBe(0);
  expect(retryAfterMs(['3', '9'], now)).toBe(3_000);
  expect(retryAfterMs('Mon, 07 Dec 2026 14:00:04 GMT', now)).toBe(4_000);
  expect(retryAfterMs('Mon, 07 Dec 2026 13:00:00 GMT', now)).toBe(0);
  for (const odd of [undefined, '', 'soon', '-1', '1.5']) expect(retryAfterMs(odd, now)).toBeUndefined();
});

describe('FlockerClient: REPLICA_STALLED from the last replica', () => {
  let srv: Server | undefined;
  afterEach(async () => {
    const s = srv;
    srv = undefined;
    if (s !== undefined)
      await new Promise<void>((resolve) => {
        s.closeAllConnections();
        s.close(() => resolve());
      });
  });

  /**
   * A lone replica refusing the first `refusals` requests REPLICA_STALLED (with `retryAfter` as its Retry-After header,
   * none when undefined), then creating; the times it was asked.
   */
  async function lone(refusals: number, retryAfter?: string): Promise<{ client: FlockerClient; asked: number[] }> {
    const asked: number[] = [];
    srv = createServer((req, res) => {
      req.resume();
      asked.push(Date.now());
      const refused = asked.length <= refusals;
      res.writeHead(refused ? 503 : 201, {
        'content-type': 'application/json',
        ...(refused && retryAfter !== undefined ? { 'retry-after': retryAfter } : {}),
      });
      res.end(
        JSON.stringify(
          refused
            ? { code: 'REPLICA_STALLED', description: 'read right after this replica stalled; nothing applied' }
            : { dataset_id: ID, primary: NODE, metadata: {}, deleted: false },
        ),
      );
    });
    await new Promise<void>((resolve) => srv?.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    return { client: new FlockerClient({ baseUrl: url, timeoutMs: 10_000 }), asked };
  }

  it('a write not safe to repeat is asked once more, about a second later, and succeeds', async () => {
    const { client, asked } = await lone(1);
    await expect(client.createDataset({ primary: NODE, maximum_size: 1 << 26 })).resolves.toMatchObject({
      dataset_id: ID,
    });
    expect(asked).toHaveLength(2);
    expect((asked[1] as number) - (asked[0] as number)).toBeGreaterThanOrEqual(900);
  });

  it("is asked again after the replica's Retry-After (review S26B B3)", async () => {
    const { client, asked } = await lone(1, '2');
    await client.createDataset({ primary: NODE, maximum_size: 1 << 26 });
    expect(asked).toHaveLength(2);
    expect((asked[1] as number) - (asked[0] as number)).toBeGreaterThanOrEqual(1_900);
  });

  it('a Retry-After beyond the bound waits the bound (5 s); one it cannot read waits the second', async () => {
    const far = await lone(1, '3600');
    await far.client.createDataset({ primary: NODE, maximum_size: 1 << 26 });
    expect((far.asked[1] as number) - (far.asked[0] as number)).toBeGreaterThanOrEqual(4_900);
    expect((far.asked[1] as number) - (far.asked[0] as number)).toBeLessThan(9_000);
    srv?.closeAllConnections();
    srv?.close();
    const odd = await lone(1, 'soon');
    await odd.client.createDataset({ primary: NODE, maximum_size: 1 << 26 });
    const waited = (odd.asked[1] as number) - (odd.asked[0] as number);
    expect(waited).toBeGreaterThanOrEqual(900);
    expect(waited).toBeLessThan(4_900);
  });

  it('refused again: thrown as REPLICA_STALLED (asked twice, not more)', async () => {
    const { client, asked } = await lone(5);
    await expect(client.createDataset({ primary: NODE, maximum_size: 1 << 26 })).rejects.toMatchObject({
      status: 503,
      code: 'REPLICA_STALLED',
    });
    expect(asked).toHaveLength(2);
  });
});

describe('FlockerClient: REPLICA_STALLED from one of several replicas (review S26B B3)', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(
      servers.splice(0).map(
        (s) =>
          new Promise<void>((resolve) => {
            s.closeAllConnections();
            s.close(() => resolve());
          }),
      ),
    );
  });

  /** A replica answering `answer(method)`; the methods it was asked, in order. */
  async function replica(
    answer: (method: string) => { status: number; body: unknown; afterMs?: number },
  ): Promise<{ url: string; asked: string[] }> {
    const asked: string[] = [];
    const srv = createServer((req, res) => {
      req.resume();
      asked.push(req.method ?? '');
      const a = answer(req.method ?? '');
      setTimeout(() => {
        res.writeHead(a.status, { 'content-type': 'application/json', 'retry-after': '1' });
        res.end(JSON.stringify(a.body));
      }, a.afterMs ?? 0);
    });
    servers.push(srv);
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, asked };
  }

  const stalled = { code: 'REPLICA_STALLED', description: 'read right after this replica stalled; nothing applied' };
  const dataset = { dataset_id: ID, primary: NODE, metadata: {}, deleted: false };

  it('the next request goes to another replica, even when the refused one answers an older request after', async () => {
    // A: stalled a moment ago; a read sent before its refusal is answered (late) after the write moved to B.
    const a = await replica((m) =>
      m === 'POST' ? { status: 503, body: stalled } : { status: 200, body: [], afterMs: 1_000 },
    );
    const b = await replica((m) => (m === 'POST' ? { status: 201, body: dataset } : { status: 200, body: [] }));
    const client = new FlockerClient({ baseUrl: `${a.url},${b.url}`, timeoutMs: 10_000, failoverTimeoutMs: 5_000 });
    const read = client.listDatasets();
    await client.createDataset({ primary: NODE, maximum_size: 1 << 26 });
    await read;
    await client.listDatasets();
    expect({ a: a.asked, b: b.asked }).toEqual({ a: ['GET', 'POST'], b: ['POST', 'GET'] });
  });

  it('the next request goes to another replica when the write it moved to failed there too', async () => {
    const a = await replica((m) => (m === 'POST' ? { status: 503, body: stalled } : { status: 200, body: [] }));
    const b = await replica((m) =>
      m === 'POST'
        ? { status: 500, body: { code: 'INTERNAL_ERROR', description: 'something broke' } }
        : { status: 200, body: [] },
    );
    const client = new FlockerClient({ baseUrl: `${a.url},${b.url}`, timeoutMs: 10_000 });
    await expect(client.createDataset({ primary: NODE, maximum_size: 1 << 26 })).rejects.toMatchObject({
      code: 'INTERNAL_ERROR',
    });
    await client.listDatasets();
    expect({ a: a.asked, b: b.asked }).toEqual({ a: ['POST'], b: ['POST', 'GET'] });
  });
});
