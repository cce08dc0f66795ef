/**
 * CinderDriver with REAL Keystone authentication: scripts/cinder.sh with
 * CINDER_AUTH=keystone runs Keystone 28 (PyPI) and a Cinder behind
 * keystonemiddleware. Password and application-credential auth, the volumev3
 * endpoint from the catalog by region and interface, and token renewal after
 * Keystone revokes our token (Cinder then answers 401).
 */
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { z } from 'zod';
import { CinderClient } from './CinderClient';
import { CinderDriver } from './CinderDriver';
import { JsonHttp, parseBody } from './http';
import { KeystoneSession } from './keystone';
import { quickPolls, startTestCinder, type TestCinder } from './testCinder';
import { CinderDriverOptionsSchema, type CinderDriverOptionsInput } from './schemas';

jest.setTimeout(15 * 60 * 1000);

describe('CinderDriver with real Keystone authentication', () => {
  let cinder: TestCinder | undefined;
  let keystoneUrl: string;
  let http: JsonHttp;
  const clusterId = randomUUID();
  const drivers: CinderDriver[] = [];

  function driver(extra: Partial<CinderDriverOptionsInput>): CinderDriver {
    const d = new CinderDriver(
      {
        backend: 'openstack',
        auth_url: keystoneUrl,
        region: 'RegionOne',
        interface: 'internal',
        cluster_id: clusterId,
        attach_mode: 'cinder',
        instance_id: 'keystone-test-host',
        extend_attached: 'reattach',
        operation_timeout_seconds: 120,
        ...extra,
      },
      quickPolls,
    );
    drivers.push(d);
    return d;
  }

  const password = {
    auth_plugin: 'password',
    username: 'flocker',
    password: 'flocker-secret',
    project_name: 'flocker',
  } as const;

  beforeAll(async () => {
    cinder = await startTestCinder('keystone');
    keystoneUrl = cinder.keystoneUrl ?? '';
    http = new JsonHttp();
  });

  afterAll(async () => {
    for (const d of drivers) {
      for (const v of await d.listVolumes().catch(() => [])) {
        await d.detachVolume(v.blockdeviceId, { force: true }).catch(() => undefined);
        await d.destroyVolume(v.blockdeviceId).catch(() => undefined);
      }
    }
    for (const d of drivers) await d.close();
    await http?.close();
    await cinder?.purge();
  });

  it('authenticates with a password, finds Cinder in the catalog, and runs a whole volume life cycle', async () => {
    const d = driver(password);
    const v = await d.createVolume(randomUUID(), 1);
    expect(await d.listVolumes()).toEqual([v]);
    const attached = await d.attachVolume(v.blockdeviceId, 'keystone-test-host');
    expect(attached.attachedTo).toBe('keystone-test-host');
    expect((await fs.stat(await d.getDevicePath(v.blockdeviceId))).isBlockDevice()).toBe(true);
    await d.detachVolume(v.blockdeviceId);
    await d.destroyVolume(v.blockdeviceId);
    expect(await d.listVolumes()).toEqual([]);
  });

  it('authenticates with an application credential (bound to its project)', async () => {
    const session = new KeystoneSession(
      http,
      CinderDriverOptionsSchema.parse({ cluster_id: 'x', auth_url: keystoneUrl, ...password }),
    );
    const token = await session.token();
    const me = await http.request('GET', `${keystoneUrl}/auth/tokens`, {
      headers: { 'x-auth-token': token.id, 'x-subject-token': token.id },
    });
    const userId = parseBody(z.object({ token: z.object({ user: z.object({ id: z.string() }) }) }), me.body, 'token')
      .token.user.id;
    const created = await http.request('POST', `${keystoneUrl}/users/${userId}/application_credentials`, {
      headers: { 'x-auth-token': token.id },
      body: { application_credential: { name: `flocker-${randomUUID().slice(0, 8)}` } },
    });
    const cred = parseBody(
      z.object({ application_credential: z.object({ id: z.string(), secret: z.string() }) }),
      created.body,
      'application credential',
    ).application_credential;

    const byPassword = driver(password);
    const v = await byPassword.createVolume(randomUUID(), 1);
    const byAppCred = driver({
      auth_plugin: 'v3applicationcredential',
      application_credential_id: cred.id,
      application_credential_secret: cred.secret,
    });
    expect((await byAppCred.listVolumes()).map((x) => x.blockdeviceId)).toContain(v.blockdeviceId);
    await byAppCred.destroyVolume(v.blockdeviceId);
  });

  it('renews the token when Keystone revoked it and Cinder answers 401', async () => {
    const session = new KeystoneSession(
      http,
      CinderDriverOptionsSchema.parse({ cluster_id: 'x', auth_url: keystoneUrl, ...password }),
    );
    const client = new CinderClient(http, session, { region: 'RegionOne', interface: 'public' });
    const before = await client.listVolumes({ 'flocker-cluster-id': clusterId });
    const first = await session.token();
    await http.request('DELETE', `${keystoneUrl}/auth/tokens`, {
      headers: { 'x-auth-token': first.id, 'x-subject-token': first.id },
    });
    expect(await client.listVolumes({ 'flocker-cluster-id': clusterId })).toEqual(before);
    const second = await session.token();
    expect(second.id).not.toBe(first.id);
    expect(second.projectId).toBe(first.projectId);
  });

  it("fails with BACKEND_ERROR and Keystone's message on a wrong password, and names a missing region", async () => {
    const wrong = driver({ ...password, password: 'wrong' });
    await expect(wrong.listVolumes()).rejects.toMatchObject({
      code: 'BACKEND_ERROR',
      message: expect.stringMatching(/HTTP 401: The request you have made requires authentication/),
    });
    const elsewhere = driver({ ...password, region: 'RegionTwo' });
    await expect(elsewhere.listVolumes()).rejects.toMatchObject({
      code: 'BACKEND_ERROR',
      message: expect.stringMatching(/no internal volumev3 endpoint in region RegionTwo/),
    });
  });
});
