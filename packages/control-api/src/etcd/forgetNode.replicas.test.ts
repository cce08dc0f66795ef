/**
 * Forgetting a retired node with two control replicas on etcd (forgetNode.ts; the file store's case is
 * forgetNode.state.test): the forget is one transaction (the configuration without the node, its stored reports
 * deleted); the other replica drops the node when its watch sees the delete (no ghost, no node-dead event); a replica
 * started afterwards never hears of it; a node that reports again joins again as new.
 */
import { randomUUID } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import winston from 'winston';
import { createDataset } from '../configuration';
import { ControlState } from '../ControlState';
import { A, B, D1, T0, letterReport as report } from '../testing/fixtures';
import { EtcdTestCluster } from '../testing/etcdCluster';
import { EtcdConfigurationStore } from './EtcdConfigurationStore';

jest.setTimeout(60_000);
const T = 10_000;
const silent = winston.createLogger({ silent: true });

let etcd: EtcdTestCluster;
let raw: Etcd3;
let t = T0;
const states: ControlState[] = [];

async function replica(prefix: string): Promise<ControlState> {
  const s = await ControlState.open({
    store: new EtcdConfigurationStore({ endpoints: etcd.endpoints, prefix }),
    nodeTimeoutMs: T,
    leaseGraceMs: 5_000,
    logger: silent,
    now: () => t,
    livenessCheckMs: 3_600_000,
  });
  states.push(s);
  return s;
}

async function eventually(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const deadEventsOf = (s: ControlState, uuid: string): number =>
  s.listEvents().filter((e) => e.node_uuid === uuid && e.kind === 'node_dead').length;

beforeAll(async () => {
  etcd = await EtcdTestCluster.start();
  raw = new Etcd3({ hosts: etcd.endpoints });
});
afterEach(async () => {
  await Promise.all(states.splice(0).map((s) => s.close()));
  t = T0;
});
afterAll(async () => {
  raw?.close();
  await etcd?.stop();
});

describe('forgetting a retired node with two replicas on etcd', () => {
  it('both drop it at once (no ghost, no node-dead event); a new replica never hears of it; back, it joins as new', async () => {
    const prefix = `/t-${randomUUID()}`;
    const a = await replica(prefix);
    const b = await replica(prefix);
    await a.report(report(A));
    await a.report(report(B));
    await a.mutate((c) => createDataset(c, { primary: B, dataset_id: D1, metadata: { name: 'v1' } }));
    await eventually(() => b.reportedNode(A) !== undefined && b.configuration.nodes.has(A));

    // Alive: refused, nothing changed.
    await expect(b.forgetNode('host-a')).rejects.toMatchObject({ code: 'NODE_IN_USE' });

    // A retires; B goes on reporting (through a); both replicas declare A dead.
    t += T + 1;
    await a.report(report(B));
    await eventually(() => (b.reportedNode(B)?.lastSeen ?? 0) === t);
    await a.checkLiveness();
    await b.checkLiveness();
    expect(a.deadSince(A)).toBeDefined();
    expect(b.deadSince(A)).toBeDefined();
    const deadOnB = deadEventsOf(b, A);
    // A replica started just now (it read A's stored report at its start, not yet judged).
    const late = await replica(prefix);
    await eventually(() => late.reportedNode(A) !== undefined);

    // Forgotten through b: one transaction (configuration and stored report), a told by its watch.
    expect(await b.forgetNode('host-a')).toEqual({
      uuid: A,
      host: 'host-a',
      accepted_loss_datasets: [],
      data_node_datasets: [],
    });
    expect(b.reportedNode(A)).toBeUndefined();
    expect(b.configuration.nodes.has(A)).toBe(false);
    expect(await raw.getAll().prefix(`${prefix}/nodes/`).keys()).toEqual([`${prefix}/nodes/${B}`]);
    await eventually(() => a.reportedNode(A) === undefined && !a.configuration.nodes.has(A));
    expect(a.deadSince(A)).toBeUndefined();
    expect(a.nodeViews.ghosts).toEqual(new Set());
    await eventually(() => late.reportedNode(A) === undefined && !late.configuration.nodes.has(A));
    t += T + 1;
    await a.report(report(B));
    await a.checkLiveness();
    await b.checkLiveness();
    expect(a.reportedNode(A)).toBeUndefined();
    expect(deadEventsOf(b, A)).toBe(deadOnB);
    await expect(a.forgetNode(A)).rejects.toMatchObject({ code: 'NODE_NOT_FOUND' });

    // A replica started now (or one killed and started again) reads neither A's report nor A.
    const c = await replica(prefix);
    t += T + 1;
    await c.report(report(B));
    await c.checkLiveness();
    expect(c.reportedNode(A)).toBeUndefined();
    expect(c.nodeViews.ghosts).toEqual(new Set());
    expect(c.listEvents().filter((e) => e.node_uuid === A)).toEqual([]);

    // The host comes back (same UUID) through a: it joins again as a new node, and every replica sees it.
    await a.report(report(A));
    expect(a.configuration.nodes.has(A)).toBe(true);
    expect(await raw.get(`${prefix}/nodes/${A}`).string()).toContain(A);
    await eventually(() => b.reportedNode(A) !== undefined && c.configuration.nodes.has(A));
  });
});
