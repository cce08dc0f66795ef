import { request } from 'node:http';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FlockerApiError,
  type ClusterSnapshot,
  type CreateDatasetRequest,
  type CreateSnapshotRequest,
  type DatasetConfiguration,
  type SnapshotConfiguration,
  type UpdateDatasetRequest,
} from '@flocker/api';
import { UiErrorBody, UiMessage } from '@flocker/web-ui';
import { A, B, D1, dataset, node } from '@flocker/web-ui/testing';
import { toActionError, UiActions, type UiClient } from './actions';
import { CreateDatasetRequest as CreateDatasetRequestSchema } from '@flocker/api/schemas';
import { ClusterFeed } from './ClusterFeed';
import { UiServer } from './UiServer';

const existing = dataset(D1, 'pgdata', A);
const S1 = '51515151-0000-4000-8000-000000000001';
const FS = 'clusterhq:flocker:filesystem';
function snapshot(generation: string, datasets: DatasetConfiguration[] = [existing]): ClusterSnapshot {
  return { generation, configuration_tag: 't', datasets, leases: [], nodes: [node(A, 'a'), node(B, 'b')] };
}

class FakeClient implements UiClient {
  calls: Array<[string, ...unknown[]]> = [];
  failWith: Error | undefined;
  /** What a fresh look at the cluster answers. */
  cluster: ClusterSnapshot = snapshot('1');
  async waitForCluster(): Promise<ClusterSnapshot> {
    return this.cluster;
  }
  async createDataset(req: CreateDatasetRequest): Promise<DatasetConfiguration> {
    this.calls.push(['create', req]);
    if (this.failWith) throw this.failWith;
    return {
      dataset_id: 'd2d2d2d2-0000-4000-8000-0000000000d2',
      primary: req.primary,
      maximum_size: req.maximum_size ?? null,
      metadata: req.metadata ?? {},
      deleted: false,
    };
  }
  async updateDataset(id: string, req: UpdateDatasetRequest): Promise<DatasetConfiguration> {
    this.calls.push(['update', id, req]);
    if (this.failWith) throw this.failWith;
    return { ...existing, primary: req.primary ?? existing.primary };
  }
  async deleteDataset(id: string): Promise<DatasetConfiguration> {
    this.calls.push(['delete', id]);
    if (this.failWith) throw this.failWith;
    return { ...existing, deleted: true };
  }
  async releaseLease(id: string) {
    this.calls.push(['release', id]);
    if (this.failWith) throw this.failWith;
    return { dataset_id: id, node_uuid: A, expires: null };
  }
  async createSnapshot(req: CreateSnapshotRequest): Promise<SnapshotConfiguration> {
    this.calls.push(['snapshot', req]);
    if (this.failWith) throw this.failWith;
    return { snapshot_id: S1, dataset_id: req.dataset_id, metadata: req.metadata ?? {}, created_at: 't' };
  }
  async deleteSnapshot(id: string): Promise<SnapshotConfiguration> {
    this.calls.push(['delete-snapshot', id]);
    if (this.failWith) throw this.failWith;
    return { snapshot_id: id, dataset_id: D1, metadata: {}, created_at: 't', deleted: true };
  }
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

let appDir: string;
let client: FakeClient;
let feed: ClusterFeed;
let server: UiServer;
let port: number;
/** The session cookie the token in the printed URL was exchanged for (UiServer.token.test.ts tests the exchange). */
let cookie: string;

function call(
  method: string,
  path: string,
  opts: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const body =
    opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  const mutation = method !== 'GET';
  const headers: Record<string, string> = {
    cookie,
    ...(mutation ? { origin: `http://127.0.0.1:${port}` } : {}),
    ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    ...opts.headers,
  };
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const errorOf = (r: Reply) => UiErrorBody.parse(JSON.parse(r.body)).error;

beforeEach(async () => {
  appDir = mkdtempSync(join(tmpdir(), 'flocker-ui-test-'));
  mkdirSync(join(appDir, 'assets'));
  writeFileSync(join(appDir, 'index.html'), '<!doctype html><title>Flocker</title>');
  writeFileSync(join(appDir, 'assets', 'app-123.js'), 'console.log(1)');
  client = new FakeClient();
  let t = 0;
  feed = new ClusterFeed(client, {
    controlUrl: 'http://control',
    now: () => new Date(Date.UTC(2026, 0, 1, 0, 0, t++)),
  });
  feed.ingest(snapshot('1'));
  server = new UiServer({ feed, actions: new UiActions(client, () => feed.latest()), appDir, heartbeatMs: 50 });
  const url = new URL(await server.listen(0));
  port = Number(url.port);
  cookie = '';
  const login = await call('GET', `/?token=${url.searchParams.get('token')}`);
  cookie = String(login.headers['set-cookie']).split(';')[0]!;
});

afterEach(async () => {
  await server.close();
  rmSync(appDir, { recursive: true, force: true });
});

describe('UiServer: the app', () => {
  it('serves the app, its assets, and the app again for client-side paths', async () => {
    const index = await call('GET', '/');
    expect(index).toMatchObject({ status: 200, body: expect.stringContaining('<title>Flocker</title>') });
    expect(index.headers['content-type']).toMatch(/text\/html/);
    expect(index.headers['content-security-policy']).toMatch(/default-src 'self'/);
    expect(index.headers['x-frame-options']).toBe('DENY');
    const asset = await call('GET', '/assets/app-123.js');
    expect(asset.headers['content-type']).toMatch(/text\/javascript/);
    expect(asset.headers['cache-control']).toMatch(/immutable/);
    expect((await call('GET', '/volumes')).body).toContain('<title>Flocker</title>');
    expect((await call('GET', '/assets/missing.js')).status).toBe(404);
    expect((await call('GET', '/..%2f..%2f..%2fetc%2fpasswd')).status).toBe(404);
    expect((await call('GET', '/%2e%2e/%2e%2e/etc/passwd')).body).toContain('<title>Flocker</title>'); // the URL parser already removed the dots
  });

  it('answers a malformed %-escape as a path it does not have (404), not as its own failure (s25 USER-V: 500 "URI malformed")', async () => {
    const r = await call('GET', '/%E0%A4%A');
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'NOT_FOUND' } });
  });

  it('says how to build the app when it is missing', async () => {
    rmSync(join(appDir, 'index.html'));
    const r = await call('GET', '/');
    expect(r.status).toBe(503);
    expect(errorOf(r).message).toMatch(/npm run build -w @flocker\/web-ui/);
  });

  it('refuses requests for another host name (DNS rebinding)', async () => {
    const r = await call('GET', '/api/state', { headers: { host: `evil.example:${port}` } });
    expect(r.status).toBe(403);
    expect(errorOf(r).code).toBe('FORBIDDEN_HOST');
  });
});

describe('UiServer: the live cluster', () => {
  it('answers the current view and connection state', async () => {
    const r = await call('GET', '/api/state');
    const m = UiMessage.parse(JSON.parse(r.body));
    expect(m.control).toEqual({ url: 'http://control', connected: true, error: null });
    expect(m.view?.volumes.map((v) => v.name)).toEqual(['pgdata']);
    expect(m.view?.nodes.map((n) => n.host)).toEqual(['a', 'b']);
  });

  it('streams the view at once, then each change with its events', async () => {
    const messages: UiMessage[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/api/events', headers: { cookie } }, (res) => {
        expect(res.headers['content-type']).toMatch(/text\/event-stream/);
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          buf += c;
          for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const data = frame.split('\n').find((l) => l.startsWith('data: '));
            if (!data) continue;
            messages.push(UiMessage.parse(JSON.parse(data.slice(6))));
            if (messages.length === 1) feed.ingest(snapshot('2', [{ ...existing, primary: B }]));
            if (messages.length === 2) {
              req.destroy();
              resolve();
            }
          }
        });
      });
      req.on('error', (e) => (messages.length >= 2 ? resolve() : reject(e)));
      req.end();
    });
    await done;
    expect(messages[0]!.view?.generation).toBe('1');
    expect(messages[1]!.view?.generation).toBe('2');
    expect(messages[1]!.events).toMatchObject([
      { id: 1, kind: 'moving', message: 'Volume pgdata moving from a to b', dataset_id: D1 },
    ]);
  });
});

describe('UiServer: actions', () => {
  it('creates a volume from a name, a size as people write it and a node', async () => {
    const r = await call('POST', '/api/volumes', { body: { name: 'web', size: '1GiB', node: B } });
    expect(r.status).toBe(200);
    expect(client.calls).toEqual([
      ['create', { primary: B, maximum_size: 1024 ** 3, metadata: { name: 'web' }, unique_name: true }],
    ]);
    expect(JSON.parse(r.body)).toMatchObject({ primary: B, metadata: { name: 'web' } });
  });

  it('refuses bad input with a sentence and calls nothing', async () => {
    const small = await call('POST', '/api/volumes', { body: { name: 'web', size: '1K', node: B } });
    expect(small.status).toBe(400);
    expect(errorOf(small)).toEqual({ code: 'INVALID_SIZE', message: 'size "1K" is too small: at least 64 MiB.' });
    const taken = await call('POST', '/api/volumes', { body: { name: 'pgdata', size: '1G', node: B } });
    expect(taken.status).toBe(409);
    expect(errorOf(taken).message).toBe('a volume named "pgdata" already exists');
    const nowhere = await call('POST', '/api/volumes', {
      body: { name: 'xy', size: '1G', node: 'c0c0c0c0-0000-4000-8000-0000000000c0' },
    });
    expect(nowhere.status).toBe(404);
    const unnamed = await call('POST', '/api/volumes', { body: { name: ' ', size: '1G', node: B } });
    expect(unnamed.status).toBe(400);
    // Plain words, not zod's "✖ a volume needs a name → at name" (issue 21).
    expect(errorOf(unnamed)).toEqual({ code: 'INVALID_REQUEST', message: 'a volume needs a name' });
    const numeric = await call('POST', '/api/volumes', { body: { name: 'xy', size: '1G', node: 5 } });
    expect(errorOf(numeric).message).toBe('node: Invalid input: expected string, received number');
    const garbage = await call('POST', '/api/volumes', { body: '{nope' });
    expect(errorOf(garbage).code).toBe('INVALID_JSON');
    expect(client.calls).toEqual([]);
  });

  it('refuses names the Docker plugin refuses (one rule everywhere), and calls nothing', async () => {
    for (const name of ['bad name!', '   ', 'x', '-web']) {
      const r = await call('POST', '/api/volumes', { body: { name, size: '1G', node: B } });
      expect(r.status).toBe(400);
      expect(errorOf(r)).toMatchObject({
        code: 'INVALID_REQUEST',
        message: expect.stringMatching(/not a valid volume name|needs a name/),
      });
    }
    expect(client.calls).toEqual([]);
  });

  it('releases the lease of a volume in use on a live node only when the user confirmed it', async () => {
    feed.ingest({ ...snapshot('2'), leases: [{ dataset_id: D1, node_uuid: A, expires: null }] });
    const refused = await call('POST', `/api/volumes/${D1}/release-lease`, { body: {} });
    expect(refused.status).toBe(409);
    expect(errorOf(refused)).toMatchObject({
      code: 'VOLUME_IN_USE',
      message: expect.stringMatching(/^pgdata is in use on a: /),
    });
    expect(client.calls).toEqual([]);
    const confirmed = await call('POST', `/api/volumes/${D1}/release-lease`, { body: { force: true } });
    expect(confirmed.status).toBe(200);
    expect(client.calls).toEqual([['release', D1]]);
  });

  it('moves, releases the lease of and deletes a volume', async () => {
    expect((await call('POST', `/api/volumes/${D1}/move`, { body: { node: B } })).status).toBe(200);
    expect((await call('POST', `/api/volumes/${D1}/release-lease`, { body: {} })).status).toBe(200);
    expect((await call('DELETE', `/api/volumes/${D1}`)).status).toBe(200);
    expect(client.calls).toEqual([
      ['update', D1, { primary: B }],
      ['release', D1],
      ['delete', D1],
    ]);
  });

  it('moves a volume when released (issue 24) only when asked, and refuses a when_released that is no boolean', async () => {
    const asked = await call('POST', `/api/volumes/${D1}/move`, { body: { node: B, when_released: true } });
    expect(asked.status).toBe(200);
    expect((await call('POST', `/api/volumes/${D1}/move`, { body: { node: B, when_released: false } })).status).toBe(
      200,
    );
    const bad = await call('POST', `/api/volumes/${D1}/move`, { body: { node: B, when_released: 'yes' } });
    expect(bad.status).toBe(400);
    // Sent only when asked: a control service before it refuses the field (400).
    expect(client.calls).toEqual([
      ['update', D1, { primary: B, when_released: true }],
      ['update', D1, { primary: B }],
    ]);
  });

  it("passes on the API's own status, code and message", async () => {
    client.failWith = new FlockerApiError(
      409,
      'LEASE_HELD',
      'the dataset is leased to node a: release the lease first',
    );
    const r = await call('POST', `/api/volumes/${D1}/move`, { body: { node: B } });
    expect(r.status).toBe(409);
    expect(errorOf(r)).toEqual({
      code: 'LEASE_HELD',
      message: 'the dataset is leased to node a: release the lease first',
    });
    client.failWith = new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', 'connect ECONNREFUSED');
    const down = await call('DELETE', `/api/volumes/${D1}`);
    expect(down.status).toBe(502);
    expect(errorOf(down).code).toBe('CONTROL_SERVICE_UNREACHABLE');
  });

  it('refuses cross-site and non-JSON changes before calling anything', async () => {
    const foreign = await call('DELETE', `/api/volumes/${D1}`, { headers: { origin: 'https://evil.example' } });
    expect(foreign.status).toBe(403);
    const form = await call('POST', '/api/volumes', {
      body: 'name=x',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(form.status).toBe(415);
    expect(client.calls).toEqual([]);
  });

  it('answers 404 and 405 for calls it does not have', async () => {
    expect((await call('POST', '/api/nothing', { body: {} })).status).toBe(404);
    expect((await call('GET', `/api/volumes/${D1}/move`)).status).toBe(405);
    expect((await call('POST', '/index.html', { body: {} })).status).toBe(405);
  });
});

describe('UiServer: file systems and snapshots (issue 20)', () => {
  it('records the chosen file system in the metadata and refuses one no agent has', async () => {
    const r = await call('POST', '/api/volumes', { body: { name: 'web', size: '1GiB', node: B, filesystem: 'xfs' } });
    expect(r.status).toBe(200);
    expect(client.calls).toEqual([
      ['create', { primary: B, maximum_size: 1024 ** 3, metadata: { name: 'web', [FS]: 'xfs' }, unique_name: true }],
    ]);
    const bad = await call('POST', '/api/volumes', {
      body: { name: 'web2', size: '1GiB', node: B, filesystem: 'zfs' },
    });
    expect(bad.status).toBe(400);
    expect(errorOf(bad).code).toBe('INVALID_REQUEST');
    expect(client.calls).toHaveLength(1);
  });

  it('takes a snapshot of a volume, named or not', async () => {
    expect((await call('POST', `/api/volumes/${D1}/snapshots`, { body: { name: ' nightly ' } })).status).toBe(200);
    expect((await call('POST', `/api/volumes/${D1.toUpperCase()}/snapshots`, { body: {} })).status).toBe(200);
    expect(client.calls).toEqual([
      ['snapshot', { dataset_id: D1, metadata: { name: 'nightly' } }],
      ['snapshot', { dataset_id: D1 }],
    ]);
    const long = await call('POST', `/api/volumes/${D1}/snapshots`, { body: { name: 'x'.repeat(300) } });
    expect(long.status).toBe(400);
    expect(client.calls).toHaveLength(2);
  });

  it("clones a snapshot into a new volume with the source's profile and file system", async () => {
    const source = { ...existing, metadata: { name: 'pgdata', [FS]: 'xfs', 'clusterhq:flocker:profile': 'gold' } };
    feed.ingest({
      ...snapshot('2', [source]),
      snapshots: [{ snapshot_id: S1, dataset_id: D1, metadata: { name: 'nightly' }, created_at: 't' }],
    });
    expect((await call('POST', `/api/snapshots/${S1}/clone`, { body: { name: 'copy', node: B } })).status).toBe(200);
    const sized = await call('POST', `/api/snapshots/${S1}/clone`, { body: { name: 'big', size: '1GiB', node: A } });
    expect(sized.status).toBe(200);
    const metadata = (name: string) => ({ name, [FS]: 'xfs', 'clusterhq:flocker:profile': 'gold' });
    expect(client.calls).toEqual([
      ['create', { primary: B, source_snapshot_id: S1, metadata: metadata('copy'), unique_name: true }],
      [
        'create',
        { primary: A, source_snapshot_id: S1, maximum_size: 1024 ** 3, metadata: metadata('big'), unique_name: true },
      ],
    ]);
  });

  it("looks again for a snapshot newer than the feed's last look, so the clone keeps the source's file system", async () => {
    const source = { ...existing, metadata: { name: 'pgdata', [FS]: 'xfs' } };
    client.cluster = {
      ...snapshot('9', [source]),
      snapshots: [{ snapshot_id: S1, dataset_id: D1, metadata: {}, created_at: 't' }],
    };
    expect((await call('POST', `/api/snapshots/${S1}/clone`, { body: { name: 'copy', node: B } })).status).toBe(200);
    expect(client.calls).toEqual([
      ['create', { primary: B, source_snapshot_id: S1, metadata: { name: 'copy', [FS]: 'xfs' }, unique_name: true }],
    ]);
  });

  it('refuses a clone with a taken or bad name, a bad size or an unknown node, and calls nothing', async () => {
    const taken = await call('POST', `/api/snapshots/${S1}/clone`, { body: { name: 'pgdata', node: B } });
    expect([taken.status, errorOf(taken).code]).toEqual([409, 'VOLUME_EXISTS']);
    const bad = await call('POST', `/api/snapshots/${S1}/clone`, { body: { name: 'bad name!', node: B } });
    expect([bad.status, errorOf(bad).code]).toEqual([400, 'INVALID_REQUEST']);
    const small = await call('POST', `/api/snapshots/${S1}/clone`, { body: { name: 'cc', size: '1K', node: B } });
    expect(errorOf(small)).toEqual({ code: 'INVALID_SIZE', message: 'size "1K" is too small: at least 64 MiB.' });
    const nowhere = await call('POST', `/api/snapshots/${S1}/clone`, {
      body: { name: 'copy', node: 'c0c0c0c0-0000-4000-8000-0000000000c0' },
    });
    expect(nowhere.status).toBe(404);
    expect(client.calls).toEqual([]);
  });

  it("deletes a snapshot, and passes on the API's refusals as they are", async () => {
    expect((await call('DELETE', `/api/snapshots/${S1}`)).status).toBe(200);
    expect(client.calls).toEqual([['delete-snapshot', S1]]);
    client.failWith = new FlockerApiError(
      400,
      'CLONE_TOO_SMALL',
      'maximum_size 67108864 is smaller than the snapshot (134217728 bytes)',
    );
    const r = await call('POST', `/api/snapshots/${S1}/clone`, { body: { name: 'copy', size: '64MiB', node: B } });
    expect(r.status).toBe(400);
    expect(errorOf(r)).toEqual({
      code: 'CLONE_TOO_SMALL',
      message: 'maximum_size 67108864 is smaller than the snapshot (134217728 bytes)',
    });
    expect((await call('GET', `/api/snapshots/${S1}/clone`)).status).toBe(405);
  });

  it('grows a volume to a size as people write it; a bad size calls nothing; a shrink is refused by the API', async () => {
    expect((await call('POST', `/api/volumes/${D1}/resize`, { body: { size: '2GiB' } })).status).toBe(200);
    expect(client.calls).toEqual([['update', D1, { maximum_size: 2 * 1024 ** 3 }]]);
    const tiny = await call('POST', `/api/volumes/${D1}/resize`, { body: { size: '1K' } });
    expect(errorOf(tiny).code).toBe('INVALID_SIZE');
    const blank = await call('POST', `/api/volumes/${D1}/resize`, { body: { size: '' } });
    expect(errorOf(blank)).toMatchObject({ code: 'INVALID_REQUEST', message: expect.stringContaining('give a size') });
    expect(client.calls).toHaveLength(1);
    client.failWith = new FlockerApiError(
      400,
      'DATASET_SHRINK',
      'The dataset x is 2147483648 bytes; volumes do not shrink',
    );
    const shrink = await call('POST', `/api/volumes/${D1}/resize`, { body: { size: '1GiB' } });
    expect([shrink.status, errorOf(shrink).code]).toEqual([400, 'DATASET_SHRINK']);
  });

  it('sets, changes and removes a snapshot schedule (the API checks it)', async () => {
    const path = `/api/volumes/${D1}/snapshot-schedule`;
    expect((await call('POST', path, { body: { schedule: 'hourly', keep: '6' } })).status).toBe(200);
    expect((await call('POST', path, { body: { schedule: 'every 15m' } })).status).toBe(200);
    expect((await call('POST', path, { body: { schedule: ' ', keep: '6' } })).status).toBe(200);
    const SCHED = 'clusterhq:flocker:snapshot-schedule';
    const KEEP = 'clusterhq:flocker:snapshot-keep';
    expect(client.calls).toEqual([
      ['update', D1, { metadata: { [SCHED]: 'hourly', [KEEP]: '6' } }],
      ['update', D1, { metadata: { [SCHED]: 'every 15m', [KEEP]: null } }],
      ['update', D1, { metadata: { [SCHED]: null, [KEEP]: null } }],
    ]);
    client.failWith = new FlockerApiError(
      400,
      'SNAPSHOT_SCHEDULE_TOO_FREQUENT',
      'the snapshot schedule "every 1m" is more frequent than the minimum interval of 5m',
    );
    const r = await call('POST', path, { body: { schedule: 'every 1m' } });
    expect([r.status, errorOf(r).code]).toEqual([400, 'SNAPSHOT_SCHEDULE_TOO_FREQUENT']);
  });

  it('streams the snapshots in the view as they change', async () => {
    feed.ingest({
      ...snapshot('3'),
      snapshots: [{ snapshot_id: S1, dataset_id: D1, metadata: { name: 'nightly' }, created_at: 't' }],
    });
    const m = UiMessage.parse(JSON.parse((await call('GET', '/api/state')).body));
    expect(m.view?.snapshots).toMatchObject([
      { snapshot_id: S1, name: 'nightly', volume: 'pgdata', state: 'requested' },
    ]);
    expect(m.view?.volumes[0]).toMatchObject({ name: 'pgdata', filesystem: 'ext4', cloned_from: null });
  });
});

describe('toActionError (issue 21: plain words, no "✖ … → at name")', () => {
  it("keeps a refused size's code (the form marks Size) and says the reason in plain words", () => {
    const r = CreateDatasetRequestSchema.safeParse({
      primary: A,
      maximum_size: 256 * 1024 * 1024,
      metadata: { 'clusterhq:flocker:filesystem': 'xfs' },
    });
    const e = toActionError(r.error);
    expect({ status: e.status, code: e.code, message: e.message }).toEqual({
      status: 400,
      code: 'INVALID_SIZE',
      message: 'an xfs dataset needs at least 314572800 bytes (300 MiB)',
    });
  });
});

describe('UiServer: ids in paths are the API Uuid (one rule)', () => {
  it('an upper-case id reaches the client lower-cased, as the API stores it', async () => {
    expect((await call('DELETE', `/api/volumes/${D1.toUpperCase()}`)).status).toBe(200);
    expect((await call('POST', `/api/volumes/${D1.toUpperCase()}/release-lease`, { body: {} })).status).toBe(200);
    expect(client.calls).toEqual([
      ['delete', D1],
      ['release', D1],
    ]);
  });

  it('36 hex digits and hyphens that are no UUID: 404 NOT_FOUND, the client is not asked', async () => {
    for (const id of ['-'.repeat(36), '0123456789abcdef0123456789abcdef0123', `${D1.slice(0, 9)}-${D1.slice(10)}`]) {
      const r = await call('DELETE', `/api/volumes/${id}`);
      expect({ id, status: r.status, code: errorOf(r).code }).toEqual({ id, status: 404, code: 'NOT_FOUND' });
    }
    expect(client.calls).toEqual([]);
    // A UUID with the wrong method is still known (405), as before.
    expect((await call('GET', `/api/volumes/${D1}/move`)).status).toBe(405);
  });
});
