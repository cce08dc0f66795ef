/**
 * Hostile input against every endpoint: random paths, bodies and headers never
 * produce a 5xx and always get a JSON error body; traversal, huge numbers, huge
 * and deeply nested bodies are refused cleanly.
 */
import * as fc from 'fast-check';
import { MAX_JSON_DEPTH } from './jsonDepth';
import { routes } from './routes';
import { type ControlService } from './server';
import { type RawHttpAnswer, sendRaw, startOnLoopback } from './testing/httpService';

const NODE = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

type Answer = RawHttpAnswer;

function send(
  url: string,
  method: string,
  path: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return sendRaw(url, method, path, headers, body);
}

function expectJsonAnswer(a: Answer): void {
  expect(a.status).toBeLessThan(500);
  if (a.status >= 400) {
    expect(a.contentType).toMatch(/application\/json/);
    const parsed: unknown = JSON.parse(a.body);
    expect(parsed).toMatchObject({ description: expect.any(String) });
  }
}

describe('hostile input (control service)', () => {
  let svc: ControlService;

  beforeAll(async () => {
    svc = await startOnLoopback({ nodeTimeoutSeconds: 3600 });
  });
  afterAll(async () => svc.close());

  // Templates of every route, so generated paths hit real handlers, plus a few strangers.
  const templates = [
    ...new Set(routes.map((r) => r.path)),
    '/v1/openapi.json',
    '/v1',
    '/',
    '/v1/configuration/datasets/:id/extra',
  ];
  const segment = fc.oneof(
    fc.uuid(),
    fc.string({ maxLength: 40 }),
    fc.constantFrom(
      '..',
      '../..',
      '%2e%2e',
      '%2e%2e%2f%2e%2e%2fetc%2fpasswd',
      '%00',
      '%ff',
      '%',
      'a'.repeat(3000),
      NODE,
      NODE.toUpperCase(),
    ),
  );
  const pathArb = fc
    .tuple(
      fc.constantFrom(...templates),
      fc.array(segment, { minLength: 3, maxLength: 3 }),
      fc.option(fc.string({ maxLength: 30 })),
    )
    .map(([t, segs, query]) => {
      let i = 0;
      const filled = t.replace(/:[a-z_]+/g, () => encodeURIComponent(segs[i++] ?? ''));
      return query === null
        ? filled
        : `${filled}?${encodeURIComponent(query)}=${encodeURIComponent(query)}&since=${encodeURIComponent(query)}`;
    });
  const bodyArb = fc.oneof(
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc
      .record(
        {
          primary: fc.oneof(fc.uuid(), fc.string()),
          maximum_size: fc.oneof(fc.integer(), fc.double(), fc.constant(1e308)),
          metadata: fc.dictionary(fc.string(), fc.jsonValue()),
        },
        { requiredKeys: [] },
      )
      .map((v) => JSON.stringify(v)),
    fc.string({ maxLength: 200 }),
    fc.constant(undefined),
  );
  const headerArb = fc.record(
    {
      'content-type': fc.constantFrom(
        'application/json',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        '',
        'application/json; charset=utf-16',
      ),
      'x-if-configuration-matches': fc.string({ maxLength: 50 }).filter((s) => /^[\x21-\x7e ]*$/.test(s)),
      'content-encoding': fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'bogus'),
      accept: fc.constantFrom('*/*', 'text/html', 'application/json'),
    },
    { requiredKeys: [] },
  );

  it('random method, path, body and headers: never 5xx, errors are JSON with a description', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
        pathArb,
        bodyArb,
        headerArb,
        async (method, path, body, headers) => {
          expectJsonAnswer(await send(svc.url, method, path, body, headers));
        },
      ),
      { numRuns: 400 },
    );
  }, 120_000);

  it('valid-shaped writes with random values: never 5xx', async () => {
    const write = fc.oneof(
      fc
        .record({
          primary: fc.constantFrom(NODE, 'x'),
          dataset_id: fc.option(fc.uuid(), { nil: undefined }),
          maximum_size: fc.option(fc.oneof(fc.integer(), fc.maxSafeNat(), fc.constant(2 ** 63)), { nil: undefined }),
          metadata: fc.option(fc.dictionary(fc.string({ maxLength: 300 }), fc.string({ maxLength: 300 })), {
            nil: undefined,
          }),
        })
        .map((b) => ['POST', '/v1/configuration/datasets', b] as const),
      fc
        .record({
          dataset_id: fc.uuid(),
          node_uuid: fc.constantFrom(NODE, 'x'),
          expires: fc.oneof(fc.constant(null), fc.double(), fc.integer()),
        })
        .map((b) => ['POST', '/v1/configuration/leases', b] as const),
      fc
        .record({
          uuid: fc.constant(NODE),
          era: fc.string(),
          host: fc.string(),
          instance_id: fc.string(),
          backend: fc.string(),
          manifestations: fc.array(
            fc.record(
              { dataset_id: fc.uuid(), device_path: fc.string(), mount_path: fc.string() },
              { requiredKeys: ['dataset_id'] },
            ),
            { maxLength: 3 },
          ),
          errors: fc.constant([]),
        })
        .map((b) => ['PUT', `/v1/agent/nodes/${NODE}`, b] as const),
    );
    await fc.assert(
      fc.asyncProperty(write, async ([method, path, body]) => {
        expectJsonAnswer(await send(svc.url, method, path, JSON.stringify(body)));
      }),
      { numRuns: 200 },
    );
  }, 120_000);

  it('path traversal in ids is a 400 or 404, never a file', async () => {
    for (const id of [
      '../../../../etc/passwd',
      '..%2f..%2fetc%2fpasswd',
      '%2e%2e%2f',
      '....//',
      '/etc/passwd',
      'a/../../b',
    ]) {
      for (const path of [
        `/v1/configuration/datasets/${id}`,
        `/v1/configuration/leases/${id}`,
        `/v1/agent/nodes/${id}`,
        `/v1/state/nodes/by_era/${id}`,
      ]) {
        const a = await send(svc.url, path.startsWith('/v1/agent') ? 'PUT' : 'DELETE', path, '{}');
        expect([400, 404, 405]).toContain(a.status);
        expectJsonAnswer(a);
        expect(a.body).not.toMatch(/root:/);
      }
    }
  });

  it('huge sizes: refused with 400', async () => {
    for (const size of [1e308, 2 ** 64, Number.MAX_SAFE_INTEGER + 2, -1, 0.5]) {
      const a = await send(
        svc.url,
        'POST',
        '/v1/configuration/datasets',
        JSON.stringify({ primary: NODE, maximum_size: size }),
      );
      expect(a.status).toBe(400);
      expectJsonAnswer(a);
    }
    const a = await send(
      svc.url,
      'POST',
      '/v1/configuration/datasets',
      `{"primary":"${NODE}","maximum_size":1${'0'.repeat(5000)}}`,
    );
    expect(a.status).toBe(400);
  });

  it('a body over 1 MiB: 413', async () => {
    const a = await send(
      svc.url,
      'POST',
      '/v1/configuration/datasets',
      JSON.stringify({ primary: NODE, metadata: { x: 'y'.repeat(2 * 1024 * 1024) } }),
    );
    expect(a.status).toBe(413);
    expectJsonAnswer(a);
  });

  it('deeply nested JSON: 400, the server stays up', async () => {
    for (const depth of [MAX_JSON_DEPTH + 1, 1_000, 100_000]) {
      for (const [open, close] of [
        ['[', ']'],
        ['{"a":', '}'],
      ] as const) {
        const a = await send(
          svc.url,
          'POST',
          '/v1/configuration/datasets',
          open.repeat(depth) + '1' + close.repeat(depth),
        );
        expect(a.status).toBe(400);
        expect(JSON.parse(a.body)).toMatchObject({ description: expect.stringMatching(/deeper than/) });
        expectJsonAnswer(a);
      }
    }
    expect((await send(svc.url, 'GET', '/v1/version')).status).toBe(200);
  });
});
