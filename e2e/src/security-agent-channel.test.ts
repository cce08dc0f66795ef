/**
 * Issue 17, "fuzz the agent channel": the routes dataset and container agents use
 * (`PUT /v1/agent/nodes/:uuid`, `PUT /v1/agent/nodes/:uuid/containers`,
 * `GET /v1/agent/cluster`), over mutual TLS with certificate authorization as deployed
 * (control-api's security.test.ts fuzzes every route over plain HTTP, without identities,
 * and only lightly shaped reports). Reports shaped like an agent's with any field wrong,
 * missing, huge, deeply nested or extra; raw JSON; hostile queries; from the node itself,
 * another node and an API user. The control service answers below 500, errors are JSON
 * with a description, it keeps serving, and a valid report still works afterwards.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import * as fc from 'fast-check';
import winston from 'winston';
import { nodeCommonName, userCommonName, type NodeReport } from '@flocker/api';
import { startControlService, type ControlService } from '@flocker/control-api';
import type { PemPair } from '@flocker/cli';
import { ClusterPki } from './cluster/pki';

const silent = winston.createLogger({ silent: true });
const A = randomUUID();
const B = randomUUID();
const DS = randomUUID();

interface Answer {
  status: number;
  contentType: string;
  text: string;
}

function report(uuid: string, extra: Partial<NodeReport> = {}): NodeReport {
  return {
    uuid,
    era: `era-${uuid}`,
    host: '127.0.0.1',
    instance_id: `i-${uuid}`,
    backend: 'loopback',
    manifestations: [],
    errors: [],
    ...extra,
  };
}

describe('hostile input on the agent channel (mutual TLS, certificate authorization)', () => {
  let dir: string;
  let pki: ClusterPki;
  let control: ControlService;
  const who: Record<'nodeA' | 'nodeB' | 'admin', { pem: PemPair; agent: HttpsAgent }> = {} as never;

  function send(as: keyof typeof who, method: string, urlPath: string, body?: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const u = new URL(control.url);
      const { pem, agent } = who[as];
      const req = httpsRequest(
        {
          method,
          host: u.hostname,
          port: u.port,
          path: urlPath,
          agent,
          ca: fs.readFileSync(pki.caFile),
          cert: pem.certificate,
          key: pem.privateKey,
          headers:
            body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () =>
            resolve({
              status: r.statusCode ?? 0,
              contentType: String(r.headers['content-type'] ?? ''),
              text: Buffer.concat(chunks).toString(),
            }),
          );
          r.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  function expectJsonAnswer(a: Answer): void {
    expect({ status: a.status, text: a.text.slice(0, 300) }).toEqual({
      status: expect.any(Number),
      text: expect.any(String),
    });
    expect(a.status).toBeLessThan(500);
    expect(a.contentType).toMatch(/application\/json/);
    const parsed: unknown = JSON.parse(a.text);
    if (a.status >= 400) expect(parsed).toMatchObject({ description: expect.any(String) });
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-agent-fuzz-'));
    pki = await ClusterPki.create(path.join(dir, 'pki'), ['127.0.0.1', 'localhost']);
    control = await startControlService({
      port: 0,
      host: '127.0.0.1',
      dataDir: path.join(dir, 'data'),
      logger: silent,
      tls: pki.serverCredentials(),
      nodeTimeoutSeconds: 3600,
    });
    const make = async (cn: string, role: 'node' | 'user') => ({
      pem: await pki.issue(cn, role),
      agent: new HttpsAgent({ keepAlive: true, maxSockets: 4 }),
    });
    who.nodeA = await make(nodeCommonName(A), 'node');
    who.nodeB = await make(nodeCommonName(B), 'node');
    who.admin = await make(userCommonName('admin'), 'user');
    expect((await send('nodeA', 'PUT', `/v1/agent/nodes/${A}`, JSON.stringify(report(A)))).status).toBe(200);
    expect((await send('nodeB', 'PUT', `/v1/agent/nodes/${B}`, JSON.stringify(report(B)))).status).toBe(200);
    expect(
      (
        await send(
          'admin',
          'POST',
          '/v1/configuration/datasets',
          JSON.stringify({ primary: A, dataset_id: DS, metadata: { name: 'fuzzed' } }),
        )
      ).status,
    ).toBe(201);
  }, 60_000);

  afterAll(async () => {
    for (const w of Object.values(who)) w.agent.destroy();
    await control?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  // ---- arbitraries ---------------------------------------------------------

  const HUGE = 'h'.repeat(300_000);
  const anyJson = fc.jsonValue({ maxDepth: 3 });
  const str = fc.oneof(
    { weight: 8, arbitrary: fc.string({ minLength: 1, maxLength: 40 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom('', HUGE, '__proto__', '../../etc/passwd', '\u0000', A.toUpperCase(), `{${A}}`),
    },
  );
  /** A value of the right type most of the time, else anything. */
  const or = <T>(right: fc.Arbitrary<T>) =>
    fc.oneof({ weight: 12, arbitrary: right }, { weight: 1, arbitrary: anyJson });
  const uuidLike = fc.oneof(
    { weight: 6, arbitrary: fc.oneof(fc.constantFrom(DS, DS.toUpperCase()), fc.uuid()) },
    { weight: 1, arbitrary: fc.oneof(fc.constantFrom(A, B, `urn:uuid:${DS}`, ` ${DS}`), str) },
  );
  const size = fc.oneof(fc.nat(), fc.constantFrom(-1, 0.5, 2 ** 53, 2 ** 64, 1e308, Number.MAX_SAFE_INTEGER));
  const extra = fc.dictionary(fc.oneof(fc.string({ maxLength: 10 }), fc.constant('__proto__')), anyJson, {
    maxKeys: 2,
  });
  const withExtra = <T extends object>(arb: fc.Arbitrary<T>) =>
    fc.tuple(arb, extra, fc.nat(19)).map(([v, e, k]) => (k === 0 ? { ...e, ...v } : v));
  const manifestation = withExtra(
    fc.record(
      {
        dataset_id: or(uuidLike),
        blockdevice_id: or(str),
        size: or(size),
        status: or(fc.constantFrom('attached', 'mounted', 'mounted', 'gone')),
        device_path: or(str),
        path: or(str),
      },
      { requiredKeys: ['dataset_id', 'blockdevice_id', 'size', 'status'] },
    ),
  );
  const volume = withExtra(
    fc.record(
      {
        blockdevice_id: or(str),
        dataset_id: or(uuidLike),
        size: or(size),
        attached_to: or(fc.oneof(fc.constant(null), str)),
      },
      { requiredKeys: ['blockdevice_id', 'dataset_id', 'size', 'attached_to'] },
    ),
  );
  const actionError = withExtra(
    fc.record(
      {
        dataset_id: or(uuidLike),
        action: or(str),
        code: or(str),
        message: or(str),
        attempts: or(size),
        since: or(str),
      },
      { requiredKeys: ['action', 'code', 'message', 'attempts', 'since'] },
    ),
  );
  const fencing = withExtra(
    fc.record(
      {
        state: or(fc.constantFrom('fenced', 'recovered', 'x')),
        since: or(str),
        reason: or(str),
        stopped_containers: or(fc.array(str, { maxLength: 3 })),
        removed_mounts: or(fc.array(str, { maxLength: 3 })),
      },
      { requiredKeys: ['state', 'since', 'reason'] },
    ),
  );
  const nodeReport = (uuid: string) =>
    withExtra(
      fc.record(
        {
          uuid: or(fc.constantFrom(uuid, uuid, uuid, uuid.toUpperCase(), B)),
          era: or(str),
          host: or(str),
          instance_id: or(fc.oneof(str, fc.constantFrom(`i-${A}`, `i-${B}`))),
          backend: or(str),
          manifestations: or(fc.array(manifestation, { maxLength: 4 })),
          volumes: or(fc.array(volume, { maxLength: 3 })),
          errors: or(fc.array(actionError, { maxLength: 3 })),
          max_volume_size: or(size),
          fencing: or(fencing),
        },
        // Mostly the fields an agent always sends, so that many reports reach the state; any may be wrong.
        { requiredKeys: ['uuid', 'era', 'host', 'instance_id', 'backend', 'manifestations'] },
      ),
    );
  const containerReport = withExtra(
    fc.record(
      {
        containers: or(
          fc.array(
            withExtra(
              fc.record(
                { name: or(str), image: or(str), running: or(fc.boolean()) },
                { requiredKeys: ['name', 'image', 'running'] },
              ),
            ),
            { maxLength: 4 },
          ),
        ),
      },
      { requiredKeys: ['containers'] },
    ),
  );
  const nested = fc
    .tuple(
      fc.constantFrom(33, 1_000, 100_000),
      fc.constantFrom<[string, string]>(['[', ']'], ['{"a":', '}'], ['{"manifestations":[', ']}']),
    )
    .map(([depth, [open, close]]) => open.repeat(depth) + '1' + close.repeat(depth));
  const rawBody = fc.oneof(
    anyJson.map((v) => JSON.stringify(v)),
    fc.string({ maxLength: 200 }),
    nested,
    fc.constantFrom('', '{', 'null', '[]', '"x"', JSON.stringify({ ...report(A), host: 'x'.repeat(2 * 1024 * 1024) })),
  );
  const body = (shaped: fc.Arbitrary<object>) =>
    fc.oneof({ weight: 3, arbitrary: shaped.map((v) => JSON.stringify(v)) }, { weight: 1, arbitrary: rawBody });
  const pathUuid = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(A, A.toUpperCase()) },
    {
      weight: 1,
      arbitrary: fc.oneof(
        fc.constantFrom(B, '..', '%2e%2e', 'a'.repeat(3000), '%00'),
        fc.string({ maxLength: 40 }).map(encodeURIComponent),
      ),
    },
  );
  const identity = fc.constantFrom<keyof typeof who>('nodeA', 'nodeA', 'nodeA', 'nodeB', 'admin');

  it('node reports: shaped with hostile values, raw, deep or huge; from the node, another node or a user', async () => {
    const seen = new Set<number>();
    await fc.assert(
      fc.asyncProperty(identity, pathUuid, body(nodeReport(A)), async (as, uuid, text) => {
        const a = await send(as, 'PUT', `/v1/agent/nodes/${uuid}`, text);
        seen.add(a.status);
        expectJsonAnswer(a);
      }),
      {
        numRuns: 400,
        // Besides the random ones, one of each outcome for sure: accepted, invalid, not this node's, too large.
        examples: [
          ['nodeA', A, JSON.stringify(report(A))],
          ['nodeA', A, JSON.stringify({ ...report(A), era: 7 })],
          ['nodeB', A, JSON.stringify(report(A))],
          ['nodeA', A, JSON.stringify({ ...report(A), host: 'x'.repeat(2 * 1024 * 1024) })],
        ],
      },
    );
    // The inputs got past authorization into the handler (accepted and refused), not only to the door.
    expect([...seen].sort()).toEqual(expect.arrayContaining([200, 400, 403, 413]));
  }, 300_000);

  it('container reports: shaped with hostile values, raw, deep or huge', async () => {
    const seen = new Set<number>();
    await fc.assert(
      fc.asyncProperty(identity, pathUuid, body(containerReport), async (as, uuid, text) => {
        const a = await send(as, 'PUT', `/v1/agent/nodes/${uuid}/containers`, text);
        seen.add(a.status);
        expectJsonAnswer(a);
      }),
      {
        numRuns: 200,
        examples: [
          ['nodeA', A, JSON.stringify({ containers: [{ name: 'web', image: 'busybox', running: true }] })],
          ['nodeA', A, JSON.stringify({ containers: [{ name: 7 }] })],
          ['nodeB', A, JSON.stringify({ containers: [] })],
        ],
      },
    );
    expect([...seen].sort()).toEqual(expect.arrayContaining([200, 400, 403]));
  }, 300_000);

  it('the cluster long-poll with hostile queries (never a since that is current: no waiting)', async () => {
    const seen = new Set<number>();
    const q = fc.oneof(
      fc.string({ maxLength: 30 }),
      fc.constantFrom('-1', '1e308', 'NaN', '0.5', '99999999999999999999', '', A, A.toUpperCase(), 'a'.repeat(3000)),
    );
    const query = fc
      .record({ since: q.map((s) => `not-a-generation-${s}`), timeout_ms: q, node: q, extra: q }, { requiredKeys: [] })
      .chain((r) => fc.boolean().map((twice) => ({ r, twice })))
      .map(({ r, twice }) => {
        const parts = Object.entries(r).map(([k, v]) => `${k}=${encodeURIComponent(v)}`);
        if (twice && r.node !== undefined) parts.push(`node=${encodeURIComponent(r.node)}`);
        return parts.join('&');
      });
    await fc.assert(
      fc.asyncProperty(identity, query, fc.option(rawBody, { nil: undefined }), async (as, qs, text) => {
        const a = await send(as, 'GET', `/v1/agent/cluster?${qs}`, text);
        seen.add(a.status);
        expectJsonAnswer(a);
      }),
      {
        numRuns: 200,
        examples: [
          ['nodeA', `node=${A}&timeout_ms=0`, undefined],
          ['admin', 'timeout_ms=NaN', undefined],
        ],
      },
    );
    expect([...seen].sort()).toEqual(expect.arrayContaining([200, 400]));
  }, 300_000);

  it('afterwards: still serving, the state reads back as JSON, and a valid report still works', async () => {
    expect((await send('admin', 'GET', '/v1/version')).status).toBe(200);
    const nodes = await send('admin', 'GET', '/v1/state/nodes');
    expectJsonAnswer(nodes);
    expect(nodes.status).toBe(200);
    const cluster = await send('nodeA', 'GET', '/v1/agent/cluster');
    expect(cluster.status).toBe(200);
    expectJsonAnswer(cluster);
    const ok = await send(
      'nodeA',
      'PUT',
      `/v1/agent/nodes/${A}`,
      JSON.stringify(
        report(A, {
          manifestations: [
            { dataset_id: DS, blockdevice_id: 'b', size: 67108864, status: 'mounted', path: `/flocker/${DS}` },
          ],
        }),
      ),
    );
    expect(ok.status).toBe(200);
  });
});
