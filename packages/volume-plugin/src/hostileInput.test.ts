/**
 * Issue 17, "fuzz the plugin socket": property tests over every plugin endpoint with
 * arbitrary JSON bodies, wrong types, huge strings, deep nesting and unknown fields,
 * against the real backend (an in-process control service and a fake dataset agent).
 * Whatever arrives, the plugin answers a JSON body, `{Err: "<sentence>"}` or the
 * documented success shape, and keeps serving. The logger formats every line as the
 * plugin's does (a silent logger never runs the formatter, which is what crashed on a
 * 10,000-deep array).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as http from 'node:http';
import { Writable } from 'node:stream';
import { FlockerClient } from '@flocker/api';
import { MemoryConfigurationStore, startControlService, type ControlService } from '@flocker/control-api';
import * as fc from 'fast-check';
import * as winston from 'winston';
import { FakeDatasetAgent } from './testing/FakeDatasetAgent';
import { FlockerVolumeBackend } from './FlockerVolumeBackend';
import { MountRegistry } from './MountRegistry';
import { createPluginHttpServer, listenOnUnixSocket, MAX_BODY_BYTES } from './PluginHttpServer';
import { PLUGIN_CONTENT_TYPE } from './protocol';
import { callPlugin, type PluginReply } from './testing/callPlugin';

const NODE = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const silent = winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });

const CALLS = [
  '/Plugin.Activate',
  '/VolumeDriver.Create',
  '/VolumeDriver.Remove',
  '/VolumeDriver.Mount',
  '/VolumeDriver.Unmount',
  '/VolumeDriver.Path',
  '/VolumeDriver.Get',
  '/VolumeDriver.List',
  '/VolumeDriver.Capabilities',
] as const;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === 'string';

/** The documented success shape of each call (protocol.ts), Err "" included but for Activate. */
function successShape(call: string, body: Record<string, unknown>): boolean {
  const { Err, ...rest } = body;
  if (call === '/Plugin.Activate')
    return Err === undefined && JSON.stringify(rest) === JSON.stringify({ Implements: ['VolumeDriver'] });
  if (Err !== '') return false;
  const keys = Object.keys(rest);
  switch (call) {
    case '/VolumeDriver.Create':
    case '/VolumeDriver.Remove':
    case '/VolumeDriver.Unmount':
      return keys.length === 0;
    case '/VolumeDriver.Mount':
      return keys.length === 1 && isString(rest.Mountpoint);
    case '/VolumeDriver.Path':
      return keys.length === 0 || (keys.length === 1 && isString(rest.Mountpoint));
    case '/VolumeDriver.Get':
      return keys.length === 1 && isObject(rest.Volume) && isString(rest.Volume.Name);
    case '/VolumeDriver.List':
      return (
        keys.length === 1 && Array.isArray(rest.Volumes) && rest.Volumes.every((v) => isObject(v) && isString(v.Name))
      );
    case '/VolumeDriver.Capabilities':
      return (
        keys.length === 1 &&
        isObject(rest.Capabilities) &&
        ['global', 'local'].includes(String(rest.Capabilities.Scope))
      );
    default:
      return false;
  }
}

function expectPluginAnswer(call: string, r: PluginReply): void {
  expect(r.contentType).toBe(PLUGIN_CONTENT_TYPE);
  expect(isObject(r.body)).toBe(true);
  const body = r.body as Record<string, unknown>;
  if (r.status === 200) {
    expect({ call, body, shape: successShape(call, body) }).toEqual({ call, body, shape: true });
    return;
  }
  // Refused: a sentence for Docker to show, and nothing else.
  expect([400, 404, 413, 500]).toContain(r.status);
  expect(Object.keys(body)).toEqual(['Err']);
  expect(isString(body.Err) && body.Err.length > 0).toBe(true);
  if (r.status === 404) expect(CALLS as readonly string[]).not.toContain(call);
}

// ---- arbitraries ---------------------------------------------------------------

const HUGE = 'h'.repeat(200_000);
/** Names that exist (or come to), hostile ones and wrong types. */
const nameArb = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('fz-a', 'fz-b', 'fz.c_1') },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '',
      ' ',
      '..',
      '../../etc/passwd',
      'a/b',
      'x\u0000y',
      '__proto__',
      'constructor',
      'toString',
      HUGE,
      'ü'.repeat(300),
      'a'.repeat(256),
    ),
  },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.string(), { maxLength: 3 }),
      fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }),
    ),
  },
);
const optsArb = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.record(
    {
      size: fc.oneof(
        fc.constantFrom(
          '64MiB',
          '1G',
          '10G',
          '1e30',
          '-1',
          'NaN',
          '0',
          '99999999999999999999TiB',
          '9007199254740993',
          '',
        ),
        fc.string(),
      ),
      profile: fc.oneof(fc.constantFrom('gold', 'silver', '', HUGE), fc.string()),
    },
    { requiredKeys: [] },
  ),
  fc.dictionary(
    fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('__proto__', 'constructor', 'size', 'profile')),
    fc.oneof(fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 2 })),
  ),
  fc.oneof(fc.string(), fc.integer(), fc.array(fc.string(), { maxLength: 2 })),
);
const idArb = fc.oneof(
  fc.constantFrom('', 'm1', 'm2', HUGE),
  fc.string({ maxLength: 70 }),
  fc.integer(),
  fc.constant(null),
);
const unknownFieldsArb = fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 });

/** Shaped like Docker's requests, with any of the fields wrong, missing, huge or extra. */
const shapedArb = fc
  .tuple(fc.record({ Name: nameArb, ID: idArb, Opts: optsArb }, { requiredKeys: [] }), unknownFieldsArb, fc.boolean())
  .map(([known, extra, withExtra]) => JSON.stringify(withExtra ? { ...extra, ...known } : known) ?? '');
const nested = (depth: number, open: string, close: string, inner = '1') =>
  open.repeat(depth) + inner + close.repeat(depth);
const deepArb = fc
  .tuple(
    fc.constantFrom(31, 32, 33, 100, 10_000, 100_000),
    fc.constantFrom<[string, string]>(['[', ']'], ['{"a":', '}'], ['{"Name":', '}'], ['[{"Name":"fz-a"},', ']']),
    fc.boolean(),
  )
  .map(([depth, [open, close], inOpts]) =>
    inOpts ? `{"Name":"fz-a","Opts":${nested(depth, open, close)}}` : nested(depth, open, close),
  );
const bodyArb = fc.oneof(
  { weight: 4, arbitrary: shapedArb },
  { weight: 2, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v) ?? '') },
  { weight: 1, arbitrary: fc.string({ maxLength: 300 }) },
  { weight: 1, arbitrary: deepArb },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '',
      'null',
      '{',
      '[',
      '{"Name":',
      '"just a string"',
      '{"Name":"fz-a"}{"Name":"fz-b"}',
      '\u0000',
      '\ufeff{}',
    ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      JSON.stringify({ Name: 'x'.repeat(MAX_BODY_BYTES) }),
      `"${'y'.repeat(MAX_BODY_BYTES + 1)}"`,
    ),
  },
);

describe('hostile input on the plugin socket (real backend)', () => {
  let control: ControlService;
  let agent: FakeDatasetAgent;
  let dir: string;
  let socketPath: string;
  let server: http.Server;
  let backend: FlockerVolumeBackend;
  const lines: string[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-plugin-fuzz-'));
    control = await startControlService({
      port: 0,
      host: '127.0.0.1',
      store: new MemoryConfigurationStore(),
      logger: silent,
    });
    agent = new FakeDatasetAgent(control.url, NODE, 'host-a', '/flocker-a');
    await agent.start();
    const logger = winston.createLogger({
      format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
      transports: [
        new winston.transports.Stream({
          stream: new Writable({
            write(chunk: Buffer, _enc, cb) {
              lines.push(chunk.toString());
              cb();
            },
          }),
        }),
      ],
    });
    backend = new FlockerVolumeBackend({
      client: new FlockerClient({ baseUrl: control.url }),
      nodeUuid: NODE,
      registry: await MountRegistry.load(path.join(dir, 'plugin-mounts.json')),
      logger,
      mountTimeoutMs: 2_000,
      defaultSize: 64 * 1024 * 1024,
      pollMs: 1_000,
    });
    await backend.start();
    socketPath = path.join(dir, 'flocker.sock');
    server = createPluginHttpServer(backend, logger);
    await listenOnUnixSocket(server, { socketPath });
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await backend.close();
    await agent.stop();
    await control.close();
    fs.rmSync(dir, { recursive: true, force: true });
    process.off('unhandledRejection', onUnhandled);
  });

  afterEach(() => {
    expect(unhandled).toEqual([]);
    // Nothing the plugin logs carries a whole body.
    expect(Math.max(0, ...lines.map((l) => l.length))).toBeLessThan(8_192);
    expect(lines.filter((l) => l.includes('could not be answered'))).toEqual([]);
  });

  const stillServing = async () => {
    expect((await callPlugin(socketPath, '/Plugin.Activate')).body).toEqual({ Implements: ['VolumeDriver'] });
    expect((await callPlugin(socketPath, '/VolumeDriver.List', '')).status).toBe(200);
  };

  it('every endpoint, any body: {Err} or the documented success shape, and the plugin keeps serving', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...CALLS), bodyArb, async (call, body) => {
        expectPluginAnswer(call, await callPlugin(socketPath, call, body));
      }),
      { numRuns: 400 },
    );
    await stillServing();
  }, 300_000);

  it('a Docker-like sequence per volume with hostile values mixed in keeps counts and answers consistent', async () => {
    const step = fc.tuple(
      fc.constantFrom(...CALLS),
      fc.constantFrom('fz-a', 'fz-b'),
      fc.constantFrom('m1', 'm2', ''),
      optsArb,
      unknownFieldsArb,
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
        for (const [call, Name, ID, Opts, extra] of steps) {
          expectPluginAnswer(
            call,
            await callPlugin(socketPath, call, { ...extra, Name, ID, ...(Opts === undefined ? {} : { Opts }) }),
          );
        }
      }),
      { numRuns: 60 },
    );
    await backend.settled();
    await stillServing();
  }, 300_000);

  it('unknown methods, paths with queries and traversal: a 404 {Err}', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.constantFrom('/VolumeDriver.Nope', '/../../etc/passwd', '/', '/Plugin.Activate/x', '/VolumeDriver.'),
          fc.string({ maxLength: 50 }).map((s) => `/${encodeURIComponent(s)}`),
        ),
        bodyArb,
        async (route, body) => {
          const r = await callPlugin(socketPath, route, body);
          if ((CALLS as readonly string[]).includes(route)) expectPluginAnswer(route, r);
          else {
            expect(r.status === 404 || r.status === 413 || r.status === 400).toBe(true);
            expect(Object.keys(r.body as object)).toEqual(['Err']);
          }
        },
      ),
      { numRuns: 100 },
    );
    await stillServing();
  }, 120_000);
});
