/**
 * Every write says how long this attempt waits for its answer (CLIENT_WAIT_HEADER, review s27 F9): a control replica
 * that stalls meanwhile applies it while the client surely still waits, instead of refusing it REPLICA_STALLED. The
 * wait is the attempt's headers timeout: the whole timeout, or the failover bound when a write safe to repeat has
 * another replica to move to. Reads say nothing (the replica's guard only looks at writes).
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlockerClient } from './client';
import { CLIENT_WAIT_HEADER } from './contract';

const NODE = 'aaaaaaaa-0000-4000-8000-000000000001';
const ID = 'bbbbbbbb-0000-4000-8000-000000000002';
const dataset = { dataset_id: ID, primary: NODE, metadata: {}, deleted: false };
const lease = { dataset_id: ID, node_uuid: NODE, expires: null };

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

/** A replica answering every request with `body` (201 for writes); the headers of what it was asked. */
async function replica(
  body: (method: string, path: string) => unknown,
): Promise<{ url: string; asked: IncomingHttpHeaders[] }> {
  const asked: IncomingHttpHeaders[] = [];
  const srv = createServer((req, res) => {
    req.resume();
    asked.push(req.headers);
    res.writeHead(req.method === 'GET' ? 200 : 201, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body(req.method ?? '', req.url ?? '')));
  });
  servers.push(srv);
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, asked };
}

it("a write states its attempt's timeout; a read states nothing", async () => {
  const r = await replica((method) => (method === 'GET' ? [dataset] : dataset));
  const client = new FlockerClient({ baseUrl: r.url, timeoutMs: 7_000 });
  await client.createDataset({ primary: NODE, dataset_id: ID });
  await client.listDatasets();
  expect(r.asked.map((h) => h[CLIENT_WAIT_HEADER])).toEqual(['7000', undefined]);
});

it('a write safe to repeat, with another replica to move to, states the failover bound', async () => {
  const answer = (_: string, path: string) => (path.includes('lease') ? lease : dataset);
  const a = await replica(answer);
  const b = await replica(answer);
  const client = new FlockerClient({ baseUrl: a.url, baseUrls: [b.url], timeoutMs: 30_000, failoverTimeoutMs: 4_000 });
  await client.acquireLease(lease);
  // One not safe to repeat (a create without its id) is never moved on a timeout: it waits the whole timeout.
  await client.createDataset({ primary: NODE });
  expect(a.asked.map((h) => h[CLIENT_WAIT_HEADER])).toEqual(['4000', '30000']);
  expect(b.asked).toEqual([]);
});
