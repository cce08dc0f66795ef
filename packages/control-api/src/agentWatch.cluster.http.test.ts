/**
 * Over HTTP (issue 23): the whole cluster's watch (`GET /v1/agent/cluster/watch` without `node`), what
 * the Docker plugins follow — the whole snapshot, then a delta per change — and the whole cluster's
 * long-poll deltas (`GET /v1/agent/cluster?delta=true` without `node`).
 */
import { applyClusterDelta, ClusterSnapshot, FlockerClient, isClusterDelta } from '@flocker/api';
import { authorize } from './authorization';
import type { ControlService } from './server';
import { NODE_A, NODE_B, nodeReport, startOnLoopbackWithTwoNodes, watchReader } from './testing/httpService';
import { normalView } from './testing/viewOracle';

describe('agent channel: the whole cluster by deltas over HTTP', () => {
  let svc: ControlService;
  let client: FlockerClient;
  beforeEach(async () => {
    ({ svc, client } = await startOnLoopbackWithTwoNodes());
  });
  afterEach(() => svc.close());

  it('streams the whole snapshot, then a delta per change (datasets of every node, leases, node states); merged, each is the whole snapshot', async () => {
    const w = watchReader(client, undefined);
    try {
      const first = await w.next();
      expect(isClusterDelta(first)).toBe(false);
      let view = ClusterSnapshot.parse(first);
      expect(view).toEqual(await client.waitForCluster(undefined, 0));
      const next = async (): Promise<void> => {
        const answer = await w.next();
        expect(isClusterDelta(answer)).toBe(true);
        if (!isClusterDelta(answer)) return;
        expect(answer.since).toBe(view.generation);
        view = applyClusterDelta(view, answer) as ClusterSnapshot;
        // last_seen aside: a report moves it without a change.
        expect(normalView(view)).toEqual(normalView(await client.waitForCluster(undefined, 0)));
      };
      const a = await client.createDataset({ primary: NODE_A });
      await next();
      await client.createDataset({ primary: NODE_B });
      await next();
      await client.updateDataset(a.dataset_id, { primary: NODE_B });
      await next();
      await client.acquireLease({ dataset_id: a.dataset_id, node_uuid: NODE_B, expires: null });
      await next();
      await client.reportNodeState(
        nodeReport(NODE_B, {
          manifestations: [{ dataset_id: a.dataset_id, blockdevice_id: 'b1', size: 67108864, status: 'attached' }],
        }),
      );
      await next();
      await client.releaseLease(a.dataset_id);
      await next();
      await client.deleteDataset(a.dataset_id);
      await next();
    } finally {
      w.close();
    }
  });

  it('watched again from the generation held: nothing until a change, then one delta; from another process: the whole snapshot', async () => {
    const held = await client.waitForCluster(undefined, 0);
    const w = watchReader(client, undefined, held.generation);
    try {
      const ds = await client.createDataset({ primary: NODE_A });
      const answer = await w.next();
      expect(isClusterDelta(answer) && answer.since).toBe(held.generation);
      expect(isClusterDelta(answer) && answer.datasets.map((d) => d.dataset_id)).toEqual([ds.dataset_id]);
    } finally {
      w.close();
    }
    const other = watchReader(client, undefined, 'another0.1.1');
    try {
      const answer = await other.next();
      expect(isClusterDelta(answer)).toBe(false);
      expect(answer).toEqual(await client.waitForCluster(undefined, 0));
    } finally {
      other.close();
    }
  });

  it('the long-poll answers a whole-cluster delta when asked (delta=true, no node); without it, the whole snapshot as before', async () => {
    const first = await client.waitForClusterDelta(undefined, 0, undefined);
    expect(isClusterDelta(first)).toBe(false);
    const poll = client.waitForClusterDelta(first.generation, 5000, undefined);
    const ds = await client.createDataset({ primary: NODE_B });
    const answer = await poll;
    expect(isClusterDelta(answer) && answer.datasets.map((d) => d.dataset_id)).toEqual([ds.dataset_id]);
    const merged = applyClusterDelta(first, answer as Parameters<typeof applyClusterDelta>[1]);
    expect(normalView(merged as ClusterSnapshot)).toEqual(normalView(await client.waitForCluster(undefined, 0)));
    // Without delta=true: unchanged.
    const whole = await client.waitForCluster(first.generation, 0);
    expect(isClusterDelta(whole)).toBe(false);
  });

  it('asks for exactly one of `node` and `whole=true`: neither or both is refused with 400 (no whole cluster by mistake)', async () => {
    for (const query of ['', `?node=${NODE_A}&whole=true`, '?whole=false']) {
      const res = await fetch(`${svc.url}/v1/agent/cluster/watch${query}`);
      expect({ query, status: res.status }).toEqual({ query, status: 400 });
      expect(await res.json()).toMatchObject({ description: expect.any(String) });
    }
  });

  it('may be followed by the certificates that may long-poll the whole cluster: API users and every node', () => {
    const facts = { leaseHolder: () => undefined, primaryOf: () => undefined, leasePinned: () => false };
    const req = { method: 'get', route: '/v1/agent/cluster/watch', params: {}, body: undefined };
    const poll = { ...req, route: '/v1/agent/cluster' };
    for (const who of [
      { kind: 'user' as const, name: 'alice' },
      { kind: 'node' as const, uuid: NODE_A },
    ]) {
      expect(authorize(who, req, facts)).toEqual(authorize(who, poll, facts));
      expect(authorize(who, req, facts).allowed).toBe(true);
    }
  });
});
