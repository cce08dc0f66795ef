/**
 * Review FR finding 9 (session 17) and review RV2 finding 6 (session 16): the file store kept the identity of every
 * block-backend node that ever reported, so each retired host came back as a ghost after every restart (a node-dead
 * event, a dead row, an entry in every agent view), for ever; and a node named in an accepted-loss marker stayed named
 * for ever. ControlState.forgetNode ends both for one node, durably, and a stop at any point converges.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import winston from 'winston';
import { newRegistry } from '@flocker/metrics';
import { METADATA_ACCEPTED_LOSS_FROM_KEY, type NodeState } from '@flocker/api';
import { createDataset, emptyConfiguration } from './configuration';
import { FileConfigurationStore, NODE_IDENTITIES_FILE, type NodeIdentity } from './ConfigurationStore';
import { ControlState } from './ControlState';
import { instrumentStore } from './metrics';
import { setEntry } from './PersistentMap';
import { Views } from './Views';
import { A, B, C, D1, D2, T0, letterReport as report } from './testing/fixtures';
import { viewFollowers, wholeView } from './testing/viewOracle';

const T = 10_000;
const silent = winston.createLogger({ silent: true });

let t = T0;
let dir = '';
let state: ControlState | undefined;

async function open(): Promise<ControlState> {
  state = await ControlState.open({
    store: new FileConfigurationStore(dir),
    nodeTimeoutMs: T,
    leaseGraceMs: 5_000,
    logger: silent,
    now: () => t,
    livenessCheckMs: 3_600_000,
  });
  return state;
}

async function restart(): Promise<ControlState> {
  await state?.close();
  state = undefined;
  t += 100_000;
  return open();
}

/** Moves the clock to `ms`; B keeps reporting, A does not. */
async function advanceTo(s: ControlState, ms: number): Promise<void> {
  t = ms;
  await s.report(report(B));
  await s.checkLiveness();
}

const identitiesFile = (): string => path.join(dir, NODE_IDENTITIES_FILE);
const storedUuids = (): string[] =>
  (JSON.parse(readFileSync(identitiesFile(), 'utf8')) as { nodes: NodeIdentity[] }).nodes.map((n) => n.uuid);
const nodeOf = (nodes: readonly NodeState[], uuid: string): NodeState | undefined => nodes.find((n) => n.uuid === uuid);

/** A and B report (D1 on B); a restart; A, retired, never reports again: a ghost from start + T. */
async function ghostOfA(): Promise<ControlState> {
  const s = await open();
  await s.report(report(A));
  await s.report(report(B));
  await s.mutate((c) => createDataset(c, { primary: B, dataset_id: D1, metadata: { name: 'v1' } }));
  const r = await restart();
  await advanceTo(r, t + T + 1);
  expect(r.nodeViews.ghosts).toEqual(new Set([A]));
  return r;
}

beforeEach(() => {
  t = T0;
  dir = mkdtempSync(path.join(tmpdir(), 'flocker-forget-'));
});
afterEach(async () => {
  await state?.close();
  state = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe('a retired host, forgotten, is no ghost', () => {
  it('out of the views (deltas too) and the state at once; after a restart no ghost, no node-dead event', async () => {
    const s = await ghostOfA();
    const views = new Views(s, true);
    const followers = viewFollowers(s, views, [B]);
    expect(nodeOf(followers.full(B).nodes, A)).toMatchObject({ alive: false, instance_id: 'i-a' });

    const forgotten = await s.forgetNode('host-a');
    expect(forgotten).toEqual({ uuid: A, host: 'host-a', accepted_loss_datasets: [], data_node_datasets: [] });
    expect(s.nodeViews.ghosts).toEqual(new Set());
    expect(s.reportedNode(A)).toBeUndefined();
    expect(s.deadSince(A)).toBeUndefined();
    followers.poll(B);
    expect(nodeOf(followers.full(B).nodes, A)).toBeUndefined();
    expect(nodeOf(wholeView(views).nodes, A)).toBeUndefined();
    expect(s.configuration.nodes.has(A)).toBe(false);
    expect(storedUuids()).toEqual([B]);

    // Forgotten already: 404.
    await expect(s.forgetNode(A)).rejects.toMatchObject({ code: 'NODE_NOT_FOUND' });

    const r = await restart();
    await advanceTo(r, t + T + 1);
    expect(r.nodeViews.ghosts).toEqual(new Set());
    expect(r.reportedNode(A)).toBeUndefined();
    expect(r.listEvents().filter((e) => e.node_uuid === A)).toEqual([]);
    expect(nodeOf(wholeView(new Views(r, true)).nodes, A)).toBeUndefined();
  });

  it('back one day with the same UUID: an ordinary new node (registered and recorded again)', async () => {
    const s = await ghostOfA();
    await s.forgetNode(A);
    await s.report(report(A));
    expect(s.configuration.nodes.get(A)).toEqual({ uuid: A, host: 'host-a' });
    expect(storedUuids().sort()).toEqual([A, B]);
  });

  it('a node that died since this start (its own report held): forgotten too', async () => {
    const s = await open();
    await s.report(report(B));
    await s.mutate((c) => createDataset(c, { primary: B, dataset_id: D2, metadata: {} }));
    // Its last report lists D2 (moved to B since): the views drop what it held, deltas agreeing.
    await s.report(
      report(A, {
        manifestations: [{ dataset_id: D2, blockdevice_id: 'b2', size: 67108864, status: 'attached' }],
        volumes: [{ blockdevice_id: 'b2', dataset_id: D2, size: 67108864, attached_to: 'i-a' }],
      }),
    );
    const views = new Views(s, true);
    const followers = viewFollowers(s, views, [B]);
    await advanceTo(s, t + T + 1);
    followers.poll(B);
    expect(s.deadSince(A)).toBeDefined();
    expect(nodeOf(followers.full(B).nodes, A)).toMatchObject({ alive: false });
    await s.forgetNode(A);
    expect(s.reportedNode(A)).toBeUndefined();
    expect([...s.reportedNodeIds()]).toEqual([B]);
    expect(s.nodeViews.holdersOf(D2) ?? new Set()).toEqual(new Set());
    followers.poll(B);
    expect(nodeOf(followers.full(B).nodes, A)).toBeUndefined();
    expect(nodeOf(wholeView(views).nodes, A)).toBeUndefined();
  });
});

it('past its timeout but not yet declared dead (no liveness check since): forgotten, not left half done', async () => {
  const s = await open();
  await s.report(report(A));
  await s.report(report(B));
  t += T + 1;
  await s.report(report(B));
  await s.forgetNode(A);
  expect(s.reportedNode(A)).toBeUndefined();
  expect(storedUuids()).toEqual([B]);
  await s.checkLiveness();
  expect(s.listEvents().filter((e) => e.node_uuid === A)).toEqual([]);
});

describe('refused while it is not retired', () => {
  it('alive, the primary of a dataset, or heard of since a start less than T ago: NODE_IN_USE, nothing changed', async () => {
    const s = await open();
    await s.report(report(A));
    await s.report(report(B));
    await s.mutate((c) => createDataset(c, { primary: A, dataset_id: D2, metadata: {} }));
    await expect(s.forgetNode(A)).rejects.toMatchObject({
      code: 'NODE_IN_USE',
      errors: [expect.stringMatching(/reporting/), expect.stringMatching(new RegExp(`primary of dataset ${D2}`))],
    });
    expect(s.configuration.nodes.has(A)).toBe(true);
    expect(storedUuids().sort()).toEqual([A, B]);

    // After a restart, before start + T: A may yet report.
    const r = await restart();
    await expect(r.forgetNode(A)).rejects.toMatchObject({
      code: 'NODE_IN_USE',
      errors: [expect.stringMatching(/started less than the node timeout/), expect.stringMatching(/primary/)],
    });
  });
});

it('refused while a live node reports a volume attached to its instance (the ghost is how it gets detached)', async () => {
  const s = await ghostOfA();
  await s.report(
    report(B, { volumes: [{ blockdevice_id: 'b1', dataset_id: D1, size: 67108864, attached_to: 'i-a' }] }),
  );
  await expect(s.forgetNode(A)).rejects.toMatchObject({
    code: 'NODE_IN_USE',
    errors: [expect.stringMatching(new RegExp(`volume of dataset ${D1} is still attached to its compute instance`))],
  });
  expect(s.nodeViews.ghosts).toEqual(new Set([A]));
  // B's agent detached it (and attached it to itself).
  await s.report(
    report(B, { volumes: [{ blockdevice_id: 'b1', dataset_id: D1, size: 67108864, attached_to: 'i-b' }] }),
  );
  await s.forgetNode(A);
  expect(s.nodeViews.ghosts).toEqual(new Set());
});

describe('accepted-loss names', () => {
  it('a node named in a marker (never reported here) is forgotten from it, durably', async () => {
    const s = await open();
    await s.report(report(B));
    await s.mutate((c) => createDataset(c, { primary: B, dataset_id: D1, metadata: { name: 'v1' } }));
    // As the service records a consumed opt-in (dataNode.ts settledOptIns): C, then A.
    await s.mutate((c) => {
      const d = c.datasets.get(D1);
      if (d === undefined) throw new Error('no D1');
      const metadata = { ...d.metadata, [METADATA_ACCEPTED_LOSS_FROM_KEY]: `${C},${A}` };
      return {
        config: { ...c, version: c.version + 1, datasets: setEntry(c.datasets, D1, { ...d, metadata }) },
        result: undefined,
        status: 200,
      };
    });
    await advanceTo(s, t + T + 1);
    expect(await s.forgetNode(C)).toMatchObject({ uuid: C, accepted_loss_datasets: [D1] });
    const r = await restart();
    expect(r.configuration.datasets.get(D1)?.metadata[METADATA_ACCEPTED_LOSS_FROM_KEY]).toBe(A);
  });
});

it('the instrumented store of the service passes the removal through (else the file would keep the node)', async () => {
  const store = instrumentStore(new FileConfigurationStore(dir), newRegistry('control-service'));
  await store.load();
  const identity = { uuid: A, era: 'e', host: 'h', instance_id: 'i', backend: 'loopback' };
  await store.recordNodeIdentity?.(identity);
  await store.recordNodeIdentity?.({ ...identity, uuid: B, instance_id: 'j' });
  await store.forgetNodeIdentities?.([A]);
  expect(storedUuids()).toEqual([B]);
});

describe('a stop at any point converges', () => {
  it('stopped after the configuration commit, before the identity file was rewritten: the start removes it', async () => {
    const s = await ghostOfA();
    const before = readFileSync(identitiesFile(), 'utf8');
    await s.forgetNode(A);
    // As if killed before the identities write: the file still names A, the configuration does not.
    writeFileSync(identitiesFile(), before);
    const r = await restart();
    expect(storedUuids()).toEqual([B]);
    await advanceTo(r, t + T + 1);
    expect(r.nodeViews.ghosts).toEqual(new Set());
    expect(r.listEvents().filter((e) => e.node_uuid === A)).toEqual([]);
  });

  it('stopped before the configuration commit: nothing happened, and forgetting again does it all', async () => {
    const s = await ghostOfA();
    expect(s.configuration.nodes.has(A)).toBe(true);
    const r = await restart();
    await advanceTo(r, t + T + 1);
    expect(r.nodeViews.ghosts).toEqual(new Set([A]));
    await r.forgetNode(A);
    expect(r.nodeViews.ghosts).toEqual(new Set());
    expect(storedUuids()).toEqual([B]);
  });
});

it('an empty configuration stays valid without its nodes (the store reads it back)', async () => {
  const s = await open();
  await s.report(report(A));
  await advanceTo(s, t + T + 1);
  await s.forgetNode(A);
  const r = await restart();
  expect([...r.configuration.nodes.keys()]).toEqual([B]);
  expect(r.configuration.datasets).toEqual(emptyConfiguration.datasets);
});
