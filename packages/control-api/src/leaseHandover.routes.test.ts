/**
 * The lease fields of the hand-over on the wire (session 21): release_on_request stored and shown, a lease without
 * it shown exactly as a v1 lease, the decline route (DELETE …/release-request).
 */
import { FlockerApiError, FlockerClient } from '@flocker/api';
import { buildOpenApi } from './openapi';
import { routes } from './routes';
import { NODE_A, nodeReport, startOnLoopback } from './testing/httpService';

async function failure(p: Promise<unknown>): Promise<FlockerApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FlockerApiError);
  return err as FlockerApiError;
}

describe('release_on_request leases over HTTP', () => {
  it('stores and shows release_on_request; a lease without it is the v1 lease; re-POST sets and clears it', async () => {
    const svc = await startOnLoopback();
    try {
      const client = new FlockerClient({ baseUrl: svc.url });
      await client.reportNodeState(nodeReport(NODE_A));
      const plain = await client.createDataset({ primary: NODE_A, metadata: { name: 'plain' } });
      const idle = await client.createDataset({ primary: NODE_A, metadata: { name: 'idle' } });
      await client.acquireLease({ dataset_id: plain.dataset_id, node_uuid: NODE_A, expires: null });
      const granted = await client.acquireLease({
        dataset_id: idle.dataset_id,
        node_uuid: NODE_A,
        expires: null,
        holder: 'docker',
        release_on_request: true,
      });
      expect(granted.release_on_request).toBe(true);
      // The raw v1 answer: exactly the members a Flocker v1 client always saw, for a lease not using the extension.
      const raw = (await (await fetch(`${svc.url}/v1/configuration/leases`)).json()) as Array<Record<string, unknown>>;
      const byId = new Map(raw.map((l) => [l['dataset_id'], l]));
      expect(Object.keys(byId.get(plain.dataset_id) ?? {}).sort()).toEqual(['dataset_id', 'expires', 'node_uuid']);
      expect(byId.get(idle.dataset_id)).toEqual({
        dataset_id: idle.dataset_id,
        node_uuid: NODE_A,
        expires: null,
        holders: ['docker'],
        release_on_request: true,
      });
      // A renewal that says nothing keeps it; false clears it.
      const renewed = await client.acquireLease({
        dataset_id: idle.dataset_id,
        node_uuid: NODE_A,
        expires: null,
        holder: 'docker',
      });
      expect(renewed.release_on_request).toBe(true);
      const cleared = await client.acquireLease({
        dataset_id: idle.dataset_id,
        node_uuid: NODE_A,
        expires: null,
        holder: 'docker',
        release_on_request: false,
      });
      expect(cleared.release_on_request).toBeUndefined();
    } finally {
      await svc.close();
    }
  });

  it('decline: the lease as it is when no request is pending; 404 without a lease', async () => {
    const svc = await startOnLoopback();
    try {
      const client = new FlockerClient({ baseUrl: svc.url });
      await client.reportNodeState(nodeReport(NODE_A));
      const ds = await client.createDataset({ primary: NODE_A, metadata: { name: 'v' } });
      const none = await failure(client.declineReleaseRequest(ds.dataset_id));
      expect({ status: none.status, code: none.code }).toEqual({ status: 404, code: 'LEASE_NOT_FOUND' });
      await client.acquireLease({
        dataset_id: ds.dataset_id,
        node_uuid: NODE_A,
        expires: null,
        release_on_request: true,
      });
      expect(await client.declineReleaseRequest(ds.dataset_id)).toEqual({
        dataset_id: ds.dataset_id,
        node_uuid: NODE_A,
        expires: null,
        release_on_request: true,
      });
    } finally {
      await svc.close();
    }
  });
});

it('the OpenAPI document has the decline route and the lease members', () => {
  const doc = JSON.stringify(buildOpenApi(routes));
  const parsed = JSON.parse(doc) as { paths: Record<string, Record<string, { responses?: Record<string, unknown> }>> };
  const decline = parsed.paths['/v1/configuration/leases/{dataset_id}/release-request']?.['delete'];
  expect(Object.keys(decline?.responses ?? {}).sort()).toEqual(['200', '400', '403', '404', '412', '503']);
  expect(doc).toContain('release_on_request');
  expect(doc).toContain('release_requested');
});
