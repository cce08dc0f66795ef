import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlockerApiError, FlockerClient } from './client';
import type { CreateDatasetRequest, DatasetConfiguration, SnapshotConfiguration } from './schemas';

/**
 * REVIEW-S25 R2: a create naming its dataset_id is repeated on the next replica after the failover bound; when the
 * first (slow) replica did commit it, the repeat is answered 409 DATASET_ID_IN_USE though the create succeeded.
 */

const NODE = 'aaaaaaaa-0000-4000-8000-000000000001';
const ID = 'bbbbbbbb-0000-4000-8000-000000000002';

/** The shared store of the stand-in replicas: the datasets as the control service keeps them. */
type Store = Map<string, DatasetConfiguration>;

async function body(req: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of req) text += String(chunk);
  return JSON.parse(text);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

/** The snapshots of the stand-in replicas (one cluster per test: cleared after each). */
const snapshots = new Map<string, SnapshotConfiguration>();
const IMPLICIT = 'dddddddd-0000-4000-8000-000000000009';

/**
 * Stores a create as configuration.ts does (no check of the primary: these stand-ins know every node); a clone of a
 * dataset with its implicit snapshot (IMPLICIT, naming the clone).
 */
function commit(store: Store, req: CreateDatasetRequest): DatasetConfiguration {
  const id = req.dataset_id ?? ID;
  if (req.source_dataset_id !== undefined)
    snapshots.set(IMPLICIT, {
      snapshot_id: IMPLICIT,
      dataset_id: req.source_dataset_id,
      metadata: { 'clusterhq:flocker:clone': id },
      created_at: '2026-12-07T10:00:00.000Z',
    });
  const source = req.source_dataset_id !== undefined ? IMPLICIT : req.source_snapshot_id;
  const dataset: DatasetConfiguration = {
    dataset_id: id,
    primary: req.primary,
    ...(req.maximum_size !== undefined ? { maximum_size: req.maximum_size } : {}),
    metadata: { ...(req.metadata ?? {}) },
    deleted: false,
    ...(source !== undefined ? { source_snapshot_id: source } : {}),
  };
  store.set(id, dataset);
  return dataset;
}

/**
 * A replica of `store`. 'slow' commits the create and never answers it (a commit that stalled past the failover
 * bound); 'cut' commits it and drops the connection unanswered; 'lost' never answers nor commits; 'answer' answers as the control service (409 when the id is taken).
 */
async function replica(
  store: Store,
  behaviour: 'slow' | 'cut' | 'lost' | 'answer',
  hits: string[],
): Promise<{ url: string; close: () => Promise<void> }> {
  const srv: Server = createServer((req, res) => {
    void (async () => {
      hits.push(`${behaviour} ${req.method ?? ''} ${req.url ?? ''}`);
      if (req.method === 'POST' && req.url === '/v1/configuration/datasets') {
        const create = (await body(req)) as CreateDatasetRequest;
        if (behaviour === 'slow' || behaviour === 'cut') commit(store, create);
        if (behaviour === 'cut') req.socket.destroy();
        if (behaviour !== 'answer') return;
        if (create.dataset_id !== undefined && store.has(create.dataset_id))
          return json(res, 409, {
            code: 'DATASET_ID_IN_USE',
            description: `The dataset id ${create.dataset_id} is already in use.`,
          });
        return json(res, 201, commit(store, create));
      }
      const snap = /^\/v1\/configuration\/snapshots\/([^/]+)$/.exec(req.url ?? '');
      const snapshot = snap !== null && req.method === 'GET' ? snapshots.get(snap[1] as string) : undefined;
      if (snapshot !== undefined) return json(res, 200, snapshot);
      const m = /^\/v1\/configuration\/datasets\/([^/]+)$/.exec(req.url ?? '');
      const dataset = m !== null && req.method === 'GET' ? store.get(m[1] as string) : undefined;
      if (dataset !== undefined) return json(res, 200, dataset);
      return json(res, 404, { code: 'DATASET_NOT_FOUND', description: 'no such dataset' });
    })();
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        srv.closeAllConnections();
        srv.close(() => resolve());
      }),
  };
}

const create: CreateDatasetRequest = {
  primary: NODE,
  dataset_id: ID,
  maximum_size: 1 << 27,
  metadata: { name: 'v1' },
};

async function failure(p: Promise<unknown>): Promise<FlockerApiError> {
  const err: unknown = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FlockerApiError);
  return err as FlockerApiError;
}

describe('FlockerClient: a create repeated after failover that the first replica committed', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((c) => c()));
    snapshots.clear();
  });

  async function pair(store: Store, first: 'slow' | 'cut' | 'lost', hits: string[]): Promise<FlockerClient> {
    const a = await replica(store, first, hits);
    const b = await replica(store, 'answer', hits);
    closers.push(a.close, b.close);
    // 1 s: the slow replica commits as soon as it reads the request, long before (and it never answers).
    return new FlockerClient({ baseUrl: `${a.url},${b.url}`, timeoutMs: 30_000, failoverTimeoutMs: 1000 });
  }

  it('answers the dataset the first replica made (not 409 DATASET_ID_IN_USE)', async () => {
    const store: Store = new Map();
    const hits: string[] = [];
    const client = await pair(store, 'slow', hits);
    const made = await client.createDataset(create);
    expect(made).toEqual({ ...commit(new Map(), create) });
    // Read back from the replica that answered the 409, now the one in use (REVIEW-S26 R2), not the slow one.
    expect(hits).toEqual([
      'slow POST /v1/configuration/datasets',
      'answer POST /v1/configuration/datasets',
      `answer GET /v1/configuration/datasets/${ID}`,
    ]);
  });

  it('the same when the first replica committed it and dropped the connection unanswered', async () => {
    const store: Store = new Map();
    const client = await pair(store, 'cut', []);
    expect(await client.createDataset(create)).toEqual(commit(new Map(), create));
  });

  it('the same when the request spells its ids in upper case (compared as the server stores them)', async () => {
    const store: Store = new Map();
    const client = await pair(store, 'slow', []);
    const made = await client.createDataset({
      ...create,
      primary: NODE.toUpperCase(),
      dataset_id: ID.toUpperCase(),
    });
    expect(made.dataset_id).toBe(ID);
  });

  it('a repeat whose stored dataset is not the one asked for stays 409', async () => {
    for (const other of [
      { ...create, metadata: { name: 'someone else' } },
      { ...create, maximum_size: 1 << 28 },
      { ...create, primary: 'cccccccc-0000-4000-8000-000000000003' },
      { ...create, maximum_size: undefined },
    ]) {
      const store: Store = new Map();
      commit(store, other);
      const client = await pair(store, 'lost', []);
      expect((await failure(client.createDataset(create))).code).toBe('DATASET_ID_IN_USE');
    }
  });

  it("a clone of a dataset: its implicit snapshot's answered; a clone of another snapshot stays 409 (REVIEW-S26 R1)", async () => {
    const SOURCE = 'eeeeeeee-0000-4000-8000-000000000005';
    const clone: CreateDatasetRequest = { ...create, source_dataset_id: SOURCE };
    const made = await (await pair(new Map(), 'slow', [])).createDataset(clone);
    expect(made).toMatchObject({ dataset_id: ID, source_snapshot_id: IMPLICIT });
    // The same id, primary, size and metadata, cloned from an explicit snapshot of another dataset (OTHER).
    const OTHER_SNAPSHOT = 'dddddddd-0000-4000-8000-00000000000a';
    snapshots.set(OTHER_SNAPSHOT, {
      snapshot_id: OTHER_SNAPSHOT,
      dataset_id: 'cccccccc-0000-4000-8000-000000000003',
      metadata: {},
      created_at: '2026-12-07T10:00:00.000Z',
    });
    const store: Store = new Map();
    commit(store, { ...create, source_snapshot_id: OTHER_SNAPSHOT });
    const client = await pair(store, 'lost', []);
    expect((await failure(client.createDataset(clone))).code).toBe('DATASET_ID_IN_USE');
  });

  it('a deleted dataset of that id is not the create asked for', async () => {
    const store: Store = new Map();
    store.set(ID, { ...commit(store, create), deleted: true });
    const client = await pair(store, 'lost', []);
    expect((await failure(client.createDataset(create))).code).toBe('DATASET_ID_IN_USE');
  });

  it('a first-attempt 409 stays a 409 (the id was taken), even by an identical dataset', async () => {
    const store: Store = new Map();
    commit(store, create);
    const hits: string[] = [];
    const b = await replica(store, 'answer', hits);
    closers.push(b.close);
    const client = new FlockerClient({ baseUrl: b.url, timeoutMs: 30_000, failoverTimeoutMs: 1000 });
    expect((await failure(client.createDataset(create))).code).toBe('DATASET_ID_IN_USE');
    expect(hits).toEqual(['answer POST /v1/configuration/datasets']);
  });

  it('a 409 after a replica that surely did not get the create (connection refused) stays a 409', async () => {
    const store: Store = new Map();
    commit(store, create);
    const dead = await replica(store, 'answer', []);
    await dead.close();
    const b = await replica(store, 'answer', []);
    closers.push(b.close);
    const client = new FlockerClient({ baseUrl: `${dead.url},${b.url}`, timeoutMs: 30_000, failoverTimeoutMs: 1000 });
    expect((await failure(client.createDataset(create))).code).toBe('DATASET_ID_IN_USE');
  });
});
