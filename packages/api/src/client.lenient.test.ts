/**
 * Answers of a newer control service (review FR F12): the members it adds (v1 allows additions) are dropped, at any
 * depth, by the client of the release before, which reads the members it knows; what the client sends stays checked
 * strictly. The cluster views (agent channel) stay strict unless the client is made for showing them (the CLI).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlockerApiError, FlockerClient } from './client';
import { type ClusterAnswer, isClusterDelta } from './clusterDelta';

const D = '11111111-1111-4111-8111-111111111111';
const N = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const AT = '2026-12-06T08:00:00.000Z';

/** A control service answering each path with its JSON (a watch: its lines); what it was sent. */
async function newerService(answers: Record<string, unknown>): Promise<{
  url: string;
  seen: string[];
  close: () => Promise<void>;
}> {
  const seen: string[] = [];
  const srv: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    seen.push(`${req.method ?? ''} ${path}`);
    const answer = answers[path];
    if (answer === undefined) {
      res.statusCode = 404;
      res.end('{"description":"no such route","code":"NOT_FOUND"}');
    } else if (path.endsWith('/watch')) {
      res.writeHead(200, { 'content-type': 'application/x-ndjson; heartbeat-ms=1000' });
      res.end((answer as unknown[]).map((line) => `${JSON.stringify(line)}\n`).join(''));
    } else {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
    }
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, seen, close: () => new Promise((r) => srv.close(() => r())) };
}

const node = {
  uuid: N,
  era: 'e1',
  host: '10.0.0.1',
  instance_id: 'i-1',
  backend: 'loopback',
  manifestations: [{ dataset_id: D, blockdevice_id: 'b1', size: 1 << 30, status: 'mounted', path: '/flocker/d' }],
  errors: [],
  alive: true,
  last_seen: AT,
};
/** The node as a newer service shows it: a member added at the top and one in a manifestation. */
const newerNode = {
  ...node,
  future_state: { code: 'X', since: AT },
  manifestations: [{ ...node.manifestations[0], future_lineage: 'x' }],
};
const snapshot = { generation: 'g2', configuration_tag: 'v1', datasets: [], leases: [], nodes: [node] };
const newerSnapshot = { ...snapshot, nodes: [newerNode], future_member: true };
const delta = {
  delta: true,
  since: 'g1',
  generation: 'g2',
  configuration_tag: 'v1',
  datasets: [],
  removed_datasets: [D],
  leases: [],
  removed_leases: [],
  nodes: [newerNode],
  removed_nodes: [],
  future_member: 1,
};
const dataset = { dataset_id: D, primary: N, metadata: { name: 'v' }, deleted: false, maximum_size: 1 << 30 };
const error = { code: 'IMAGE_NOT_FOUND', message: 'no such image', attempts: 1, since: AT };
const container = { name: 'web', node_uuid: N, image: 'nginx', running: false, error, reported_at: AT };

describe('FlockerClient against a newer control service (additive members)', () => {
  it('reads containers, nodes, datasets and their state, dropping the members it does not know', async () => {
    const srv = await newerService({
      '/v1/state/containers': [{ ...container, future_age_ms: 12, error: { ...error, future_retry_ms: 5 } }],
      '/v1/state/nodes': [{ uuid: N, host: '10.0.0.1', version: '1.0', future_summary: { code: 'X' } }],
      '/v1/configuration/datasets': [{ ...dataset, future_tier: 'gold' }],
      [`/v1/configuration/datasets/${D}`]: { ...dataset, future_tier: 'gold' },
      '/v1/state/datasets': [
        { dataset_id: D, primary: N, maximum_size: 1 << 30, path: '/flocker/d', kept_aside: [], future_holder: 'x' },
      ],
      [`/v1/agent/nodes/${N}`]: { generation: 'g3', configuration_tag: 'v1', future_ack: true },
    });
    try {
      const client = new FlockerClient({ baseUrl: srv.url });
      expect(await client.listContainerState()).toEqual([container]);
      expect(await client.listNodes()).toEqual([{ uuid: N, host: '10.0.0.1', version: '1.0' }]);
      expect(await client.listDatasets()).toEqual([dataset]);
      expect(await client.getDataset(D)).toEqual(dataset);
      expect(await client.listDatasetState()).toEqual([
        { dataset_id: D, primary: N, maximum_size: 1 << 30, path: '/flocker/d', kept_aside: [] },
      ]);
      // An agent's report is acknowledged by an answer a newer service may add to: the report is not taken as failed.
      const report = {
        uuid: N,
        era: 'e1',
        host: '10.0.0.1',
        instance_id: 'i-1',
        backend: 'loopback',
        manifestations: [],
        errors: [],
      };
      expect(await client.reportNodeState(report)).toEqual({ generation: 'g3', configuration_tag: 'v1' });
    } finally {
      await srv.close();
    }
  });

  it('skips an event of a kind it does not know; reads the others, and still refuses a malformed one', async () => {
    const dead = { time: AT, kind: 'node_dead', node_uuid: N, message: 'node 10.0.0.1 declared dead' };
    const srv = await newerService({
      '/v1/state/events': {
        events: [
          dead,
          { time: AT, kind: 'future_kind', node_uuid: N, message: 'something new' },
          { ...dead, kind: 'node_back', future_member: 1 },
        ],
      },
    });
    try {
      expect(await new FlockerClient({ baseUrl: srv.url }).listEvents()).toEqual([
        dead,
        { ...dead, kind: 'node_back' },
      ]);
    } finally {
      await srv.close();
    }
    const bad = await newerService({ '/v1/state/events': { events: [{ kind: 'node_dead', message: 3 }] } });
    try {
      await expect(new FlockerClient({ baseUrl: bad.url }).listEvents()).rejects.toMatchObject({
        code: 'INVALID_RESPONSE',
      });
    } finally {
      await bad.close();
    }
  });

  it('still refuses to send a request with a member the API does not have', async () => {
    const srv = await newerService({ '/v1/configuration/datasets': dataset });
    try {
      const client = new FlockerClient({ baseUrl: srv.url });
      const req = { primary: N, maximum_size: 1 << 30, future_tier: 'gold' };
      await expect(client.createDataset(req)).rejects.toThrow(/tier/);
      expect(srv.seen).toEqual([]);
    } finally {
      await srv.close();
    }
  });

  it('reads the cluster views strictly by default (an agent acts on them): a new member refuses the answer', async () => {
    const srv = await newerService({ '/v1/agent/cluster': newerSnapshot, '/v1/agent/cluster/watch': [newerSnapshot] });
    try {
      const client = new FlockerClient({ baseUrl: srv.url });
      await expect(client.waitForCluster(undefined, 0)).rejects.toMatchObject({ code: 'INVALID_RESPONSE' });
      const watch = client.watchCluster(N)[Symbol.asyncIterator]();
      await expect(watch.next()).rejects.toBeInstanceOf(FlockerApiError);
    } finally {
      await srv.close();
    }
  });

  it('with clusterViews "lenient" (a reader that shows them), reads snapshots and deltas, each as what it is', async () => {
    const srv = await newerService({
      '/v1/agent/cluster': newerSnapshot,
      '/v1/agent/cluster/watch': [newerSnapshot, delta],
    });
    try {
      const client = new FlockerClient({ baseUrl: srv.url, clusterViews: 'lenient' });
      expect(await client.waitForCluster(undefined, 0)).toEqual(snapshot);
      const seen: ClusterAnswer[] = [];
      for await (const answer of client.watchCluster(undefined)) seen.push(answer);
      expect(seen[0]).toEqual(snapshot);
      const second = seen[1];
      expect(second !== undefined && isClusterDelta(second)).toBe(true);
      expect(seen[1]).toMatchObject({ since: 'g1', removed_datasets: [D], nodes: [node] });
      expect(seen[1]).not.toHaveProperty('future_member');
    } finally {
      await srv.close();
    }
  });

  it('with clusterViews "lenient", a delta answer to a long poll stays a delta', async () => {
    const srv = await newerService({ '/v1/agent/cluster': delta });
    try {
      const client = new FlockerClient({ baseUrl: srv.url, clusterViews: 'lenient' });
      const answer = await client.waitForClusterDelta('g1', 0, undefined);
      expect(isClusterDelta(answer)).toBe(true);
      expect(answer).toMatchObject({ since: 'g1', removed_datasets: [D], removed_nodes: [] });
    } finally {
      await srv.close();
    }
  });
});
