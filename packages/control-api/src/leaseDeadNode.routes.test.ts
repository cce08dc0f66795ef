/**
 * Session 27 (DEADHOST, the CI failure of e2e review-f-control-restart-dead-host): no lease, and so no move_here, is
 * granted to a node the service holds dead. After a restart of the control service every node unheard since its start
 * is declared dead at start + T (the dead host, and a live one whose agent is slow to report); a plugin on the slow
 * one took the lease the dead host's release freed, the dead-node sweep released it again at its next round (that
 * node dead for the grace already), and grant and release could both land between two snapshots of the plugin's
 * watch: its Mount never saw the lease it lost and waited out its whole timeout. Refused (409 NODE_DEAD), the plugin
 * waits for its node to show alive and asks again.
 */
import { FlockerApiError, FlockerClient } from '@flocker/api';
import { NODE_A, NODE_B, nodeReport, startOnLoopback } from './testing/httpService';
import type { ControlService } from './server';

const T_SECONDS = 10;
const DATASET = 'dddddddd-0000-4000-8000-000000000001';

let mono = 50_000;
let wall = 1_800_000_000_000;
const pass = (ms: number): void => {
  mono += ms;
  wall += ms;
};
let svc: ControlService | undefined;

afterEach(async () => {
  await svc?.close();
  svc = undefined;
});

async function started(): Promise<{ service: ControlService; client: FlockerClient }> {
  svc = await startOnLoopback({
    nodeTimeoutSeconds: T_SECONDS,
    leaseGraceSeconds: 2,
    now: () => wall,
    monoNow: () => mono,
  });
  const client = new FlockerClient({ baseUrl: svc.url, timeoutMs: 5000 });
  await client.reportNodeState(nodeReport(NODE_A));
  await client.reportNodeState(nodeReport(NODE_B));
  await client.createDataset({ primary: NODE_A, dataset_id: DATASET, metadata: { name: 'db' } });
  return { service: svc, client };
}

/** B silent for longer than T (A reporting): declared dead at the liveness check. */
async function bDead(service: ControlService, client: FlockerClient): Promise<void> {
  pass(T_SECONDS * 1000 + 1);
  await client.reportNodeState(nodeReport(NODE_A));
  await service.state.checkLiveness();
  expect(service.state.deadSince(NODE_B)).toBeDefined();
}

async function refusal(p: Promise<unknown>): Promise<{ status: number | undefined; code: string | undefined }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof FlockerApiError)) throw new Error(`expected a refusal, got ${String(err)}`);
  return { status: err.status, code: err.code };
}

describe('a lease asked for by a node held dead', () => {
  it('with move_here: refused 409 NODE_DEAD, nothing leased or moved; granted once the node reports', async () => {
    const { service, client } = await started();
    await bDead(service, client);
    const lease = { dataset_id: DATASET, node_uuid: NODE_B, expires: null, holder: 'docker', move_here: true } as const;
    expect(await refusal(client.acquireLease(lease))).toEqual({ status: 409, code: 'NODE_DEAD' });
    expect(await client.listLeases()).toEqual([]);
    expect((await client.getDataset(DATASET)).primary).toBe(NODE_A);
    await client.reportNodeState(nodeReport(NODE_B));
    expect(await client.acquireLease(lease)).toMatchObject({ node_uuid: NODE_B });
    expect((await client.getDataset(DATASET)).primary).toBe(NODE_B);
  });

  it('a plain lease: refused 409 NODE_DEAD; a live node is granted one as before', async () => {
    const { service, client } = await started();
    await bDead(service, client);
    expect(await refusal(client.acquireLease({ dataset_id: DATASET, node_uuid: NODE_B, expires: null }))).toEqual({
      status: 409,
      code: 'NODE_DEAD',
    });
    expect(await client.acquireLease({ dataset_id: DATASET, node_uuid: NODE_A, expires: null })).toMatchObject({
      node_uuid: NODE_A,
    });
  });

  it('a re-acquire of the lease it already holds, changing nothing, is granted; a new share or a move is not (review s27 F7)', async () => {
    const { service, client } = await started();
    await client.createDataset({ primary: NODE_B, dataset_id: OTHER, metadata: { name: 'b' } });
    const held = { dataset_id: OTHER, node_uuid: NODE_B, expires: null, holder: 'docker' } as const;
    await client.acquireLease({ ...held, release_on_request: true });
    await bDead(service, client);
    const before = await client.listLeases();
    // The plugin's start reconcile asks for its lease again: nothing changes, nothing is written.
    expect(await client.acquireLease(held)).toMatchObject({ node_uuid: NODE_B, holders: ['docker'] });
    expect(await client.acquireLease({ ...held, move_here: true })).toMatchObject({ node_uuid: NODE_B });
    expect(await client.listLeases()).toEqual(before);
    // A new share of it, or a move of another dataset here: refused.
    expect(await refusal(client.acquireLease({ ...held, holder: 'csi' }))).toEqual({ status: 409, code: 'NODE_DEAD' });
    expect(
      await refusal(client.acquireLease({ dataset_id: DATASET, node_uuid: NODE_B, expires: null, move_here: true })),
    ).toEqual({ status: 409, code: 'NODE_DEAD' });
    expect(await client.listLeases()).toEqual(before);
  });

  it('the refusal carries a Retry-After, so clients that predate NODE_DEAD back off (review s27 F7)', async () => {
    const { service, client } = await started();
    await bDead(service, client);
    const answer = await sendRawWithHeaders(service.url, { dataset_id: DATASET, node_uuid: NODE_B, expires: null });
    expect(answer.status).toBe(409);
    expect(answer.retryAfter).toBe('1');
  });
});

const OTHER = 'dddddddd-0000-4000-8000-000000000002';

/** POST …/leases answered: its status and Retry-After header. */
async function sendRawWithHeaders(url: string, body: object): Promise<{ status: number; retryAfter: string | null }> {
  const res = await fetch(`${url}/v1/configuration/leases`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await res.text();
  return { status: res.status, retryAfter: res.headers.get('retry-after') };
}
