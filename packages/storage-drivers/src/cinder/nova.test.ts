/**
 * attach_mode nova against a fake Keystone + Cinder + Nova on one local HTTP
 * server (no Nova can run here): the API calls, the catalog endpoints used,
 * the device lookup by serial, and the error mapping.
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { expectStorageError } from '../testing/contract';
import { CinderDriver } from './CinderDriver';

interface FakeVolume {
  id: string;
  status: string;
  size: number;
  metadata: Record<string, string>;
  attachments: { server_id: string; attachment_id: string; host_name: null }[];
}

async function fakeOpenStack() {
  const volumes = new Map<string, FakeVolume>();
  const calls: string[] = [];
  let base = '';
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const text = Buffer.concat(chunks).toString();
      const body: unknown = text ? JSON.parse(text) : undefined;
      calls.push(`${req.method} ${url.pathname}`);
      const send = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(payload === undefined ? '' : JSON.stringify(payload));
      };
      if (url.pathname === '/identity/v3/auth/tokens') {
        return send(
          201,
          {
            token: {
              expires_at: '2099-01-01T00:00:00Z',
              project: { id: 'p1' },
              catalog: [
                {
                  type: 'volumev3',
                  endpoints: [{ interface: 'internal', region_id: 'R1', url: `${base}/volume/v3/p1` }],
                },
                {
                  type: 'compute',
                  endpoints: [{ interface: 'internal', region_id: 'R1', url: `${base}/compute/v2.1` }],
                },
              ],
            },
          },
          { 'x-subject-token': 'tok' },
        );
      }
      if (url.pathname === '/identity/v2.0/tokens') {
        // Rackspace Identity v2.0 (see rackspace.ts): the catalogue by region, publicURL and internalURL.
        const endpoint = (region: string, url: string) => ({
          region,
          tenantId: 'p1',
          publicURL: url,
          internalURL: url,
        });
        return send(200, {
          access: {
            token: { id: 'tok', expires: '2099-01-01T00:00:00.000Z', tenant: { id: 'p1', name: 'p1' } },
            serviceCatalog: [
              {
                name: 'cloudBlockStorage',
                type: 'volume',
                endpoints: [endpoint('R2', 'http://127.0.0.1:9/v1/p1'), endpoint('R1', `${base}/volume/v3/p1`)],
              },
              {
                name: 'cloudServersOpenStack',
                type: 'compute',
                endpoints: [endpoint('R2', 'http://127.0.0.1:9/v2/p1'), endpoint('R1', `${base}/compute/v2.1`)],
              },
            ],
          },
        });
      }
      if (req.headers['x-auth-token'] !== 'tok') return send(401, { error: { message: 'no token' } });
      let m: RegExpExecArray | null;
      if (req.method === 'POST' && url.pathname === '/volume/v3/p1/volumes') {
        const { volume } = body as { volume: { size: number; metadata: Record<string, string> } };
        const v: FakeVolume = {
          id: randomUUID(),
          status: 'available',
          size: volume.size,
          metadata: volume.metadata,
          attachments: [],
        };
        volumes.set(v.id, v);
        return send(202, { volume: v });
      }
      if (url.pathname === '/volume/v3/p1/volumes/detail') {
        const filter = JSON.parse(url.searchParams.get('metadata') ?? '{}') as Record<string, string>;
        return send(200, {
          volumes: [...volumes.values()].filter((v) => Object.entries(filter).every(([k, x]) => v.metadata[k] === x)),
        });
      }
      if ((m = /^\/volume\/v3\/p1\/volumes\/([^/]+)$/.exec(url.pathname))) {
        const v = volumes.get(m[1]);
        return v ? send(200, { volume: v }) : send(404, { itemNotFound: { message: 'not found' } });
      }
      if (
        req.method === 'POST' &&
        (m = /^\/compute\/v2\.1\/servers\/([^/]+)\/os-volume_attachments$/.exec(url.pathname))
      ) {
        const serverId = m[1];
        const { volumeAttachment } = body as { volumeAttachment: { volumeId: string } };
        const v = volumes.get(volumeAttachment.volumeId);
        if (!v) return send(404, { itemNotFound: { message: 'volume not found' } });
        if (v.status !== 'available')
          return send(400, {
            badRequest: { message: `Invalid volume: volume ${v.id} status must be available, but is ${v.status}` },
          });
        v.status = 'attaching';
        // Nova attaches asynchronously.
        setTimeout(() => {
          v.status = 'in-use';
          v.attachments = [{ server_id: serverId, attachment_id: randomUUID(), host_name: null }];
        }, 30);
        return send(200, { volumeAttachment: { id: v.id, volumeId: v.id, serverId, device: '/dev/vdb' } });
      }
      if (
        req.method === 'DELETE' &&
        (m = /^\/compute\/v2\.1\/servers\/([^/]+)\/os-volume_attachments\/([^/]+)$/.exec(url.pathname))
      ) {
        const v = volumes.get(m[2]);
        if (!v || v.attachments[0]?.server_id !== m[1]) return send(404, { itemNotFound: { message: 'not attached' } });
        v.status = 'detaching';
        setTimeout(() => {
          v.status = 'available';
          v.attachments = [];
        }, 30);
        return send(202);
      }
      return send(404, { itemNotFound: { message: `no route ${req.method} ${url.pathname}` } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, calls, volumes, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe('CinderDriver attach_mode nova (fake Keystone, Cinder and Nova)', () => {
  let os_: Awaited<ReturnType<typeof fakeOpenStack>>;
  let byId: string;
  let driver: CinderDriver;
  let other: CinderDriver;
  const me = randomUUID();
  const them = randomUUID();

  beforeAll(async () => {
    os_ = await fakeOpenStack();
    byId = await fs.mkdtemp(path.join(os.tmpdir(), 'flocker-by-id-'));
    const options = {
      backend: 'openstack' as const,
      auth_url: `${os_.base}/identity/v3`,
      username: 'u',
      password: 'p',
      project_name: 'proj',
      region: 'R1',
      interface: 'internal' as const,
      cluster_id: 'c1',
      device_by_id_dir: byId,
      operation_timeout_seconds: 5,
    };
    const deps = {
      sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, Math.min(ms, 10))),
      retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 1 },
    };
    // The instance id comes from the metadata service when not configured.
    driver = new CinderDriver(options, { ...deps, discoverInstanceId: async () => me });
    other = new CinderDriver({ ...options, instance_id: them }, deps);
  });

  afterAll(async () => {
    await driver.close();
    await other.close();
    await os_.close();
    await fs.rm(byId, { recursive: true, force: true });
  });

  it('attaches through Nova, finds the disk by its virtio serial, and detaches through Nova', async () => {
    expect(await driver.computeInstanceId()).toBe(me);
    const v = await driver.createVolume(randomUUID(), 1);
    const attached = await driver.attachVolume(v.blockdeviceId, me);
    expect(attached.attachedTo).toBe(me);
    await fs.writeFile(path.join(byId, 'disk'), '');
    await fs.symlink(path.join(byId, 'disk'), path.join(byId, `virtio-${v.blockdeviceId.slice(0, 20)}`));
    expect(await driver.getDevicePath(v.blockdeviceId)).toBe(await fs.realpath(path.join(byId, 'disk')));
    await expectStorageError(other.getDevicePath(v.blockdeviceId), 'NOT_ATTACHED_HERE');
    await expectStorageError(other.detachVolume(v.blockdeviceId), 'NOT_ATTACHED_HERE');
    await driver.detachVolume(v.blockdeviceId);
    expect((await driver.listVolumes()).find((x) => x.blockdeviceId === v.blockdeviceId)?.attachedTo).toBeNull();
    expect(os_.calls).toEqual(
      expect.arrayContaining([
        'POST /identity/v3/auth/tokens',
        `POST /compute/v2.1/servers/${me}/os-volume_attachments`,
        `DELETE /compute/v2.1/servers/${me}/os-volume_attachments/${v.blockdeviceId}`,
      ]),
    );
  });

  it('lets exactly one of two concurrent Nova attaches win; the loser gets ALREADY_ATTACHED (our check or Nova refusing)', async () => {
    const v = await driver.createVolume(randomUUID(), 1);
    const results = await Promise.allSettled([
      driver.attachVolume(v.blockdeviceId, me),
      other.attachVolume(v.blockdeviceId, them),
    ]);
    const lost = results.filter((r) => r.status === 'rejected');
    expect(lost).toHaveLength(1);
    expect(lost[0].status === 'rejected' ? lost[0].reason : undefined).toMatchObject({ code: 'ALREADY_ATTACHED' });
    // A force detach by the other instance works for whoever won.
    await other.detachVolume(v.blockdeviceId, { force: true });
  });
});

describe('CinderDriver auth_plugin rackspace: Nova volume-attachments in the region of the v2.0 catalogue', () => {
  it('authenticates with the API key and attaches and detaches through the region R1 compute endpoint', async () => {
    const fake = await fakeOpenStack();
    const byId = await fs.mkdtemp(path.join(os.tmpdir(), 'flocker-by-id-'));
    const me = randomUUID();
    const driver = new CinderDriver(
      {
        backend: 'rackspace',
        auth_plugin: 'rackspace',
        auth_url: `${fake.base}/identity/v2.0`,
        username: 'u',
        api_key: 'k',
        region: 'R1',
        cluster_id: 'c1',
        instance_id: me,
        device_by_id_dir: byId,
        operation_timeout_seconds: 5,
      },
      {
        sleep: (ms) => new Promise<void>((r) => setTimeout(r, Math.min(ms, 10))),
        retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 1 },
      },
    );
    try {
      const v = await driver.createVolume(randomUUID(), 1);
      expect((await driver.attachVolume(v.blockdeviceId, me)).attachedTo).toBe(me);
      await driver.detachVolume(v.blockdeviceId);
      expect(fake.calls).toEqual(
        expect.arrayContaining([
          'POST /identity/v2.0/tokens',
          'POST /volume/v3/p1/volumes',
          `POST /compute/v2.1/servers/${me}/os-volume_attachments`,
          `DELETE /compute/v2.1/servers/${me}/os-volume_attachments/${v.blockdeviceId}`,
        ]),
      );
    } finally {
      await driver.close();
      await fake.close();
      await fs.rm(byId, { recursive: true, force: true });
    }
  });
});
