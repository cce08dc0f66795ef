/**
 * A slow but healthy replica before a frozen one (review R5): a read whose answer takes longer than failoverTimeoutMs
 * was cut at that bound and asked of the frozen replica, which held it the whole timeoutMs: it failed after
 * failoverTimeoutMs + timeoutMs (10 + 30 s by default) although the first replica was about to answer. A read is
 * hedged instead: after failoverTimeoutMs without headers it is also asked of the next replica, the first answer is
 * taken and the other request ended. A write is never sent to two replicas at once.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlockerApiError, FlockerClient } from './client';
import { emptyNodeReport } from './testing/nodeReport';

const NODE = 'aaaaaaaa-0000-4000-8000-000000000001';

interface Replica {
  url: string;
  /** Stops it, its held requests ended. */
  close: () => Promise<void>;
}

/**
 * A replica named `name` answering after `delayMs` (a GET with [] , a PUT with {generation}), or never (frozen: its
 * connections open, nothing answered); logs each request and each request closed before its answer into `events`.
 */
async function replica(name: string, delayMs: number | 'frozen', events: string[]): Promise<Replica> {
  const held: ServerResponse[] = [];
  const srv: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    events.push(`${name} ${req.method ?? ''}`);
    res.on('close', () => {
      if (!res.writableFinished) events.push(`${name} closed`);
    });
    if (delayMs === 'frozen') {
      held.push(res);
      return;
    }
    const t = setTimeout(() => {
      res.setHeader('content-type', 'application/json');
      res.end(req.method === 'PUT' ? JSON.stringify({ generation: name }) : '[]');
    }, delayMs);
    res.on('close', () => clearTimeout(t));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    close: () => {
      for (const res of held) res.destroy();
      srv.closeAllConnections();
      return new Promise((resolve) => srv.close(() => resolve()));
    },
  };
}

/** Until `events` holds `what` (a request's close comes over the socket a moment after the answer), at most 5 s. */
async function until(events: string[], what: string): Promise<void> {
  for (const deadline = Date.now() + 5_000; !events.includes(what) && Date.now() < deadline;)
    await new Promise((r) => setTimeout(r, 10));
}

describe('FlockerClient: a read hedged across replicas (review R5)', () => {
  const replicas: Replica[] = [];
  afterEach(async () => {
    await Promise.all(replicas.splice(0).map((r) => r.close()));
  });

  /** Two replicas, `first` then `second` (name, delay), closed after the test; a client over both in that order. */
  async function twoReplicas(
    first: [string, number | 'frozen'],
    second: [string, number | 'frozen'],
    options: { timeoutMs: number; failoverTimeoutMs: number },
  ): Promise<{ events: string[]; client: FlockerClient; urls: [string, string] }> {
    const events: string[] = [];
    const a = await replica(first[0], first[1], events);
    const b = await replica(second[0], second[1], events);
    replicas.push(a, b);
    return { events, client: new FlockerClient({ baseUrl: `${a.url},${b.url}`, ...options }), urls: [a.url, b.url] };
  }

  it('a slow replica before a frozen one: answered by the slow one, not failed after failover + timeout', async () => {
    const { events, client, urls } = await twoReplicas(['slow', 1_500], ['frozen', 'frozen'], {
      timeoutMs: 4_000,
      failoverTimeoutMs: 500,
    });
    const started = Date.now();
    await expect(client.listDatasets()).resolves.toEqual([]);
    const took = Date.now() - started;
    // Before: cut at 500 ms, then 4 s on the frozen one and REQUEST_TIMEOUT (4.5 s).
    expect(took).toBeGreaterThanOrEqual(1_400);
    expect(took).toBeLessThan(3_500);
    // The hedge went to the frozen replica after the hedge delay, and was ended once the slow one answered.
    await until(events, 'frozen closed');
    expect(events).toEqual(['slow GET', 'frozen GET', 'frozen closed']);
    expect(client.controlUrls[0]).toBe(urls[0]);
  }, 20_000);

  it('a frozen replica first: the hedge to the next answers after the hedge delay; the frozen request is ended', async () => {
    const { events, client, urls } = await twoReplicas(['frozen', 'frozen'], ['good', 0], {
      timeoutMs: 30_000,
      failoverTimeoutMs: 300,
    });
    const started = Date.now();
    await expect(client.listDatasets()).resolves.toEqual([]);
    expect(Date.now() - started).toBeLessThan(5_000);
    await until(events, 'frozen closed');
    expect(events).toEqual(['frozen GET', 'good GET', 'frozen closed']);
    expect(client.controlUrls[0]).toBe(urls[1]);
  }, 20_000);

  it('both frozen: thrown once the last request ends (each keeps its own timeoutMs)', async () => {
    const { events, client } = await twoReplicas(['a', 'frozen'], ['b', 'frozen'], {
      timeoutMs: 1_000,
      failoverTimeoutMs: 300,
    });
    const started = Date.now();
    const err: unknown = await client.listDatasets().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FlockerApiError);
    // Unanswered (the attempt's own timeout).
    expect(err).toMatchObject({ status: 0 });
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(1_200);
    expect(took).toBeLessThan(5_000);
    expect(events.slice(0, 2)).toEqual(['a GET', 'b GET']);
  }, 20_000);

  it('a write safe to repeat is never hedged: the slow replica is left, the frozen next one holds it timeoutMs', async () => {
    const { events, client } = await twoReplicas(['slow', 1_500], ['frozen', 'frozen'], {
      timeoutMs: 2_000,
      failoverTimeoutMs: 300,
    });
    const started = Date.now();
    // Hedged, the slow replica's answer (1.5 s) would be taken; a write is moved on as before: cut, then the next.
    await expect(client.reportNodeState(emptyNodeReport(NODE))).rejects.toMatchObject({ status: 0 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_200);
    await until(events, 'frozen closed');
    expect([...events].sort()).toEqual(['frozen PUT', 'frozen closed', 'slow PUT', 'slow closed']);
  }, 20_000);
});
