/**
 * Review F finding 1 (session 17): a control service restarted while a lease holder is dead or cut off declares it
 * dead at start + T, releases its lease at start + T + G — and before this fix told the agents nothing about it (its
 * report died with the previous process), so a new primary found the volume attached to an instance no node of its
 * view carries ('elsewhereLive': wait, for ever). The file store now keeps each node's identity (uuid, era, host,
 * instance, backend, zone; NODE_IDENTITIES_FILE), durable before its report is accepted; such a node is held from it
 * (NodeReports.ghosts) and shown dead in every agent view. Only a node declared dead under the same rule as before
 * (a lease holder with no report since start, from start + T); one that reports is an ordinary node again.
 * FX3: the same for a node with no lease (an idle volume on a host that died before the restart stays attached to its
 * instance): every node with a known identity (block backend) and no report since start is dead from start + T.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import winston from 'winston';
import type { NodeState } from '@flocker/api';
import { newRegistry } from '@flocker/metrics';
import { acquireLease, createDataset, updateDataset } from './configuration';
import {
  FileConfigurationStore,
  NODE_IDENTITIES_FILE,
  type NodeIdentity,
  type StoreListener,
} from './ConfigurationStore';
import { aliveNodes } from './clusterState';
import { ControlState } from './ControlState';
import { instrumentStore } from './metrics';
import { Views } from './Views';
import { A, B, C, D1, T0, letterReport as report } from './testing/fixtures';
import { parseDelta, viewFollowers, wholeView } from './testing/viewOracle';

const T = 10_000;
const G = 5_000;
const silent = winston.createLogger({ silent: true });

let t = T0;
let dir = '';
let state: ControlState | undefined;

async function open(): Promise<ControlState> {
  state = await ControlState.open({
    store: new FileConfigurationStore(dir),
    nodeTimeoutMs: T,
    leaseGraceMs: G,
    logger: silent,
    now: () => t,
    livenessCheckMs: 3_600_000,
  });
  return state;
}

/**
 * A (D1 mounted there; leased unless told) and B report; then the service stops: a restart follows at T0 + 100 s.
 */
async function seedAndRestart(a = report(A), { leased = true } = {}): Promise<ControlState> {
  const s = await open();
  await s.report(a);
  await s.report(report(B));
  await s.mutate((c) => createDataset(c, { primary: A, dataset_id: D1, metadata: { name: 'v1' } }));
  if (leased) await s.mutate((c, n) => acquireLease(c, { dataset_id: D1, node_uuid: A, expires: null }, n));
  await s.report({
    ...a,
    manifestations: [{ dataset_id: D1, blockdevice_id: 'b1', size: 67108864, status: 'mounted', path: '/f/d1' }],
  });
  await s.close();
  state = undefined;
  t = T0 + 100_000;
  return open();
}

/** Moves the clock; B keeps reporting (its pool shows D1's volume attached to A's instance), A does not. */
async function advanceTo(s: ControlState, ms: number): Promise<void> {
  t = ms;
  await s.report(
    report(B, { volumes: [{ blockdevice_id: 'b1', dataset_id: D1, size: 67108864, attached_to: 'i-a' }] }),
  );
  await s.checkLiveness();
}

/** The identities file's nodes. */
const stored = (file: string): NodeIdentity[] =>
  (JSON.parse(readFileSync(file, 'utf8')) as { nodes: NodeIdentity[] }).nodes;

const nodeOf = (nodes: readonly NodeState[], uuid: string): NodeState | undefined => nodes.find((n) => n.uuid === uuid);

beforeEach(() => {
  t = T0;
  dir = mkdtempSync(path.join(tmpdir(), 'flocker-ghost-'));
});
afterEach(async () => {
  await state?.close();
  state = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe('a lease holder dead across a restart is shown dead to the agents, with its instance', () => {
  it('from start + T: in every node view (deltas too) and the whole snapshot; its lease goes at start + T + G', async () => {
    const s = await seedAndRestart();
    const started = t;
    const views = new Views(s, true);
    const followers = viewFollowers(s, views, [B, C]);
    await s.report(report(C));
    await advanceTo(s, started + T - 1);
    // Not before start + T: it may still have confirmed contact with the previous process (its fence bound F < T).
    expect(nodeOf(followers.full(B).nodes, A)).toBeUndefined();
    expect(nodeOf(wholeView(views).nodes, A)).toBeUndefined();
    const before = followers.full(B).generation;
    followers.poll(B);
    followers.poll(C);
    await advanceTo(s, started + T + 1);
    expect(s.nodeViews.ghosts).toEqual(new Set([A]));
    const shown = nodeOf(followers.full(B).nodes, A);
    expect(shown).toMatchObject({ uuid: A, host: 'host-a', instance_id: 'i-a', alive: false, manifestations: [] });
    expect(shown?.dead_since).toBe(new Date(started + T).toISOString());
    // A view with none of A's datasets (C's) shows it too: which volumes its pool shows attached to A is not known here.
    expect(nodeOf(followers.full(C).nodes, A)).toMatchObject({ alive: false, instance_id: 'i-a' });
    expect(nodeOf(parseDelta(views.deltaFor(B, before)).nodes, A)).toMatchObject({ alive: false });
    expect(s.nodeViews.changedSince(C, before)).toBe(true);
    followers.poll(B);
    followers.poll(C);
    expect(nodeOf(wholeView(views).nodes, A)).toMatchObject({ alive: false, instance_id: 'i-a' });
    expect(s.listEvents().filter((e) => e.node_uuid === A)).toMatchObject([
      { kind: 'node_dead', message: expect.stringContaining('host-a (') },
    ]);

    await advanceTo(s, started + T + G);
    expect([...s.configuration.leases.keys()]).toEqual([]);
    // B's plugin takes the lease and moves D1: B's view holds D1 and A, dead, to force-detach from.
    await s.mutate((c, n) => acquireLease(c, { dataset_id: D1, node_uuid: B, expires: null }, n));
    await s.mutate((c, n) => updateDataset(c, D1, { primary: B }, n));
    followers.poll(B);
    const view = followers.full(B);
    expect(view.datasets.map((d) => d.dataset_id)).toEqual([D1]);
    expect(nodeOf(view.nodes, A)).toMatchObject({ alive: false, instance_id: 'i-a' });
  });

  it('one that reports is an ordinary node again: back, and out of the views it holds nothing of', async () => {
    const s = await seedAndRestart();
    const started = t;
    const views = new Views(s, true);
    const followers = viewFollowers(s, views, [B]);
    await advanceTo(s, started + T + 1);
    followers.poll(B);
    t += 1_000;
    await s.report(report(A));
    expect(s.nodeViews.ghosts).toEqual(new Set());
    expect(s.listEvents().map((e) => e.kind)).toEqual(['node_dead', 'node_back']);
    expect(nodeOf(wholeView(views).nodes, A)).toMatchObject({ alive: true });
    // B's view: A held D1 (primary A, leased to nobody now): not B's; A leaves it.
    followers.poll(B);
    expect(nodeOf(followers.full(B).nodes, A)).toBeUndefined();
  });

  it('a node that reported after the restart is not held from its identity: it dies by the usual rule', async () => {
    const s = await seedAndRestart();
    const started = t;
    await advanceTo(s, started + 5_000);
    await s.report(report(A));
    await advanceTo(s, started + T + 1);
    expect(s.nodeViews.ghosts).toEqual(new Set());
    // Alive: its report (at start + 5 s) is within T.
    expect(s.deadSince(A, t)).toBeUndefined();
    await advanceTo(s, started + 5_000 + T + 1);
    expect(s.deadSince(A, t)).toBe(started + 5_000 + T);
    expect(s.nodeViews.ghosts).toEqual(new Set());
  });

  it('a local-backend node is not shown from its identity (its data is on it; nothing to force-detach)', async () => {
    const s = await seedAndRestart(report(A, { backend: 'local-btrfs' }));
    await advanceTo(s, t + T + 1);
    expect(s.listEvents().map((e) => e.kind)).toEqual(['node_dead']);
    expect(s.nodeViews.ghosts).toEqual(new Set());
    expect(s.reportedNode(A)).toBeUndefined();
  });

  it('no identities file (a store from before it), or an unreadable one: declared dead as before, not shown', async () => {
    const s = await seedAndRestart();
    await s.close();
    state = undefined;
    writeFileSync(path.join(dir, NODE_IDENTITIES_FILE), '{not json');
    const restarted = await open();
    await advanceTo(restarted, t + T + 1);
    expect(restarted.listEvents().map((e) => e.kind)).toEqual(['node_dead']);
    expect(restarted.nodeViews.ghosts).toEqual(new Set());
  });
});

describe('a node with no lease dead across a restart (its idle volume) is shown dead too', () => {
  it('from start + T: node_dead, in every node view, no lease released, not among the alive nodes', async () => {
    const s = await seedAndRestart(report(A), { leased: false });
    const started = t;
    const views = new Views(s, true);
    const followers = viewFollowers(s, views, [B, C]);
    await s.report(report(C));
    await advanceTo(s, started + T - 1);
    expect(s.nodeViews.ghosts).toEqual(new Set());
    expect(s.deadSince(A, t)).toBeUndefined();
    const before = followers.full(B).generation;
    followers.poll(B);
    followers.poll(C);
    await advanceTo(s, started + T + 1);
    expect(s.nodeViews.ghosts).toEqual(new Set([A]));
    expect(s.deadSince(A, t)).toBe(started + T);
    const shown = nodeOf(followers.full(B).nodes, A);
    expect(shown).toMatchObject({ uuid: A, host: 'host-a', instance_id: 'i-a', alive: false, manifestations: [] });
    expect(nodeOf(followers.full(C).nodes, A)).toMatchObject({ alive: false, instance_id: 'i-a' });
    expect(nodeOf(parseDelta(views.deltaFor(B, before)).nodes, A)).toMatchObject({ alive: false });
    followers.poll(B);
    followers.poll(C);
    expect(nodeOf(wholeView(views).nodes, A)).toMatchObject({ alive: false, instance_id: 'i-a' });
    // Flocker v1 /v1/state/nodes lists the alive nodes only (routes.ts): unchanged by a ghost (C stopped reporting).
    expect(aliveNodes(s.reportedNodes(), t, T).map((n) => n.report.uuid)).toEqual([B]);
    expect(s.listEvents().filter((e) => e.node_uuid === A)).toMatchObject([
      { kind: 'node_dead', message: expect.stringContaining('host-a (') },
    ]);
    await advanceTo(s, started + T + G + 1);
    await s.checkLiveness();
    // No lease to release (C, silent since its one report, is dead by the usual rule).
    expect(new Set(s.listEvents().map((e) => `${e.kind} ${e.node_uuid ?? ''}`))).toEqual(
      new Set([`node_dead ${A}`, `node_dead ${C}`]),
    );
    // `flocker volumes move` to B: B's view holds D1 and A, dead, to force-detach from.
    await s.mutate((c, n) => updateDataset(c, D1, { primary: B }, n));
    followers.poll(B);
    const view = followers.full(B);
    expect(view.datasets.map((d) => d.dataset_id)).toEqual([D1]);
    expect(nodeOf(view.nodes, A)).toMatchObject({ alive: false, instance_id: 'i-a' });
  });

  it('a move asked before start + T: B sees A dead from start + T (not before)', async () => {
    const s = await seedAndRestart(report(A), { leased: false });
    const started = t;
    const views = new Views(s, true);
    const followers = viewFollowers(s, views, [B]);
    await advanceTo(s, started + 1_000);
    await s.mutate((c, n) => updateDataset(c, D1, { primary: B }, n));
    followers.poll(B);
    expect(nodeOf(followers.full(B).nodes, A)).toBeUndefined();
    await advanceTo(s, started + T + 1);
    followers.poll(B);
    expect(nodeOf(followers.full(B).nodes, A)).toMatchObject({ alive: false, instance_id: 'i-a' });
  });

  it('one that reports after the restart is never a ghost, and one that reports after its ghost is back', async () => {
    const s = await seedAndRestart(report(A), { leased: false });
    const started = t;
    await advanceTo(s, started + 5_000);
    await s.report(report(A));
    await advanceTo(s, started + T + 1);
    expect(s.nodeViews.ghosts).toEqual(new Set());
    expect(s.listEvents()).toEqual([]);
    await advanceTo(s, started + 5_000 + T + 1);
    expect(s.nodeViews.ghosts).toEqual(new Set());
    expect(s.deadSince(A, t)).toBe(started + 5_000 + T);
    t += 1_000;
    await s.report(report(A));
    expect(s.deadSince(A, t)).toBeUndefined();
    expect(s.nodeViews.ghosts).toEqual(new Set());
    expect(s.listEvents().map((e) => e.kind)).toEqual(['node_dead', 'node_back']);
  });

  it('a local-backend node with no lease: not declared dead, not shown (its data is on it)', async () => {
    const s = await seedAndRestart(report(A, { backend: 'local-btrfs' }), { leased: false });
    await advanceTo(s, t + T + 1);
    expect(s.listEvents()).toEqual([]);
    expect(s.nodeViews.ghosts).toEqual(new Set());
    expect(s.deadSince(A, t)).toBeUndefined();
  });

  it('a store with node reports (etcd): the stored report of A makes it dead by start + T too, in B after the move', async () => {
    // The etcd store delivers its stored reports (nodes/<uuid>: the report and its last_seen) at subscribe; no
    // identities. Same outcome for the agents as the file store's ghost: A dead, with its instance, in B's view.
    const files = new FileConfigurationStore(dir);
    const stale = T0 + 50_000;
    const storedA = report(A, {
      manifestations: [{ dataset_id: D1, blockdevice_id: 'b1', size: 67108864, status: 'mounted', path: '/f/d1' }],
    });
    const shared = {
      load: () => files.load(),
      commit: (config: Parameters<typeof files.commit>[0]) => files.commit(config),
      close: () => files.close(),
      subscribe: (listener: StoreListener) => {
        listener.report(storedA, stale);
        return Promise.resolve();
      },
    };
    const seed = await open();
    await seed.report(report(A));
    await seed.mutate((c) => createDataset(c, { primary: A, dataset_id: D1, metadata: { name: 'v1' } }));
    await seed.close();
    t = T0 + 100_000;
    const started = t;
    state = await ControlState.open({
      store: shared,
      nodeTimeoutMs: T,
      leaseGraceMs: G,
      logger: silent,
      now: () => t,
      livenessCheckMs: 3_600_000,
    });
    const s = state;
    await advanceTo(s, started + T + 1);
    expect(s.deadSince(A, t)).toBeDefined();
    expect(s.deadSince(A, t)).toBeLessThanOrEqual(started + T);
    await s.mutate((c, n) => updateDataset(c, D1, { primary: B }, n));
    const views = new Views(s, true);
    expect(nodeOf(viewFollowers(s, views, [B]).full(B).nodes, A)).toMatchObject({
      alive: false,
      instance_id: 'i-a',
    });
  });
});

describe('FileConfigurationStore node identities', () => {
  it('one write for the identities recorded meanwhile; the latest of each node kept; only new ones written', async () => {
    const store = new FileConfigurationStore(dir);
    await store.load();
    expect(await store.loadNodeIdentities()).toEqual({ identities: new Map(), skipped: 0 });
    const a = { uuid: A, era: 'e1', host: 'h-a', instance_id: 'i-a', backend: 'loopback' };
    await Promise.all([
      store.recordNodeIdentity(a),
      store.recordNodeIdentity({ ...a, uuid: B, host: 'h-b', instance_id: 'i-b' }),
      store.recordNodeIdentity({ ...a, era: 'e2', zone: 'z' }),
    ]);
    const again = new FileConfigurationStore(dir);
    expect([...(await again.loadNodeIdentities()).identities.values()]).toEqual([
      { ...a, era: 'e2', zone: 'z' },
      { ...a, uuid: B, host: 'h-b', instance_id: 'i-b' },
    ]);
    expect(stored(path.join(dir, NODE_IDENTITIES_FILE))).toHaveLength(2);
  });

  it('an unreadable file does not stop the service: read as empty, and said (review FR 1)', async () => {
    const file = path.join(dir, NODE_IDENTITIES_FILE);
    const warnings: string[] = [];
    const logger = winston.createLogger({
      transports: [new winston.transports.Console({ silent: true })],
    });
    logger.on('data', (info: { level: string; message: string }) => {
      if (info.level === 'warn') warnings.push(info.message);
    });
    for (const bad of ['{not json', JSON.stringify({ other: 1 })]) {
      writeFileSync(file, bad);
      await expect(new FileConfigurationStore(dir).loadNodeIdentities()).rejects.toThrow(/node_identities\.json/);
      const s = await ControlState.open({
        store: new FileConfigurationStore(dir),
        nodeTimeoutMs: T,
        logger,
        now: () => t,
      });
      await s.close();
    }
    // Not a file at all (EISDIR): the service used to fail to start.
    rmSync(file);
    mkdirSync(file);
    const s = await ControlState.open({
      store: new FileConfigurationStore(dir),
      nodeTimeoutMs: T,
      logger,
      now: () => t,
    });
    await s.close();
    expect(warnings.filter((w) => w.startsWith('node identities unreadable'))).toHaveLength(3);
  });

  it('a failed identity write does not fail the report; the next report writes it (review FR 10)', async () => {
    class FailingOnce extends FileConfigurationStore {
      failures = 1;
      override recordNodeIdentity(identity: NodeIdentity): Promise<void> {
        if (this.failures-- > 0) return Promise.reject(new Error('ENOSPC'));
        return super.recordNodeIdentity(identity);
      }
    }
    const store = new FailingOnce(dir);
    state = await ControlState.open({ store, nodeTimeoutMs: T, logger: silent, now: () => t });
    await state.report(report(A));
    expect(aliveNodes(state.reportedNodes(), t, T).map((n) => n.report.uuid)).toEqual([A]);
    await state.report(report(A));
    expect(stored(path.join(dir, NODE_IDENTITIES_FILE)).map((n) => n.uuid)).toEqual([A]);
  });

  it('an entry it cannot read is skipped, the others kept (review FR 1)', async () => {
    const a = { uuid: A, era: 'e1', host: 'h-a', instance_id: 'i-a', backend: 'loopback' };
    writeFileSync(path.join(dir, NODE_IDENTITIES_FILE), JSON.stringify({ nodes: [a, { uuid: B, era: 7 }] }));
    const loaded = await new FileConfigurationStore(dir).loadNodeIdentities();
    expect([...loaded.identities.values()]).toEqual([a]);
    expect(loaded.skipped).toBe(1);
  });

  it('the instrumented store of the service passes them through (else it would record none)', async () => {
    const store = instrumentStore(new FileConfigurationStore(dir), newRegistry('control-service'));
    await store.load();
    await store.recordNodeIdentity?.({ uuid: A, era: 'e', host: 'h', instance_id: 'i', backend: 'loopback' });
    expect([...((await store.loadNodeIdentities?.())?.identities ?? new Map()).keys()]).toEqual([A]);
  });

  it('a report is recorded once its identity is durable, and a repeated identity is not written again', async () => {
    const s = await open();
    await s.report(report(A));
    const file = path.join(dir, NODE_IDENTITIES_FILE);
    expect(stored(file)).toEqual([
      { uuid: A, era: `era-${A}`, host: 'host-a', instance_id: 'i-a', backend: 'loopback' },
    ]);
    rmSync(file);
    await s.report(report(A, { manifestations: [] }));
    expect(() => readFileSync(file)).toThrow();
    await s.report(report(A, { instance_id: 'i-a2' }));
    expect(stored(file)[0]?.instance_id).toBe('i-a2');
  });
});
