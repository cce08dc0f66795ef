/**
 * GET /v1/state/datasets?dataset_id= (session 11): one dataset's state entry, for waiters that confirm a "mounted"
 * (`flocker volumes move --wait`, the e2e scenarios) without reading the whole list (~18 MB at 100,000 datasets).
 * The entry is the whole list's, by the same rules, the stale "mounted" hidden the same (session 10); over random
 * clusters in clusterState.test (datasetStateOfJson), here over HTTP.
 */
import { FlockerClient, type ManifestationState } from '@flocker/api';
import { routes } from './routes';
import type { ControlService } from './server';
import {
  A,
  B,
  C,
  D1,
  D2,
  D3,
  T0,
  letterReport as report,
  mountedManifestation as mounted,
  stateEntryOf as entryOf,
} from './testing/fixtures';
import { startOnLoopback, configurationVersionOf } from './testing/httpService';
import { openMemoryState } from './testing/viewOracle';
import { Views } from './Views';

describe('GET /v1/state/datasets?dataset_id=', () => {
  let svc: ControlService;
  let client: FlockerClient;

  beforeEach(async () => {
    svc = await startOnLoopback();
    client = new FlockerClient({ baseUrl: svc.url });
  });

  afterEach(async () => {
    await svc.close();
  });

  const get = async (query: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${svc.url}/v1/state/datasets${query}`, { headers });
    return { status: res.status, etag: res.headers.get('etag'), text: await res.text() };
  };

  it("answers the whole list's entry (mounted, attached, a bare volume, unknown), the id in any case", async () => {
    await client.reportNodeState(
      report(A, {
        manifestations: [
          { ...mounted(D1, A), used_bytes: 4096 },
          { dataset_id: D2, blockdevice_id: 'b2', size: 200, status: 'attached', device_path: '/dev/loop1' },
        ],
        volumes: [{ blockdevice_id: 'b3', dataset_id: D3, size: 300, attached_to: null }],
      }),
    );
    const whole = await get('');
    expect(JSON.parse(whole.text)).toHaveLength(3);
    for (const id of [D1, D2, D3]) {
      const one = await get(`?dataset_id=${id}`);
      expect(one.status).toBe(200);
      expect(one.text).toBe(entryOf(whole.text, id));
      expect(await get(`?dataset_id=${id.toUpperCase()}`)).toEqual(one);
    }
    expect(JSON.parse((await get(`?dataset_id=${D1}`)).text)).toEqual([
      { dataset_id: D1, primary: A, maximum_size: 1024 ** 3, path: `/flocker-a/${D1}`, used_bytes: 4096 },
    ]);
    expect((await get('?dataset_id=44444444-4444-4444-8444-444444444444')).text).toBe('[]');
    // The client: the narrow read, its one entry, the verdict on a "mounted".
    expect(await client.listDatasetState({ datasetId: D2.toUpperCase() })).toEqual([
      { dataset_id: D2, primary: A, maximum_size: 200 },
    ]);
    expect(await client.datasetState(D3)).toEqual({ dataset_id: D3, maximum_size: 300 });
    expect(await client.datasetState('44444444-4444-4444-8444-444444444444')).toBeUndefined();
    expect(await client.shownMountedOn(D1.toUpperCase(), A.toUpperCase())).toBe(`/flocker-a/${D1}`);
    expect(await client.shownMountedOn(D2, A)).toBeUndefined();
    expect(await client.shownMountedOn(D1, B)).toBeUndefined();
  });

  it('refuses a malformed or repeated id (400 with a description); other query parameters are ignored as before', async () => {
    for (const query of ['?dataset_id=nope', '?dataset_id=', `?dataset_id=${D1}&dataset_id=${D2}`]) {
      const res = await get(query);
      expect(res.status).toBe(400);
      expect(JSON.parse(res.text)).toMatchObject({ description: expect.any(String) as string });
    }
    await client.reportNodeState(report(A, { manifestations: [mounted(D1, A)] }));
    const whole = await get('');
    expect(await get('?_=1')).toEqual(whole);
  });

  it('carries no ETag: an If-None-Match naming the whole list never answers it 304', async () => {
    await client.reportNodeState(report(A, { manifestations: [mounted(D1, A), mounted(D2, A)] }));
    const whole = await get('');
    expect(whole.etag).not.toBeNull();
    expect((await get('', { 'if-none-match': String(whole.etag) })).status).toBe(304);
    const one = await get(`?dataset_id=${D1}`, { 'if-none-match': String(whole.etag) });
    expect(one).toEqual({ status: 200, etag: null, text: entryOf(whole.text, D1) });
    // The whole list's tag is unchanged by the narrow reads.
    expect((await get('')).etag).toBe(whole.etag);
  });

  /** The committed configuration's version, as an agent reads it from its snapshot's tag. */
  const version = () => configurationVersionOf(client);

  it('hides a stale "mounted" exactly as the whole list does (session 10: a report built before the move back)', async () => {
    await client.reportNodeState(report(A, { configuration_version: await version() }));
    await client.reportNodeState(report(B, { configuration_version: await version() }));
    const id = (await client.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
    const other = (await client.createDataset({ primary: A, maximum_size: 1024 ** 3 })).dataset_id;
    await client.updateDataset(id, { primary: B });
    const away = await version();
    await client.updateDataset(id, { primary: A });
    const back = await version();
    // A's report built at `away` (still mounted), received after the move back; B has not mounted it: hidden, and
    // not shown from A's backend volume either.
    await client.reportNodeState(
      report(A, {
        manifestations: [mounted(id, A), mounted(other, A)],
        volumes: [{ blockdevice_id: `bd-${id}`, dataset_id: id, size: 1024 ** 3, attached_to: 'i-a' }],
        configuration_version: away,
      }),
    );
    expect(svc.state.staleMounts().size).toBe(1);
    const whole = (await get('')).text;
    expect((await get(`?dataset_id=${id}`)).text).toBe('[]');
    expect(entryOf(whole, id)).toBe('[]');
    expect((await get(`?dataset_id=${other}`)).text).toBe(entryOf(whole, other));
    expect(await client.shownMountedOn(id, A)).toBeUndefined();
    // B reports it mounted (before its unmount for the move back): shown at B, in both.
    await client.reportNodeState(report(B, { manifestations: [mounted(id, B)], configuration_version: away }));
    const withB = (await get('')).text;
    expect(JSON.parse((await get(`?dataset_id=${id}`)).text)).toEqual([
      { dataset_id: id, primary: B, maximum_size: 1024 ** 3, path: `/flocker-b/${id}` },
    ]);
    expect((await get(`?dataset_id=${id}`)).text).toBe(entryOf(withB, id));
    expect(await client.shownMountedOn(id, A)).toBeUndefined();
    // A reports having acted on the move back: shown at A.
    await client.reportNodeState(report(B, { configuration_version: back }));
    await client.reportNodeState(report(A, { manifestations: [mounted(id, A)], configuration_version: back }));
    expect(await client.shownMountedOn(id, A)).toBe(`/flocker-a/${id}`);
    expect((await get(`?dataset_id=${id}`)).text).toBe(entryOf((await get('')).text, id));
  });

  it('at 10,000 datasets answers a few hundred bytes where the whole list is megabytes', async () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => `${String(i).padStart(8, '0')}-0000-4000-8000-000000000000`);
    // Ten nodes of 1,000 (a report is at most 1 MiB).
    for (let n = 0; n < 10; n++) {
      const node = `${n}${A.slice(1)}`;
      const own = ids.slice(n * 1_000, (n + 1) * 1_000);
      await client.reportNodeState(report(node, { manifestations: own.map((id) => mounted(id, node)) }));
    }
    const whole = await get('');
    const one = await get(`?dataset_id=${ids[5_000] ?? ''}`);
    expect(one.text).toBe(entryOf(whole.text, ids[5_000] ?? ''));
    expect(whole.text.length).toBeGreaterThan(1_500_000);
    expect(one.text.length).toBeLessThan(200);
  });
});

describe('a node past its timeout before the liveness check that declares it dead', () => {
  it('is in the narrow answer exactly when it is in the whole list the service serves then', async () => {
    let t = T0;
    // Nodes time out after 10 s; liveness is checked only when asked.
    const state = await openMemoryState(() => t);
    try {
      const views = new Views(state, true);
      const route = routes.find((r) => r.method === 'get' && r.path === '/v1/state/datasets');
      const read = async (datasetId?: string): Promise<string> => {
        const query = datasetId === undefined ? {} : { dataset_id: datasetId };
        const ctx = { params: {}, query, body: undefined, ifMatches: undefined, signal: new AbortController().signal };
        const reply = await route?.handle(state, ctx, views);
        return String(reply?.json);
      };
      const agree = async (): Promise<string> => {
        const whole = await read();
        for (const id of [D1, D2, D3]) expect(await read(id)).toBe(entryOf(whole, id));
        return whole;
      };
      const at = (id: string, node: string): ManifestationState => ({
        dataset_id: id,
        blockdevice_id: `b-${id}`,
        size: 5,
        status: 'mounted',
        path: `/${node.slice(0, 1)}/${id}`,
      });
      await state.report(report(A, { manifestations: [at(D1, A), at(D2, A)] }));
      t += 5_000;
      await state.report(
        report(B, {
          manifestations: [at(D2, B)],
          volumes: [{ blockdevice_id: 'v1', dataset_id: D1, size: 7, attached_to: null }],
        }),
      );
      expect(JSON.parse(await agree())).toHaveLength(2);
      // A is past its timeout; the list served (this state generation's) still shows A's entries: so does the
      // narrow read, not B's.
      t += 6_000;
      expect(entryOf(await agree(), D2)).toContain(`"primary":"${A}"`);
      // A new generation before the check: the list is built without A, the narrow read too.
      await state.report(report(C));
      expect(entryOf(await agree(), D2)).toContain(`"primary":"${B}"`);
      // Declared dead.
      await state.checkLiveness();
      expect(entryOf(await agree(), D1)).toBe(JSON.stringify([{ dataset_id: D1, maximum_size: 7 }]));
    } finally {
      await state.close();
    }
  });
});
