/**
 * Review T6 F0c (session 19): a node cloning a dataset another node is using. A node may pull a dataset to itself
 * (how the Docker plugin mounts a volume last used elsewhere), but another node's live lease refuses the pull
 * (409 LEASE_HELD: every volume a container uses is leased). Its live clone (source_dataset_id: an implicit snapshot
 * the source's primary takes now) was allowed: node B, or any Docker user on B with `-o clone-of=`, got a copy of a
 * volume a container on node A was using, as it is now. Refused for a node (403); an API user still may.
 *
 * Review FR19-2: a clone of an existing snapshot (source_snapshot_id; the plugin's `-o from-snapshot=`, README's
 * test copy of a nightly snapshot on another host) reads a point-in-time copy an API user chose to take, not the
 * volume in use: allowed, as a restore of a backup (a snapshot an API user took) is. It stays a read of only what an
 * API user exposed because a node cannot take a snapshot (or a backup) of another node's dataset itself.
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
  it('is refused live (source_dataset_id), like a pull of it; allowed from a snapshot an API user took; an API user may both', async () => {
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

      // The live clone reads the volume as it is now, under its user's feet: refused, saying what to do instead.
      const fromDataset = create({ primary: NODE_B, source_dataset_id: ds.dataset_id });
      const live = authorize(asB, fromDataset, facts);
      expect(live.allowed).toBe(false);
      expect(!live.allowed && live.description).toMatch(
        new RegExp(
          `node ${NODE_B} may not clone dataset ${ds.dataset_id} as it is now: node ${NODE_A} holds its lease.*snapshot.*API user`,
        ),
      );
      expect(authorize(user, fromDataset, facts)).toEqual({ allowed: true });

      // A snapshot an API user took (README: `-o from-snapshot=nightly` for a test copy on another host): allowed.
      const fromSnapshot = create({ primary: NODE_B, source_snapshot_id: snap.snapshot_id.toUpperCase() });
      expect(authorize(asB, fromSnapshot, facts)).toEqual({ allowed: true });
      expect(authorize(user, fromSnapshot, facts)).toEqual({ allowed: true });
      // So is a restore of a backup of it: a backup is a snapshot an API user asked for, written to the store.
      const restore = create({
        primary: NODE_B,
        maximum_size: 1 << 30,
        source_backup: {
          target: 's3://bucket/flocker',
          backup_id: `${ds.dataset_id}/20261206T000000Z-${snap.snapshot_id}`,
        },
      });
      expect(authorize(asB, restore, facts)).toEqual({ allowed: true });

      // What keeps that a read of only what an API user exposed: B cannot take a snapshot or a backup of A's volume,
      // nor set its snapshot schedule.
      const post = (route: string, body: unknown) => ({ method: 'post', route, params: {}, body }) as const;
      for (const [req, what] of [
        [
          post('/v1/configuration/snapshots', { dataset_id: ds.dataset_id }),
          /may not POST \/v1\/configuration\/snapshots/,
        ],
        [post('/v1/configuration/backups', { dataset_id: ds.dataset_id, target: 's3://b/f' }), /may not POST/],
        [
          { ...pull, body: { metadata: { name: 'prod', 'clusterhq:flocker:snapshot-schedule': 'every 5m' } } },
          /may change only datasets whose primary it is/,
        ],
      ] as const) {
        const decision = authorize(asB, req, facts);
        expect(decision.allowed).toBe(false);
        expect(!decision.allowed && decision.description).toMatch(what);
      }

      // The node using it may clone it live onto itself; a volume nobody uses may be cloned by any node.
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
      // Once A lets go, B may clone it live (as it may pull it).
      await api.releaseLease(ds.dataset_id);
      expect(authorize(asB, fromDataset, authorizationFacts(svc.state))).toEqual({ allowed: true });
    } finally {
      await svc.close();
    }
  });
});
