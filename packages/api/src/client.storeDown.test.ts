/**
 * FlockerClient failover when a control replica answers that its store (etcd) is unreachable (review T4 F2): a
 * replica cut off from etcd is alive and answers 503 STORE_UNAVAILABLE, so moving only on connection failures held
 * its agents there. Idempotent calls move on at once; a write whose outcome is unknown is never sent twice.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlockerApiError, FlockerClient } from './client';
import { watchView } from './testing/watchServer';
import { emptyNodeReport } from './testing/nodeReport';

const NODE = '11111111-1111-4111-8111-111111111111';
const DATASET = '22222222-2222-4222-8222-222222222222';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface Replica {
  url: string;
  hits: string[];
  close: () => Promise<void>;
}

/** A replica whose every request `handler` answers; hits lists "METHOD path" as they arrive. */
async function replica(handler: Handler): Promise<Replica> {
  const hits: string[] = [];
  const open = new Set<ServerResponse>();
  const srv: Server = createServer((req, res) => {
    hits.push(`${req.method ?? ''} ${(req.url ?? '').split('?')[0] ?? ''}`);
    open.add(res);
    res.on('close', () => open.delete(res));
    req.resume();
    req.on('end', () => handler(req, res));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    close: () => {
      for (const r of open) r.destroy();
      return new Promise((resolve) => srv.close(() => resolve()));
    },
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** The answer of a replica that cannot reach etcd (as EtcdConfigurationStore's `unavailable` words it). */
const storeDown =
  (code = 'STORE_UNAVAILABLE'): Handler =>
  (_req, res) =>
    json(res, 503, { code, description: 'etcd did not store a node report (4 DEADLINE_EXCEEDED)' });

const dataset = { dataset_id: DATASET, primary: NODE, deleted: false, metadata: {}, maximum_size: 1 << 26 };
const lease = { dataset_id: DATASET, node_uuid: NODE, expires: null };
const snapshot = (generation: string) => JSON.parse(watchView(generation)) as unknown;

/** A healthy replica: answers whatever the tests ask. */
const healthy: Handler = (req, res) => {
  const path = (req.url ?? '').split('?')[0] ?? '';
  if (path === '/v1/version') json(res, 200, { flocker: '1.0.0' });
  else if (path === '/v1/state/nodes') json(res, 200, []);
  else if (path === '/v1/agent/cluster') json(res, 200, snapshot('h.1.1'));
  else if (path === '/v1/agent/cluster/watch') {
    res.writeHead(200, { 'content-type': 'application/x-ndjson; heartbeat-ms=50' });
    res.write(`${watchView('h.1.1')}\n`);
    const beat = setInterval(() => res.write('\n'), 50);
    res.on('close', () => clearInterval(beat));
  } else if (path === '/v1/configuration/datasets') json(res, 201, dataset);
  else if (path === '/v1/configuration/leases') json(res, 201, lease);
  else if (path.startsWith('/v1/agent/nodes/')) json(res, 200, { generation: 'h.1.1' });
  else json(res, 404, { code: 'NOT_FOUND', description: path });
};

const report = emptyNodeReport(NODE);

const replicas: Replica[] = [];
async function start(...handlers: Handler[]): Promise<Replica[]> {
  const started = await Promise.all(handlers.map(replica));
  replicas.push(...started);
  return started;
}
afterEach(async () => {
  await Promise.all(replicas.splice(0).map((r) => r.close()));
});

const failure = (p: Promise<unknown>): Promise<FlockerApiError> =>
  p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => {
      if (!(e instanceof FlockerApiError)) throw e;
      return e;
    },
  );

describe('FlockerClient: a replica whose store is unreachable (503 STORE_UNAVAILABLE)', () => {
  it('a node report (a whole-state PUT) moves to the next replica at once, and the client stays there', async () => {
    const [cut, good] = await start(storeDown(), healthy);
    const client = new FlockerClient({ baseUrl: `${cut!.url},${good!.url}`, timeoutMs: 2000 });
    expect(await client.reportNodeState(report)).toEqual({ generation: 'h.1.1' });
    expect(client.controlUrls[0]).toBe(good!.url);
    await client.reportNodeState(report);
    expect(cut!.hits).toEqual([`PUT /v1/agent/nodes/${NODE}`]);
    expect(good!.hits).toEqual([`PUT /v1/agent/nodes/${NODE}`, `PUT /v1/agent/nodes/${NODE}`]);
  });

  it('a read and a long-poll move to the next replica', async () => {
    const [cut, good] = await start(storeDown(), healthy);
    const client = new FlockerClient({ baseUrl: cut!.url, baseUrls: [good!.url], timeoutMs: 2000 });
    expect(await client.listNodes()).toEqual([]);
    const poll = new FlockerClient({ baseUrl: cut!.url, baseUrls: [good!.url], timeoutMs: 2000 });
    expect((await poll.waitForCluster('x.1.1', 100)).generation).toBe('h.1.1');
    expect(cut!.hits).toEqual(['GET /v1/state/nodes', 'GET /v1/agent/cluster']);
  });

  it('STORE_OUTCOME_UNKNOWN and STORE_CLOSED move a report too', async () => {
    for (const code of ['STORE_OUTCOME_UNKNOWN', 'STORE_CLOSED']) {
      const [cut, good] = await start(storeDown(code), healthy);
      const client = new FlockerClient({ baseUrl: `${cut!.url},${good!.url}`, timeoutMs: 2000 });
      expect(await client.reportNodeState(report)).toEqual({ generation: 'h.1.1' });
      expect(good!.hits).toHaveLength(1);
    }
  });

  it('a create without dataset_id is not sent twice when its outcome is unknown; the next call starts elsewhere', async () => {
    const [cut, good] = await start(storeDown('STORE_OUTCOME_UNKNOWN'), healthy);
    const client = new FlockerClient({ baseUrl: `${cut!.url},${good!.url}`, timeoutMs: 2000 });
    const err = await failure(client.createDataset({ primary: NODE, maximum_size: 1 << 26 }));
    expect([err.status, err.code]).toEqual([503, 'STORE_OUTCOME_UNKNOWN']);
    expect(good!.hits).toEqual([]);
    // A replica that cannot reach its store is left: the next call (a read) goes to the other one first.
    expect(client.controlUrls[0]).toBe(good!.url);
    await client.listNodes();
    expect(cut!.hits).toEqual(['POST /v1/configuration/datasets']);
  });

  it('a move, a delete and a lease release whose outcome is unknown are not re-sent', async () => {
    const [cut, good] = await start(storeDown('STORE_OUTCOME_UNKNOWN'), healthy);
    const fresh = () => new FlockerClient({ baseUrl: `${cut!.url},${good!.url}`, timeoutMs: 2000 });
    await failure(fresh().updateDataset(DATASET, { primary: NODE }));
    await failure(fresh().deleteDataset(DATASET));
    await failure(fresh().releaseLease(DATASET));
    expect(cut!.hits).toHaveLength(3);
    expect(good!.hits).toEqual([]);
  });

  it('writes idempotent by construction are re-sent: a create naming its dataset_id, a lease acquire', async () => {
    const [cut, good] = await start(storeDown('STORE_OUTCOME_UNKNOWN'), healthy);
    const fresh = () => new FlockerClient({ baseUrl: `${cut!.url},${good!.url}`, timeoutMs: 2000 });
    expect(
      (await fresh().createDataset({ dataset_id: DATASET, primary: NODE, maximum_size: 1 << 26 })).dataset_id,
    ).toBe(DATASET);
    expect((await fresh().acquireLease({ dataset_id: DATASET, node_uuid: NODE, expires: null })).node_uuid).toBe(NODE);
    expect(good!.hits).toEqual(['POST /v1/configuration/datasets', 'POST /v1/configuration/leases']);
  });

  it('a write refused before anything was applied (STORE_UNAVAILABLE, SHUTTING_DOWN, STORE_CLOSED, REPLICA_STALLED) goes to the next replica', async () => {
    for (const code of ['STORE_UNAVAILABLE', 'SHUTTING_DOWN', 'STORE_CLOSED', 'REPLICA_STALLED']) {
      const [cut, good] = await start(storeDown(code), healthy);
      const client = new FlockerClient({ baseUrl: `${cut!.url},${good!.url}`, timeoutMs: 2000 });
      expect((await client.createDataset({ primary: NODE, maximum_size: 1 << 26 })).dataset_id).toBe(DATASET);
      expect(good!.hits).toEqual(['POST /v1/configuration/datasets']);
    }
  });

  it('a write under way on a replica the client leaves is not cut (its outcome would become unknown)', async () => {
    const [cut, good] = await start((req, res) => {
      if (req.method === 'POST') setTimeout(() => json(res, 201, dataset), 300);
      else storeDown()(req, res);
    }, healthy);
    const client = new FlockerClient({ baseUrl: `${cut!.url},${good!.url}`, timeoutMs: 2000 });
    const create = client.createDataset({ primary: NODE, maximum_size: 1 << 26 });
    await new Promise((r) => setTimeout(r, 50));
    // A report learns that the replica's store is down while the create waits for its answer there.
    expect(await client.reportNodeState(report)).toEqual({ generation: 'h.1.1' });
    expect((await create).dataset_id).toBe(DATASET);
    // Its late answer does not bring the client back to the replica it left.
    expect(client.controlUrls[0]).toBe(good!.url);
    expect(cut!.hits).toEqual(['POST /v1/configuration/datasets', `PUT /v1/agent/nodes/${NODE}`]);
    expect(good!.hits).toEqual([`PUT /v1/agent/nodes/${NODE}`]);
  });

  it('a request safe to repeat cut on the last replica left is thrown as LEFT_REPLICA (outcome unknown), not as the other call’s 503', async () => {
    // FR19-4: STORE_UNAVAILABLE means "nothing was written"; a lease acquire already sent may have landed.
    let reportsRefused = false;
    const [only] = await start((req, res) => {
      const path = (req.url ?? '').split('?')[0] ?? '';
      if (path === '/v1/configuration/leases') return; // sent, never answered (etcd slow to confirm)
      if (reportsRefused) storeDown()(req, res);
      else json(res, 200, { generation: 'c.1.1' });
    });
    const client = new FlockerClient({ baseUrl: only!.url, timeoutMs: 5000 });
    const acquire = failure(client.acquireLease({ dataset_id: DATASET, node_uuid: NODE, expires: null }));
    await new Promise((r) => setTimeout(r, 100));
    reportsRefused = true;
    // The report's own answer keeps its code: that one surely wrote nothing.
    const refused = await failure(client.reportNodeState(report));
    expect([refused.status, refused.code]).toEqual([503, 'STORE_UNAVAILABLE']);
    const cut = await acquire;
    expect([cut.status, cut.code]).toEqual([0, 'LEFT_REPLICA']);
    expect(cut.message).toMatch(/outcome is unknown/);
    expect(cut.message).toContain(only!.url);
    expect(cut.message).toContain('STORE_UNAVAILABLE: etcd did not store a node report');
  });

  it('a watch asked of a replica that answers STORE_UNAVAILABLE is asked of the next', async () => {
    const [cut, good] = await start(storeDown(), healthy);
    const client = new FlockerClient({ baseUrl: `${cut!.url},${good!.url}`, timeoutMs: 2000 });
    const abort = new AbortController();
    for await (const answer of client.watchCluster(NODE, undefined, { signal: abort.signal })) {
      expect(answer.generation).toBe('h.1.1');
      abort.abort();
    }
    expect(cut!.hits).toEqual(['GET /v1/agent/cluster/watch']);
  });

  it('a watch and a long-poll open on a replica end as soon as a call learns its store is unreachable', async () => {
    // The cut-off replica serves views from memory (frozen) but cannot store a report.
    let reportsRefused = false;
    const [cut, good] = await start((req, res) => {
      const path = (req.url ?? '').split('?')[0] ?? '';
      if (path === '/v1/agent/cluster/watch') {
        res.writeHead(200, { 'content-type': 'application/x-ndjson; heartbeat-ms=50' });
        res.write(`${watchView('c.1.1')}\n`);
        const beat = setInterval(() => res.write('\n'), 50);
        res.on('close', () => clearInterval(beat));
      } else if (path === '/v1/agent/cluster') {
        // A long-poll held until its timeout (10 s here): the test must not wait for it.
        setTimeout(() => json(res, 200, snapshot('c.1.1')), 10_000).unref();
      } else if (reportsRefused) storeDown()(req, res);
      else json(res, 200, { generation: 'c.1.1' });
    }, healthy);
    const client = new FlockerClient({ baseUrl: `${cut!.url},${good!.url}`, timeoutMs: 2000 });
    expect(await client.reportNodeState(report)).toEqual({ generation: 'c.1.1' });
    const watch = client.watchCluster(NODE);
    expect((await watch.next()).value?.generation).toBe('c.1.1');
    const poll = client.waitForCluster('c.1.1', 10_000);
    poll.catch(() => undefined); // awaited below; a failure before that is not an unhandled rejection
    await new Promise((r) => setTimeout(r, 100));
    reportsRefused = true;
    const started = Date.now();
    expect(await client.reportNodeState(report)).toEqual({ generation: 'h.1.1' });
    const ended = await failure(watch.next()).finally(() => void watch.return());
    // Ended by the client, not answered by the replica (FR19-4): a client-side code, the reason in its message.
    expect([ended.status, ended.code]).toEqual([0, 'LEFT_REPLICA']);
    expect(ended.message).toContain(cut!.url);
    expect(ended.message).toContain('STORE_UNAVAILABLE');
    // The long-poll is asked again of the healthy replica, which answers at once (another generation).
    expect((await poll).generation).toBe('h.1.1');
    // Far below the 10 s long-poll it would otherwise be (2 s was tight on a loaded host).
    expect(Date.now() - started).toBeLessThan(6_000);
    // Watched again: from the replica the client moved to.
    for await (const answer of client.watchCluster(NODE)) {
      expect(answer.generation).toBe('h.1.1');
      break;
    }
    expect(good!.hits).toEqual([`PUT /v1/agent/nodes/${NODE}`, 'GET /v1/agent/cluster', 'GET /v1/agent/cluster/watch']);
  });
});
