/**
 * T1 S0 (session 19) on a real etcd: a liveness-only report (NodeReport.backend_unseen) received by one replica reaches
 * the others through the store as liveness only — a replica holding the node's full report keeps its lists and shows
 * the condition; one holding none (or starting later) holds the node alive with its state unknown — and the node's
 * full report ends it everywhere.
 */
import { randomUUID } from 'node:crypto';
import { NodeReport } from '@flocker/api';
import { Etcd3 } from 'etcd3';
import { z } from 'zod';
import type { ControlState } from '../ControlState';
import { A, C, D1, T0, letterReport, mountedManifestation } from '../testing/fixtures';
import { etcdReplicas } from '../testing/etcdReplicas';

jest.setTimeout(60_000);
const T = 10_000;
const unseen = { since: '2026-12-06T08:00:00.000Z', reason: 'listing volumes of aws: no answer yet' };
const full = (uuid: string): NodeReport =>
  letterReport(uuid, { backend: 'aws', manifestations: [mountedManifestation(D1, uuid)] });
const liveness = (uuid: string): NodeReport => letterReport(uuid, { backend: 'aws', backend_unseen: unseen });

let t = T0;
const bed = etcdReplicas('each');

async function replica(prefix: string): Promise<ControlState> {
  return bed.openState(prefix, { nodeTimeoutMs: T, now: () => t, livenessCheckMs: 3_600_000 });
}

async function eventually(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const errorCodes = (s: ControlState, uuid: string) => s.reportedNode(uuid)?.report.errors.map((e) => e.code);
const unknown = (s: ControlState, uuid: string) => [...s.unknownNodes()].some((n) => n.report.uuid === uuid);

afterEach(() => {
  t = T0;
});

it('a replica holding the full report keeps its lists and shows the condition; the full report ends it', async () => {
  const prefix = `/t-${randomUUID()}`;
  const a = await replica(prefix);
  const b = await replica(prefix);
  await a.report(full(A));
  await eventually(() => b.reportedNode(A) !== undefined);
  t += 1_000;
  await a.report(liveness(A));
  await eventually(() => errorCodes(b, A)?.includes('BACKEND_UNREACHABLE') === true);
  expect(b.reportedNode(A)?.report.manifestations).toEqual([mountedManifestation(D1, A)]);
  expect(b.reportedNode(A)?.report).not.toHaveProperty('backend_unseen');
  expect(b.deadSince(A)).toBeUndefined();
  // A replica started now reads the shared report: the node's state is unknown there (no full report it heard).
  const c = await replica(prefix);
  expect(c.reportedNode(A)).toBeUndefined();
  expect(unknown(c, A)).toBe(true);
  expect(c.deadSince(A)).toBeUndefined();
  t += 1_000;
  await a.report(full(A));
  await eventually(() => errorCodes(b, A)?.length === 0 && c.reportedNode(A) !== undefined);
  expect(unknown(c, A)).toBe(false);
  expect(c.reportedNode(A)?.report.manifestations).toEqual([mountedManifestation(D1, A)]);
});

it('with no report held anywhere, every replica holds the node alive with its state unknown', async () => {
  const prefix = `/t-${randomUUID()}`;
  const a = await replica(prefix);
  const b = await replica(prefix);
  await a.report(liveness(C));
  expect(unknown(a, C)).toBe(true);
  await eventually(() => unknown(b, C));
  expect(b.reportedNode(C)).toBeUndefined();
  expect([...b.nodesClaimingInstance('i-c')].map((n) => n.report.uuid)).toEqual([C]);
});

it("a new agent's liveness report is shared as a replica one release behind parses it; its fence as resolved (review s28 F1)", async () => {
  const prefix = `/t-${randomUUID()}`;
  const a = await replica(prefix);
  const b = await replica(prefix);
  const fence = { since: unseen.since, reason: 'no contact with the control service for 15 s', stopped_containers: [] };
  await a.report(letterReport(A, { ...full(A), fencing: { ...fence, state: 'fenced' } }));
  await eventually(() => b.reportedNode(A)?.report.fencing !== undefined);
  t += 1_000;
  // The agent states its fence: none (lifted).
  await a.report(letterReport(A, { backend: 'aws', backend_unseen: { ...unseen, fencing_stated: true } }));
  await eventually(() => errorCodes(b, A)?.includes('BACKEND_UNREACHABLE') === true);
  expect(b.reportedNode(A)?.report).not.toHaveProperty('fencing');
  // nodes/<uuid> as the older replica's strict schema reads it (backend_unseen without fencing_stated).
  const Older = z.object({
    last_seen: z.number(),
    report: NodeReport.extend({
      backend_unseen: z.object({ since: z.string(), reason: z.string() }).strict().optional(),
    }),
  });
  const raw = new Etcd3({ hosts: bed.endpoints });
  try {
    const stored = await raw.get(`${prefix}/nodes/${A}`).string();
    expect(Older.safeParse(JSON.parse(stored ?? 'null')).error).toBeUndefined();
  } finally {
    raw.close();
  }
});
