/**
 * DELETE /v1/configuration/nodes/:node (session 18, review FR finding 9): the statuses and bodies an operator sees,
 * and that only an API user may forget a node (a node certificate never: the route is not one a node is given).
 */
import { FlockerApiError, FlockerClient, type Identity } from '@flocker/api';
import { authorize } from './authorization';
import type { ControlService } from './server';
import { NODE_A, NODE_B, nodeReport, startOnLoopback } from './testing/httpService';

const C = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';
let svc: ControlService | undefined;

afterEach(async () => {
  await svc?.close();
  svc = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function refusal(p: Promise<unknown>): Promise<FlockerApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof FlockerApiError)) throw new Error(`expected an API error, got ${String(err)}`);
  return err;
}

it('404 unknown, 409 with what to do first while it reports, 200 once dead, then 404', async () => {
  svc = await startOnLoopback({ nodeTimeoutSeconds: 0.3 });
  const client = new FlockerClient({ baseUrl: svc.url });
  await client.reportNodeState(nodeReport(NODE_A));
  await client.reportNodeState(nodeReport(NODE_B));

  expect(await refusal(client.forgetNode(C))).toMatchObject({ status: 404, code: 'NODE_NOT_FOUND' });

  const res = await fetch(`${svc.url}/v1/configuration/nodes/10.0.0.1`, { method: 'DELETE' });
  expect(res.status).toBe(409);
  expect(await res.json()).toEqual({
    code: 'NODE_IN_USE',
    description: expect.stringMatching(
      new RegExp(`^host 10\\.0\\.0\\.1 \\(node ${NODE_A}\\) may not be forgotten yet: `),
    ),
    errors: [expect.stringMatching(/reporting/)],
  });

  await sleep(400);
  await client.reportNodeState(nodeReport(NODE_B));
  // Dead, it is still a row of the cluster's state (alive: false) until forgotten.
  expect((await client.waitForCluster(undefined, 0)).nodes.map((n) => [n.uuid, n.alive])).toEqual([
    [NODE_A, false],
    [NODE_B, true],
  ]);
  expect(await client.forgetNode('10.0.0.1')).toEqual({
    uuid: NODE_A,
    host: '10.0.0.1',
    accepted_loss_datasets: [],
    data_node_datasets: [],
  });
  expect((await client.waitForCluster(undefined, 0)).nodes.map((n) => n.uuid)).toEqual([NODE_B]);
  expect(await refusal(client.forgetNode(NODE_A))).toMatchObject({ status: 404, code: 'NODE_NOT_FOUND' });
});

it('a GET of the path is 405 (only DELETE is served)', async () => {
  svc = await startOnLoopback();
  const res = await fetch(`${svc.url}/v1/configuration/nodes/${NODE_A}`);
  expect(res.status).toBe(405);
});

describe('who may forget a node', () => {
  const req = { method: 'delete', route: '/v1/configuration/nodes/:node', params: { node: NODE_A }, body: undefined };
  const facts = { leaseHolder: () => undefined, primaryOf: () => undefined, leasePinned: () => false };
  it('an API user', () => {
    const user: Identity = { kind: 'user', name: 'admin' };
    expect(authorize(user, req, facts)).toEqual({ allowed: true });
  });
  it('never a node, not even itself', () => {
    for (const uuid of [NODE_A, NODE_B]) {
      expect(authorize({ kind: 'node', uuid }, req, facts)).toEqual({
        allowed: false,
        description: `node ${uuid} may not DELETE /v1/configuration/nodes/:node.`,
      });
    }
  });
  it('nor the control certificate', () => {
    expect(authorize({ kind: 'control' }, req, facts)).toMatchObject({ allowed: false });
  });
});
