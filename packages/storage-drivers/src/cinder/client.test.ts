/**
 * Unit tests of the OpenStack client pieces against tiny local HTTP servers:
 * zod parsing, Keystone token renewal and 401 handling, catalog lookup,
 * pagination, retries, and create adoption after a lost answer.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { StorageError } from '../BlockDeviceApi';
import { CinderClient } from './CinderClient';
import {
  CinderDriver,
  holderOf,
  META_ATTACHED_TO,
  META_CREATE_TOKEN,
  toBlockDeviceVolume,
  UNKNOWN_HOLDER,
} from './CinderDriver';
import {
  faultMessage,
  JsonHttp,
  OpenStackConnectionError,
  OpenStackHttpError,
  parseBody,
  type HttpOptions,
} from './http';
import {
  authRequestBody,
  findEndpoint,
  KeystoneSession,
  NoAuthTokenSource,
  RENEW_BEFORE_MS,
  tokensUrl,
} from './keystone';
import { CinderDriverOptionsSchema, VolumeListSchema, VolumeSchema, type CatalogEntry } from './schemas';

interface Req {
  readonly method: string;
  readonly url: URL;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: unknown;
}
type Reply = { status: number; body?: unknown; headers?: Record<string, string> } | 'destroy';

/** What a test opened (servers, clients, drivers): closed after it, the last opened first. */
const closeAfterTest: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closeAfterTest.splice(0).reverse()) await close();
});

/** A JsonHttp client, closed after the test. */
function jsonHttp(options: HttpOptions): JsonHttp {
  const h = new JsonHttp(options);
  closeAfterTest.push(() => h.close());
  return h;
}

/** A local HTTP server answering with handler(); records every request. */
async function fakeServer(handler: (req: Req) => Reply | Promise<Reply>) {
  const requests: Req[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      const r: Req = {
        method: req.method ?? '',
        url: new URL(req.url ?? '/', 'http://x'),
        headers: req.headers,
        body: text ? JSON.parse(text) : undefined,
      };
      requests.push(r);
      void Promise.resolve(handler(r)).then((reply) => {
        if (reply === 'destroy') {
          req.socket.destroy();
          return;
        }
        res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
        res.end(reply.body === undefined ? '' : JSON.stringify(reply.body));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = (): Promise<void> => new Promise<void>((resolve) => server.close(() => resolve()));
  closeAfterTest.push(close);
  return { url, requests, close };
}

const noSleep = async (): Promise<void> => undefined;
const fastRetry = { attempts: 4, baseDelayMs: 1, maxDelayMs: 2 };

function volume(id: string, extra: Record<string, unknown> = {}) {
  return {
    id,
    status: 'available',
    size: 1,
    name: `flocker-${id}`,
    volume_type: '__DEFAULT__',
    metadata: {},
    attachments: [],
    ...extra,
  };
}

describe('zod parsing of OpenStack answers', () => {
  it('reads a Cinder volume, dropping unknown fields and defaulting metadata and attachments', () => {
    const v = VolumeSchema.parse({
      id: 'v1',
      status: 'in-use',
      size: 3,
      extra: 'x',
      attachments: [{ server_id: null, host_name: 'node-a', attachment_id: 'a1' }],
    });
    expect(v).toEqual({
      id: 'v1',
      status: 'in-use',
      size: 3,
      metadata: {},
      attachments: [{ server_id: null, host_name: 'node-a', attachment_id: 'a1' }],
    });
  });

  it('refuses malformed answers with a readable reason', () => {
    expect(() => parseBody(VolumeListSchema, { volumes: [{ id: 1 }] }, 'volume list')).toThrow(
      /unexpected volume list from OpenStack: .*id/,
    );
    expect(() => parseBody(VolumeSchema, { id: 'v', status: 'available', size: -1 }, 'volume')).toThrow(/size/);
  });

  it('maps volumes to BlockDeviceVolumes: holder is the server id, else the connector host; foreign volumes are null', () => {
    const meta = { 'flocker-cluster-id': 'c', 'flocker-dataset-id': 'd', 'flocker-profile': 'gold' };
    expect(toBlockDeviceVolume(VolumeSchema.parse(volume('v', { metadata: meta, size: 2 })))).toEqual({
      blockdeviceId: 'v',
      size: 2 * 1024 ** 3,
      attachedTo: null,
      datasetId: 'd',
      profile: 'gold',
    });
    expect(
      toBlockDeviceVolume(
        VolumeSchema.parse(volume('v', { metadata: meta, attachments: [{ server_id: 'srv', host_name: 'h' }] })),
      )?.attachedTo,
    ).toBe('srv');
    expect(
      toBlockDeviceVolume(
        VolumeSchema.parse(volume('v', { metadata: meta, attachments: [{ server_id: null, host_name: 'h' }] })),
      )?.attachedTo,
    ).toBe('h');
    expect(toBlockDeviceVolume(VolumeSchema.parse(volume('v')))).toBeNull();
  });

  it('names the holder from our metadata when Cinder hides the host (non-admin), and ignores it without attachments', () => {
    const meta = { 'flocker-cluster-id': 'c', 'flocker-dataset-id': 'd', [META_ATTACHED_TO]: 'node-b' };
    const hidden = [{ server_id: null, host_name: null, attachment_id: 'a1' }];
    expect(holderOf(VolumeSchema.parse(volume('v', { metadata: meta, attachments: hidden })))).toBe('node-b');
    expect(holderOf(VolumeSchema.parse(volume('v', { metadata: meta })))).toBeNull();
    expect(holderOf(VolumeSchema.parse(volume('v', { attachments: hidden })))).toBe(UNKNOWN_HOLDER);
  });

  it('extracts the message from OpenStack fault bodies', () => {
    expect(faultMessage(JSON.stringify({ badRequest: { code: 400, message: 'Invalid volume: in-use' } }))).toBe(
      'Invalid volume: in-use',
    );
    expect(
      faultMessage(
        JSON.stringify({
          error: { code: 401, message: 'The request you have made requires authentication.', title: 'Unauthorized' },
        }),
      ),
    ).toMatch(/requires authentication/);
    expect(faultMessage('<html><body><h1>502 Bad Gateway</h1></body></html>')).toBe('502 Bad Gateway');
    expect(faultMessage('')).toBe('(empty body)');
  });
});

describe('CinderDriver storage zone', () => {
  const options = {
    auth_plugin: 'noauth',
    cinder_url: 'http://127.0.0.1:9/v3',
    project_id: 'p1',
    cluster_id: 'c1',
  } as const;
  it('is the configured availability_zone; none without one; no free-capacity figure', async () => {
    const zoned = new CinderDriver({ ...options, availability_zone: 'az-2' });
    const plain = new CinderDriver(options);
    try {
      expect(await zoned.storageZone()).toBe('az-2');
      expect(await plain.storageZone()).toBeUndefined();
      expect('availableBytes' in plain).toBe(false);
    } finally {
      await Promise.all([zoned.close(), plain.close()]);
    }
  });
});

describe('CinderDriverOptionsSchema (agent.yml dataset section)', () => {
  const base = { backend: 'openstack', cluster_id: 'c1', auth_url: 'https://keystone.example:5000/v3' };

  it('accepts a password configuration and fills the defaults', () => {
    const o = CinderDriverOptionsSchema.parse({
      ...base,
      region: 'RegionOne',
      username: 'u',
      password: 'p',
      project_name: 'proj',
    });
    expect(o).toMatchObject({
      auth_plugin: 'password',
      user_domain_name: 'Default',
      project_domain_name: 'Default',
      interface: 'public',
      verify_peer: true,
      attach_mode: 'nova',
      extend_attached: 'online',
      request_timeout_seconds: 60,
    });
  });

  it('requires what each auth plugin and attach mode needs', () => {
    const issues = (x: unknown) => {
      const r = CinderDriverOptionsSchema.safeParse(x);
      return r.success ? [] : r.error.issues.map((i) => i.path.join('.'));
    };
    expect(issues({ ...base })).toEqual(expect.arrayContaining(['username', 'password', 'project_name']));
    expect(issues({ ...base, auth_plugin: 'v3applicationcredential' })).toEqual([
      'application_credential_id',
      'application_credential_secret',
    ]);
    expect(issues({ backend: 'openstack', cluster_id: 'c', auth_plugin: 'noauth' })).toEqual([
      'cinder_url',
      'project_id',
    ]);
    expect(
      issues({
        ...base,
        auth_plugin: 'v3applicationcredential',
        application_credential_id: 'i',
        application_credential_secret: 's',
        attach_mode: 'cinder',
      }),
    ).toEqual(['instance_id']);
    expect(
      issues({
        ...base,
        auth_plugin: 'v3applicationcredential',
        application_credential_id: 'i',
        application_credential_secret: 's',
        instance_id: 'not-a-uuid',
      }),
    ).toEqual(['instance_id']);
    expect(issues({ ...base, auth_plugin: 'kerberos' })).toContain('auth_plugin');
  });
});

describe('Keystone', () => {
  it('builds password and application-credential auth bodies', () => {
    const o = CinderDriverOptionsSchema.parse({
      cluster_id: 'c',
      auth_url: 'http://k/v3',
      username: 'u',
      password: 'p',
      project_name: 'proj',
    });
    expect(authRequestBody(o)).toEqual({
      auth: {
        identity: {
          methods: ['password'],
          password: { user: { name: 'u', password: 'p', domain: { name: 'Default' } } },
        },
        scope: { project: { name: 'proj', domain: { name: 'Default' } } },
      },
    });
    const ac = CinderDriverOptionsSchema.parse({
      cluster_id: 'c',
      auth_url: 'http://k',
      auth_plugin: 'v3applicationcredential',
      application_credential_id: 'id1',
      application_credential_secret: 's1',
    });
    expect(authRequestBody(ac)).toEqual({
      auth: { identity: { methods: ['application_credential'], application_credential: { id: 'id1', secret: 's1' } } },
    });
  });

  it('finds the tokens URL with or without /v3', () => {
    expect(tokensUrl('http://k:5000')).toBe('http://k:5000/v3/auth/tokens');
    expect(tokensUrl('http://k:5000/v3/')).toBe('http://k:5000/v3/auth/tokens');
    expect(tokensUrl('https://k/identity/v3')).toBe('https://k/identity/v3/auth/tokens');
  });

  it('looks up endpoints by type, interface and region, and explains a miss', () => {
    const catalog: CatalogEntry[] = [
      {
        type: 'volumev3',
        endpoints: [
          { interface: 'public', region_id: 'R1', url: 'https://r1/v3/p/' },
          { interface: 'internal', region_id: 'R1', url: 'http://int-r1/v3/p' },
          { interface: 'public', region: 'R2', url: 'https://r2/v3/p' },
        ],
      },
      { type: 'volumev2', endpoints: [{ interface: 'public', region_id: 'R1', url: 'https://old' }] },
    ];
    expect(findEndpoint(catalog, 'volumev3', 'public', 'R1')).toBe('https://r1/v3/p');
    expect(findEndpoint(catalog, 'volumev3', 'internal', undefined)).toBe('http://int-r1/v3/p');
    expect(findEndpoint(catalog, 'volumev3', 'public', 'R2')).toBe('https://r2/v3/p');
    expect(() => findEndpoint(catalog, 'volumev3', 'admin', 'R1')).toThrow(
      /no admin volumev3 endpoint in region R1 \(found: public@R1, internal@R1, public@R2\)/,
    );
    expect(() => findEndpoint(catalog, 'compute', 'public', undefined)).toThrow(
      /no compute service \(found: volumev3, volumev2\)/,
    );
  });

  it('caches the token, renews it shortly before expiry, shares one authentication among concurrent callers', async () => {
    let issued = 0;
    let now = Date.parse('2030-01-01T00:00:00Z');
    const ks = await fakeServer(async (req) => {
      if (req.method !== 'POST' || req.url.pathname !== '/v3/auth/tokens') return { status: 404 };
      issued++;
      await new Promise((r) => setTimeout(r, 20));
      return {
        status: 201,
        headers: { 'x-subject-token': `tok-${issued}` },
        body: {
          token: { expires_at: new Date(now + 60 * 60 * 1000).toISOString(), project: { id: 'p1' }, catalog: [] },
        },
      };
    });
    const h = jsonHttp({ retry: fastRetry, sleep: noSleep });
    const o = CinderDriverOptionsSchema.parse({
      cluster_id: 'c',
      auth_url: ks.url,
      username: 'u',
      password: 'p',
      project_name: 'proj',
    });
    const session = new KeystoneSession(h, o, () => now);
    const [t1, t1b] = await Promise.all([session.token(), session.token()]);
    expect(t1.id).toBe('tok-1');
    expect(t1b.id).toBe('tok-1');
    expect(t1.projectId).toBe('p1');
    expect(issued).toBe(1);
    now += 60 * 60 * 1000 - RENEW_BEFORE_MS - 1000; // still more than the renewal margin left
    expect((await session.token()).id).toBe('tok-1');
    now += 2000; // inside the margin: renew
    expect((await session.token()).id).toBe('tok-2');
    session.invalidate(t1); // an old token being rejected does not drop the new one
    expect((await session.token()).id).toBe('tok-2');
    expect(ks.requests[0].body).toMatchObject({ auth: { identity: { methods: ['password'] } } });
  });

  it('renews the token once when Cinder answers 401, then succeeds', async () => {
    let issued = 0;
    const server = await fakeServer((req) => {
      if (req.url.pathname === '/v3/auth/tokens') {
        issued++;
        return {
          status: 201,
          headers: { 'x-subject-token': `tok-${issued}` },
          body: {
            token: {
              expires_at: '2099-01-01T00:00:00Z',
              project: { id: 'p1' },
              catalog: [
                {
                  type: 'volumev3',
                  endpoints: [{ interface: 'public', region_id: 'R', url: `${serverUrl}/volume/v3/p1` }],
                },
              ],
            },
          },
        };
      }
      if (req.headers['x-auth-token'] === 'tok-1')
        return { status: 401, body: { error: { message: 'The request you have made requires authentication.' } } };
      return { status: 200, body: { volume: volume('v1') } };
    });
    const serverUrl = server.url;
    const h = jsonHttp({ retry: fastRetry, sleep: noSleep });
    const o = CinderDriverOptionsSchema.parse({
      cluster_id: 'c',
      auth_url: server.url,
      username: 'u',
      password: 'p',
      project_name: 'proj',
      region: 'R',
    });
    const client = new CinderClient(h, new KeystoneSession(h, o), { region: 'R', interface: 'public' });
    expect((await client.getVolume('v1'))?.id).toBe('v1');
    expect(issued).toBe(2);
    const volumeCalls = server.requests.filter((r) => r.url.pathname.startsWith('/volume'));
    expect(
      volumeCalls.map((r) => [r.url.pathname, r.headers['x-auth-token'], r.headers['openstack-api-version']]),
    ).toEqual([
      ['/volume/v3/p1/volumes/v1', 'tok-1', 'volume 3.44'],
      ['/volume/v3/p1/volumes/v1', 'tok-2', 'volume 3.44'],
    ]);
  });
});

describe('Cinder client: pagination and retries', () => {
  it('follows limit/marker pages filtered by metadata until there is no next link', async () => {
    const all = Array.from({ length: 7 }, (_, i) => volume(`v${i}`, { metadata: { 'flocker-cluster-id': 'c1' } }));
    const server = await fakeServer((req) => {
      const limit = Number(req.url.searchParams.get('limit'));
      const marker = req.url.searchParams.get('marker');
      const start = marker === null ? 0 : all.findIndex((v) => v.id === marker) + 1;
      const page = all.slice(start, start + limit);
      const more = start + limit < all.length;
      return {
        status: 200,
        body: {
          volumes: page,
          ...(more
            ? { volumes_links: [{ rel: 'next', href: `${req.url.pathname}?marker=${page[page.length - 1].id}` }] }
            : {}),
        },
      };
    });
    const h = jsonHttp({ retry: fastRetry, sleep: noSleep });
    const client = new CinderClient(
      h,
      new NoAuthTokenSource('p1'),
      { interface: 'public', cinderUrl: `${server.url}/v3` },
      3,
    );
    const listed = await client.listVolumes({ 'flocker-cluster-id': 'c1' });
    expect(listed.map((v) => v.id)).toEqual(all.map((v) => v.id));
    expect(server.requests.map((r) => r.url.searchParams.get('marker'))).toEqual([null, 'v2', 'v5']);
    expect(server.requests[0].url.pathname).toBe('/v3/p1/volumes/detail');
    expect(JSON.parse(server.requests[0].url.searchParams.get('metadata') ?? '')).toEqual({
      'flocker-cluster-id': 'c1',
    });
    expect(server.requests[0].headers['x-auth-token']).toBe('flocker:p1');
  });

  it('drops volumes a server returns despite the metadata filter', async () => {
    const server = await fakeServer(() => ({
      status: 200,
      body: { volumes: [volume('mine', { metadata: { 'flocker-cluster-id': 'c1' } }), volume('theirs')] },
    }));
    const h = jsonHttp({ retry: fastRetry, sleep: noSleep });
    const client = new CinderClient(h, new NoAuthTokenSource('p1'), { interface: 'public', cinderUrl: server.url });
    expect((await client.listVolumes({ 'flocker-cluster-id': 'c1' })).map((v) => v.id)).toEqual(['mine']);
  });

  it('retries GETs on 5xx and 429 with backoff, and gives up with the service message', async () => {
    let n = 0;
    const server = await fakeServer((req) => {
      n++;
      if (req.url.pathname === '/flaky')
        return n < 3
          ? { status: n === 1 ? 500 : 429, body: { computeFault: { message: 'busy' } } }
          : { status: 200, body: { ok: true } };
      return { status: 502, body: { computeFault: { message: 'bad gateway' } } };
    });
    const delays: number[] = [];
    const h = jsonHttp({
      retry: { attempts: 4, baseDelayMs: 100, maxDelayMs: 1000 },
      sleep: async (ms) => void delays.push(ms),
      random: () => 0.5,
    });
    expect((await h.request('GET', `${server.url}/flaky`)).body).toEqual({ ok: true });
    expect(delays).toEqual([75, 150]); // the runtime's equal jitter: half of each ceiling fixed, half drawn
    n = 0;
    await expect(h.request('GET', `${server.url}/down`)).rejects.toMatchObject({
      status: 502,
      serviceMessage: 'bad gateway',
    });
    expect(n).toBe(4);
  });

  it('does not repeat a non-idempotent POST after a 500, but does after 503 (nothing was done)', async () => {
    const statuses = [500, 503, 201];
    let i = 0;
    const server = await fakeServer(() => ({ status: statuses[Math.min(i++, statuses.length - 1)], body: {} }));
    const h = jsonHttp({ retry: fastRetry, sleep: noSleep });
    await expect(h.request('POST', `${server.url}/volumes`, { body: {}, idempotent: false })).rejects.toBeInstanceOf(
      OpenStackHttpError,
    );
    expect(i).toBe(1);
    expect((await h.request('POST', `${server.url}/volumes`, { body: {}, idempotent: false })).status).toBe(201);
    expect(i).toBe(3);
  });

  it('retries refused connections, then reports them as unambiguous connection errors', async () => {
    const server = await fakeServer(() => ({ status: 200 }));
    const url = server.url;
    await server.close(); // nothing listens there any more
    const retries: string[] = [];
    const h = jsonHttp({ retry: fastRetry, sleep: noSleep, onRetry: (r) => retries.push(r.reason) });
    const failure = await h.request('POST', `${url}/volumes`, { idempotent: false }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(OpenStackConnectionError);
    expect((failure as OpenStackConnectionError).ambiguous).toBe(false);
    expect(retries).toHaveLength(3);
  });

  it('waits the runtime backoff (equal jitter): never less than half the exponential ceiling', async () => {
    const server = await fakeServer(() => ({ status: 503, body: {} }));
    const delays: number[] = [];
    const h = jsonHttp({
      retry: { attempts: 7, baseDelayMs: 100, maxDelayMs: 1000 },
      sleep: async (ms) => void delays.push(ms),
      random: () => 0,
    });
    await expect(h.request('GET', `${server.url}/x`)).rejects.toMatchObject({ status: 503 });
    // Full jitter (before) could draw 0 ms and retry a refusing service at once.
    expect(delays).toEqual([50, 100, 200, 400, 500, 500]);
  });
});

describe('CinderDriver against a fake Cinder: create recovery', () => {
  /** A fake Cinder keeping volumes in memory; `onCreate` decides how a POST /volumes is answered. */
  async function fakeCinder(onCreate: (v: ReturnType<typeof volume>) => Reply, statusAfterCreate = 'available') {
    const volumes = new Map<string, ReturnType<typeof volume>>();
    let seq = 0;
    const deleted: string[] = [];
    const server = await fakeServer((req) => {
      const p = req.url.pathname.replace(/^\/v3\/p1/, '');
      if (req.method === 'POST' && p === '/volumes') {
        const body = req.body as { volume: { size: number; metadata: Record<string, string> } };
        const v = volume(`00000000-0000-4000-8000-${String(++seq).padStart(12, '0')}`, {
          status: 'creating',
          size: body.volume.size,
          metadata: body.volume.metadata,
        });
        const reply = onCreate(v);
        if (reply !== 'destroy' && reply.status >= 400) return reply;
        volumes.set(v.id, v);
        setTimeout(() => volumes.set(v.id, { ...v, status: statusAfterCreate }), 10);
        return reply;
      }
      if (req.method === 'GET' && p === '/volumes/detail') {
        const filter = JSON.parse(req.url.searchParams.get('metadata') ?? '{}') as Record<string, string>;
        return {
          status: 200,
          body: {
            volumes: [...volumes.values()].filter((v) =>
              Object.entries(filter).every(([k, x]) => (v.metadata as Record<string, string>)[k] === x),
            ),
          },
        };
      }
      const m = /^\/volumes\/([^/]+)$/.exec(p);
      if (m && req.method === 'GET') {
        const v = volumes.get(m[1]);
        return v
          ? { status: 200, body: { volume: v } }
          : { status: 404, body: { itemNotFound: { message: `Volume ${m[1]} could not be found.` } } };
      }
      if (m && req.method === 'DELETE') {
        deleted.push(m[1]);
        volumes.delete(m[1]);
        return { status: 202 };
      }
      return { status: 404 };
    });
    const driver = new CinderDriver(
      {
        auth_plugin: 'noauth',
        cinder_url: `${server.url}/v3`,
        project_id: 'p1',
        cluster_id: 'c1',
        attach_mode: 'cinder',
        instance_id: 'node-a',
        operation_timeout_seconds: 5,
      },
      { retry: fastRetry, sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 20))) },
    );
    closeAfterTest.push(() => driver.close());
    return { server, driver, volumes, deleted };
  }

  it('adopts a volume whose create answer was lost (connection reset after the server made it)', async () => {
    const { server, driver, volumes } = await fakeCinder(() => 'destroy');
    const v = await driver.createVolume('dataset-1', 1);
    expect(v).toMatchObject({ datasetId: 'dataset-1', size: 1024 ** 3, attachedTo: null });
    expect([...volumes.keys()]).toEqual([v.blockdeviceId]);
    // The POST was sent once: adoption found it by its create token instead of creating another.
    expect(server.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
    expect(server.requests.some((r) => r.url.searchParams.get('metadata')?.includes(META_CREATE_TOKEN))).toBe(true);
  });

  it('deletes a volume that ends in error instead of leaking it', async () => {
    const { driver, volumes, deleted } = await fakeCinder((v) => ({ status: 202, body: { volume: v } }), 'error');
    const failure = await driver.createVolume('dataset-2', 1).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(StorageError);
    expect((failure as StorageError).message).toMatch(/went to status error/);
    expect(deleted).toHaveLength(1);
    expect(volumes.size).toBe(0);
  });

  it("reports a refused create as BACKEND_ERROR with Cinder's message and creates nothing", async () => {
    const { driver, volumes } = await fakeCinder(() => ({
      status: 413,
      body: { overLimit: { message: 'VolumeLimitExceeded: Maximum number of volumes allowed (10) exceeded' } },
    }));
    const failure = await driver.createVolume('dataset-3', 1).catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: 'BACKEND_ERROR' });
    expect((failure as Error).message).toMatch(/HTTP 413: VolumeLimitExceeded/);
    expect(volumes.size).toBe(0);
  });
});
