/**
 * Issue 23: real dataset agents on three simulated hosts follow their node's view by deltas over
 * the streaming watch (`GET /v1/agent/cluster/watch?node=<own>&since=…`: the view, then a delta
 * line per change; the long-poll deltas `GET /v1/agent/cluster?…&delta=true` are what they fall
 * back to and refetch with), and moves, failover after a network partition, the partitioned host's
 * self-fencing and a restart of the control service mid-stream still work. Real control service,
 * agents, loop devices and network namespaces; needs root. (multihost, multihost-failover and
 * multihost-fencing run the same agents, so over the watch too.)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { isClusterDelta } from '@flocker/api';
import {
  isMountedOn,
  readFileOn,
  TEST_DATASET_SIZE,
  waitForMountedOn,
  writeFileOn,
  type Cluster,
  type ClusterHost,
} from './cluster';
import { waitFor } from './cluster/run';
import { clusterForSuite } from './cluster/suite';

const NODE_TIMEOUT_S = 3;

jest.setTimeout(180_000);

let cluster: Cluster;
let a: ClusterHost;
let b: ClusterHost;
let c: ClusterHost;

clusterForSuite({ hosts: 3, nodeTimeoutSeconds: NODE_TIMEOUT_S }, (started) => {
  cluster = started;
  [a, b, c] = cluster.hosts as [ClusterHost, ClusterHost, ClusterHost];
});

function agentLog(host: ClusterHost): string {
  const file = path.join(host.layout.logDir, 'agent.log');
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
}

function logTail(host: ClusterHost): string {
  return `--- ${host.name}/agent.log\n${agentLog(host).trimEnd().split('\n').slice(-20).join('\n')}`;
}

async function createMounted(host: ClusterHost): Promise<{ id: string; path: string }> {
  const d = await cluster.client.createDataset({
    primary: host.requireNodeUuid(),
    maximum_size: TEST_DATASET_SIZE,
    metadata: { name: `delta-${randomUUID().slice(0, 8)}` },
  });
  return { id: d.dataset_id, path: await waitForMountedOn(cluster.client, d.dataset_id, host.requireNodeUuid()) };
}

/** Lines of an agent's log with this message (JSON lines). */
function logged(host: ClusterHost, message: string): Array<Record<string, unknown>> {
  return agentLog(host)
    .split('\n')
    .filter((l) => l.includes(message))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.message === message);
}

describe('dataset agents following their node views by deltas', () => {
  it('every agent watches its own view; a move A→B carries the data', async () => {
    const d = await createMounted(a);
    await writeFileOn(a, path.join(d.path, 'f'), 'written on A');
    await cluster.client.updateDataset(d.id, { primary: b.requireNodeUuid() });
    const pathB = await waitForMountedOn(cluster.client, d.id, b.requireNodeUuid());
    expect(await readFileOn(b, path.join(pathB, 'f'))).toBe('written on A');
    expect(await isMountedOn(a, d.path)).toBe(false);
    // Each agent follows its node's view over a watch (ClusterFollower logs its first line); none fell back
    // to long-polls or whole snapshots.
    for (const h of [a, b, c]) {
      await waitFor(
        `agent of ${h.name} to watch its view`,
        () => logged(h, "following this node's view over a watch").length > 0,
        {
          timeoutMs: 20_000,
          intervalMs: 100,
          context: () => logTail(h),
        },
      );
      expect(agentLog(h)).not.toContain('does not offer the watch');
      expect(agentLog(h)).not.toContain('does not answer deltas');
    }
  });

  it('the control service killed mid-stream and restarted: every agent watches again and a move asked just before completes', async () => {
    const d = await createMounted(a);
    await writeFileOn(a, path.join(d.path, 'f'), 'written on A before the restart');
    const before = new Map([a, b, c].map((h) => [h.name, logged(h, "watching this node's view again").length]));
    // The move is stored, then the service dies with every agent's watch open (or a line under way).
    await cluster.client.updateDataset(d.id, { primary: b.requireNodeUuid() });
    await cluster.killControl('SIGKILL');
    await new Promise((r) => setTimeout(r, 1000));
    const restartedAt = Date.now();
    await cluster.startControl();
    const pathB = await waitForMountedOn(cluster.client, d.id, b.requireNodeUuid(), 60_000);
    expect(await readFileOn(b, path.join(pathB, 'f'))).toBe('written on A before the restart');
    expect(await isMountedOn(a, d.path)).toBe(false);
    // Each agent watches again: the restarted service does not know the generation it held, so the whole view.
    for (const h of [a, b, c]) {
      await waitFor(
        `agent of ${h.name} to watch again`,
        () => logged(h, "watching this node's view again").length > (before.get(h.name) ?? 0),
        { timeoutMs: 20_000, intervalMs: 100, context: () => logTail(h) },
      );
      expect(logged(h, "watching this node's view again").at(-1)).toMatchObject({ whole: true });
      expect(agentLog(h)).not.toContain('does not offer the watch');
    }
    // A change after the restart reaches its node over the new watch.
    const created = Date.now();
    const e = await createMounted(c);
    console.log(
      JSON.stringify({ movedAfterRestartMs: Date.now() - restartedAt, createdMountedMs: Date.now() - created }),
    );
    expect(await isMountedOn(c, e.path)).toBe(true);
  });

  it('the control service answers a node poll with a delta of that node view only', async () => {
    const node = a.requireNodeUuid();
    const whole = await cluster.client.waitForCluster(undefined, 0);
    const view = await cluster.client.waitForClusterDelta(undefined, 0, node);
    expect(isClusterDelta(view)).toBe(false);
    // What A's view holds (the earlier tests' datasets moved to B: none of them, only A's own state).
    const viewDatasets = new Set(view.datasets.map((x) => x.dataset_id));
    const viewNodes = new Set([node, ...view.nodes.map((n) => n.uuid)]);
    const others = new Set([b.requireNodeUuid(), c.requireNodeUuid()]);
    expect([...viewNodes].filter((n) => others.has(n))).toEqual([]);
    // A change in A's view (a new dataset there) comes back to A's poll as a delta of just that. Before it, A's poll
    // may be answered by a change of A's own state (its report: what it sees of the shared pool after another node's
    // create, its free bytes, a risen configuration_version): each such answer must be a delta of A's view only too
    // (A's state, no dataset, nothing of B or C), and the next poll goes on from it.
    const poll = cluster.client.waitForClusterDelta(view.generation, 20_000, node);
    const d = await cluster.client.createDataset({ primary: node, maximum_size: TEST_DATASET_SIZE });
    let since = view.generation;
    let answer = await poll;
    const before: Array<{ nodes: string[] }> = [];
    for (;;) {
      expect(isClusterDelta(answer)).toBe(true);
      if (!isClusterDelta(answer)) return;
      expect(answer.since).toBe(since);
      expect(answer.nodes.map((n) => n.uuid).filter((n) => !viewNodes.has(n))).toEqual([]);
      expect(answer.removed_nodes).toEqual([]);
      expect(
        answer.datasets.map((x) => x.dataset_id).filter((x) => !viewDatasets.has(x) && x !== d.dataset_id),
      ).toEqual([]);
      expect(answer.removed_datasets).toEqual([]);
      if (answer.datasets.some((x) => x.dataset_id === d.dataset_id)) break;
      // Not the create yet: only a change of a node state in A's view (A's own), no dataset, no lease.
      expect(answer.nodes.length).toBeGreaterThan(0);
      expect(answer.datasets).toEqual([]);
      expect(answer.leases).toEqual([]);
      expect(answer.removed_leases).toEqual([]);
      before.push({ nodes: answer.nodes.map((n) => n.uuid) });
      expect(before.length).toBeLessThan(10);
      since = answer.generation;
      answer = await cluster.client.waitForClusterDelta(since, 20_000, node);
    }
    expect(answer.datasets.map((x) => x.dataset_id)).toEqual([d.dataset_id]);
    // Bytes of the answers (indicative): the whole cluster, A's view, the delta; and how many answers of A's own
    // state came before the create's.
    console.log(
      JSON.stringify({
        wholeBytes: JSON.stringify(whole).length,
        viewBytes: JSON.stringify(view).length,
        deltaBytes: JSON.stringify(answer).length,
        stateAnswersBefore: before.length,
      }),
    );
    await waitForMountedOn(cluster.client, d.dataset_id, node);
  });

  it('failover after a network partition: C fences itself, the volume moves to A', async () => {
    const d = await createMounted(c);
    await writeFileOn(c, path.join(d.path, 'f'), 'written on C');
    await c.disconnect();
    try {
      // C's agent loses contact and unmounts by itself within half the node timeout.
      await waitFor(`C to unmount ${d.path} by itself`, async () => !(await isMountedOn(c, d.path)), {
        timeoutMs: 30_000,
        intervalMs: 200,
        context: () => logTail(c),
      });
      await cluster.client.updateDataset(d.id, { primary: a.requireNodeUuid() });
      const pathA = await waitForMountedOn(cluster.client, d.id, a.requireNodeUuid(), 60_000);
      expect(await readFileOn(a, path.join(pathA, 'f'))).toBe('written on C');
    } finally {
      await c.reconnect();
    }
    // Back in contact, C follows deltas again and does not mount what is now A's.
    await waitFor(
      'C to report again',
      async () =>
        (await cluster.client.waitForCluster(undefined, 0)).nodes.some(
          (n) => n.uuid === c.requireNodeUuid() && n.alive,
        ),
      { timeoutMs: 30_000, intervalMs: 200, context: () => logTail(c) },
    );
    expect(await isMountedOn(c, d.path)).toBe(false);
    expect(agentLog(c)).not.toContain('does not answer deltas');
  });

  it("a deleted dataset whose primary is dead is destroyed by one live node, its caretaker (the orphan is in that node's view)", async () => {
    const d = await createMounted(c);
    const cUuid = c.requireNodeUuid();
    await c.killAgent('SIGKILL');
    try {
      await waitFor(
        'C to be declared dead',
        async () => (await cluster.client.waitForCluster(undefined, 0)).nodes.some((n) => n.uuid === cUuid && !n.alive),
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      await cluster.client.deleteDataset(d.id);
      const started = Date.now();
      // A and B share C's pool: one of them force-detaches the volume from dead C and destroys it.
      await waitFor(
        `a live node to destroy the volume of ${d.id}`,
        async () => {
          const nodes = (await cluster.client.waitForCluster(undefined, 0)).nodes.filter((n) => n.alive);
          return nodes.length === 2 && nodes.every((n) => !(n.volumes ?? []).some((v) => v.dataset_id === d.id));
        },
        { timeoutMs: 60_000, intervalMs: 250, context: () => `${logTail(a)}\n${logTail(b)}` },
      );
      // Which agents' logs name it (indicative: debug lines may be off).
      const naming = [a, b].filter((h) => agentLog(h).includes(d.id)).map((h) => h.name);
      console.log(JSON.stringify({ destroyedAfterMs: Date.now() - started, naming }));
      for (const h of [a, b]) expect(agentLog(h)).not.toContain('does not answer deltas');
    } finally {
      await c.startAgent();
    }
  });
});
