/**
 * ClusterFollower over a real FlockerClient watch that goes silent (issue 23): a half-open connection
 * is noticed after 3 of the heartbeats the server announces (not the first watch's 60 s), and the
 * node's view is watched again from the generation held, with a read of what changed meanwhile.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlockerClient } from '@flocker/api';
import winston from 'winston';
import { ClusterFollower } from './ClusterFollower';
import { systemClock } from './clock';
import { nodeState } from './testing/fakes';

const ME = '11111111-1111-4111-8111-111111111111';
const VIEW = { generation: 'x.1.1', configuration_tag: 't', datasets: [], leases: [], nodes: [nodeState(ME)] };

it('a watch gone silent is watched again from the generation held within a few heartbeats, and what changed is read', async () => {
  const watches: Array<{ since: string | null; at: number }> = [];
  const reads: Array<string | null> = [];
  const open = new Set<ServerResponse>();
  // The first watch sends the view, then nothing (a half-open connection); the next ones beat.
  const srv: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/v1/agent/cluster/watch') {
      watches.push({ since: url.searchParams.get('since'), at: Date.now() });
      open.add(res);
      res.writeHead(200, { 'content-type': 'application/x-ndjson; heartbeat-ms=50' });
      if (watches.length === 1) res.write(`${JSON.stringify(VIEW)}\n`);
      else {
        const t = setInterval(() => res.write('\n'), 50);
        res.on('close', () => clearInterval(t));
      }
      return;
    }
    reads.push(url.searchParams.get('since'));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ...VIEW, delta: undefined }));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const client = new FlockerClient({ baseUrl: `http://127.0.0.1:${(srv.address() as AddressInfo).port}` });
  const follower = new ClusterFollower({
    waitForCluster: (since, timeoutMs) => client.waitForCluster(since, timeoutMs),
    waitForClusterDelta: (since, timeoutMs) => client.waitForClusterDelta(since, timeoutMs, ME),
    watchCluster: (since, signal) => client.watchCluster(ME, since, { signal }),
    nodeUuid: ME,
    clock: systemClock,
    logger: winston.createLogger({ silent: true }),
    pollWaitMs: 25_000,
    backoffInitialMs: 20,
    backoffMaxMs: 100,
    adopted: () => undefined,
  });
  try {
    follower.start();
    const end = Date.now() + 30_000;
    while (watches.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    expect(watches).toHaveLength(2);
    expect(watches[0]?.since).toBeNull();
    expect(watches[1]?.since).toBe('x.1.1');
    // 3 heartbeats of 50 ms and the backoff's 20 ms, not 60 s (20 s leaves a loaded host room).
    expect((watches[1]?.at ?? 0) - (watches[0]?.at ?? 0)).toBeLessThan(20_000);
    while (reads.length < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    expect(reads).toEqual(['x.1.1']);
    expect(follower.followMode).toBe('watch');
  } finally {
    follower.stop();
    for (const r of open) r.destroy();
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  }
});
