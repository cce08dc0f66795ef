/**
 * Session 27 (DEADHOST): after a restart, "not heard from since this start" is counted from when the service begins
 * answering (ControlState.serving, called once it listens), not from when its state was built: the store's read and
 * the listener's set-up, slow on a loaded host, were time no agent could report in, and a node reporting promptly
 * after the listen was declared dead with the dead host (the e2e review-f-control-restart-dead-host CI failure's
 * shape). And a node declared so is dead from that moment + T (dead_since, and its leases' grace from it), not from
 * the construction: after heardAll (a store outage, a stall of this replica) it was declared at the later moment
 * but dead since the earlier one, its leases released with no grace at all.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import winston from 'winston';
import { acquireLease, createDataset } from './configuration';
import { MemoryConfigurationStore } from './ConfigurationStore';
import { ControlState } from './ControlState';
import { openOnTestClock } from './testing/clockedState';
import { A, D1, T0, letterReport } from './testing/fixtures';

const T = 10_000;
const G = 1_000;

let mono = 5_000;
let wall = T0;
const pass = (ms: number): void => {
  mono += ms;
  wall += ms;
};
const states: ControlState[] = [];

async function open(store: MemoryConfigurationStore): Promise<ControlState> {
  const s = await openOnTestClock(store, { nodeTimeoutMs: T, leaseGraceMs: G, wall: () => wall, mono: () => mono });
  states.push(s);
  return s;
}

/** A store holding node A (reported once) with a lease on D1: what a restarted service loads. */
async function storeWithLeaseOfA(): Promise<MemoryConfigurationStore> {
  const store = new MemoryConfigurationStore();
  const s = await open(store);
  await s.report(letterReport(A));
  await s.mutate((c) => createDataset(c, { primary: A, dataset_id: D1, metadata: { name: 'db' } }));
  await s.mutate((c, n) => acquireLease(c, { dataset_id: D1, node_uuid: A, expires: null }, n));
  await s.close();
  states.splice(states.indexOf(s), 1);
  return store;
}

afterEach(async () => {
  await Promise.all(states.splice(0).map((s) => s.close()));
  mono = 5_000;
  wall = T0;
});

it('a node is unheard since the service began serving: one reporting within T of that is never declared dead', async () => {
  const store = await storeWithLeaseOfA();
  const s = await open(store);
  // The start takes most of T before the service listens (a loaded host).
  pass(T - 1_000);
  s.serving();
  pass(2_000);
  await s.checkLiveness();
  expect(s.deadSince(A)).toBeUndefined();
  expect(s.listEvents().filter((e) => e.kind === 'node_dead')).toEqual([]);
  // A reports in time: never declared dead, its lease kept.
  await s.report(letterReport(A));
  pass(T);
  await s.report(letterReport(A));
  await s.checkLiveness();
  expect(s.listEvents().filter((e) => e.kind === 'node_dead')).toEqual([]);
  expect([...s.configuration.leases.keys()]).toEqual([D1]);
});

it('a node unheard since serving began is dead from that moment + T, and keeps its leases for the grace from then', async () => {
  const store = await storeWithLeaseOfA();
  const s = await open(store);
  pass(3_000);
  const servedAt = wall;
  s.serving();
  pass(T + 1);
  await s.checkLiveness();
  expect(s.deadSince(A)).toBe(servedAt + T);
  // Dead for 1 ms: its lease stays for the grace.
  expect([...s.configuration.leases.keys()]).toEqual([D1]);
  pass(G);
  await s.checkLiveness();
  expect([...s.configuration.leases.keys()]).toEqual([]);
});

it('the liveness timer judges no node before serving began, however long the start took (review s27 F8)', async () => {
  const store = await storeWithLeaseOfA();
  // The real timer, every 20 ms, on the test's clock.
  const s = await ControlState.open({
    store,
    nodeTimeoutMs: T,
    leaseGraceMs: G,
    logger: winston.createLogger({ silent: true }),
    now: () => wall,
    monoNow: () => mono,
    livenessCheckMs: 20,
  });
  states.push(s);
  // The start takes longer than T before the service listens (100,000 datasets' reports read on a loaded host).
  pass(T + 1_000);
  await sleep(200);
  s.serving();
  pass(2_000);
  await sleep(200);
  expect(s.deadSince(A)).toBeUndefined();
  expect(s.listEvents().filter((e) => e.kind === 'node_dead')).toEqual([]);
  expect([...s.configuration.leases.keys()]).toEqual([D1]);
  // Still judged once serving: unheard for T from then, dead.
  pass(T);
  await sleep(200);
  expect(s.deadSince(A)).toBeDefined();
});
