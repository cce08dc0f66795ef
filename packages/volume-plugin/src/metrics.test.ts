/**
 * The plugin's request metrics through its real HTTP server on a Unix socket: latency by Docker method and
 * result, an unknown call counted under no method of its own.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { processRegistry } from '@flocker/metrics';
import * as winston from 'winston';
import { createPluginHttpServer, listenOnUnixSocket } from './PluginHttpServer';
import { VolumePluginError, type VolumeDriverBackend } from './protocol';
import { callPlugin } from './testing/callPlugin';

const logger = winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });

const fail = (): never => {
  throw new VolumePluginError('NO_SUCH_VOLUME', 'no such volume');
};

/** Mount answers; Get fails; nothing else is called. */
const backend: VolumeDriverBackend = {
  create: async () => undefined,
  remove: async () => undefined,
  mount: async (r) => ({ Mountpoint: `/flocker/${r.Name}` }),
  unmount: async () => undefined,
  path: async () => fail(),
  get: async () => fail(),
  list: async () => ({ Volumes: [] }),
  capabilities: async () => ({ Capabilities: { Scope: 'global' as const } }),
};

function count(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

it('counts plugin requests by Docker method and result', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flocker-plugin-metrics-'));
  const socket = path.join(dir, 'p.sock');
  const server = createPluginHttpServer(backend, logger);
  await listenOnUnixSocket(server, { socketPath: socket });
  const registry = processRegistry('docker-plugin');
  const mountOk = 'flocker_plugin_request_duration_seconds_count{method="VolumeDriver.Mount",result="ok"}';
  const getError = 'flocker_plugin_request_duration_seconds_count{method="VolumeDriver.Get",result="error"}';
  try {
    const before = await registry.metrics();
    expect((await callPlugin(socket, '/VolumeDriver.Mount', { Name: 'v', ID: 'id1' })).status).toBe(200);
    expect((await callPlugin(socket, '/VolumeDriver.Get', { Name: 'v' })).status).toBe(500);
    await callPlugin(socket, '/VolumeDriver.Unknown', {});
    const after = await registry.metrics();
    expect(count(after, mountOk)).toBe(count(before, mountOk) + 1);
    expect(count(after, getError)).toBe(count(before, getError) + 1);
    // A 404 for an unknown method is not a request of any Docker method: no series named after it.
    expect(after).not.toContain('VolumeDriver.Unknown');
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
