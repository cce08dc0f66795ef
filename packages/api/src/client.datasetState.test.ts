/**
 * The one-dataset state read on the wire (session 11): ?dataset_id= in canonical case, the answer narrowed to that
 * dataset even when an older control service answers the whole list, and shownMountedPath, the one check waiters
 * confirm a "mounted" by.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlockerApiError, FlockerClient, shownMountedPath } from './client';
import type { DatasetState } from './schemas';

const D = '11111111-1111-4111-8111-111111111111';
const E = '22222222-2222-4222-8222-222222222222';
const N = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const M = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';

async function answering(
  status: number,
  answer: unknown,
): Promise<{ url: string; seen: string[]; close: () => Promise<void> }> {
  const seen: string[] = [];
  const srv: Server = createServer((req, res) => {
    seen.push(`${req.method ?? ''} ${req.url ?? ''} ${req.headers['if-none-match'] ?? '-'}`);
    res.statusCode = status;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(answer));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, seen, close: () => new Promise((r) => srv.close(() => r())) };
}

const whole: DatasetState[] = [
  { dataset_id: D, primary: N, maximum_size: 100, path: '/flocker/d' },
  { dataset_id: E, primary: M, maximum_size: 200 },
];

describe('FlockerClient: one dataset’s state', () => {
  it('sends ?dataset_id= lower-cased; without it, no query', async () => {
    const srv = await answering(200, [whole[0]]);
    try {
      const client = new FlockerClient({ baseUrl: srv.url });
      expect(await client.listDatasetState({ datasetId: D.toUpperCase() })).toEqual([whole[0]]);
      expect(await client.datasetState(D)).toEqual(whole[0]);
      expect(await client.shownMountedOn(D.toUpperCase(), N.toUpperCase())).toBe('/flocker/d');
      await client.listDatasetState();
      expect(srv.seen).toEqual([
        `GET /v1/state/datasets?dataset_id=${D} -`,
        `GET /v1/state/datasets?dataset_id=${D} -`,
        `GET /v1/state/datasets?dataset_id=${D} -`,
        'GET /v1/state/datasets -',
      ]);
    } finally {
      await srv.close();
    }
  });

  it('narrows the whole list an older control service answers (it ignores the parameter)', async () => {
    const srv = await answering(200, whole);
    try {
      const client = new FlockerClient({ baseUrl: srv.url });
      expect(await client.listDatasetState({ datasetId: E })).toEqual([whole[1]]);
      expect(await client.datasetState(E)).toEqual(whole[1]);
      expect(await client.shownMountedOn(D, N)).toBe('/flocker/d');
      expect(await client.shownMountedOn(E, M)).toBeUndefined();
    } finally {
      await srv.close();
    }
  });

  it('an empty answer is no entry; a 400 is a FlockerApiError', async () => {
    const empty = await answering(200, []);
    const bad = await answering(400, { description: 'dataset_id: must be a UUID', code: 'INVALID_REQUEST' });
    try {
      expect(await new FlockerClient({ baseUrl: empty.url }).datasetState(D)).toBeUndefined();
      expect(await new FlockerClient({ baseUrl: empty.url }).shownMountedOn(D, N)).toBeUndefined();
      const err = await new FlockerClient({ baseUrl: bad.url }).datasetState('nope').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FlockerApiError);
      expect(err).toMatchObject({ status: 400, code: 'INVALID_REQUEST' });
      expect(bad.seen).toEqual(['GET /v1/state/datasets?dataset_id=nope -']);
    } finally {
      await empty.close();
      await bad.close();
    }
  });
});

describe('shownMountedPath: the control service’s verdict on a node’s "mounted"', () => {
  it('is the path only when the entry names that node as primary and has a path', () => {
    expect(shownMountedPath(whole, D, N)).toBe('/flocker/d');
    // Any case, as the API canonicalises ids.
    expect(shownMountedPath(whole, D.toUpperCase(), N.toUpperCase())).toBe('/flocker/d');
    // Shown elsewhere (a stale "mounted" hidden, the other node's shown), shown without a path (attached), no entry.
    expect(shownMountedPath(whole, D, M)).toBeUndefined();
    expect(shownMountedPath(whole, E, M)).toBeUndefined();
    expect(shownMountedPath([], D, N)).toBeUndefined();
    expect(shownMountedPath([{ dataset_id: D, maximum_size: 100 }], D, N)).toBeUndefined();
  });
});
