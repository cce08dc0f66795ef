/**
 * Over HTTP (issue 23): the agent channel's streaming watch — one long-lived answer per agent
 * carrying its node's view, then a delta per change of that view (no re-poll per change).
 */
import { request as httpGet } from 'node:http';
import { applyClusterDelta, ClusterSnapshot, FlockerClient, isClusterDelta } from '@flocker/api';
import type { ControlService } from './server';
import { NODE_A, NODE_B, startOnLoopbackWithTwoNodes, watchReader } from './testing/httpService';
import { sharedDeltaCacheSize, WATCH_HEARTBEAT_MS } from './agentWatch';

/** Raw bytes of a watch, to see exactly what the server writes. */
function rawWatch(url: string): Promise<{ chunks: string[]; close: () => void; status: number; type: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, (res) => {
      const chunks: string[] = [];
      res.on('data', (c: Buffer) => chunks.push(c.toString()));
      resolve({
        chunks,
        close: () => req.destroy(),
        status: res.statusCode ?? 0,
        type: String(res.headers['content-type']),
      });
    });
    req.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(err);
    });
    req.end();
  });
}

const until = async (what: () => boolean, ms = 3000): Promise<void> => {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('agent channel: the streaming watch over HTTP', () => {
  let svc: ControlService;
  let client: FlockerClient;
  beforeEach(async () => {
    ({ svc, client } = await startOnLoopbackWithTwoNodes());
  });
  afterEach(() => svc.close());

  it('streams the whole view first, then a delta per change of its view; merged, each is the whole view', async () => {
    const w = watchReader(client, NODE_A);
    try {
      const first = await w.next();
      expect(isClusterDelta(first)).toBe(false);
      let view = ClusterSnapshot.parse(first);
      for (let i = 0; i < 3; i++) {
        const ds = await client.createDataset({ primary: NODE_A });
        const answer = await w.next();
        expect(isClusterDelta(answer)).toBe(true);
        if (!isClusterDelta(answer)) return;
        expect(answer.since).toBe(view.generation);
        expect(answer.datasets.map((d) => d.dataset_id)).toEqual([ds.dataset_id]);
        view = applyClusterDelta(view, answer) as ClusterSnapshot;
        expect(view).toEqual(await client.waitForCluster(undefined, 0, { node: NODE_A }));
      }
    } finally {
      w.close();
    }
  });

  it('a watch from a generation it holds sends nothing until its view changes; a change elsewhere sends nothing', async () => {
    const since = (await client.waitForCluster(undefined, 0, { node: NODE_A })).generation;
    const raw = await rawWatch(`${svc.url}/v1/agent/cluster/watch?node=${NODE_A}&since=${since}`);
    try {
      expect(raw.status).toBe(200);
      expect(raw.type).toMatch(/^application\/x-ndjson/);
      // The heartbeat period, so the client's idle timeout follows it.
      expect(raw.type).toBe(`application/x-ndjson; heartbeat-ms=${WATCH_HEARTBEAT_MS}`);
      await client.createDataset({ primary: NODE_B });
      await new Promise((r) => setTimeout(r, 300));
      expect(raw.chunks.join('')).toBe('');
      const ds = await client.createDataset({ primary: NODE_A });
      await until(() => raw.chunks.join('').includes('\n'));
      const lines = raw.chunks
        .join('')
        .split('\n')
        .filter((l) => l !== '');
      expect(lines).toHaveLength(1);
      const delta = JSON.parse(lines[0] as string) as { delta: boolean; datasets: { dataset_id: string }[] };
      expect(delta.delta).toBe(true);
      // Since B's dataset: the delta carries A's view only.
      expect(delta.datasets.map((d) => d.dataset_id)).toEqual([ds.dataset_id]);
    } finally {
      raw.close();
    }
  });

  it('a change in every view (a configured snapshot) writes the same bytes to every watcher, built once', async () => {
    const ds = await client.createDataset({ primary: NODE_A });
    const since = (await client.waitForCluster(undefined, 0, { node: NODE_A })).generation;
    const raws = await Promise.all(
      [NODE_A, NODE_B, NODE_A].map((n) => rawWatch(`${svc.url}/v1/agent/cluster/watch?node=${n}&since=${since}`)),
    );
    try {
      await until(() => svc.state.waiting === 3);
      await client.createSnapshot({ dataset_id: ds.dataset_id });
      await until(() => raws.every((r) => r.chunks.join('').endsWith('\n')));
      const bodies = raws.map((r) => r.chunks.join(''));
      expect(new Set(bodies).size).toBe(1);
      expect((JSON.parse(bodies[0] as string) as { snapshots: unknown[] }).snapshots).toHaveLength(1);
      // One shared answer kept (the latest generation's), not one per watcher.
      expect(sharedDeltaCacheSize(svc.state)).toBe(1);
    } finally {
      for (const r of raws) r.close();
    }
  });

  it('a watcher that goes away stops waiting (no waiter left behind)', async () => {
    const w = watchReader(client, NODE_A);
    await w.next();
    await until(() => svc.state.waiting === 1);
    w.close();
    await until(() => svc.state.waiting === 0);
  });

  it('the service closing ends the stream (the agent then reconnects, to another replica if need be)', async () => {
    const abort = new AbortController();
    const it = client.watchCluster(NODE_A, undefined, { signal: abort.signal })[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    const end = it.next();
    await svc.close();
    expect((await end).done).toBe(true);
  });

  it('a bad node is refused with 400 and a JSON description', async () => {
    const raw = await rawWatch(`${svc.url}/v1/agent/cluster/watch?node=not-a-uuid`);
    await until(() => raw.chunks.join('').length > 0);
    expect(raw.status).toBe(400);
    expect(JSON.parse(raw.chunks.join('')) as { description: string }).toHaveProperty('description');
  });

  it('the long-poll API is unchanged beside it', async () => {
    const first = await client.waitForClusterDelta(undefined, 0, NODE_A);
    expect(isClusterDelta(first)).toBe(false);
    const poll = client.waitForClusterDelta(first.generation, 5000, NODE_A);
    const ds = await client.createDataset({ primary: NODE_A });
    const answer = await poll;
    expect(isClusterDelta(answer) && answer.datasets.map((d) => d.dataset_id)).toEqual([ds.dataset_id]);
  });
});
