/**
 * A frozen control replica (SIGSTOP: its connections stay open, nothing is answered): with failoverTimeoutMs a
 * request safe to repeat moves on to the next replica after that time, not after the whole timeoutMs (review T4: an
 * agent's heartbeat held 5 s by a frozen first replica fenced the node at its 5 s bound).
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlockerApiError, FlockerClient } from './client';
import { emptyNodeReport } from './testing/nodeReport';
import { watchServer } from './testing/watchServer';

/** A server that answers `{generation}`, or holds every request unanswered (frozen). */
async function server(frozen: boolean): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const held: ServerResponse[] = [];
  const srv: Server = createServer((_req, res) => {
    hits++;
    if (frozen) {
      held.push(res);
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ generation: 'g1' }));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    hits: () => hits,
    close: () => {
      for (const res of held) res.destroy();
      srv.closeAllConnections();
      return new Promise((resolve) => srv.close(() => resolve()));
    },
  };
}

const report = emptyNodeReport();

describe('FlockerClient with a frozen replica first', () => {
  it('a report moves on to the next replica after failoverTimeoutMs, not timeoutMs, and the client stays there', async () => {
    const frozen = await server(true);
    const good = await server(false);
    try {
      const client = new FlockerClient({
        baseUrl: `${frozen.url},${good.url}`,
        timeoutMs: 60_000,
        failoverTimeoutMs: 200,
      });
      const started = Date.now();
      expect(await client.reportNodeState(report)).toEqual({ generation: 'g1' });
      // Generous (the 60 s timeout is what it took before): anything near it is the old behaviour.
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(client.controlUrls).toEqual([good.url, frozen.url]);
      await client.reportNodeState(report);
      expect({ frozen: frozen.hits(), good: good.hits() }).toEqual({ frozen: 1, good: 2 });
    } finally {
      await frozen.close();
      await good.close();
    }
  });

  it('the last replica asked waits timeoutMs; a function undefined means timeoutMs', async () => {
    const frozen = await server(true);
    try {
      const alone = new FlockerClient({ baseUrl: frozen.url, timeoutMs: 1_500, failoverTimeoutMs: 10 });
      const started = Date.now();
      const err: unknown = await alone.reportNodeState(report).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FlockerApiError);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
      const good = await server(false);
      try {
        const unset = new FlockerClient({
          baseUrl: `${frozen.url},${good.url}`,
          timeoutMs: 1_500,
          failoverTimeoutMs: () => undefined,
        });
        const at = Date.now();
        await unset.reportNodeState(report);
        expect(Date.now() - at).toBeGreaterThanOrEqual(1_400);
      } finally {
        await good.close();
      }
    } finally {
      await frozen.close();
    }
  });

  it("a watch's connect moves on after failoverTimeoutMs; the last replica's waits timeoutMs", async () => {
    const frozen = await server(true);
    const good = await watchServer('application/x-ndjson; heartbeat-ms=1000', (res) => {
      const t = setInterval(() => res.write('\n'), 1_000);
      res.on('close', () => clearInterval(t));
    });
    const abort = new AbortController();
    try {
      const client = new FlockerClient({ baseUrl: `${frozen.url},${good.url}`, failoverTimeoutMs: 200 });
      const started = Date.now();
      for await (const answer of client.watchCluster(undefined, undefined, { signal: abort.signal })) {
        expect(answer.generation).toBe('x.1.1');
        break;
      }
      // Generous (the default 30 s timeout is what it took before): anything near it is the old behaviour.
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(client.controlUrls).toEqual([good.url, frozen.url]);
      // The stream itself is not cut by failoverTimeoutMs: it stays open past it, on heartbeats.
      const held = Date.now();
      let answers = 0;
      const stop = setTimeout(() => abort.abort(), 1_500);
      try {
        for await (const answer of client.watchCluster(undefined, undefined, { signal: abort.signal }))
          if (answer.generation !== undefined) answers++;
      } finally {
        clearTimeout(stop);
      }
      expect(answers).toBe(1);
      expect(Date.now() - held).toBeGreaterThanOrEqual(1_400);

      const alone = new FlockerClient({ baseUrl: frozen.url, timeoutMs: 1_500, failoverTimeoutMs: 10 });
      const at = Date.now();
      const err: unknown = await alone
        .watchCluster(undefined)
        .next()
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FlockerApiError);
      expect(Date.now() - at).toBeGreaterThanOrEqual(1_400);
    } finally {
      abort.abort();
      await frozen.close();
      await good.close();
    }
  }, 60_000);
});
