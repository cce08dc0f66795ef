/**
 * DNS rebinding against a development control service (--insecure-http): a page of evil.example whose name now
 * resolves to 127.0.0.1 sends `Host: evil.example` (and, on a POST, `Origin: http://evil.example:<port>`, the
 * "own origin" of crossOrigin.ts). The plain-HTTP listener answers only a Host that names the service: an IP
 * address, localhost, the --host name or an --allowed-host name; anything else 403 HOST_NOT_ALLOWED before any
 * handler. Mutual TLS is unaffected (the certificate authenticates the client).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FlockerClient } from '@flocker/api';
import { AllowedHost, hostAllowList, hostRefusal } from './hostCheck';
import { checkAllowedHosts, type ControlService, startControlService } from './server';
import { issue, selfSignedCa } from './testing/etcdCluster';
import { NODE_A, nodeReport, sendRaw as send, silentLogger, startOnLoopback } from './testing/httpService';

const createBody = (name: string): string => JSON.stringify({ primary: NODE_A, metadata: { name } });

describe('hostRefusal (pure)', () => {
  const list = hostAllowList('0.0.0.0', ['control.dev.lan']);
  it.each([
    '127.0.0.1:4523',
    '127.0.0.1',
    '127.8.9.10:4523',
    'localhost:4523',
    'LOCALHOST:4523',
    'localhost.:4523',
    '[::1]:4523',
    '[::1]',
    '10.0.0.5:4523',
    '[fd00::5]:4523',
    'control.dev.lan:4523',
    'Control.Dev.Lan',
  ])('takes %s', (host) => {
    expect(hostRefusal(host, list)).toBeUndefined();
  });
  it.each([
    'evil.example',
    'evil.example:4523',
    'localhost.evil.example:4523',
    'dev.lan:4523',
    'x.control.dev.lan',
    '127.0.0.1.nip.io:4523',
    '',
    ' ',
    'evil.example@127.0.0.1',
    '127.0.0.1/evil',
    '127.0.0.1\\evil',
    '127.0.0.1:99999',
  ])('refuses %j', (host) => {
    const refusal = hostRefusal(host, list);
    expect(refusal).toContain(JSON.stringify(host));
    expect(refusal).toContain('control.dev.lan');
  });
  it('no Host (HTTP/1.0: no browser) is taken', () => {
    expect(hostRefusal(undefined, list)).toBeUndefined();
  });
  it('the --host name counts (an address adds nothing: every address is taken)', () => {
    const named = hostAllowList('control.local', []);
    expect(hostRefusal('control.local:4523', named)).toBeUndefined();
    expect(hostRefusal('control.dev.lan:4523', named)).toContain('--allowed-host control.dev.lan');
    expect([...hostAllowList('10.0.0.5', ['10.0.0.6']).names]).toEqual(['localhost']);
  });
  it('--allowed-host values: names or addresses, lower-cased; a scheme, port or path is refused', () => {
    expect(AllowedHost.parse('Control.Dev.Lan')).toBe('control.dev.lan');
    expect(AllowedHost.parse('10.0.0.5')).toBe('10.0.0.5');
    for (const bad of ['http://control.dev.lan', 'control.dev.lan:4523', 'control.dev.lan/x', '', 'a b']) {
      expect(AllowedHost.safeParse(bad).success).toBe(false);
    }
    expect(checkAllowedHosts(['Control.Dev.Lan'], false)).toEqual(['control.dev.lan']);
    expect(() => checkAllowedHosts(['control.dev.lan:4523'], false)).toThrow(
      expect.objectContaining({ code: 'INVALID_ALLOWED_HOST' }),
    );
    expect(() => checkAllowedHosts(['control.dev.lan'], true)).toThrow(
      expect.objectContaining({ code: 'INVALID_ALLOWED_HOST', message: expect.stringContaining('--insecure-http') }),
    );
  });
});

describe('the plain-HTTP listener answers only requests naming it (DNS rebinding, --insecure-http)', () => {
  let svc: ControlService;
  let client: FlockerClient;
  let port: string;
  beforeEach(async () => {
    svc = await startOnLoopback({ allowedHosts: ['control.dev.lan'] });
    client = new FlockerClient({ baseUrl: svc.url, timeoutMs: 5000 });
    await client.reportNodeState(nodeReport(NODE_A));
    port = new URL(svc.url).port;
  });
  afterEach(async () => {
    await svc.close();
  });

  it('Host: evil.example (a rebound page): a read and a same-"origin" POST are 403 JSON, nothing created', async () => {
    const host = `evil.example:${port}`;
    const read = await send(svc.url, 'GET', '/v1/configuration/datasets', { host });
    expect(read.status).toBe(403);
    expect(read.contentType).toMatch(/^application\/json/);
    const parsed = JSON.parse(read.body) as { code: string; description: string };
    expect(parsed.code).toBe('HOST_NOT_ALLOWED');
    expect(parsed.description).toContain('--allowed-host evil.example');
    // What a rebound page's fetch sends: Origin and Host both its own name (crossOrigin.ts would take it).
    const write = await send(
      svc.url,
      'POST',
      '/v1/configuration/datasets',
      { host, origin: `http://${host}`, 'content-type': 'text/plain', 'sec-fetch-site': 'same-origin' },
      createBody('rebound'),
    );
    expect(write.status).toBe(403);
    expect((JSON.parse(write.body) as { code: string }).code).toBe('HOST_NOT_ALLOWED');
    expect(await client.listDatasets()).toEqual([]);
    // Before any handler: an unknown path and the OpenAPI document are refused alike.
    for (const p of ['/nosuch', '/v1/openapi.json']) {
      expect((await send(svc.url, 'GET', p, { host })).status).toBe(403);
    }
  });

  it('Host: 127.0.0.1, localhost, [::1] (with the port) and an --allowed-host name are served', async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `control.dev.lan:${port}`]) {
      const read = await send(svc.url, 'GET', '/v1/configuration/datasets', { host });
      expect({ host, status: read.status }).toEqual({ host, status: 200 });
      // A page the service's own origin served may change it (crossOrigin.ts's own origin is this Host).
      const write = await send(
        svc.url,
        'POST',
        '/v1/configuration/datasets',
        { host, origin: `http://${host}`, 'content-type': 'application/json' },
        createBody(`from ${host}`),
      );
      expect({ host, status: write.status }).toEqual({ host, status: 201 });
    }
    // curl, the CLI and the agents (undici: Host is the URL's) keep working.
    expect((await client.listDatasets()).length).toBe(4);
  });
});

describe('the mutual-TLS listener does not check Host (the client certificate authenticates)', () => {
  let dir: string;
  let svc: ControlService | undefined;
  afterEach(async () => {
    await svc?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an API user naming evil.example is served; --allowed-host with TLS is refused at start', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'flocker-host-check-'));
    const ca = selfSignedCa(dir, 'cluster');
    const server = issue(
      dir,
      'control-service',
      ca,
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n',
    );
    const user = issue(
      dir,
      'user-admin',
      ca,
      'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n',
    );
    const tls = { ca: readFileSync(ca.crt), cert: readFileSync(server.crt), key: readFileSync(server.key) };
    await expect(
      startControlService({ port: 0, host: '127.0.0.1', dataDir: dir, logger: silentLogger, tls, allowedHosts: ['x'] }),
    ).rejects.toMatchObject({ code: 'INVALID_ALLOWED_HOST' });
    svc = await startControlService({ port: 0, host: '127.0.0.1', dataDir: dir, logger: silentLogger, tls });
    const asUser = { ca: tls.ca, cert: readFileSync(user.crt), key: readFileSync(user.key) };
    const read = await send(
      svc.url,
      'GET',
      '/v1/configuration/datasets',
      { host: `evil.example:${new URL(svc.url).port}` },
      undefined,
      asUser,
    );
    expect(read.status).toBe(200);
    expect(read.body).toBe('[]');
  });
});
