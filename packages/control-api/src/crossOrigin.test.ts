/**
 * Cross-site request forgery against a development control service (--insecure-http): any body is parsed as JSON
 * whatever its Content-Type (`curl -d`), and a web page may POST text/plain to another origin without a CORS
 * preflight. A state-changing request whose Origin is not the service's own, or that a browser marks
 * Sec-Fetch-Site: cross-site, is refused 403 before its body is read; curl (no Origin), the Flocker clients and a
 * page of the service's own origin keep working, and reads stay open.
 */
import { crossOriginRefusal, type OriginFacts } from './crossOrigin';
import { NODE_A, sendRaw as send, type ServiceOnDir, startOnLoopbackWithTwoNodes } from './testing/httpService';

const datasetBody = (name: string): string => JSON.stringify({ primary: NODE_A, metadata: { name } });

describe('state-changing requests from another origin are refused (CSRF, --insecure-http)', () => {
  let s: ServiceOnDir;
  beforeEach(async () => {
    s = await startOnLoopbackWithTwoNodes();
  });
  afterEach(async () => {
    await s.svc.close();
  });
  const names = async (): Promise<string[]> =>
    (await s.client.listDatasets()).map((d) => d.metadata['name'] ?? '').sort();

  it('a web page of another origin POSTing text/plain: 403 with a JSON description, nothing created', async () => {
    const a = await send(
      s.svc.url,
      'POST',
      '/v1/configuration/datasets',
      { 'content-type': 'text/plain', origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' },
      datasetBody('forged'),
    );
    expect(a.status).toBe(403);
    expect(a.contentType).toMatch(/^application\/json/);
    const parsed = JSON.parse(a.body) as { code: string; description: string };
    expect(parsed.code).toBe('FORBIDDEN');
    expect(parsed.description).toContain('http://evil.example');
    // A page of another port on the same host is another origin too; so is a sandboxed page ('null').
    for (const origin of [`http://127.0.0.1:${Number(new URL(s.svc.url).port) + 1}`, 'null']) {
      const b = await send(
        s.svc.url,
        'POST',
        '/v1/configuration/datasets',
        { 'content-type': 'text/plain', origin },
        datasetBody('forged'),
      );
      expect({ origin, status: b.status }).toEqual({ origin, status: 403 });
    }
    // A browser that sent no Origin but marks the request cross-site; a DELETE.
    const c = await send(
      s.svc.url,
      'POST',
      '/v1/configuration/datasets',
      { 'content-type': 'text/plain', 'sec-fetch-site': 'cross-site' },
      datasetBody('forged'),
    );
    expect(c.status).toBe(403);
    expect(await names()).toEqual([]);
    const kept = await s.client.createDataset({ primary: NODE_A, metadata: { name: 'kept' } });
    const d = await send(s.svc.url, 'DELETE', `/v1/configuration/datasets/${kept.dataset_id}`, {
      origin: 'http://evil.example',
    });
    expect(d.status).toBe(403);
    expect(await names()).toEqual(['kept']);
  });

  it('curl -d (no Origin, form or text content type), the API client and a page of its own origin: accepted', async () => {
    const curl = await send(
      s.svc.url,
      'POST',
      '/v1/configuration/datasets',
      { 'content-type': 'application/x-www-form-urlencoded' },
      datasetBody('curl'),
    );
    expect(curl.status).toBe(201);
    const own = new URL(s.svc.url).origin;
    const page = await send(
      s.svc.url,
      'POST',
      '/v1/configuration/datasets',
      { 'content-type': 'application/json', origin: own, 'sec-fetch-site': 'same-origin' },
      datasetBody('page'),
    );
    expect(page.status).toBe(201);
    // The same page named by localhost (its Host header says so).
    const port = new URL(s.svc.url).port;
    const local = await send(
      s.svc.url,
      'POST',
      '/v1/configuration/datasets',
      { 'content-type': 'text/plain', host: `localhost:${port}`, origin: `http://localhost:${port}` },
      datasetBody('localhost'),
    );
    expect(local.status).toBe(201);
    // The API client (what `flocker ui`'s server and the CLI use).
    await s.client.createDataset({ primary: NODE_A, metadata: { name: 'client' } });
    expect(await names()).toEqual(['client', 'curl', 'localhost', 'page']);
    // Reads stay open to any origin.
    const read = await send(s.svc.url, 'GET', '/v1/configuration/datasets', { origin: 'http://evil.example' });
    expect(read.status).toBe(200);
  });
});

describe('crossOriginRefusal', () => {
  const facts = (extra: Partial<OriginFacts>): OriginFacts => ({
    method: 'POST',
    protocol: 'http',
    host: 'ctl:4523',
    origin: undefined,
    fetchSite: undefined,
    ...extra,
  });
  it.each<[string, Partial<OriginFacts>, boolean]>([
    ['no Origin (curl)', {}, true],
    ['its own origin', { origin: 'http://ctl:4523' }, true],
    ['its own origin, other case', { origin: 'HTTP://CTL:4523' }, true],
    ['default port left out by both', { host: 'ctl', origin: 'http://ctl:80' }, true],
    ['mTLS: https origin over TLS', { protocol: 'https', host: 'ctl:4523', origin: 'https://ctl:4523' }, true],
    ['http origin over TLS', { protocol: 'https', origin: 'http://ctl:4523' }, false],
    ['another host', { origin: 'http://evil.example' }, false],
    ['another port', { origin: 'http://ctl:4524' }, false],
    ['null', { origin: 'null' }, false],
    ['not a URL', { origin: 'ctl:4523' }, false],
    ['no Host', { host: undefined, origin: 'http://ctl:4523' }, false],
    ['same-origin Sec-Fetch-Site alone', { fetchSite: 'same-origin' }, true],
    ['same-site Sec-Fetch-Site alone', { fetchSite: 'same-site' }, true],
    ['cross-site Sec-Fetch-Site alone', { fetchSite: 'cross-site' }, false],
    ['a GET from another origin', { method: 'GET', origin: 'http://evil.example' }, true],
    ['a HEAD marked cross-site', { method: 'HEAD', fetchSite: 'cross-site' }, true],
    ['a DELETE from another origin', { method: 'DELETE', origin: 'http://evil.example' }, false],
    ['a PUT from another origin', { method: 'PUT', origin: 'http://evil.example' }, false],
  ])('%s', (_name, extra, allowed) => {
    const refusal = crossOriginRefusal(facts(extra));
    expect(refusal === undefined).toBe(allowed);
  });
});
