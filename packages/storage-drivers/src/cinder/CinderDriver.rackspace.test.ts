/**
 * auth_plugin rackspace: the BlockDeviceApi contract against the REAL Cinder of scripts/cinder.sh
 * (noauth), reached only through a Rackspace-style Identity v2.0 endpoint running as its own process
 * (rackspaceIdentityStub.ts): API-key token request, the token's tenant, the service catalogue and
 * the region's endpoint of type volume. attach_mode cinder (no Nova can run here). Needs root.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { blockDeviceApiContract } from '../testing/contract';
import { CinderDriver } from './CinderDriver';
import { JsonHttp } from './http';
import { RackspaceSession } from './rackspace';
import { quickPolls, startTestCinder, type TestCinder } from './testCinder';

jest.setTimeout(15 * 60 * 1000);

const TENANT = 'a7e1cc0e4b2d4f6e8a9b0c1d2e3f4a5b';
const USER = 'flocker-rax';
const KEY = 'aaaaa-bbbbb-ccccc-12345678';

let cinder: Promise<TestCinder> | undefined;
let identity: Promise<{ url: string; child: ChildProcess }> | undefined;
let users = 0;

async function startIdentity(cinderUrl: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [
      path.join(__dirname, 'rackspaceIdentityStub.js'),
      JSON.stringify({ cinderUrl, username: USER, apiKey: KEY, tenant: TENANT, region: 'ORD' }),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines = readline.createInterface({ input: child.stdout });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`identity stub exited with ${code}`)));
  });
  return { url: (JSON.parse(first) as { url: string }).url, child };
}

async function start(): Promise<string> {
  users++;
  cinder ??= startTestCinder('noauth');
  identity ??= cinder.then((c) => startIdentity(c.url));
  return (await identity).url;
}

async function stop(): Promise<void> {
  users--;
  if (users > 0) return;
  const [c, i] = [cinder, identity];
  cinder = identity = undefined;
  (await i)?.child.kill();
  await (await c)?.purge();
}

// Held for the whole file: without it the count fell to zero between the describe blocks, and the second started
// a Cinder (and identity stub) of its own (~20-40 s).
beforeAll(async () => void (await start()));
afterAll(stop);

function makeDriver(authUrl: string, clusterId: string, host: string, apiKey = KEY): CinderDriver {
  return new CinderDriver(
    {
      backend: 'rackspace',
      auth_plugin: 'rackspace',
      auth_url: authUrl,
      username: USER,
      api_key: apiKey,
      region: 'ORD',
      cluster_id: clusterId,
      instance_id: host,
      attach_mode: 'cinder',
      extend_attached: 'reattach',
      connector: { ip: '127.0.0.1' },
      operation_timeout_seconds: 120,
    },
    quickPolls,
  );
}

blockDeviceApiContract(
  'rackspace (Rackspace Identity v2.0 API key, catalogue region ORD, real Cinder)',
  async () => {
    const url = await start();
    const clusterId = randomUUID();
    const a = makeDriver(url, clusterId, `flocker-rax-a-${randomUUID().slice(0, 8)}`);
    const b = makeDriver(url, clusterId, `flocker-rax-b-${randomUUID().slice(0, 8)}`);
    await a.client.ensureVolumeType('gold', { volume_backend_name: 'nfs' });
    return {
      driver: a,
      driverOnOtherInstance: b,
      cleanup: async () => {
        await a.close();
        await b.close();
        await stop();
      },
    };
  },
  {
    snapshotLimits: { noAttachedSnapshots: true, sourceUnattachableWhileSnapshotted: true, snapshotsPinSource: true },
    temporaryVolumes: (d) => (d as CinderDriver).temporaryVolumes(),
  },
);

describe('Rackspace Identity v2.0 flavour', () => {
  let url: string;
  beforeAll(async () => {
    url = await start();
  });
  afterAll(stop);

  it('takes the token, tenant and the region endpoints of types volume and compute from the catalogue', async () => {
    const http = new JsonHttp();
    try {
      const session = new RackspaceSession(http, { auth_url: url, username: USER, api_key: KEY });
      const token = await session.token();
      expect(token.id).toBe(`${USER}:${TENANT}`);
      expect(token.projectId).toBe(TENANT);
      expect(await session.token()).toBe(token); // cached until close to expiry
      const types = token.catalog.map((e) => e.type).sort();
      expect(types).toEqual(['compute', 'volume']);
      const volume = token.catalog.find((e) => e.type === 'volume');
      expect(volume?.endpoints.filter((e) => e.region_id === 'ORD' && e.interface === 'public')).toHaveLength(1);
    } finally {
      await http.close();
    }
  });

  it("surfaces the identity service's own message for a wrong API key", async () => {
    const d = makeDriver(url, randomUUID(), 'flocker-rax-bad', 'wrong-key');
    try {
      await expect(d.listVolumes()).rejects.toThrow(/401.*Username or api key is invalid/);
    } finally {
      await d.close();
    }
  });

  it('fails clearly for a region the catalogue does not have', async () => {
    const d = new CinderDriver({
      auth_plugin: 'rackspace',
      auth_url: url,
      username: USER,
      api_key: KEY,
      region: 'SYD',
      cluster_id: randomUUID(),
      instance_id: 'flocker-rax-syd',
      attach_mode: 'cinder',
    });
    try {
      await expect(d.listVolumes()).rejects.toThrow(/no public volume endpoint in region SYD/);
    } finally {
      await d.close();
    }
  });
});
