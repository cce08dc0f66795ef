import { randomUUID } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { apiRoutes, type DatasetConfiguration, FlockerClient, type NodeReport } from '@flocker/api';
import { emptyConfiguration, type Configuration } from './configuration';
import type { ControlState } from './ControlState';
import { buildOpenApi } from './openapi';
import { PersistentMap } from './PersistentMap';
import { Views } from './Views';
import { routes } from './routes';
import type { ControlService } from './server';
import { NODE_A as A, NODE_B as B, nodeReport, startOnDir } from './testing/httpService';

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function raw(method: 'GET' | 'HEAD', url: string, headers: Record<string, string> = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    req.end();
  });
}

const LISTS = ['/v1/configuration/datasets', '/v1/state/datasets'] as const;

describe('whole lists: entity tags and conditional reads (issue 23)', () => {
  let dir: string;
  let svc: ControlService;
  let client: FlockerClient;
  /** Reads every list whole: what a conditional read must agree with. */
  let plain: FlockerClient;

  async function start(nodeTimeoutSeconds = 30): Promise<void> {
    ({ svc, client } = await startOnDir(dir, nodeTimeoutSeconds));
    plain = new FlockerClient({ baseUrl: svc.url, conditionalReads: false, timeoutMs: 5000 });
  }

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'flocker-list-tags-'));
    await start();
    await client.reportNodeState(nodeReport(A));
    await client.reportNodeState(nodeReport(B));
  });
  afterEach(async () => {
    await svc.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const tagOf = async (list: string): Promise<string> => String((await raw('GET', svc.url + list)).headers.etag);

  it('a tag is strong and names this process (its epoch): a restart at the same version never answers 304 to an old tag', async () => {
    await client.createDataset({ primary: A });
    const before = await tagOf(LISTS[0]);
    expect(before).toMatch(/^"[^"]+"$/);
    expect(before).toContain(svc.state.instanceId);
    const version = svc.state.configurationTag;
    await svc.close();
    await start();
    await client.reportNodeState(nodeReport(A));
    expect(svc.state.configurationTag).toBe(version);
    const after = await raw('GET', svc.url + LISTS[0], { 'if-none-match': before });
    expect(after.status).toBe(200);
    expect(after.headers.etag).not.toBe(before);
    expect(JSON.parse(after.body.toString())).toEqual(await plain.listDatasets());
  });

  it('another replica with the same configuration version does not match a tag of this one (failover)', async () => {
    await client.createDataset({ primary: A });
    const tag = await tagOf(LISTS[0]);
    const copy = mkdtempSync(path.join(tmpdir(), 'flocker-list-tags-copy-'));
    const version = svc.state.configurationTag;
    await svc.close();
    cpSync(dir, copy, { recursive: true });
    const other = await startOnDir(copy);
    try {
      expect(other.svc.state.configurationTag).toBe(version);
      expect((await raw('GET', other.svc.url + LISTS[0], { 'if-none-match': tag })).status).toBe(200);
    } finally {
      await other.svc.close();
      rmSync(copy, { recursive: true, force: true });
      await start();
    }
  });

  it('every write that changes a list changes its tag; an old tag then gets the whole new list', async () => {
    const writes: [string, () => Promise<unknown>][] = [];
    const d = await client.createDataset({ primary: A, maximum_size: 67108864 });
    writes.push(
      ['create', () => client.createDataset({ primary: B })],
      ['resize', () => client.updateDataset(d.dataset_id, { maximum_size: 134217728 })],
      ['move', () => client.updateDataset(d.dataset_id, { primary: B })],
      ['delete', () => client.deleteDataset(d.dataset_id)],
    );
    for (const [name, write] of writes) {
      const tag = await tagOf(LISTS[0]);
      expect((await raw('GET', svc.url + LISTS[0], { 'if-none-match': tag })).status).toBe(304);
      await write();
      const after = await raw('GET', svc.url + LISTS[0], { 'if-none-match': tag });
      expect({ name, status: after.status }).toEqual({ name, status: 200 });
      expect(JSON.parse(after.body.toString())).toEqual(await plain.listDatasets());
      // The conditional client follows: what it answers is the whole list read now.
      expect(await client.listDatasets()).toEqual(await plain.listDatasets());
    }
    // The state list: a report that says something new changes it, the same report again does not.
    const manifested = nodeReport(A);
    const withVolume = {
      ...manifested,
      manifestations: [
        { dataset_id: d.dataset_id, blockdevice_id: 'b1', size: 67108864, status: 'mounted' as const, path: '/p' },
      ],
    };
    let tag = await tagOf(LISTS[1]);
    await client.reportNodeState(withVolume);
    const after = await raw('GET', svc.url + LISTS[1], { 'if-none-match': tag });
    expect(after.status).toBe(200);
    expect(JSON.parse(after.body.toString())).toEqual(await plain.listDatasetState());
    tag = String(after.headers.etag);
    await client.reportNodeState(withVolume);
    expect((await raw('GET', svc.url + LISTS[1], { 'if-none-match': tag })).status).toBe(304);
    expect(await client.listDatasetState()).toEqual(await plain.listDatasetState());
    expect(await client.listDatasetState()).toEqual([
      { dataset_id: d.dataset_id, primary: A, maximum_size: 67108864, path: '/p' },
    ]);
  });

  it('a write that leaves the datasets as they were (a lease) keeps the datasets tag: a poller still gets 304', async () => {
    const d = await client.createDataset({ primary: A, maximum_size: 67108864 });
    const tag = await tagOf(LISTS[0]);
    await client.acquireLease({ dataset_id: d.dataset_id, node_uuid: A, expires: null });
    expect((await raw('GET', svc.url + LISTS[0], { 'if-none-match': tag })).status).toBe(304);
    expect(await client.listDatasets()).toEqual(await plain.listDatasets());
    // The next change to the datasets gets a new tag again.
    await client.updateDataset(d.dataset_id, { maximum_size: 134217728 });
    expect((await raw('GET', svc.url + LISTS[0], { 'if-none-match': tag })).status).toBe(200);
  });

  it('a node that dies changes the state list and its tag', async () => {
    await svc.close();
    await start(1);
    await client.reportNodeState({
      ...nodeReport(A),
      manifestations: [
        {
          dataset_id: '11111111-1111-4111-8111-111111111111',
          blockdevice_id: 'b1',
          size: 67108864,
          status: 'attached' as const,
        },
      ],
    });
    const tag = await tagOf(LISTS[1]);
    expect(await client.listDatasetState()).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 2500));
    expect((await raw('GET', svc.url + LISTS[1], { 'if-none-match': tag })).status).toBe(200);
    expect(await client.listDatasetState()).toEqual([]);
  });

  it('a version seen again by the same process (a store restored under it) gets a new tag, never a 304 for the old body', () => {
    const dataset = (n: number): [string, DatasetConfiguration] => {
      const id = `00000000-0000-4000-8000-00000000000${n}`;
      return [id, { dataset_id: id, primary: A, metadata: {}, deleted: false }];
    };
    let config: Configuration = {
      ...emptyConfiguration,
      version: 1,
      datasets: PersistentMap.from(new Map([dataset(1)])),
    };
    const state = {
      instanceId: 'p1',
      get configuration(): Configuration {
        return config;
      },
    } as unknown as ControlState;
    const views = new Views(state);
    const first = views.datasets();
    const tag = views.etagOf(first);
    expect(views.datasets()).toBe(first);
    config = {
      ...config,
      version: 2,
      datasets: (config.datasets as PersistentMap<string, DatasetConfiguration>).set(...dataset(2)),
    };
    views.datasets();
    config = { ...emptyConfiguration, version: 1, datasets: new Map([dataset(3)]) };
    const again = views.datasets();
    expect(again.toBuffer().equals(first.toBuffer())).toBe(false);
    expect(views.etagOf(again)).not.toBe(tag);
  });

  it('HEAD carries the GET headers (tag, length) and no body, and answers 304 to a matching tag', async () => {
    await client.createDataset({ primary: A });
    for (const list of LISTS) {
      const get = await raw('GET', svc.url + list);
      const head = await raw('HEAD', svc.url + list);
      expect(head.status).toBe(200);
      expect(head.body.length).toBe(0);
      expect(head.headers.etag).toBe(get.headers.etag);
      expect(Number(head.headers['content-length'])).toBe(get.body.length);
      expect(head.headers['content-type']).toMatch(/^application\/json/);
      const conditional = await raw('HEAD', svc.url + list, { 'if-none-match': String(get.headers.etag) });
      expect(conditional.status).toBe(304);
    }
  });

  it('a malformed or foreign If-None-Match is no match: the whole body, as without one', async () => {
    await client.createDataset({ primary: A });
    const tag = await tagOf(LISTS[0]);
    const bare = tag.slice(1, -1);
    const bad = ['garbage', bare, `"${bare}`, '""', ',,,', 'W/', `"${bare}-gzip"`, `"x", ${bare}`, 'x'.repeat(8000)];
    for (const list of LISTS) {
      const whole = await raw('GET', svc.url + list);
      for (const value of bad) {
        const res = await raw('GET', svc.url + list, { 'if-none-match': value });
        expect({ value: value.slice(0, 40), status: res.status }).toEqual({ value: value.slice(0, 40), status: 200 });
        expect(res.body.equals(whole.body)).toBe(true);
      }
      // `*` matches any current representation (RFC 9110 13.1.2).
      expect((await raw('GET', svc.url + list, { 'if-none-match': '*' })).status).toBe(304);
    }
  });

  it('the routes the contract marks entityTag are exactly the plain reads answering with an ETag; the OpenAPI lists it', async () => {
    // Plain reads: no path parameter, no required query parameter (GET /v1/state/datasets takes an optional one).
    const reads = Object.values(apiRoutes).filter(
      (r) =>
        r.method === 'get' &&
        !r.path.includes(':') &&
        !('query' in r && r.query !== undefined && !r.query.safeParse({}).success),
    );
    expect(reads.filter((r) => 'entityTag' in r && r.entityTag).length).toBe(7);
    for (const r of reads) {
      const res = await raw('GET', svc.url + r.path);
      expect({ path: r.path, status: res.status, tagged: res.headers.etag !== undefined }).toEqual({
        path: r.path,
        status: 200,
        tagged: 'entityTag' in r && r.entityTag === true,
      });
    }
    const op = (buildOpenApi(routes) as { paths: Record<string, Record<string, Record<string, unknown>>> }).paths[
      '/v1/configuration/datasets'
    ]?.['get'];
    expect(op?.['parameters']).toEqual([
      expect.objectContaining({ name: 'If-None-Match', in: 'header', required: false }),
    ]);
    expect(Object.keys(op?.['responses'] as object)).toEqual(['200', '304']);
  });

  it('without the headers a list is answered as before: 200, JSON, its length, no Vary', async () => {
    await client.createDataset({ primary: A });
    for (const list of LISTS) {
      const res = await raw('GET', svc.url + list);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.headers['content-encoding']).toBeUndefined();
      expect(res.headers.vary).toBeUndefined();
      expect(Number(res.headers['content-length'])).toBe(res.body.length);
      expect(Array.isArray(JSON.parse(res.body.toString()))).toBe(true);
    }
    expect(JSON.parse((await raw('GET', svc.url + LISTS[0])).body.toString())).toEqual(await plain.listDatasets());
  });

  it('a list of many blocks is written whole (ListBody), to a reader that stalls mid-way and to one that leaves', async () => {
    // ~1.4 MB of states: several blocks, more than a socket takes at once (the writes wait for drain).
    const mounted = (n: number): NodeReport['manifestations'] =>
      Array.from({ length: n }, (_, i) => ({
        dataset_id: randomUUID(),
        blockdevice_id: `b-${i}`,
        size: 1 << 20,
        status: 'mounted' as const,
        path: `/flocker/${'p'.repeat(100)}/${i}`,
      }));
    await client.reportNodeState(nodeReport(A, { manifestations: mounted(3000) }));
    await client.reportNodeState(nodeReport(B, { manifestations: mounted(3000) }));
    const url = svc.url + LISTS[1];
    const whole = await raw('GET', url);
    expect(whole.body.length).toBeGreaterThan(1_000_000);
    expect(Number(whole.headers['content-length'])).toBe(whole.body.length);
    expect(JSON.parse(whole.body.toString())).toEqual(await plain.listDatasetState());
    // A reader that stops for a while after its first bytes gets the same bytes.
    const stalled = await new Promise<Buffer>((resolve, reject) => {
      const req = httpRequest(url, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          if (parts.length === 0) {
            res.pause();
            setTimeout(() => res.resume(), 300);
          }
          parts.push(c);
        });
        res.on('end', () => resolve(Buffer.concat(parts)));
      });
      req.on('error', reject);
      req.end();
    });
    expect(stalled.equals(whole.body)).toBe(true);
    // A reader that leaves mid-way: the service goes on answering.
    await new Promise<void>((resolve) => {
      const req = httpRequest(url, (res) => res.once('data', () => (req.destroy(), resolve())));
      req.on('error', () => resolve());
      req.end();
    });
    expect((await raw('GET', url)).body.equals(whole.body)).toBe(true);
    expect((await raw('HEAD', url)).headers['content-length']).toBe(String(whole.body.length));
  });
});
