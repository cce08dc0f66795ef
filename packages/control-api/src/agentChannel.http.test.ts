/** Over HTTP (issue 23): the agent channel's delta form and per-node wake-ups (whole lists: server.test). */
import { applyClusterDelta, ClusterSnapshot, FlockerClient, isClusterDelta } from '@flocker/api';
import type { ControlService } from './server';
import { NODE_A, NODE_B, startOnLoopbackWithTwoNodes } from './testing/httpService';

describe('agent channel: deltas and per-node wake-ups over HTTP', () => {
  let svc: ControlService;
  let client: FlockerClient;
  beforeEach(async () => {
    ({ svc, client } = await startOnLoopbackWithTwoNodes());
  });
  afterEach(() => svc.close());

  it('a poll asking for deltas gets the whole view first, then only what changed; merged, it is the whole view', async () => {
    const first = await client.waitForClusterDelta(undefined, 0, NODE_A);
    expect(isClusterDelta(first)).toBe(false);
    const view = ClusterSnapshot.parse(first);
    const poll = client.waitForClusterDelta(view.generation, 5000, NODE_A);
    const ds = await client.createDataset({ primary: NODE_A });
    const answer = await poll;
    expect(isClusterDelta(answer)).toBe(true);
    if (!isClusterDelta(answer)) return;
    expect(answer.datasets.map((d) => d.dataset_id)).toEqual([ds.dataset_id]);
    expect(answer.nodes).toEqual([]);
    const merged = applyClusterDelta(view, answer);
    const whole = await client.waitForCluster(undefined, 0, { node: NODE_A });
    expect(merged).toEqual(whole);
  });

  it("a change to another node's view does not answer the poll; a plain (full) poll is unchanged for other clients", async () => {
    const since = (await client.waitForCluster(undefined, 0, { node: NODE_A })).generation;
    let answered = false;
    const poll = client.waitForCluster(since, 1500, { node: NODE_A }).then((s) => {
      answered = true;
      return s;
    });
    await client.createDataset({ primary: NODE_B });
    await new Promise((r) => setTimeout(r, 300));
    expect(answered).toBe(false);
    // Its timeout answers it with the current generation and its (unchanged) view.
    const snap = await poll;
    expect(snap.generation).not.toBe(since);
    expect(snap.datasets).toEqual([]);
    // The whole-cluster poll (CLI, flocker-go) is woken by any change, with a full snapshot.
    const cluster = client.waitForCluster(snap.generation, 5000);
    await client.createDataset({ primary: NODE_B });
    expect((await cluster).datasets).toHaveLength(2);
  });
});
