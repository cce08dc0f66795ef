/**
 * The data-node marker through the API (issue 24): a client may neither set nor remove it (400, a
 * JSON description saying why); a move (the dataset's update, a container's move, flocker-deploy)
 * records it in its own commit, from what this service knows of the nodes: the holder, the old
 * primary when it has not reported since the service started (a restart), nothing when the old
 * primary reported holding nothing; a block backend's dataset is left as it is.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  DatasetConfiguration,
  FlockerClient,
  METADATA_ACCEPT_DATA_LOSS_KEY,
  METADATA_DATA_NODE_KEY,
  METADATA_MAX_KEYS,
  type NodeReport,
} from '@flocker/api';
import {
  closeAndRemove,
  configurationVersionOf,
  NODE_A as A,
  NODE_B as B,
  nodeReport,
  postJson as post,
  type ServiceOnDir,
  startOnDir,
} from './testing/httpService';

const D = '11111111-1111-4111-8111-111111111111';
const C = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc';

/** A local-backend node's report: the live copies it lists and what its pool retains. */
function localReport(uuid: string, copies: string[] = [], retained: string[] = []): NodeReport {
  return nodeReport(uuid, {
    backend: 'local-btrfs',
    manifestations: copies.map((id) => ({ dataset_id: id, blockdevice_id: id, size: 1 << 26, status: 'mounted' })),
    ...(retained.length > 0 ? { retained } : {}),
  });
}

const marker = (d: { metadata: Record<string, string> }): string | undefined => d.metadata[METADATA_DATA_NODE_KEY];

describe('the data-node marker through the API', () => {
  let dir: string;
  let svc: ServiceOnDir;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'data-node-'));
    svc = await startOnDir(dir);
  });
  afterEach(() => closeAndRemove(svc.svc, dir));

  /** The service restarted on its directory: the configuration kept, every node report forgotten. */
  async function restart(): Promise<void> {
    await svc.svc.close();
    svc = await startOnDir(dir);
  }

  async function create(primary: string, metadata: Record<string, string> = {}): Promise<void> {
    await svc.client.createDataset({ primary, dataset_id: D, metadata });
  }

  it('a client may not set it in a create, nor set or remove it in an update: 400 saying why', async () => {
    await svc.client.reportNodeState(localReport(A));
    const created = await post(svc, '/v1/configuration/datasets', {
      primary: A,
      metadata: { [METADATA_DATA_NODE_KEY]: A },
    });
    expect(created.status).toBe(400);
    expect(created.json['description']).toContain(`${METADATA_DATA_NODE_KEY} is set by the control service`);
    await create(A);
    for (const value of [B, null]) {
      const updated = await post(svc, `/v1/configuration/datasets/${D}`, {
        metadata: { [METADATA_DATA_NODE_KEY]: value },
      });
      expect(updated.status).toBe(400);
      expect(updated.json['description']).toContain('a client may not set or remove it');
    }
    // The opt-in to start empty is the client's to set.
    const optIn = await post(svc, `/v1/configuration/datasets/${D}`, {
      metadata: { [METADATA_ACCEPT_DATA_LOSS_KEY]: 'true' },
    });
    expect(optIn.status).toBe(200);
  });

  it('a move off a node holding the live copy records it, in the move’s own commit', async () => {
    await svc.client.reportNodeState(localReport(A));
    await svc.client.reportNodeState(localReport(B));
    await create(A, { name: 'db' });
    await svc.client.reportNodeState(localReport(A, [D]));
    const before = await configurationVersionOf(svc.client);
    const moved = await svc.client.updateDataset(D, { primary: B });
    expect(moved).toEqual({
      dataset_id: D,
      primary: B,
      metadata: { name: 'db', [METADATA_DATA_NODE_KEY]: A },
      deleted: false,
    });
    expect(await configurationVersionOf(svc.client)).toBe(before + 1);
    expect(await svc.client.getDataset(D)).toEqual(moved);
  });

  it('(a) the service restarted, the holder not reported again: the move records the old primary', async () => {
    await svc.client.reportNodeState(localReport(A));
    await svc.client.reportNodeState(localReport(B));
    await create(A);
    await svc.client.reportNodeState(localReport(A, [D]));
    await restart();
    await svc.client.reportNodeState(localReport(B));
    expect(marker(await svc.client.updateDataset(D, { primary: B }))).toBe(A);
  });

  it('(b) the old primary dead and forgotten, the data on it: the move records it', async () => {
    await svc.client.reportNodeState(localReport(A));
    await svc.client.reportNodeState(localReport(B));
    await create(A);
    await svc.client.reportNodeState(localReport(A, [D]));
    await restart();
    await svc.client.reportNodeState(localReport(B));
    await svc.client.reportNodeState(localReport(C));
    // Moved to B, then on to C before anyone reported it: A stays recorded (B reported holding nothing).
    expect(marker(await svc.client.updateDataset(D, { primary: B }))).toBe(A);
    expect(marker(await svc.client.updateDataset(D, { primary: C }))).toBe(A);
  });

  it('a node retaining the dataset (a move in flight, no live copy shown): recorded', async () => {
    await svc.client.reportNodeState(localReport(A));
    await svc.client.reportNodeState(localReport(B, [], [D]));
    await create(A);
    expect(marker(await svc.client.updateDataset(D, { primary: B }))).toBe(B);
  });

  it('a standby replica after a restart forgot its dead primary: the move to the replica node records the primary (review FR)', async () => {
    await svc.client.reportNodeState(localReport(A));
    await svc.client.reportNodeState(localReport(B));
    await create(A);
    await svc.client.reportNodeState(localReport(A, [D]));
    await svc.client.reportNodeState(localReport(B, [], [D]));
    await restart();
    // A never reports again; B does, listing its replica. Named B, B's agent would take the marker for itself (no
    // refusal naming A, no way to promote its replica); named A, it refuses naming A and both opt-ins promote.
    await svc.client.reportNodeState(localReport(B, [], [D]));
    expect(marker(await svc.client.updateDataset(D, { primary: B }))).toBe(A);
  });

  it('the old primary reported holding nothing of it (a new dataset moved at once): no marker, a stale one removed', async () => {
    await svc.client.reportNodeState(localReport(A));
    await svc.client.reportNodeState(localReport(B));
    await create(A);
    expect(marker(await svc.client.updateDataset(D, { primary: B }))).toBeUndefined();
    // A marker a move recorded goes once the service knows nobody holds the data.
    await svc.client.reportNodeState(localReport(B, [D]));
    expect(marker(await svc.client.updateDataset(D, { primary: A }))).toBe(B);
    await svc.client.reportNodeState(localReport(B));
    expect(marker(await svc.client.updateDataset(D, { primary: B }))).toBeUndefined();
  });

  it('a block backend’s dataset: no marker', async () => {
    await svc.client.reportNodeState(nodeReport(A));
    await svc.client.reportNodeState(nodeReport(B));
    await create(A);
    expect(marker(await svc.client.updateDataset(D, { primary: B }))).toBeUndefined();
  });

  it('a move drops an earlier accept-data-loss: a later restart race is refused again, not started empty (review FR)', async () => {
    await svc.client.reportNodeState(localReport(A));
    await svc.client.reportNodeState(localReport(B));
    await create(A, { name: 'db' });
    // An earlier refusal answered: the opt-in set.
    await svc.client.updateDataset(D, { metadata: { [METADATA_ACCEPT_DATA_LOSS_KEY]: 'true' } });
    await svc.client.reportNodeState(localReport(A, [D]));
    await restart();
    await svc.client.reportNodeState(localReport(B));
    // A not reported again: B must wait for it, so the old opt-in must not come along.
    expect((await svc.client.updateDataset(D, { primary: B })).metadata).toEqual({
      name: 'db',
      [METADATA_DATA_NODE_KEY]: A,
    });
  });

  it('a block backend’s dataset moved after a restart, before its primary reported again: no marker (review FR)', async () => {
    await svc.client.reportNodeState(nodeReport(A));
    await svc.client.reportNodeState(nodeReport(B));
    await create(A);
    await restart();
    // The new primary reports a block backend: the dataset is no local one, whatever the old primary has not said.
    await svc.client.reportNodeState(nodeReport(B));
    expect(marker(await svc.client.updateDataset(D, { primary: B }))).toBeUndefined();
  });

  it('a container’s move and flocker-deploy move the dataset with the marker', async () => {
    await svc.client.reportNodeState(localReport(A));
    await svc.client.reportNodeState(localReport(B));
    await create(A, { name: 'web' });
    await svc.client.reportNodeState(localReport(A, [D]));
    await svc.client.createContainer({
      name: 'web',
      node_uuid: A,
      image: 'nginx',
      volumes: [{ dataset_id: D, mountpoint: '/d' }],
    });
    await svc.client.moveContainer('web', { node_uuid: B });
    expect(await svc.client.getDataset(D)).toMatchObject({ primary: B, metadata: { [METADATA_DATA_NODE_KEY]: A } });
    await svc.client.reportNodeState(localReport(A));
    await svc.client.reportNodeState(localReport(B, [D]));
    await svc.client.compose({
      applications: { version: 1, applications: { web: { image: 'nginx', volume: { mountpoint: '/d' } } } },
      deployment: { version: 1, nodes: { [A]: ['web'] } },
    });
    expect(await svc.client.getDataset(D)).toMatchObject({ primary: A, metadata: { [METADATA_DATA_NODE_KEY]: B } });
  });

  it('answers stay what a Flocker v1 client parses; the marker does not count toward the metadata limit', async () => {
    await svc.client.reportNodeState(localReport(A, [D]));
    await svc.client.reportNodeState(localReport(B));
    const keys = Object.fromEntries(Array.from({ length: METADATA_MAX_KEYS - 1 }, (_, i) => [`k${i}`, 'v']));
    await create(A, keys);
    const moved = await post(svc, `/v1/configuration/datasets/${D}`, { primary: B });
    expect(moved.status).toBe(200);
    expect(DatasetConfiguration.parse(moved.json).metadata).toEqual({ ...keys, [METADATA_DATA_NODE_KEY]: A });
    // The 16th client key: taken (the marker, a 17th key, is not counted); a 17th client key is refused as before.
    const optIn = await post(svc, `/v1/configuration/datasets/${D}`, {
      metadata: { [METADATA_ACCEPT_DATA_LOSS_KEY]: 'true' },
    });
    expect(optIn.status).toBe(200);
    expect(DatasetConfiguration.parse(optIn.json).metadata).toEqual({
      ...keys,
      [METADATA_DATA_NODE_KEY]: A,
      [METADATA_ACCEPT_DATA_LOSS_KEY]: 'true',
    });
    const tooMany = await post(svc, `/v1/configuration/datasets/${D}`, {
      metadata: { 'clusterhq:flocker:replicas': '1' },
    });
    expect(tooMany.status).toBe(400);
    expect(tooMany.json['code']).toBe('METADATA_TOO_MANY_KEYS');
    const listed = await new FlockerClient({ baseUrl: svc.svc.url, timeoutMs: 5000 }).listDatasets();
    expect(listed.map((d) => marker(d))).toEqual([A]);
  });
});
