import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as http from 'node:http';
import * as winston from 'winston';
import { createPluginHttpServer, decodeBody, listenOnUnixSocket } from './PluginHttpServer';
import { PLUGIN_CONTENT_TYPE, VolumePluginError, type MountRequest, type VolumeDriverBackend } from './protocol';
import { callPlugin } from './testing';

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
    expect((await callPlugin(socketPath, '/VolumeDriver.List', body)).body).toEqual({ Volumes: [{ Name: 'v1' }], Err: '' });
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

  it.each(['/VolumeDriver.Create', '/VolumeDriver.Remove', '/VolumeDriver.Mount', '/VolumeDriver.Unmount', '/VolumeDriver.Path', '/VolumeDriver.Get'])(
    '%s surfaces backend errors as HTTP 500 {Err}',
    async (route) => {
      const r = await callPlugin(socketPath, route, { Name: 'bad', ID: 'x' });
      expect(r.status).toBe(500);
      expect(r.contentType).toBe(PLUGIN_CONTENT_TYPE);
      expect(r.body).toEqual({ Err: 'no such volume: bad' });
    },
  );

  it.each(['', '{}', 'null', '{"Name": 3}'])('%s: a body without a Name is an {Err}, not a crash', async (body) => {
    const r = await callPlugin(socketPath, '/VolumeDriver.Mount', body);
    expect(r.status).toBe(500);
    expect(r.body).toEqual({ Err: expect.stringMatching(/request from Docker was not understood.*Name/) });
    expect(backend.calls).toEqual([]);
  });

  it('invalid JSON is an {Err}', async () => {
    const r = await callPlugin(socketPath, '/VolumeDriver.Create', '{nope');
    expect(r).toMatchObject({ status: 500, body: { Err: 'The request from Docker was not valid JSON.' } });
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
