import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import { Writable } from 'node:stream';
import * as winston from 'winston';
import {
  boundedForLog,
  createPluginHttpServer,
  decodeBody,
  listenOnUnixSocket,
  MAX_BODY_BYTES,
  successLevel,
} from './PluginHttpServer';
import { PLUGIN_CONTENT_TYPE, VolumePluginError, type MountRequest, type VolumeDriverBackend } from './protocol';
import { callPlugin } from './testing/callPlugin';

const logger = winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });

/** Records calls; volume "bad" fails every method. */
class RecordingBackend implements VolumeDriverBackend {
  calls: Array<[string, unknown]> = [];
  private fail(name: string): void {
    if (name === 'bad') throw new VolumePluginError('NO_SUCH_VOLUME', 'no such volume: bad');
  }
  async create(req: { Name: string; Opts?: Record<string, string> | null }) {
    this.calls.push(['create', req]);
    this.fail(req.Name);
  }
  async remove(req: { Name: string }) {
    this.calls.push(['remove', req]);
    this.fail(req.Name);
  }
  async mount(req: MountRequest) {
    this.calls.push(['mount', req]);
    this.fail(req.Name);
    return { Mountpoint: `/flocker/${req.Name}` };
  }
  async unmount(req: MountRequest) {
    this.calls.push(['unmount', req]);
    this.fail(req.Name);
  }
  async path(req: { Name: string }) {
    this.calls.push(['path', req]);
    this.fail(req.Name);
    return { Mountpoint: `/flocker/${req.Name}` };
  }
  async get(req: { Name: string }) {
    this.calls.push(['get', req]);
    this.fail(req.Name);
    return { Volume: { Name: req.Name, Status: { state: 'mounted' } } };
  }
  async list() {
    this.calls.push(['list', undefined]);
    return { Volumes: [{ Name: 'v1' }] };
  }
  async capabilities() {
    this.calls.push(['capabilities', undefined]);
    return { Capabilities: { Scope: 'global' as const } };
  }
}

describe('plugin HTTP protocol layer', () => {
  let dir: string;
  let socketPath: string;
  let server: http.Server;
  let backend: RecordingBackend;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-plugin-http-'));
    socketPath = path.join(dir, 'sub', 'flocker.sock');
    backend = new RecordingBackend();
    server = createPluginHttpServer(backend, logger);
    await listenOnUnixSocket(server, { socketPath });
  });
  afterEach(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('creates the socket directory and sets mode 0660', () => {
    expect(fs.statSync(socketPath).mode & 0o777).toBe(0o660);
  });

  it.each(['', '{}', 'null'])('Plugin.Activate with body %p implements VolumeDriver', async (body) => {
    const r = await callPlugin(socketPath, '/Plugin.Activate', body);
    expect(r.status).toBe(200);
    expect(r.contentType).toBe(PLUGIN_CONTENT_TYPE);
    expect(r.body).toEqual({ Implements: ['VolumeDriver'] });
  });

  it.each(['', '{}', 'null'])('List and Capabilities tolerate body %p', async (body) => {
    expect((await callPlugin(socketPath, '/VolumeDriver.List', body)).body).toEqual({
      Volumes: [{ Name: 'v1' }],
      Err: '',
    });
    expect((await callPlugin(socketPath, '/VolumeDriver.Capabilities', body)).body).toEqual({
      Capabilities: { Scope: 'global' },
      Err: '',
    });
  });

  it('Create passes Name and Opts, answers {Err: ""}', async () => {
    const r = await callPlugin(socketPath, '/VolumeDriver.Create', { Name: 'v1', Opts: { size: '1G' } });
    expect(r).toMatchObject({ status: 200, body: { Err: '' } });
    expect(backend.calls).toEqual([['create', { Name: 'v1', Opts: { size: '1G' } }]]);
  });

  it('Create accepts null Opts', async () => {
    const r = await callPlugin(socketPath, '/VolumeDriver.Create', { Name: 'v1', Opts: null });
    expect(r.status).toBe(200);
  });

  it('Mount passes the ID and returns the Mountpoint', async () => {
    const r = await callPlugin(socketPath, '/VolumeDriver.Mount', { Name: 'v1', ID: 'abc' });
    expect(r.body).toEqual({ Mountpoint: '/flocker/v1', Err: '' });
    expect(backend.calls).toEqual([['mount', { Name: 'v1', ID: 'abc' }]]);
  });

  it('Mount and Unmount without an ID (old engines) use the empty ID', async () => {
    await callPlugin(socketPath, '/VolumeDriver.Mount', { Name: 'v1' });
    await callPlugin(socketPath, '/VolumeDriver.Unmount', { Name: 'v1' });
    expect(backend.calls).toEqual([
      ['mount', { Name: 'v1', ID: '' }],
      ['unmount', { Name: 'v1', ID: '' }],
    ]);
  });

  it.each([
    ['/VolumeDriver.Remove', { Err: '' }],
    ['/VolumeDriver.Unmount', { Err: '' }],
    ['/VolumeDriver.Path', { Mountpoint: '/flocker/v1', Err: '' }],
    ['/VolumeDriver.Get', { Volume: { Name: 'v1', Status: { state: 'mounted' } }, Err: '' }],
  ])('%s answers %p', async (route, expected) => {
    const r = await callPlugin(socketPath, route, { Name: 'v1', ID: 'x' });
    expect(r.status).toBe(200);
    expect(r.body).toEqual(expected);
  });

  it.each([
    '/VolumeDriver.Create',
    '/VolumeDriver.Remove',
    '/VolumeDriver.Mount',
    '/VolumeDriver.Unmount',
    '/VolumeDriver.Path',
    '/VolumeDriver.Get',
  ])('%s surfaces backend errors as HTTP 500 {Err}', async (route) => {
    const r = await callPlugin(socketPath, route, { Name: 'bad', ID: 'x' });
    expect(r.status).toBe(500);
    expect(r.contentType).toBe(PLUGIN_CONTENT_TYPE);
    expect(r.body).toEqual({ Err: 'no such volume: bad' });
  });

  it.each([
    [
      '/VolumeDriver.Mount',
      /^Empty request from Docker: .*retries a call after a plugin restart.* run the container again\.$/,
    ],
    [
      '/VolumeDriver.Unmount',
      /^Empty request from Docker: .*retries a call after a plugin restart.* lets the volume go once/,
    ],
    ['/VolumeDriver.Get', /^Empty request from Docker: .*retries a call after a plugin restart.* try again\.$/],
  ])(
    '%s with an empty body (dockerd retrying a call after a plugin restart sends none): a 400 saying so',
    async (route, message) => {
      for (const body of ['', '  \n']) {
        const r = await callPlugin(socketPath, route, body);
        expect(r.status).toBe(400);
        expect(r.body).toEqual({ Err: expect.stringMatching(message) });
      }
      expect(backend.calls).toEqual([]);
    },
  );

  it.each(['{}', 'null', '{"Name": 3}'])('%s: a body without a Name is a 400 {Err}, not a crash', async (body) => {
    const r = await callPlugin(socketPath, '/VolumeDriver.Mount', body);
    expect(r.status).toBe(400);
    expect(r.body).toEqual({ Err: expect.stringMatching(/request from Docker was not understood.*Name/) });
    expect(backend.calls).toEqual([]);
  });

  it('invalid JSON is a 400 {Err}', async () => {
    const r = await callPlugin(socketPath, '/VolumeDriver.Create', '{nope');
    expect(r).toMatchObject({ status: 400, body: { Err: 'The request from Docker was not valid JSON.' } });
  });

  it('an unknown method is a 404 {Err}', async () => {
    const r = await callPlugin(socketPath, '/VolumeDriver.Frobnicate', '{}');
    expect(r.status).toBe(404);
    expect(r.body).toEqual({ Err: expect.stringContaining('not implemented') });
  });

  it('a non-VolumePluginError still becomes {Err} with its message', async () => {
    backend.list = async () => {
      throw new Error('control service unreachable');
    };
    const r = await callPlugin(socketPath, '/VolumeDriver.List', '');
    expect(r).toMatchObject({ status: 500, body: { Err: 'control service unreachable' } });
  });
});

/** A logger formatting every line as the plugin's does (JSON), keeping the lines: logging is what crashed. */
function jsonLogger(): { logger: winston.Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  const logger = winston.createLogger({
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Stream({ stream })],
  });
  return { logger, lines };
}

/**
 * POSTs a body given as chunks (streamed, respecting back-pressure) and resolves with the
 * answer as soon as it comes, even if the server closes before the body is all sent.
 */
function postChunks(
  socketPath: string,
  route: string,
  chunks: Iterable<Buffer>,
  contentLength?: number,
): Promise<{ status: number; body: unknown; sent: number }> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = false;
    const headers: Record<string, string | number> =
      contentLength === undefined ? { 'Transfer-Encoding': 'chunked' } : { 'Content-Length': contentLength };
    const req = http.request({ socketPath, path: route, method: 'POST', headers }, (res) => {
      answered = true;
      const got: Buffer[] = [];
      res.on('data', (c: Buffer) => got.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(got).toString('utf8');
        resolve({ status: res.statusCode ?? 0, body: raw ? JSON.parse(raw) : undefined, sent });
      });
      res.on('error', reject);
    });
    // Writing after the server answered and closed fails (EPIPE): that is the expected end.
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    const it = chunks[Symbol.iterator]();
    const pump = (): void => {
      for (;;) {
        if (answered || req.destroyed) return;
        const next = it.next();
        if (next.done) {
          req.end();
          return;
        }
        sent += next.value.length;
        if (!req.write(next.value)) {
          req.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
}

function* repeatChunk(chunk: Buffer, times: number): Generator<Buffer> {
  for (let i = 0; i < times; i++) yield chunk;
}

describe('plugin HTTP protocol layer: hostile bodies (issue 17 #6)', () => {
  let dir: string;
  let socketPath: string;
  let server: http.Server;
  let backend: RecordingBackend;
  let lines: string[];

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-plugin-limits-'));
    socketPath = path.join(dir, 'flocker.sock');
    backend = new RecordingBackend();
    const made = jsonLogger();
    lines = made.lines;
    server = createPluginHttpServer(backend, made.logger);
    await listenOnUnixSocket(server, { socketPath });
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const alive = async () =>
    expect((await callPlugin(socketPath, '/Plugin.Activate')).body).toEqual({ Implements: ['VolumeDriver'] });

  it("Docker's routine existence check (Get/Path of a volume not there yet) is logged at debug, not as a warning (issue 21); other failures stay warnings", async () => {
    await callPlugin(socketPath, '/VolumeDriver.Get', { Name: 'bad' });
    await callPlugin(socketPath, '/VolumeDriver.Path', { Name: 'bad' });
    await callPlugin(socketPath, '/VolumeDriver.Mount', { Name: 'bad', ID: 'c1' });
    const failed = lines
      .map((l) => JSON.parse(l) as { message: string; level: string; call: string })
      .filter((l) => l.message === 'plugin call failed');
    // The logger's level is info: the debug lines are not written at all.
    expect(failed.map((l) => [l.call, l.level])).toEqual([['/VolumeDriver.Mount', 'warn']]);
  });

  it.each([
    ['[', ']'],
    ['{"Name":', '}'],
  ])(
    'a 10,000-deep body (%s…%s) is a 400 {Err}, refused before parsing and logging; the plugin stays up',
    async (open, close) => {
      for (const route of ['/VolumeDriver.Create', '/VolumeDriver.Mount', '/VolumeDriver.List', '/Plugin.Activate']) {
        const r = await callPlugin(socketPath, route, open.repeat(10_000) + '1' + close.repeat(10_000));
        expect(r).toMatchObject({ status: 400, body: { Err: 'The request from Docker nests deeper than 32 levels.' } });
      }
      await alive();
      expect(backend.calls).toEqual([]);
      expect(Math.max(...lines.map((l) => l.length))).toBeLessThan(4_096);
    },
  );

  it('a body nesting exactly 32 levels is decoded as usual (an {Err} for its shape, not its depth)', async () => {
    const r = await callPlugin(
      socketPath,
      '/VolumeDriver.Create',
      '{"Name":"v","Opts":' + '['.repeat(31) + ']'.repeat(31) + '}',
    );
    expect(r.status).toBe(400);
    expect(r.body).toEqual({ Err: expect.stringMatching(/^The request from Docker was not understood \(Opts: /) });
  });

  it('a body over 1 MiB with a Content-Length is a 413 {Err} at once, without reading it', async () => {
    const size = 600 * 1024 * 1024;
    const r = await postChunks(
      socketPath,
      '/VolumeDriver.Create',
      repeatChunk(Buffer.alloc(1024 * 1024, 0x20), 600),
      size,
    );
    expect(r).toMatchObject({
      status: 413,
      body: { Err: `The request from Docker is larger than ${MAX_BODY_BYTES} bytes.` },
    });
    expect(r.sent).toBeLessThan(64 * 1024 * 1024);
    await alive();
    expect(backend.calls).toEqual([]);
  }, 60_000);

  it('a 600 MB chunked body (no Content-Length) is a 413 {Err} once past 1 MiB; the plugin stays up', async () => {
    const chunk = Buffer.from(`{"Name":"${'x'.repeat(1024 * 1024 - 10)}"}`.slice(0, 1024 * 1024));
    const r = await postChunks(socketPath, '/VolumeDriver.Create', repeatChunk(chunk, 600));
    expect(r).toMatchObject({
      status: 413,
      body: { Err: `The request from Docker is larger than ${MAX_BODY_BYTES} bytes.` },
    });
    expect(r.sent).toBeLessThan(64 * 1024 * 1024);
    await alive();
    expect(backend.calls).toEqual([]);
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThan(4_096);
  }, 120_000);

  it('a body of a few MiB is read to its end and answered (413, or 404 for an unknown call) on a connection kept open', async () => {
    const big = Buffer.from(JSON.stringify({ Name: 'z'.repeat(8 * MAX_BODY_BYTES) }));
    /** The status, once the whole body is sent too: an error while sending (EPIPE) fails. */
    const post = (route: string) =>
      new Promise<number>((resolve, reject) => {
        let status: number | undefined;
        let sent = false;
        const done = () => status !== undefined && sent && resolve(status);
        const req = http.request(
          { socketPath, path: route, method: 'POST', headers: { 'Content-Length': big.length } },
          (res) => {
            res.resume();
            res.on('end', () => {
              status = res.statusCode ?? 0;
              done();
            });
          },
        );
        req.on('error', reject);
        req.end(big, () => {
          sent = true;
          done();
        });
      });
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => post(i % 2 === 0 ? '/VolumeDriver.Create' : '/VolumeDriver.Nope')),
    );
    expect(answers).toEqual(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? 413 : 404)));
    await alive();
    expect(backend.calls).toEqual([]);
  }, 60_000);

  it('a body of exactly 1 MiB is read; its huge Name is logged cut short', async () => {
    const body = JSON.stringify({ Name: 'n'.repeat(MAX_BODY_BYTES - 20) });
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(MAX_BODY_BYTES);
    // Create: its success is logged at info (a Get's only at debug, see READ_ONLY_CALLS).
    const r = await callPlugin(socketPath, '/VolumeDriver.Create', body);
    expect(r.status).toBe(200);
    expect(backend.calls).toHaveLength(1);
    const logged = lines.find((l) => l.includes('VolumeDriver.Create'));
    expect(logged).toBeDefined();
    expect(logged!.length).toBeLessThan(4_096);
  });

  it('a failing call with a huge name logs a bounded line', async () => {
    backend.get = async (req) => {
      throw new VolumePluginError('NO_SUCH_VOLUME', `no such volume: ${req.Name}`);
    };
    const r = await callPlugin(socketPath, '/VolumeDriver.Get', { Name: 'q'.repeat(500_000) });
    expect(r.status).toBe(500);
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThan(4_096);
  });
});

describe('plugin HTTP protocol layer: what a successful call logs (issue 23)', () => {
  let dir: string;
  let socketPath: string;
  let server: http.Server | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-plugin-log-'));
    socketPath = path.join(dir, 'flocker.sock');
  });
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const start = async (logger: winston.Logger) => {
    server = createPluginHttpServer(new RecordingBackend(), logger);
    await listenOnUnixSocket(server, { socketPath });
  };
  const everyCall = async () => {
    await callPlugin(socketPath, '/Plugin.Activate');
    await callPlugin(socketPath, '/VolumeDriver.Capabilities');
    await callPlugin(socketPath, '/VolumeDriver.Create', { Name: 'v', Opts: null });
    await callPlugin(socketPath, '/VolumeDriver.Get', { Name: 'v' });
    await callPlugin(socketPath, '/VolumeDriver.Path', { Name: 'v' });
    await callPlugin(socketPath, '/VolumeDriver.List');
    await callPlugin(socketPath, '/VolumeDriver.Mount', { Name: 'v', ID: 'c1' });
    await callPlugin(socketPath, '/VolumeDriver.Unmount', { Name: 'v', ID: 'c1' });
    await callPlugin(socketPath, '/VolumeDriver.Remove', { Name: 'v' });
  };
  const logged = (lines: string[]) =>
    lines
      .map((l) => JSON.parse(l) as { message: string; level: string; call: string; ok: boolean })
      .filter((l) => l.message === 'plugin call')
      .map((l) => [l.call, l.level, l.ok]);

  it('at info, only the calls that change something are written (Create, Mount, Unmount, Remove); read-only ones are not', async () => {
    const { logger, lines } = jsonLogger();
    await start(logger);
    await everyCall();
    expect(logged(lines)).toEqual([
      ['/VolumeDriver.Create', 'info', true],
      ['/VolumeDriver.Mount', 'info', true],
      ['/VolumeDriver.Unmount', 'info', true],
      ['/VolumeDriver.Remove', 'info', true],
    ]);
    expect(successLevel('/VolumeDriver.Get')).toBe('debug');
    expect(successLevel('/VolumeDriver.Mount')).toBe('info');
  });

  it('at debug (tracing), every call is written, the read-only ones at debug', async () => {
    const { logger, lines } = jsonLogger();
    logger.level = 'debug';
    await start(logger);
    await everyCall();
    expect(logged(lines)).toEqual([
      ['/Plugin.Activate', 'debug', true],
      ['/VolumeDriver.Capabilities', 'debug', true],
      ['/VolumeDriver.Create', 'info', true],
      ['/VolumeDriver.Get', 'debug', true],
      ['/VolumeDriver.Path', 'debug', true],
      ['/VolumeDriver.List', 'debug', true],
      ['/VolumeDriver.Mount', 'info', true],
      ['/VolumeDriver.Unmount', 'info', true],
      ['/VolumeDriver.Remove', 'info', true],
    ]);
  });

  it('a logger that throws after the answer leaves the call answered as a success', async () => {
    const { logger } = jsonLogger();
    logger.log = () => {
      throw new Error('disk full');
    };
    await start(logger);
    const r = await callPlugin(socketPath, '/VolumeDriver.Mount', { Name: 'v', ID: 'c1' });
    expect(r).toMatchObject({ status: 200, body: { Mountpoint: '/flocker/v', Err: '' } });
    expect((await callPlugin(socketPath, '/Plugin.Activate')).status).toBe(200);
  });
});

describe('boundedForLog', () => {
  it('keeps small values as they are', () => {
    expect(boundedForLog({ Name: 'v1', ID: 'abc', Opts: { size: '1G' } })).toEqual({
      Name: 'v1',
      ID: 'abc',
      Opts: { size: '1G' },
    });
    expect(boundedForLog(null)).toBeNull();
    expect(boundedForLog(3)).toBe(3);
  });

  it('cuts long strings, many keys and deep nesting', () => {
    expect(boundedForLog('x'.repeat(1000))).toBe(`${'x'.repeat(200)}… (1000 chars)`);
    const many = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, i]));
    expect(Object.keys(boundedForLog(many) as object)).toHaveLength(21);
    expect(boundedForLog([[[[[[1]]]]]])).toEqual([[[['…']]]]);
    expect(JSON.stringify(boundedForLog(Array.from({ length: 1000 }, () => 'y'.repeat(1000)))).length).toBeLessThan(
      4_096,
    );
  });
});

describe('listenOnUnixSocket', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-plugin-sock-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('replaces a stale socket left by a dead plugin', async () => {
    const socketPath = path.join(dir, 'p.sock');
    // A socket file nobody listens on, as a crashed plugin leaves behind.
    execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', socketPath]);
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
    const server = createPluginHttpServer(new RecordingBackend(), logger);
    await listenOnUnixSocket(server, { socketPath, mode: 0o600 });
    expect(fs.statSync(socketPath).mode & 0o777).toBe(0o600);
    expect((await callPlugin(socketPath, '/Plugin.Activate')).status).toBe(200);
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('refuses to take over a socket another plugin is serving', async () => {
    const socketPath = path.join(dir, 'p.sock');
    const first = createPluginHttpServer(new RecordingBackend(), logger);
    await listenOnUnixSocket(first, { socketPath });
    const second = createPluginHttpServer(new RecordingBackend(), logger);
    await expect(listenOnUnixSocket(second, { socketPath })).rejects.toMatchObject({ code: 'SOCKET_IN_USE' });
    await new Promise<void>((r) => first.close(() => r()));
  });

  it('refuses to delete a regular file at the socket path', async () => {
    const socketPath = path.join(dir, 'p.sock');
    fs.writeFileSync(socketPath, 'precious');
    const server = createPluginHttpServer(new RecordingBackend(), logger);
    await expect(listenOnUnixSocket(server, { socketPath })).rejects.toMatchObject({ code: 'SOCKET_PATH_TAKEN' });
  });
});

describe('decodeBody', () => {
  it.each([
    ['', {}],
    ['  ', {}],
    ['null', {}],
    ['{}', {}],
    ['{"Name":"a"}', { Name: 'a' }],
  ])('%p → %p', (text, value) => expect(decodeBody(text)).toEqual(value));
});
