/** FlockerClient.watchCluster's idle detection (issue 23): a silent watch is cut after 3 announced heartbeats. */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlockerApiError, FlockerClient, WATCH_IDLE_HEARTBEATS, watchHeartbeatMs } from './client';
import { watchServer, watchView } from './testing/watchServer';

const NODE = '11111111-1111-4111-8111-111111111111';
const VIEW = watchView('x.1.1');

/** Reads the watch until it fails or `ms` pass; what happened and when. */
async function follow(
  client: FlockerClient,
  ms: number,
): Promise<{ lines: number; error?: FlockerApiError; at: number }> {
  const abort = new AbortController();
  const started = Date.now();
  const stop = setTimeout(() => abort.abort(), ms);
  let lines = 0;
  try {
    for await (const answer of client.watchCluster(NODE, undefined, { signal: abort.signal }))
      if (answer.generation !== undefined) lines++;
    return { lines, at: Date.now() - started };
  } catch (e) {
    if (!(e instanceof FlockerApiError)) throw e;
    return { lines, error: e, at: Date.now() - started };
  } finally {
    clearTimeout(stop);
  }
}

describe('FlockerClient.watchCluster idle detection', () => {
  it('reads the heartbeat period from the Content-Type', () => {
    expect(watchHeartbeatMs('application/x-ndjson; heartbeat-ms=2000')).toBe(2000);
    expect(watchHeartbeatMs('application/x-ndjson;heartbeat-ms=50; charset=utf-8')).toBe(50);
    expect(watchHeartbeatMs('application/x-ndjson')).toBeUndefined();
    expect(watchHeartbeatMs('application/x-ndjson; heartbeat-ms=0')).toBeUndefined();
    expect(watchHeartbeatMs(undefined)).toBeUndefined();
  });

  it('a watch gone silent (a half-open connection) fails with WATCH_IDLE after 3 announced heartbeats', async () => {
    const srv = await watchServer('application/x-ndjson; heartbeat-ms=50', () => undefined);
    try {
      const r = await follow(new FlockerClient({ baseUrl: srv.url }), 5_000);
      expect(r.lines).toBe(1);
      expect(r.error?.code).toBe('WATCH_IDLE');
      expect(r.error?.status).toBe(0);
      expect(r.at).toBeGreaterThanOrEqual(WATCH_IDLE_HEARTBEATS * 50 - 10);
      expect(r.at).toBeLessThan(2_000);
    } finally {
      await srv.close();
    }
  });

  it('heartbeats keep a watch without changes open', async () => {
    const srv = await watchServer('application/x-ndjson; heartbeat-ms=50', (res) => {
      const t = setInterval(() => res.write('\n'), 50);
      res.on('close', () => clearInterval(t));
    });
    try {
      const r = await follow(new FlockerClient({ baseUrl: srv.url }), 600);
      expect(r.error).toBeUndefined();
      expect(r.lines).toBe(1);
    } finally {
      await srv.close();
    }
  });

  it('a server announcing no period (the first watch: 20 s heartbeats) keeps the 60 s idle timeout', async () => {
    const srv = await watchServer('application/x-ndjson', () => undefined);
    try {
      const r = await follow(new FlockerClient({ baseUrl: srv.url }), 500);
      expect(r.error).toBeUndefined();
      expect(r.lines).toBe(1);
    } finally {
      await srv.close();
    }
  });
});

describe('FlockerClient: following the whole cluster (no node)', () => {
  /** A server that records the URLs asked and answers each with `answer`. */
  async function recording(
    answer: (res: ServerResponse) => void,
  ): Promise<{ url: string; urls: string[]; close: () => Promise<void> }> {
    const urls: string[] = [];
    const srv: Server = createServer((req, res) => {
      urls.push(req.url ?? '');
      answer(res);
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const port = (srv.address() as AddressInfo).port;
    return { url: `http://127.0.0.1:${port}`, urls, close: () => new Promise((r) => srv.close(() => r())) };
  }

  it('watches the whole cluster without `node` (whole=true); a service that refuses it (400, older) fails with its status', async () => {
    const srv = await recording((res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ description: 'node: Required', code: 'INVALID_REQUEST' }));
    });
    try {
      const client = new FlockerClient({ baseUrl: srv.url });
      let error: unknown;
      try {
        await client.watchCluster(undefined, 'g.1.2')[Symbol.asyncIterator]().next();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(FlockerApiError);
      expect((error as FlockerApiError).status).toBe(400);
      expect(srv.urls).toEqual(['/v1/agent/cluster/watch?whole=true&since=g.1.2']);
    } finally {
      await srv.close();
    }
  });

  it('long-polls whole-cluster deltas without `node`', async () => {
    const srv = await recording((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(VIEW);
    });
    try {
      const client = new FlockerClient({ baseUrl: srv.url });
      expect((await client.waitForClusterDelta('g.1.2', 0, undefined)).generation).toBe('x.1.1');
      const asked = new URL(srv.urls[0] as string, 'http://x');
      expect(asked.pathname).toBe('/v1/agent/cluster');
      expect(asked.searchParams.get('delta')).toBe('true');
      expect(asked.searchParams.has('node')).toBe(false);
    } finally {
      await srv.close();
    }
  });
});

describe('FlockerClient.watchCluster lines', () => {
  it('reads a line cut across many chunks (a whole cluster: megabytes), several lines in one chunk, and characters cut in two', async () => {
    const big = {
      generation: 'x.1.1',
      configuration_tag: 't',
      datasets: [],
      leases: [],
      nodes: [],
      snapshots: Array.from({ length: 2000 }, (_, i) => ({
        snapshot_id: `${String(i).padStart(8, '0')}-1111-4111-8111-111111111111`,
        dataset_id: NODE,
        metadata: { note: 'é€😀'.repeat(20) },
        created_at: '2026-01-01T00:00:00.000Z',
      })),
    };
    const line = Buffer.from(`${JSON.stringify(big)}\n`);
    const second = JSON.stringify({ ...big, generation: 'x.2.1', snapshots: [] });
    const srv = await watchServer('application/x-ndjson; heartbeat-ms=1000', (res) => {
      // The test server wrote VIEW first; then the big line in uneven chunks (cutting multi-byte characters).
      let at = 0;
      const step = 4093;
      const more = (): void => {
        if (at < line.length) {
          res.write(line.subarray(at, at + step));
          at += step;
          setImmediate(more);
        } else res.write(`\n${second}\n\n${VIEW}\n`);
      };
      more();
    });
    try {
      const abort = new AbortController();
      const seen: unknown[] = [];
      for await (const answer of new FlockerClient({ baseUrl: srv.url }).watchCluster(NODE, undefined, {
        signal: abort.signal,
      })) {
        seen.push(answer);
        if (seen.length === 4) abort.abort();
      }
      expect(seen.map((a) => (a as { generation: string }).generation)).toEqual(['x.1.1', 'x.1.1', 'x.2.1', 'x.1.1']);
      expect(seen[1]).toEqual(big);
    } finally {
      await srv.close();
    }
  });
});
