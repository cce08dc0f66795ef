/**
 * Hostile input against the Docker plugin protocol: whatever Docker (or anyone
 * who can reach the socket) sends, the plugin answers with {Err} or a success
 * shape and keeps serving. The plugin talks to a control service over mutual TLS
 * with a node certificate, as deployed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fc from 'fast-check';
import winston from 'winston';
import { startControlService, type ControlService } from '@flocker/control-api';
import { startVolumePlugin, type RunningVolumePlugin } from '@flocker/volume-plugin';
import { callPlugin } from '@flocker/volume-plugin/testing';
import { ClusterPki } from './cluster/pki';

const silent = winston.createLogger({ silent: true });
const CALLS = [
  '/Plugin.Activate',
  '/VolumeDriver.Create',
  '/VolumeDriver.Get',
  '/VolumeDriver.List',
  '/VolumeDriver.Remove',
  '/VolumeDriver.Path',
  '/VolumeDriver.Mount',
  '/VolumeDriver.Unmount',
  '/VolumeDriver.Capabilities',
];

describe('hostile input (Docker plugin protocol)', () => {
  let dir: string;
  let control: ControlService;
  let plugin: RunningVolumePlugin;
  let socket: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-plugin-sec-'));
    const pki = await ClusterPki.create(path.join(dir, 'pki'), ['127.0.0.1']);
    control = await startControlService({
      port: 0,
      host: '127.0.0.1',
      dataDir: path.join(dir, 'control'),
      logger: silent,
      tls: pki.serverCredentials(),
    });
    const nodeDir = path.join(dir, 'node');
    const nodeUuid = await pki.installNode(nodeDir);
    socket = path.join(dir, 'p.sock');
    plugin = await startVolumePlugin({
      controlUrl: control.url,
      tls: {
        ca: fs.readFileSync(path.join(nodeDir, 'cluster.crt')),
        cert: fs.readFileSync(path.join(nodeDir, 'node.crt')),
        key: fs.readFileSync(path.join(nodeDir, 'node.key')),
        nodeUuid,
      },
      nodeUuid,
      socketPath: socket,
      stateDir: path.join(dir, 'state'),
      // No dataset agent here: a Mount cannot complete, and should say so quickly.
      mountTimeoutMs: 200,
      defaultSize: 64 * 1024 * 1024,
      pollMs: 200,
      startTimeoutMs: 5_000,
      logger: silent,
    });
    expect(fs.statSync(socket).mode & 0o777).toBe(0o600);
  });
  afterAll(async () => {
    await plugin?.close();
    await control?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function expectPluginShape(status: number, body: unknown): void {
    // Docker reads the body of any status; errors must be {Err: "<sentence>"}.
    expect(typeof body).toBe('object');
    expect(body).not.toBeNull();
    const err = (body as { Err?: unknown }).Err;
    if (status !== 200 || (err !== undefined && err !== '')) {
      expect(typeof err).toBe('string');
      expect(String(err).length).toBeGreaterThan(0);
    }
    expect(status).toBeLessThan(600);
  }

  const name = fc.oneof(
    fc.string({ maxLength: 80 }),
    fc.constantFrom(
      '../../etc/passwd',
      '/etc/shadow',
      '..',
      '.',
      '',
      'a'.repeat(10_000),
      'x\u0000y',
      'volume',
      'ok-name',
    ),
  );
  const opts = fc.oneof(
    fc.constant(undefined),
    fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 2 })),
    fc.record(
      {
        size: fc.oneof(fc.string(), fc.constantFrom('1e30', '-1', '99999999999999999999TiB', 'NaN', '0', '64MiB')),
        profile: fc.string(),
      },
      { requiredKeys: [] },
    ),
  );
  const body = fc.oneof(
    fc
      .record({ Name: name, Opts: opts, ID: fc.string({ maxLength: 70 }) }, { requiredKeys: [] })
      .map((b) => JSON.stringify(b)),
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.string({ maxLength: 300 }),
    fc.constantFrom('', '{', '[', 'null', '{"Name":{"$gt":""}}', '['.repeat(50_000) + ']'.repeat(50_000)),
  );

  it('random calls and bodies: {Err} or a success shape, never a crash', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...CALLS, '/VolumeDriver.Nope', '/../../etc/passwd'),
        body,
        async (call, text) => {
          const reply = await callPlugin(socket, call, text);
          expectPluginShape(reply.status, reply.body);
        },
      ),
      { numRuns: 300 },
    );
    // Still serving, and still talking to the control service over TLS.
    expect((await callPlugin(socket, '/Plugin.Activate')).body).toEqual({ Implements: ['VolumeDriver'] });
    expect((await callPlugin(socket, '/VolumeDriver.List', {})).status).toBe(200);
  }, 180_000);

  it('path traversal and huge sizes in Create are refused with a sentence', async () => {
    for (const n of ['../../etc/passwd', '/abs', 'a/b', '..']) {
      const r = await callPlugin(socket, '/VolumeDriver.Create', { Name: n, Opts: {} });
      expect((r.body as { Err: string }).Err).toMatch(/\w+/);
    }
    for (const size of ['1e30', '99999999999999999999TiB', '-5', 'lots']) {
      const r = await callPlugin(socket, '/VolumeDriver.Create', { Name: 'sized', Opts: { size } });
      expect((r.body as { Err: string }).Err).toMatch(/size/i);
    }
  });
});
