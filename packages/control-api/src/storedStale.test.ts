/**
 * Review FR F2 (session 18): etcd keeps every node's last report until the node is forgotten, and a replica counts a
 * stored report read at its start as heard then (1946fbf: its wall clock cannot age a report another host wrote), so
 * every long-retired node was shown alive for T after each replica start, then announced dead again (a node_dead
 * event and warning per retired node at every start). Failover timing stays so (the conservative direction); what
 * changes: a stored report already older than T by this replica's clock at its start, not heard from since, is not
 * announced dead again, and while it still counts alive the whole snapshot says why (NOT_HEARD_SINCE_START).
 */
import winston from 'winston';
import { ClusterSnapshot } from '@flocker/api';
import { MemoryConfigurationStore, type StoreListener } from './ConfigurationStore';
import { ControlState } from './ControlState';
import { A, B, C, T0, letterReport as report } from './testing/fixtures';
import { Views } from './Views';

const T = 30_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

let mono = 5_000;
let wall = T0;
const pass = (ms: number): void => {
  mono += ms;
  wall += ms;
};
let state: ControlState | undefined;
let listener: StoreListener | undefined;

afterEach(async () => {
  await state?.close();
  state = undefined;
  mono = 5_000;
  wall = T0;
});

async function open(): Promise<ControlState> {
  const store = Object.assign(new MemoryConfigurationStore(), {
    subscribe: (l: StoreListener) => {
      listener = l;
      // What etcd holds at this start: A retired a day ago, B reported a second ago (alive, through another replica).
      l.report(report(A), wall - DAY, true);
      l.report(report(B), wall - 1_000, true);
      return Promise.resolve();
    },
  });
  state = await ControlState.open({
    store,
    nodeTimeoutMs: T,
    logger: winston.createLogger({ silent: true }),
    now: () => wall,
    monoNow: () => mono,
    livenessCheckMs: HOUR,
  });
  return state;
}

const nodesOf = (s: ControlState) =>
  ClusterSnapshot.parse(JSON.parse(new Views(s, true).snapshot().toString())).nodes.map((n) => [
    n.uuid,
    n.alive,
    n.errors.map((e) => e.code),
  ]);

it('a stored report older than T at the start is not announced dead again; the snapshot says it was not heard', async () => {
  const s = await open();
  expect(nodesOf(s)).toEqual([
    [A, true, ['NOT_HEARD_SINCE_START']],
    [B, true, []],
  ]);
  pass(T + 1);
  await s.checkLiveness();
  expect(s.deadSince(A)).toBeDefined();
  expect(s.deadSince(B)).toBeDefined();
  // B was alive when the service started: its silence is news. A's is not.
  expect(s.listEvents().map((e) => [e.kind, e.node_uuid])).toEqual([['node_dead', B]]);
  expect(nodesOf(s)).toEqual([
    [A, false, []],
    [B, false, []],
  ]);
});

it('heard through the store after all: an ordinary node again (no note; its later silence is announced)', async () => {
  const s = await open();
  pass(1_000);
  const generation = s.stateGeneration;
  listener?.report(report(A), wall);
  expect(nodesOf(s)[0]).toEqual([A, true, []]);
  // A state change (the CLI's --watch and the whole cluster's long-poll see the note go).
  expect(s.stateGeneration).toBeGreaterThan(generation);
  pass(T + 1);
  await s.checkLiveness();
  expect(s.listEvents().map((e) => [e.kind, e.node_uuid])).toEqual([
    ['node_dead', A],
    ['node_dead', B],
  ]);
});

it('the same for a stored liveness-only report (a node whose state was unknown when it went silent, long ago)', async () => {
  const s = await open();
  const since = new Date(wall - DAY).toISOString();
  listener?.report(
    report(C, { backend: 'aws', backend_unseen: { since, reason: 'listing volumes' } }),
    wall - DAY,
    true,
  );
  expect([...s.unknownNodes()].map((n) => n.report.uuid)).toEqual([C]);
  pass(T + 1);
  await s.checkLiveness();
  expect(s.deadSince(C)).toBeDefined();
  expect(s.listEvents().map((e) => [e.kind, e.node_uuid])).toEqual([['node_dead', B]]);
});
