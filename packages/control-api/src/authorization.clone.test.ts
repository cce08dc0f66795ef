/**
 * Review T6 F0c (session 19): a node cloning a dataset another node is using. A node may pull a dataset to itself
 * (how the Docker plugin mounts a volume last used elsewhere), but another node's live lease refuses the pull
 * (409 LEASE_HELD: every volume a container uses is leased). Its clone (source_dataset_id: an implicit snapshot the
 * source's primary takes; or source_snapshot_id of a snapshot of it) was allowed: node B, or any Docker user on B
 * with `-o clone-of=`, got a copy of a volume a container on node A was using. Now refused for a node (403, "clone it
 * as an API user"); an API user still may.
 */
import { FlockerClient, type Identity } from '@flocker/api';
import { authorize, type AuthorizationFacts } from './authorization';
import { authorizationFacts } from './tls';
import { NODE_A, NODE_B, nodeReport, startOnLoopback } from './testing/httpService';

const asA: Identity = { kind: 'node', uuid: NODE_A };
const asB: Identity = { kind: 'node', uuid: NODE_B };
const user: Identity = { kind: 'user', name: 'alice' };
const create = (body: unknown) => ({ method: 'post', route: '/v1/configuration/datasets', params: {}, body }) as const;

describe('a node cloning a volume another node is using', () => {
  it('is refused like a pull of it, from the dataset or from a snapshot of it; an API user still may', async () => {
    const svc = await startOnLoopback();
    try {
      const api = new FlockerClient({ baseUrl: svc.url, timeoutMs: 5_000 });
      await api.reportNodeState(nodeReport(NODE_A, { backend: 'aws' }));
      await api.reportNodeState(nodeReport(NODE_B, { backend: 'aws' }));
      const ds = await api.createDataset({ primary: NODE_A, metadata: { name: 'prod' } });
      const snap = await api.createSnapshot({ dataset_id: ds.dataset_id, metadata: { name: 'nightly' } });
      const free = await api.createDataset({ primary: NODE_A, metadata: { name: 'free' } });
      // A's Docker plugin holds prod: a container on A uses it.
      await api.acquireLease({ dataset_id: ds.dataset_id, node_uuid: NODE_A, expires: null, holder: 'docker' });
      const facts: AuthorizationFacts = authorizationFacts(svc.state);

      // The pull passes authorization; the store refuses it (409 LEASE_HELD).
      const pull = { method: 'post', route: '/v1/configuration/datasets/:id', params: { id: ds.dataset_id } } as const;
      expect(authorize(asB, { ...pull, body: { primary: NODE_B } }, facts)).toEqual({ allowed: true });
      const pulled = await fetch(`${svc.url}/v1/configuration/datasets/${ds.dataset_id}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ primary: NODE_B }),
      });
      expect(pulled.status).toBe(409);

      const fromDataset = create({ primary: NODE_B, source_dataset_id: ds.dataset_id });
      const fromSnapshot = create({ primary: NODE_B, source_snapshot_id: snap.snapshot_id.toUpperCase() });
      for (const req of [fromDataset, fromSnapshot]) {
        const decision = authorize(asB, req, facts);
        expect(decision.allowed).toBe(false);
        expect(!decision.allowed && decision.description).toMatch(
          new RegExp(
            `node ${NODE_B} may not clone .*dataset ${ds.dataset_id}: node ${NODE_A} holds its lease.*clone it as an API user`,
          ),
        );
        expect(authorize(user, req, facts)).toEqual({ allowed: true });
      }
      // The node using it may clone it onto itself; a volume nobody uses may be cloned by any node.
      expect(authorize(asA, create({ primary: NODE_A, source_dataset_id: ds.dataset_id }), facts)).toEqual({
        allowed: true,
      });
      expect(authorize(asB, create({ primary: NODE_B, source_dataset_id: free.dataset_id }), facts)).toEqual({
        allowed: true,
      });
      // Unknown sources are the store's to answer (400 SOURCE_*_UNKNOWN).
      expect(
        authorize(asB, create({ primary: NODE_B, source_snapshot_id: '99999999-9999-4999-8999-999999999999' }), facts),
      ).toEqual({ allowed: true });
      // Once A lets go, B may clone it (as it may pull it).
      await api.releaseLease(ds.dataset_id);
      expect(authorize(asB, fromDataset, authorizationFacts(svc.state))).toEqual({ allowed: true });
    } finally {
      await svc.close();
    }
  });
});
