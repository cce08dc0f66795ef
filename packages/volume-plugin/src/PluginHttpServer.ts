/**
 * The HTTP side of the Docker plugin protocol, kept thin: one route per method that
 * decodes the body with zod, calls the backend and encodes `{Err}`.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { Logger } from 'winston';
import { z } from 'zod';
import {
  CreateRequest,
  EmptyRequest,
  MountRequest,
  NameRequest,
  PLUGIN_CONTENT_TYPE,
  VolumePluginError,
  type VolumeDriverBackend,
} from './protocol';

type Route = (body: unknown, backend: VolumeDriverBackend) => Promise<object>;

function route<S extends z.ZodType>(schema: S, call: (req: z.infer<S>, backend: VolumeDriverBackend) => Promise<object | void>): Route {
  return async (body, backend) => {
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      const detail = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
      throw new VolumePluginError('BAD_REQUEST', `The request from Docker was not understood (${detail}).`);
    }
    return (await call(parsed.data, backend)) ?? {};
  };
}

export const ROUTES: Readonly<Record<string, Route>> = {
  '/Plugin.Activate': route(EmptyRequest, async () => ({ Implements: ['VolumeDriver'] })),
  '/VolumeDriver.Create': route(CreateRequest, (r, b) => b.create(r)),
  '/VolumeDriver.Remove': route(NameRequest, (r, b) => b.remove(r)),
  '/VolumeDriver.Mount': route(MountRequest, (r, b) => b.mount(r)),
  '/VolumeDriver.Unmount': route(MountRequest, (r, b) => b.unmount(r)),
  '/VolumeDriver.Path': route(NameRequest, (r, b) => b.path(r)),
  '/VolumeDriver.Get': route(NameRequest, (r, b) => b.get(r)),
  '/VolumeDriver.List': route(EmptyRequest, (_r, b) => b.list()),
  '/VolumeDriver.Capabilities': route(EmptyRequest, (_r, b) => b.capabilities()),
};

/** `""`, `null` and `{}` all mean an empty request. */
export function decodeBody(text: string): unknown {
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new VolumePluginError('BAD_REQUEST', 'The request from Docker was not valid JSON.');
  }
  return value === null ? {} : value;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': PLUGIN_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

export function createPluginHttpServer(backend: VolumeDriverBackend, logger: Logger): http.Server {
  return http.createServer((req, res) => {
    const started = process.hrtime.bigint();
    const url = (req.url ?? '').split('?')[0] ?? '';
    const handler = ROUTES[url];
    const elapsedMs = () => Number(process.hrtime.bigint() - started) / 1e6;
    if (!handler) {
      // 404 tells Docker an optional method is not implemented.
      logger.warn('unknown plugin call', { call: url, method: req.method });
      send(res, 404, { Err: `${url} is not implemented by the Flocker volume plugin.` });
      return;
    }
    let request: unknown;
    readBody(req)
      .then((text) => {
        request = decodeBody(text);
        return handler(request, backend);
      })
      .then((result) => {
        const body = url === '/Plugin.Activate' ? result : { ...result, Err: '' };
        logger.info('plugin call', { call: url, request, duration_ms: elapsedMs(), ok: true });
        send(res, 200, body);
      })
      .catch((err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        const code = err instanceof VolumePluginError ? err.code : 'INTERNAL';
        logger.warn('plugin call failed', { call: url, request, duration_ms: elapsedMs(), ok: false, code, error: message });
        send(res, 500, { Err: message });
      });
  });
}

export interface ListenOptions {
  socketPath: string;
  /** Permission bits of the socket; only root (and the docker group with 0660) may talk to it. */
  mode?: number;
}

/** Listen on a Unix socket: create its directory, replace a stale socket, set its mode. */
export async function listenOnUnixSocket(server: http.Server, opts: ListenOptions): Promise<void> {
  await fs.promises.mkdir(path.dirname(opts.socketPath), { recursive: true });
  await removeStaleSocket(opts.socketPath);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(opts.socketPath, () => {
      server.off('error', onError);
      resolve();
    });
  });
  await fs.promises.chmod(opts.socketPath, opts.mode ?? 0o660);
}

async function removeStaleSocket(socketPath: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = await fs.promises.lstat(socketPath);
  } catch {
    return;
  }
  if (!stat.isSocket()) {
    throw new VolumePluginError('SOCKET_PATH_TAKEN', `${socketPath} exists and is not a socket; refusing to replace it.`);
  }
  const live = await new Promise<boolean>((resolve) => {
    const probe = http.request({ socketPath, path: '/Plugin.Activate', method: 'POST', timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    probe.on('error', () => resolve(false));
    probe.on('timeout', () => {
      probe.destroy();
      resolve(false);
    });
    probe.end();
  });
  if (live) {
    throw new VolumePluginError('SOCKET_IN_USE', `Another plugin is already listening on ${socketPath}.`);
  }
  await fs.promises.unlink(socketPath);
}
