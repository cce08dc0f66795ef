/**
 * DNS rebinding against a metrics listener (review B12): a page whose DNS name was pointed at 127.0.0.1 would read
 * /metrics and /readyz as its own origin. Only a Host naming the listener is answered (@flocker/runtime hostCheck,
 * the control service's --insecure-http check).
 */
import { request } from 'node:http';
import { hostname, networkInterfaces } from 'node:os';
import { newRegistry, startMetricsServer, type MetricsServer } from './index';

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
});
