/**
 * T1 S0 (session 19): a dataset agent restarted while its storage backend does not answer sends liveness-only reports
 * (NodeReport.backend_unseen) until its first full look. Such a report keeps the node alive (its leases kept) and
 * never stands for its state: the previous report stays what the service shows (with a BACKEND_UNREACHABLE error);
 * with none, the node is alive with its state unknown (in no state list, so nothing reads "not mounted there" from its
 * empty lists); a node already declared dead stays dead until a full report (409 NODE_DEAD).
 */
import { ClusterSnapshot, FlockerApiError, FlockerClient, NodeReport, NodeStateSummary } from '@flocker/api';
import { z } from 'zod';
import { MemoryConfigurationStore, type StoreListener } from './ConfigurationStore';
import { acquireLease, createDataset } from './configuration';
import { type ControlState } from './ControlState';
import { openOnTestClock } from './testing/clockedState';
import { ConfigurationError } from './errors';
import { isAlive } from './clusterState';
import { reportClaimConflict } from './reportClaims';
import type { ControlService } from './server';
import { A, B, D1, T0, letterReport, mountedManifestation } from './testing/fixtures';
import { NODE_A, NODE_B, nodeReport, startOnLoopback } from './testing/httpService';
import { Views } from './Views';

const T = 30_000;
const G = 5_000;
const SINCE = '2026-12-06T08:00:00.000Z';
const unseen = { since: SINCE, reason: 'listing volumes of aws: no answer yet', fencing_stated: true as const };
/** What an agent before the marker sends (review s27 F12): its liveness reports never state its fence. */
const unseenOld = { since: SINCE, reason: 'listing volumes of aws: no answer yet' };

/** A's full report: D1 mounted there. */
const full = (extra: Partial<NodeReport> = {}): NodeReport =>
  letterReport(A, { backend: 'aws', manifestations: [mountedManifestation(D1, A)], ...extra });
/** A's liveness-only report: its lists empty (they mean nothing). */
const liveness = (uuid = A, extra: Partial<NodeReport> = {}): NodeReport =>
  letterReport(uuid, { backend: 'aws', backend_unseen: unseen, ...extra });

let mono = 5_000;
let wall = T0;
const pass = (ms: number): void => {
  mono += ms;
  wall += ms;
};
const states: ControlState[] = [];

async function open(store = new MemoryConfigurationStore(), listen?: (l: StoreListener) => void) {
  const withListener =
    listen === undefined
      ? store
      : Object.assign(store, {
          subscribe: (l: StoreListener) => {
            listen(l);
            return Promise.resolve();
          },
        });
  const s = await openOnTestClock(withListener, {
    nodeTimeoutMs: T,
    leaseGraceMs: G,
    wall: () => wall,
    mono: () => mono,
  });
  states.push(s);
  return s;
}

async function leaseD1(s: ControlState): Promise<void> {
  await s.mutate((c) => createDataset(c, { primary: A, dataset_id: D1, metadata: { name: 'db' } }));
  await s.mutate((c, n) => acquireLease(c, { dataset_id: D1, node_uuid: A, expires: null }, n));
}

/** The whole cluster's snapshot as the CLI reads it (validated against ClusterSnapshot). */
function snapshot(s: ControlState): ClusterSnapshot {
  return ClusterSnapshot.parse(JSON.parse(new Views(s, true).snapshot().toString()));
}

/** The refusal code of `report` by the route's claim check (undefined: accepted). */
function claim(s: ControlState, report: NodeReport): string | undefined {
  const now = s.now();
  return reportClaimConflict(
    report,
    (i) => s.nodesClaimingInstance(i),
    (n) => isAlive(n, now, s.nodeTimeoutMs),
  )?.code;
}

async function refusedCode(p: Promise<unknown>): Promise<string | undefined> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err instanceof ConfigurationError) return err.code;
  throw new Error(`expected a refusal, got ${String(err)}`);
}

afterEach(async () => {
  await Promise.all(states.splice(0).map((s) => s.close()));
  mono = 5_000;
  wall = T0;
});

describe('a liveness-only report after a full one', () => {
  it('keeps the node alive past T with its lists as last reported, its lease kept, the condition shown', async () => {
    const s = await open();
    await s.report(full());
    await leaseD1(s);
    const before = s.stateGeneration;
    // The agent restarts; its backend hangs: liveness only, every T/2, for 4 T.
    for (let i = 0; i < 8; i++) {
      pass(T / 2);
      await s.report(liveness());
      await s.checkLiveness();
    }
    expect(s.deadSince(A)).toBeUndefined();
    expect([...s.configuration.leases.keys()]).toEqual([D1]);
    expect(s.listEvents()).toEqual([]);
    // One state change (the condition shown), not one per report.
    expect(s.stateGeneration).toBe(before + 1);
    const [a] = snapshot(s).nodes;
    expect(a).toMatchObject({ uuid: A, alive: true, manifestations: [mountedManifestation(D1, A)] });
    expect(a?.errors).toEqual([
      {
        action: 'observe',
        code: 'BACKEND_UNREACHABLE',
        message: expect.stringContaining('listing volumes of aws: no answer yet'),
        attempts: 0,
        since: SINCE,
      },
    ]);
    // Never the report member itself: agents one release behind parse node states strictly.
    expect(a).not.toHaveProperty('backend_unseen');
    expect(a?.last_seen).toBe(new Date(wall).toISOString());
    // The dataset is still shown where it was mounted.
    expect(JSON.parse(new Views(s, true).datasetState().toString())).toEqual([
      expect.objectContaining({ dataset_id: D1, primary: A, path: mountedManifestation(D1, A).path }),
    ]);
  });

  it("takes the fence the liveness report states (W7): a lifted fence is not shown 'fenced' while the backend is unseen", async () => {
    // The agent restarted while fenced, its backend hangs: accepted liveness reports are contact, so it lifts the
    // fence; its lists are unknown but its fence is not. `flocker status` read the held report's 'fenced' meanwhile.
    const fence = { since: SINCE, reason: 'no contact with the control service for 15 s', stopped_containers: ['db'] };
    const s = await open();
    await s.report(full({ fencing: { ...fence, state: 'fenced' } }));
    pass(1_000);
    await s.report(liveness(A, { fencing: { ...fence, state: 'recovered' } }));
    const [a] = snapshot(s).nodes;
    expect(a?.fencing).toEqual({ ...fence, state: 'recovered' });
    expect(a).toMatchObject({ alive: true, manifestations: [mountedManifestation(D1, A)] });
    expect(a?.errors.map((e) => e.code)).toEqual(['BACKEND_UNREACHABLE']);
    // An hour after its lift the agent leaves the fence out: so does the node state.
    pass(1_000);
    await s.report(liveness());
    expect(snapshot(s).nodes[0]).not.toHaveProperty('fencing');
    expect(snapshot(s).nodes[0]?.manifestations).toEqual([mountedManifestation(D1, A)]);
  });

  it("keeps the held fence for an older agent's liveness reports, which never state it (review s27 F12)", async () => {
    const fence = { since: SINCE, reason: 'no contact with the control service for 15 s', stopped_containers: ['db'] };
    const s = await open();
    await s.report(full({ fencing: { ...fence, state: 'fenced' } }));
    pass(1_000);
    await s.report(liveness(A, { backend_unseen: unseenOld }));
    const [a] = snapshot(s).nodes;
    expect(a?.fencing).toEqual({ ...fence, state: 'fenced' });
    expect(a?.errors.map((e) => e.code)).toEqual(['BACKEND_UNREACHABLE']);
    // A newer agent's report stating none: none.
    pass(1_000);
    await s.report(liveness());
    expect(snapshot(s).nodes[0]).not.toHaveProperty('fencing');
  });

  it('a full report ends the condition: its lists are the state again', async () => {
    const s = await open();
    await s.report(full());
    pass(1_000);
    await s.report(liveness());
    pass(1_000);
    await s.report(full({ manifestations: [] }));
    const [a] = snapshot(s).nodes;
    expect(a?.errors).toEqual([]);
    expect(a?.manifestations).toEqual([]);
  });

  it('a liveness report naming another boot (a reboot) does not keep the old lists: the state is unknown', async () => {
    const s = await open();
    await s.report(full());
    pass(1_000);
    await s.report(liveness(A, { era: 'era-rebooted' }));
    expect(s.reportedNode(A)).toBeUndefined();
    expect(snapshot(s).nodes).toEqual([]);
    expect(s.deadSince(A)).toBeUndefined();
  });
});

describe('a liveness-only report with no report held (the control service restarted too, or a new node)', () => {
  it('holds the node alive with its state unknown: in no state list, its lease kept, its instance claimed', async () => {
    const store = new MemoryConfigurationStore();
    const first = await open(store);
    await first.report(full());
    await leaseD1(first);
    await first.close();
    states.splice(0);
    pass(1_000);
    const s = await open(store);
    for (let i = 0; i < 6; i++) {
      await s.report(liveness());
      pass(T / 2);
      await s.checkLiveness();
    }
    expect(s.deadSince(A)).toBeUndefined();
    expect([...s.configuration.leases.keys()]).toEqual([D1]);
    expect(s.listEvents()).toEqual([]);
    // Unknown: no node state (an empty list would read "nothing mounted there"), no dataset state from it.
    expect(s.reportedNode(A)).toBeUndefined();
    expect(snapshot(s).nodes).toEqual([]);
    expect(JSON.parse(new Views(s, true).datasetState().toString())).toEqual([]);
    // Alive: listed in /v1/state/nodes (a kubelet finds its node), claims its instance, is not forgotten.
    expect(z.array(NodeStateSummary).parse(JSON.parse(new Views(s, true).nodes().toString()))).toEqual([
      { uuid: A, host: 'host-a' },
    ]);
    expect(claim(s, letterReport(B, { instance_id: 'i-a', backend: 'aws' }))).toBe('INSTANCE_CLAIMED');
    expect(await refusedCode(s.forgetNode(A))).toBe('NODE_IN_USE');
    // Its first full report: known from then on.
    await s.report(full());
    expect(snapshot(s).nodes.map((n) => [n.uuid, n.alive, n.manifestations.length, n.errors.length])).toEqual([
      [A, true, 1, 0],
    ]);
  });

  it('silent for T: declared dead (its lease released after the grace), shown dead from its identity', async () => {
    const s = await open();
    await s.report(liveness());
    await leaseD1(s);
    pass(T + 1);
    await s.checkLiveness();
    expect(s.deadSince(A)).toBeDefined();
    expect(s.listEvents().map((e) => e.kind)).toEqual(['node_dead']);
    pass(G);
    await s.checkLiveness();
    expect([...s.configuration.leases.keys()]).toEqual([]);
    // Dead with its instance, so a new primary force-detaches the volume (as for a node silent since the start).
    expect(snapshot(s).nodes.map((n) => [n.uuid, n.alive, n.instance_id, n.manifestations.length])).toEqual([
      [A, false, 'i-a', 0],
    ]);
    // Its liveness reports are refused from then on: dead until a full report.
    expect(await refusedCode(s.report(liveness()))).toBe('NODE_DEAD');
    await s.report(full());
    expect(s.deadSince(A)).toBeUndefined();
  });
});

describe('a liveness-only report of a node already declared dead', () => {
  it('is refused (NODE_DEAD): the node stays dead with its last state, never "nothing mounted"', async () => {
    const s = await open();
    await s.report(full());
    await leaseD1(s);
    pass(T + 1);
    await s.checkLiveness();
    const generation = s.stateGeneration;
    expect(await refusedCode(s.report(liveness()))).toBe('NODE_DEAD');
    expect(s.deadSince(A)).toBeDefined();
    expect(s.stateGeneration).toBe(generation);
    expect(snapshot(s).nodes.map((n) => [n.uuid, n.alive, n.manifestations.length])).toEqual([[A, false, 1]]);
    expect(s.listEvents().map((e) => e.kind)).toEqual(['node_dead']);
  });

  it('past its timeout but not yet declared dead: refused too', async () => {
    const s = await open();
    await s.report(full());
    pass(T + 1);
    expect(await refusedCode(s.report(liveness()))).toBe('NODE_DEAD');
  });
});

describe('through the store (another replica received it)', () => {
  it('keeps the lists held and shows the condition; with none held, unknown', async () => {
    let listener: StoreListener | undefined;
    const s = await open(new MemoryConfigurationStore(), (l) => (listener = l));
    const deliver = (r: NodeReport): void => listener?.report(r, wall);
    deliver(full());
    pass(1_000);
    deliver(liveness());
    pass(T - 1);
    await s.checkLiveness();
    expect(snapshot(s).nodes.map((n) => [n.uuid, n.alive, n.manifestations.length, n.errors[0]?.code])).toEqual([
      [A, true, 1, 'BACKEND_UNREACHABLE'],
    ]);
    // B: none held here.
    deliver(liveness(B));
    expect(s.reportedNode(B)).toBeUndefined();
    expect(s.deadSince(B)).toBeUndefined();
  });

  it('a node this replica alone declared dead (cut off from the store) is heard: the other replica took it alive', async () => {
    let listener: StoreListener | undefined;
    const s = await open(new MemoryConfigurationStore(), (l) => (listener = l));
    await s.report(full());
    await leaseD1(s);
    pass(T + 1);
    await s.checkLiveness();
    expect(s.deadSince(A)).toBeDefined();
    // The replica A reports to (alive there all along) shares its liveness report: alive here again, before this
    // replica releases the lease, with the lists it holds (never none).
    listener?.report(liveness(), wall);
    expect(s.deadSince(A)).toBeUndefined();
    pass(G);
    await s.checkLiveness();
    expect([...s.configuration.leases.keys()]).toEqual([D1]);
    expect(snapshot(s).nodes.map((n) => [n.uuid, n.alive, n.manifestations.length, n.errors[0]?.code])).toEqual([
      [A, true, 1, 'BACKEND_UNREACHABLE'],
    ]);
    expect(s.listEvents().map((e) => e.kind)).toEqual(['node_dead', 'node_back']);
  });

  it('a ghost (dead from its identity) heard so is alive with its state unknown, not with its empty lists', async () => {
    let listener: StoreListener | undefined;
    const s = await open(new MemoryConfigurationStore(), (l) => (listener = l));
    await s.report(liveness());
    pass(T + 1);
    await s.checkLiveness();
    expect(snapshot(s).nodes.map((n) => [n.uuid, n.alive])).toEqual([[A, false]]);
    listener?.report(liveness(), wall);
    expect(s.deadSince(A)).toBeUndefined();
    expect(s.reportedNode(A)).toBeUndefined();
    expect(snapshot(s).nodes).toEqual([]);
    expect([...s.unknownNodes()].map((n) => n.report.uuid)).toEqual([A]);
  });
});

/**
 * What a control replica one release behind parses a shared node report with (review s28 F1): backend_unseen
 * without fencing_stated, strict. A report it refuses is a "corrupt" etcd key there: that replica never hears the node
 * and declares it dead after T, releasing its leases cluster-wide.
 */
const OlderNodeReport = NodeReport.extend({
  backend_unseen: z.object({ since: z.string(), reason: z.string() }).strict().optional(),
});

describe('shared with a replica one release behind (review s28 F1)', () => {
  const fence = { since: SINCE, reason: 'no contact with the control service for 15 s', stopped_containers: ['db'] };

  /** R1 (takes the agent's reports; what it shares is captured) and R2 (hears them through the store). */
  async function replicas() {
    const shared: string[] = [];
    const store = Object.assign(new MemoryConfigurationStore(), {
      publishReport: (_r: NodeReport, json: string) => {
        shared.push(json);
        return Promise.resolve();
      },
    });
    const r1 = await open(store);
    let listener: StoreListener | undefined;
    const r2 = await open(new MemoryConfigurationStore(), (l) => (listener = l));
    /** The last report R1 shared, parsed as R2 (this release) does and delivered to it. */
    const deliverLast = (): string => {
      const json = shared[shared.length - 1] ?? '';
      listener?.report(NodeReport.parse(JSON.parse(json)), wall);
      return json;
    };
    return { r1, r2, shared, deliverLast };
  }

  it('the liveness report R1 shares parses with the older schema; its fence is as R1 resolved it, on R2 too', async () => {
    const { r1, r2, deliverLast } = await replicas();
    await r1.report(full({ fencing: { ...fence, state: 'fenced' } }));
    deliverLast();
    pass(1_000);
    // A new agent stating no fence: lifted on R1, and so on R2 from the shared report (no marker in it).
    await r1.report(liveness());
    const json = deliverLast();
    expect(OlderNodeReport.safeParse(JSON.parse(json)).success).toBe(true);
    expect(JSON.parse(json)).not.toHaveProperty('fencing');
    expect(snapshot(r1).nodes[0]).not.toHaveProperty('fencing');
    expect(snapshot(r2).nodes[0]).not.toHaveProperty('fencing');
    expect(snapshot(r2).nodes[0]?.errors.map((e) => e.code)).toEqual(['BACKEND_UNREACHABLE']);
  });

  it("an older agent's liveness report keeps the held fence on both; with none held the shared report parses too", async () => {
    const { r1, r2, deliverLast } = await replicas();
    await r1.report(full({ fencing: { ...fence, state: 'fenced' } }));
    deliverLast();
    pass(1_000);
    await r1.report(liveness(A, { backend_unseen: unseenOld }));
    expect(OlderNodeReport.safeParse(JSON.parse(deliverLast())).success).toBe(true);
    expect(snapshot(r1).nodes[0]?.fencing).toEqual({ ...fence, state: 'fenced' });
    expect(snapshot(r2).nodes[0]?.fencing).toEqual({ ...fence, state: 'fenced' });
    // B: held by neither (its state unknown): R1 shares the liveness report itself.
    await r1.report(liveness(B));
    expect(OlderNodeReport.safeParse(JSON.parse(deliverLast())).success).toBe(true);
    expect([...r2.unknownNodes()].map((n) => n.report.uuid)).toEqual([B]);
  });
});

describe('over HTTP', () => {
  let svc: ControlService | undefined;
  afterEach(async () => {
    await svc?.close();
    svc = undefined;
  });

  it('a dead node: 409 NODE_DEAD; a control service before the field: 400 (the agent falls back)', async () => {
    svc = await startOnLoopback({ nodeTimeoutSeconds: 0.2 });
    const client = new FlockerClient({ baseUrl: svc.url });
    await client.reportNodeState(nodeReport(NODE_A));
    const live = { ...nodeReport(NODE_A), backend_unseen: unseen };
    await client.reportNodeState(live);
    await new Promise((r) => setTimeout(r, 400));
    const err = await client.reportNodeState(live).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FlockerApiError);
    expect(err).toMatchObject({ status: 409, code: 'NODE_DEAD' });
    // The route validates with the contract's NodeReport (strict): a schema without the member refuses it, which is
    // the 400 an older control service answers.
    const res = await fetch(`${svc.url}/v1/agent/nodes/${NODE_A}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...live, backend_unseen: { ...unseen, extra: 1 } }),
    });
    expect(res.status).toBe(400);
    // An older control service's NodeReport is this one without the member, strict.
    expect(NodeReport.omit({ backend_unseen: true }).strict().safeParse(live).success).toBe(false);
    expect(NodeReport.safeParse(live).success).toBe(true);
  });

  it("a liveness-only report naming a live node's instance is refused as any report (409 INSTANCE_CLAIMED)", async () => {
    svc = await startOnLoopback();
    const client = new FlockerClient({ baseUrl: svc.url });
    await client.reportNodeState(nodeReport(NODE_B, { instance_id: 'i-shared' }));
    const err = await client
      .reportNodeState({ ...nodeReport(NODE_A, { instance_id: 'i-shared' }), backend_unseen: unseen })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toMatchObject({ status: 409, code: 'INSTANCE_CLAIMED' });
  });
});
