/**
 * Session 24 (issue 23): a lease taken with move_here also makes its node the dataset's primary, in the lease's own
 * write: the Docker plugin's Mount of a volume idle on another node is one request, not a lease POST and a move POST
 * (the lease POST, arriving after the hand-over's release, took a commit of its own: 4 of 42 traced moves). All or
 * nothing: a move refused (as POST …/datasets/:id {primary} refuses it) leaves no lease. File store, commits recorded.
 */
import { buildOpenApi } from './openapi';
import { routes } from './routes';
import { recordedFileServices } from './testing/commitRecorder';
import { eventually, HOLDER, holderAnswers, idleVolume, leaseBecomes, REQUESTER, timed } from './testing/handover';
import { nodeReport } from './testing/httpService';

jest.setTimeout(60_000);

const start = recordedFileServices('flocker-move-here-');

const pluginLease = (id: string) =>
  ({
    dataset_id: id,
    node_uuid: REQUESTER,
    expires: null,
    holder: 'docker',
    release_on_request: true,
    move_here: true,
  }) as const;

describe('a lease with move_here', () => {
  it("an idle volume's hand-over: one request, granted and moved in the release's commit", async () => {
    const { svc, client, store } = await start();
    const id = await idleVolume(client, 'idle');
    store.watched = id;
    const lease = timed(client.acquireLease(pluginLease(id)));
    await leaseBecomes(client, id, (l) => l?.release_requested?.by === REQUESTER);
    await eventually(() => svc.state.configurationListenerCount === 1);
    const from = store.seen.length;
    await holderAnswers(client, id, 'release');
    const { value, error } = await lease;
    expect(error).toBeUndefined();
    expect(value).toMatchObject({ node_uuid: REQUESTER, holders: ['docker'], release_on_request: true });
    expect((await client.getDataset(id)).primary).toBe(REQUESTER);
    // From the holder's lease (request recorded) straight to the requester's, moved: one commit.
    expect(store.seen.slice(from)).toEqual([{ lease: REQUESTER, primary: REQUESTER }]);
    expect(svc.state.configurationListenerCount).toBe(0);
    expect(svc.state.latestListenerCount).toBe(0);
  });

  it('no lease on the volume: leased and moved in one commit (201)', async () => {
    const { client, store } = await start();
    const id = await idleVolume(client, 'free');
    await client.releaseLease(id, { holder: 'docker' });
    store.watched = id;
    const from = store.seen.length;
    const lease = await client.acquireLease(pluginLease(id));
    expect(lease.node_uuid).toBe(REQUESTER);
    expect(store.seen.slice(from)).toEqual([{ lease: REQUESTER, primary: REQUESTER }]);
    // Taken again (the node's lease, already its primary): a renewal, nothing moves.
    const again = await client.acquireLease(pluginLease(id));
    expect(again.node_uuid).toBe(REQUESTER);
    expect((await client.getDataset(id)).primary).toBe(REQUESTER);
  });

  it('declined: refused LEASE_HELD as before, nothing moved', async () => {
    const { client, store } = await start();
    const id = await idleVolume(client, 'declined');
    store.watched = id;
    const asked = timed(client.acquireLease(pluginLease(id)));
    const from = store.seen.length;
    await holderAnswers(client, id, 'decline');
    const { error } = await asked;
    expect({ status: error?.status, code: error?.code }).toEqual({ status: 409, code: 'LEASE_HELD' });
    expect(store.seen.slice(from).every((s) => s.lease === HOLDER && s.primary === HOLDER)).toBe(true);
    expect((await client.getDataset(id)).primary).toBe(HOLDER);
  });

  it("a plain lease's holder (no promise) refuses it at once: no move", async () => {
    const { client } = await start();
    const id = await idleVolume(client, 'plain', false);
    const { error } = await timed(client.acquireLease(pluginLease(id)));
    expect({ status: error?.status, code: error?.code }).toEqual({ status: 409, code: 'LEASE_HELD' });
    expect((await client.getDataset(id)).primary).toBe(HOLDER);
  });

  it('a refused move takes no lease: unknown dataset 404, a size beyond the new node 400', async () => {
    const { client } = await start();
    const id = await idleVolume(client, 'big');
    const unknown = '99999999-9999-4999-8999-999999999999';
    const missing = await timed(client.acquireLease({ ...pluginLease(unknown) }));
    expect({ status: missing.error?.status, code: missing.error?.code }).toEqual({
      status: 404,
      code: 'DATASET_NOT_FOUND',
    });
    expect((await client.listLeases()).some((l) => l.dataset_id === unknown)).toBe(false);
    // The requester's backend cannot hold the dataset's size: the move's refusal, and the lease stays the holder's.
    await client.updateDataset(id, { maximum_size: 1024 * 1024 * 1024 });
    await client.releaseLease(id, { holder: 'docker' });
    await client.reportNodeState(nodeReport(REQUESTER, { max_volume_size: 1024 * 1024 }));
    const big = await timed(client.acquireLease(pluginLease(id)));
    expect({ status: big.error?.status, code: big.error?.code }).toEqual({ status: 400, code: 'SIZE_BEYOND_BACKEND' });
    expect((await client.listLeases()).some((l) => l.dataset_id === id)).toBe(false);
    expect((await client.getDataset(id)).primary).toBe(HOLDER);
  });

  it('false or another type is refused 400 (the field is only ever true)', async () => {
    const { svc, client } = await start();
    const id = await idleVolume(client, 'typed');
    const res = await fetch(`${svc.url}/v1/configuration/leases`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ dataset_id: id, node_uuid: REQUESTER, expires: null, move_here: false }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      code: 'INVALID_REQUEST',
      description: expect.stringContaining('move_here'),
    });
  });

  it('is in the OpenAPI document, with the 404 of its move', () => {
    const doc = JSON.stringify(buildOpenApi(routes));
    expect(doc).toContain('"move_here"');
    const parsed = JSON.parse(doc) as {
      paths: Record<string, Record<string, { responses?: Record<string, unknown> }>>;
    };
    expect(Object.keys(parsed.paths['/v1/configuration/leases']?.['post']?.responses ?? {})).toContain('404');
  });
});
