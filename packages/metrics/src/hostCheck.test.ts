/**
 * DNS rebinding against a metrics listener (review B12): a page whose DNS name was pointed at 127.0.0.1 would read
 * /metrics and /readyz as its own origin. Only a Host naming the listener is answered (@flocker/runtime hostCheck,
 * the control service's --insecure-http check).
 */
import { request } from 'node:http';
import { createConnection, createServer, type AddressInfo, type Server } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { hostChecked, metricsCheckHost, newRegistry, startMetricsServer, type MetricsServer } from './index';

/** One GET with `host` as its Host header, as a browser on a rebound name sends it. */
function get(url: string, path: string, host: string): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port, path, headers: { host } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** This machine's first non-loopback IPv4 address (undefined on a host without one). */
function externalAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;
}

/**
 * A published port as Docker makes it (docker-proxy, or DNAT from the host's loopback): clients connect to
 * 127.0.0.1:<port> and each connection is carried on to `target` over the network, where the listener sees a network
 * local address (the container's bridge address) and never loopback (review s28 G3).
 */
async function publishedPort(target: string, port: number): Promise<Server> {
  const proxy = createServer((client) => {
    const upstream = createConnection({ host: target, port });
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return proxy;
}

describe('metrics listener Host check', () => {
  let server: MetricsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('refuses a rebound name 403 HOST_NOT_ALLOWED on every path; addresses, localhost, the host name and allowed names are answered', async () => {
    server = await startMetricsServer({ registry: newRegistry('dataset-agent'), port: 0, allowedHosts: ['prom.lan'] });
    const port = server.port;
    for (const path of ['/metrics', '/healthz', '/readyz', '/nope']) {
      const refused = await get(server.url, path, `evil.example:${port}`);
      expect(refused.status).toBe(403);
      const body = JSON.parse(refused.body) as { code?: string; description?: string };
      expect(body.code).toBe('HOST_NOT_ALLOWED');
      expect(body.description).toContain('"evil.example:');
      expect(refused.body).not.toContain('flocker_process_info');
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `${hostname()}:${port}`, `prom.lan:${port}`]) {
      const read = await get(server.url, '/metrics', host);
      expect({ host, status: read.status }).toEqual({ host, status: 200 });
      expect(read.body).toContain('flocker_process_info{process="dataset-agent"');
    }
  });

  it('logs a refusal once per Host, naming the setting; the same Host again within the minute is not logged (review s27 F5)', async () => {
    const warned: Array<{ message: string; meta: Record<string, unknown> }> = [];
    const logger = { warn: (message: string, meta: Record<string, unknown>) => warned.push({ message, meta }) };
    server = await startMetricsServer({ registry: newRegistry('dataset-agent'), port: 0, logger });
    for (let i = 0; i < 3; i++) expect((await get(server.url, '/metrics', 'evil.example')).status).toBe(403);
    expect((await get(server.url, '/metrics', 'other.example')).status).toBe(403);
    expect(warned.map((w) => w.meta.host)).toEqual(['evil.example', 'other.example']);
    expect(warned[0]?.meta).toMatchObject({ code: 'HOST_NOT_ALLOWED', setting: expect.stringContaining('allowed') });
    expect(warned[0]?.message).toContain('FLOCKER_METRICS_ALLOWED_HOSTS');
  });

  it('a wildcard listener checks the Host of connections over loopback (127.x, ::ffff:127.x) only: a scraper on a network address names it by any name (review s28 F2)', async () => {
    // A browser on this machine reaches a 0.0.0.0 or :: listener over loopback too (the DNS-rebinding target); a
    // scraper or probe comes in on a network interface and names it by FQDN, Compose service or Service name.
    const external = Object.values(networkInterfaces())
      .flat()
      .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;
    for (const listen of ['0.0.0.0', '::']) {
      server = await startMetricsServer({ registry: newRegistry('dataset-agent'), host: listen, port: 0 });
      const port = server.port;
      // Over 127.0.0.1 (on ::, an IPv4-mapped ::ffff:127.0.0.1 connection): a rebound name is refused.
      const rebound = await get(`http://127.0.0.1:${port}`, '/metrics', `evil.example:${port}`);
      expect({ listen, status: rebound.status }).toEqual({ listen, status: 403 });
      expect((await get(`http://127.0.0.1:${port}`, '/metrics', `localhost:${port}`)).status).toBe(200);
      if (listen === '::') {
        const v6 = await get(`http://[::1]:${port}`, '/metrics', `evil.example:${port}`);
        expect({ listen, status: v6.status }).toEqual({ listen, status: 403 });
      }
      // Over a network address of this machine (none on a host without one: nothing to ask over).
      if (external !== undefined) {
        for (const host of [`node-1.example.com:${port}`, 'flocker-control.flocker.svc:4530', 'dataset-agent']) {
          const read = await get(`http://${external}:${port}`, '/metrics', host);
          expect({ listen, host, status: read.status }).toEqual({ listen, host, status: 200 });
        }
      }
      await server.close();
      server = undefined;
    }
  });

  it('check_host "always" (review s28 G3): a published container port reached over 127.0.0.1 arrives on a network address, and its Host is checked there too', async () => {
    const external = externalAddress();
    const listen = external ?? '127.0.0.1';
    const published: Server[] = [];
    try {
      for (const checkHost of ['loopback', 'always'] as const) {
        server = await startMetricsServer({
          registry: newRegistry('dataset-agent'),
          host: listen,
          port: 0,
          checkHost,
          allowedHosts: ['prom.lan'],
        });
        const proxy = await publishedPort(listen, server.port);
        published.push(proxy);
        const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
        const rebound = await get(url, '/metrics', 'evil.example');
        if (external !== undefined && checkHost === 'loopback') {
          // The default stays as it was: a network local address checks no Host (scrapers name it any way).
          expect({ checkHost, status: rebound.status }).toEqual({ checkHost, status: 200 });
        } else {
          expect({ checkHost, status: rebound.status }).toEqual({ checkHost, status: 403 });
          expect(rebound.body).toContain('HOST_NOT_ALLOWED');
        }
        // Addresses, localhost and the allowed names are answered either way.
        for (const host of [`${listen}:${server.port}`, 'localhost', 'prom.lan:4531']) {
          const read = await get(url, '/metrics', host);
          expect({ checkHost, host, status: read.status }).toEqual({ checkHost, host, status: 200 });
        }
        await server.close();
        server = undefined;
      }
    } finally {
      for (const p of published) await new Promise((resolve) => p.close(resolve));
    }
  });

  it('which connections have their Host checked: loopback ones always; every one with "always"', () => {
    expect(hostChecked('loopback', '0.0.0.0', '172.18.0.5')).toBe(false);
    expect(hostChecked('loopback', '0.0.0.0', '::ffff:127.0.0.1')).toBe(true);
    expect(hostChecked('loopback', '127.0.0.1', '127.0.0.1')).toBe(true);
    expect(hostChecked('always', '0.0.0.0', '172.18.0.5')).toBe(true);
    expect(hostChecked('always', '10.0.0.5', '10.0.0.5')).toBe(true);
  });

  it('the mode: the process\'s setting, else FLOCKER_METRICS_CHECK_HOST, else "loopback"; another value is refused', () => {
    expect(metricsCheckHost(undefined, {})).toBe('loopback');
    expect(metricsCheckHost(undefined, { FLOCKER_METRICS_CHECK_HOST: 'always' })).toBe('always');
    expect(metricsCheckHost(undefined, { FLOCKER_METRICS_CHECK_HOST: ' Always ' })).toBe('always');
    expect(metricsCheckHost('loopback', { FLOCKER_METRICS_CHECK_HOST: 'always' })).toBe('loopback');
    expect(metricsCheckHost('always', {})).toBe('always');
    expect(() => metricsCheckHost(undefined, { FLOCKER_METRICS_CHECK_HOST: 'yes' })).toThrow(
      /FLOCKER_METRICS_CHECK_HOST.*loopback.*always/,
    );
  });
});
