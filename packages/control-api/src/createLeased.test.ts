/**
 * Issue 23 (session 28): POST /v1/configuration/datasets may carry a lease for the new dataset's primary, granted in
 * the create's own change. The Docker plugin's `docker run` of a new volume took a create commit, then a lease commit
 * (its first Mount's POST); now one. A create without it is exactly as before (Flocker v1 clients).
 */
import { FlockerApiError, FlockerClient } from '@flocker/api';
import { createDatasetLeased } from './createLeased';
import { emptyConfiguration, listLeases, registerNode } from './configuration';
import { recordedFileServices } from './testing/commitRecorder';
import { NODE_A, NODE_B, nodeReport, startOnLoopback } from './testing/httpService';
import { A, D1, T0 } from './testing/fixtures';
import type { ControlService } from './server';

jest.setTimeout(60_000);

const known = registerNode(emptyConfiguration, { uuid: A, host: 'a' });

describe('createDatasetLeased (pure)', () => {
  it("with a lease: the dataset and its primary's lease (holder, promise, never expiring) in one change", () => {
    const r = createDatasetLeased(
      known,
      { primary: A, dataset_id: D1, lease: { holder: 'docker', release_on_request: true } },
      undefined,
      undefined,
      T0,
    );
    expect(r.status).toBe(201);
    expect(r.result).toEqual({ dataset_id: D1, primary: A, metadata: {}, deleted: false });
    expect(listLeases(r.config, T0)).toEqual([
      { dataset_id: D1, node_uuid: A, expires: null, holders: ['docker'], release_on_request: true },
    ]);
  });

  it('an empty lease: an unnamed share without the promise, as a lease POST without holder', () => {
    const r = createDatasetLeased(known, { primary: A, dataset_id: D1, lease: {} }, undefined, undefined, T0);
    expect(listLeases(r.config, T0)).toEqual([{ dataset_id: D1, node_uuid: A, expires: null }]);
  });

  it('without a lease: no lease, the dataset as createDataset makes it', () => {
    const r = createDatasetLeased(known, { primary: A, dataset_id: D1 }, undefined, undefined, T0);
    expect(r.config.leases.size).toBe(0);
    expect(r.result.dataset_id).toBe(D1);
  });
});

const start = recordedFileServices('flocker-create-leased-');
const ID = 'dddddddd-0000-4000-8000-00000000000a';

describe('POST /v1/configuration/datasets {lease}', () => {
  it('one commit holds the new dataset and its lease; the lease is listed with its holder and promise', async () => {
    const { client, store } = await start();
    await client.reportNodeState(nodeReport(NODE_A));
    store.watched = ID;
    const from = store.seen.length;
    const made = await client.createDataset({
      primary: NODE_A,
      dataset_id: ID,
      metadata: { name: 'new' },
      lease: { holder: 'docker', release_on_request: true },
    });
    // The answer is the dataset, as for any create (v1 clients parse it strictly enough: no new member).
    expect(made).toEqual({ dataset_id: ID, primary: NODE_A, metadata: { name: 'new' }, deleted: false });
    expect(store.seen.slice(from)).toEqual([{ lease: NODE_A, primary: NODE_A }]);
    expect(await client.listLeases()).toEqual([
      { dataset_id: ID, node_uuid: NODE_A, expires: null, holders: ['docker'], release_on_request: true },
    ]);
  });

  it('an unknown key inside lease (say pinned): 400 naming it, nothing created', async () => {
    const { client, svc } = await start();
    await client.reportNodeState(nodeReport(NODE_A));
    const res = await fetch(`${svc.url}/v1/configuration/datasets`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ primary: NODE_A, dataset_id: ID, lease: { pinned: true } }),
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toContain('pinned');
    expect(await client.listDatasets()).toEqual([]);
    expect(await client.listLeases()).toEqual([]);
  });
});

describe('a create with a lease for a primary held dead', () => {
  let mono = 50_000;
  let wall = 1_800_000_000_000;
  let svc: ControlService | undefined;
  afterEach(async () => {
    await svc?.close();
    svc = undefined;
  });

  it('409 NODE_DEAD and nothing created, as a lease POST for it; without the lease the create goes on', async () => {
    svc = await startOnLoopback({ nodeTimeoutSeconds: 10, leaseGraceSeconds: 2, now: () => wall, monoNow: () => mono });
    const client = new FlockerClient({ baseUrl: svc.url, timeoutMs: 5000 });
    await client.reportNodeState(nodeReport(NODE_A));
    await client.reportNodeState(nodeReport(NODE_B));
    mono += 10_001;
    wall += 10_001;
    await client.reportNodeState(nodeReport(NODE_A));
    await svc.state.checkLiveness();
    expect(svc.state.deadSince(NODE_B)).toBeDefined();
    const err = await client.createDataset({ primary: NODE_B, dataset_id: ID, lease: { holder: 'docker' } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FlockerApiError);
    expect(err).toMatchObject({ status: 409, code: 'NODE_DEAD' });
    expect(await client.listDatasets()).toEqual([]);
    expect(await client.listLeases()).toEqual([]);
    expect((await client.createDataset({ primary: NODE_B, dataset_id: ID })).dataset_id).toBe(ID);
    expect(await client.listLeases()).toEqual([]);
  });
});
