/**
 * Issue 23: DELETE …/datasets/:id?release_holder= ends that holder's share of the requester's own lease in the
 * delete's change. The Docker plugin's `docker volume rm` of a volume whose lease it kept idle took two commits (the
 * release, then the delete); now one. All or nothing: a lease that remains (another holder) refuses the delete, and
 * another node's lease is never let go of by a node's delete.
 */
import {
  acquireLease,
  type Configuration,
  createDataset,
  deleteDataset,
  emptyConfiguration,
  registerNode,
} from './configuration';
import { ConfigurationError } from './errors';
import { recordedFileServices } from './testing/commitRecorder';
import { idleVolume } from './testing/handover';
import { NODE_A, NODE_B, sendRaw } from './testing/httpService';
import { A, B, D1, T0 } from './testing/fixtures';

jest.setTimeout(60_000);

function leased(holders: readonly string[], node = A): Configuration {
  let c = registerNode(registerNode(emptyConfiguration, { uuid: A, host: 'a' }), { uuid: B, host: 'b' });
  c = createDataset(c, { primary: node, dataset_id: D1 }).config;
  for (const holder of holders)
    c = acquireLease(
      c,
      { dataset_id: D1, node_uuid: node, expires: null, holder, release_on_request: true },
      T0,
    ).config;
  return c;
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof ConfigurationError ? err.code : String(err);
  }
}

describe('deleteDataset with release (pure)', () => {
  it("the requester node's own lease, its only holder: released and deleted in one change", () => {
    const r = deleteDataset(leased(['docker']), D1, T0, { holder: 'docker', requester: A });
    expect(r.result.deleted).toBe(true);
    expect(r.config.leases.get(D1)).toBeUndefined();
  });

  it('without release the leased dataset is refused LEASE_HELD, as before', () => {
    expect(code(() => deleteDataset(leased(['docker']), D1, T0))).toBe('LEASE_HELD');
  });

  it('another holder left (csi): refused LEASE_HELD, nothing released', () => {
    expect(code(() => deleteDataset(leased(['csi', 'docker']), D1, T0, { holder: 'docker', requester: A }))).toBe(
      'LEASE_HELD',
    );
  });

  it("another node's lease is not let go of by a node's delete", () => {
    expect(code(() => deleteDataset(leased(['docker'], B), D1, T0, { holder: 'docker', requester: A }))).toBe(
      'LEASE_HELD',
    );
  });

  it("an API user naming a node (a plugin on plain HTTP) never ends another node's lease (review s27 F1)", () => {
    expect(
      code(() => deleteDataset(leased(['docker'], B), D1, T0, { holder: 'docker', requester: 'api', node: A })),
    ).toBe('LEASE_HELD');
    const r = deleteDataset(leased(['docker'], B), D1, T0, { holder: 'docker', requester: 'api', node: B });
    expect(r.result.deleted).toBe(true);
    expect(r.config.leases.get(D1)).toBeUndefined();
  });

  it('an API user (no node identity) may end any holder share, as DELETE …/leases/:id?holder= lets it', () => {
    const r = deleteDataset(leased(['docker'], B), D1, T0, { holder: 'docker', requester: 'api' });
    expect(r.result.deleted).toBe(true);
    expect(r.config.leases.get(D1)).toBeUndefined();
  });
});

const start = recordedFileServices('flocker-delete-release-');

describe('DELETE …/datasets/:id?release_holder=', () => {
  it("one commit: the holder's lease gone and the dataset deleted", async () => {
    const { client, store } = await start();
    const ds = { dataset_id: await idleVolume(client, 'rm') };
    store.watched = ds.dataset_id;
    const from = store.seen.length;
    const deleted = await client.deleteDataset(ds.dataset_id, { releaseHolder: 'docker' });
    expect(deleted.deleted).toBe(true);
    expect(store.seen.slice(from)).toEqual([{ lease: undefined, primary: NODE_A }]);
    expect(await client.listLeases()).toEqual([]);
  });

  it("?release_node= naming another node than the lease's: 409 LEASE_HELD and nothing committed (review s27 F1)", async () => {
    const { client, store } = await start();
    const ds = { dataset_id: await idleVolume(client, 'rm-other-node', false) };
    store.watched = ds.dataset_id;
    const from = store.seen.length;
    await expect(
      client.deleteDataset(ds.dataset_id, { releaseHolder: 'docker', releaseNode: NODE_B }),
    ).rejects.toMatchObject({ status: 409, code: 'LEASE_HELD' });
    expect(store.seen.slice(from)).toEqual([]);
    expect((await client.getDataset(ds.dataset_id)).deleted).toBe(false);
    const deleted = await client.deleteDataset(ds.dataset_id, { releaseHolder: 'docker', releaseNode: NODE_A });
    expect(deleted.deleted).toBe(true);
    expect(await client.listLeases()).toEqual([]);
  });

  it('another holder keeps the lease: 409 LEASE_HELD and nothing committed', async () => {
    const { client, store } = await start();
    const ds = { dataset_id: await idleVolume(client, 'rm2') };
    await client.acquireLease({ dataset_id: ds.dataset_id, node_uuid: NODE_A, expires: null, holder: 'csi' });
    store.watched = ds.dataset_id;
    const from = store.seen.length;
    await expect(client.deleteDataset(ds.dataset_id, { releaseHolder: 'docker' })).rejects.toMatchObject({
      status: 409,
      code: 'LEASE_HELD',
    });
    expect(store.seen.slice(from)).toEqual([]);
    expect([...((await client.listLeases())[0]?.holders ?? [])].sort()).toEqual(['csi', 'docker']);
    expect((await client.getDataset(ds.dataset_id)).deleted).toBe(false);
  });

  it('an unknown query parameter (a cache-buster ?_=…) is ignored; a known one is still checked (review s27 F13)', async () => {
    const { svc, client } = await start();
    const id = await idleVolume(client, 'busted');
    const target = (query: string): string => `/v1/configuration/datasets/${id}?${query}`;
    const bad = await sendRaw(svc.url, 'DELETE', target('release_holder=&_=1700000000'), { host: 'localhost' });
    expect(bad.status).toBe(400);
    const busted = await sendRaw(svc.url, 'DELETE', target('release_holder=docker&_=1700000000'), {
      host: 'localhost',
    });
    expect(busted.status).toBe(200);
    expect((await client.getDataset(id)).deleted).toBe(true);
  });
});
