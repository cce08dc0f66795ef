/**
 * The HTTP side of the Docker plugin protocol, kept thin: one route per method that
 * decodes the body with zod, calls the backend and encodes `{Err}`.
 *
 * Hostile or broken bodies never reach the parser unbounded: at most MAX_BODY_BYTES
 * are read (413 past that, the rest is not read), nesting past MAX_JSON_NESTING is
 * refused on the raw bytes before JSON.parse (400), and what is logged of a request is
 * cut down by `boundedForLog`.
 */
import { pluginMetrics, processRegistry } from '@flocker/metrics';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { errorMessage } from '@flocker/runtime';
import { jsonNesting, MAX_JSON_NESTING } from '@flocker/api';
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

/** `empty`: the body was empty (no bytes, or only white space), as opposed to `{}` or `null`. */
type Route = (body: unknown, backend: VolumeDriverBackend, empty?: boolean) => Promise<object>;

/**
 * What to do after an empty request, by call. dockerd retries a call whose connection failed (the plugin restarting)
 * with the body its first attempt already read, so the retry comes with none; Docker never sends an empty request of
 * a call that needs a name otherwise (review T5 F9: "not understood (Name: … received undefined)" said nothing).
 */
const AFTER_EMPTY: Readonly<Record<string, string>> = {
  '/VolumeDriver.Mount': 'run the container again.',
  '/VolumeDriver.Unmount':
    "the plugin lets the volume go once Docker shows no container uses it (or once the container's next Unmount comes).",
};

export function emptyRequestMessage(url: string): string {
  return `Empty request from Docker: dockerd sends one when it retries a call after a plugin restart (the retry comes without the call's body, so the plugin cannot do it); ${AFTER_EMPTY[url] ?? 'try again.'}`;
}

function route<S extends z.ZodType>(
  schema: S,
  call: (req: z.infer<S>, backend: VolumeDriverBackend) => Promise<object | void>,
  url?: string,
): Route {
  return async (body, backend, empty) => {
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      if (empty === true && url !== undefined) throw new VolumePluginError('BAD_REQUEST', emptyRequestMessage(url));
      const detail = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
      throw new VolumePluginError('BAD_REQUEST', `The request from Docker was not understood (${detail}).`);
    }
    return (await call(parsed.data, backend)) ?? {};
  };
}

export const ROUTES: Readonly<Record<string, Route>> = {
  '/Plugin.Activate': route(EmptyRequest, async () => ({ Implements: ['VolumeDriver'] })),
  '/VolumeDriver.Create': route(CreateRequest, (r, b) => b.create(r), '/VolumeDriver.Create'),
  '/VolumeDriver.Remove': route(NameRequest, (r, b) => b.remove(r), '/VolumeDriver.Remove'),
  '/VolumeDriver.Mount': route(MountRequest, (r, b) => b.mount(r), '/VolumeDriver.Mount'),
  '/VolumeDriver.Unmount': route(MountRequest, (r, b) => b.unmount(r), '/VolumeDriver.Unmount'),
  '/VolumeDriver.Path': route(NameRequest, (r, b) => b.path(r), '/VolumeDriver.Path'),
  '/VolumeDriver.Get': route(NameRequest, (r, b) => b.get(r), '/VolumeDriver.Get'),
  '/VolumeDriver.List': route(EmptyRequest, (_r, b) => b.list()),
  '/VolumeDriver.Capabilities': route(EmptyRequest, (_r, b) => b.capabilities()),
};

/**
 * Calls that change nothing: Docker asks them several times per `docker run` (Get alone 4-6 times), so their
 * success is logged at debug; Create, Remove, Mount and Unmount, which change what is used where, stay at info.
 */
export const READ_ONLY_CALLS: ReadonlySet<string> = new Set([
  '/Plugin.Activate',
  '/VolumeDriver.Get',
  '/VolumeDriver.Path',
  '/VolumeDriver.List',
  '/VolumeDriver.Capabilities',
]);

/** The level a successful call is logged at (see READ_ONLY_CALLS). */
export function successLevel(url: string): 'info' | 'debug' {
  return READ_ONLY_CALLS.has(url) ? 'debug' : 'info';
}

/** The largest request body read (Docker's are a few hundred bytes). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** HTTP status of a refused request by error code; anything else is a 500. */
const STATUS_BY_CODE: Readonly<Record<string, number>> = { BAD_REQUEST: 400, JSON_TOO_DEEP: 400, BODY_TOO_LARGE: 413 };

export function statusOf(err: unknown): number {
  return err instanceof VolumePluginError ? (STATUS_BY_CODE[err.code] ?? 500) : 500;
}

/**
 * `""`, `null` and `{}` all mean an empty request. Nesting past MAX_JSON_NESTING is
 * refused before parsing (no Docker request nests more than two levels).
 */
export function decodeBody(body: string | Buffer): unknown {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  if (jsonNesting(bytes, MAX_JSON_NESTING) > MAX_JSON_NESTING) {
    throw new VolumePluginError(
      'JSON_TOO_DEEP',
      `The request from Docker nests deeper than ${MAX_JSON_NESTING} levels.`,
    );
  }
  const text = bytes.toString('utf8');
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new VolumePluginError('BAD_REQUEST', 'The request from Docker was not valid JSON.');
  }
  return value === null ? {} : value;
}

/**
 * Past MAX_BODY_BYTES a body is still read and thrown away, up to this much more, so the
 * client gets the answer rather than a broken pipe while it is still sending; beyond it
 * (or with a larger declared length) the connection is closed after the answer.
 */
export const MAX_DRAIN_BYTES = 64 * 1024 * 1024;

class BodyTooLargeError extends VolumePluginError {
  constructor(
    readonly limit: number,
    /** Close the connection after the answer: the rest of the body is not worth reading. */
    readonly close: boolean,
  ) {
    super('BODY_TOO_LARGE', `The request from Docker is larger than ${limit} bytes.`);
  }
}

/**
 * The request body, at most `limit` bytes, else BodyTooLargeError as soon as that is known
 * (a larger declared Content-Length, or the stream passing the limit). What was read is let
 * go; the rest is read and thrown away (never kept), and past MAX_DRAIN_BYTES the
 * connection is closed.
 */
export function readBody(req: http.IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    const refuse = (close: boolean): void => {
      refused = true;
      chunks = [];
      reject(new BodyTooLargeError(limit, close));
    };
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit + MAX_DRAIN_BYTES) {
      refuse(true);
      return;
    }
    if (declared > limit) refuse(false);
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (refused) {
        if (size > limit + MAX_DRAIN_BYTES) req.destroy();
        return;
      }
      if (size > limit) refuse(false);
      else chunks.push(c);
    });
    req.on('end', () => {
      if (!refused) resolve(Buffer.concat(chunks));
    });
    req.on('error', (err) => {
      if (!refused) reject(err);
    });
  });
}

const LOG_STRING_CHARS = 200;
const LOG_ITEMS = 20;
const LOG_DEPTH = 4;
/** Roughly how many characters of a request a log line may carry in all. */
const LOG_BUDGET = 2_000;

/**
 * A copy of a decoded request small enough to log: strings cut to 200 characters, at
 * most 20 items or keys per level (the rest counted), nothing below 4 levels, and about
 * 2,000 characters in all. Never the whole body: a 1 MiB name must not make a 1 MiB
 * log line (nor a 10,000-deep array a stack overflow in the logger).
 */
export function boundedForLog(value: unknown): unknown {
  const budget = { left: LOG_BUDGET };
  return bounded(value, 0, budget);
}

function bounded(value: unknown, depth: number, budget: { left: number }): unknown {
  if (budget.left <= 0) return '…';
  if (typeof value === 'string') {
    const keep = Math.min(LOG_STRING_CHARS, budget.left);
    budget.left -= Math.min(value.length, keep) + 2;
    return value.length > keep ? `${value.slice(0, keep)}… (${value.length} chars)` : value;
  }
  budget.left -= 8;
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= LOG_DEPTH) return '…';
  const entries: [string, unknown][] = Array.isArray(value)
    ? value.map((v: unknown, i) => [String(i), v])
    : Object.entries(value);
  const kept: [string, unknown][] = [];
  for (const [k, v] of entries) {
    if (kept.length >= LOG_ITEMS || budget.left <= 0) break;
    kept.push([bounded(k, LOG_DEPTH, budget) as string, bounded(v, depth + 1, budget)]);
  }
  const more = entries.length - kept.length;
  if (Array.isArray(value))
    return more > 0 ? [...kept.map(([, v]) => v), `… (${value.length} items)`] : kept.map(([, v]) => v);
  if (more > 0) kept.push(['…', `${entries.length} keys`]);
  return Object.fromEntries(kept);
}

/** `close`: end the connection after the answer (the rest of a refused body is not read). */
function send(res: http.ServerResponse, status: number, body: object, close = false): void {
  if (res.headersSent || res.writableEnded) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': PLUGIN_CONTENT_TYPE,
    'Content-Length': Buffer.byteLength(text),
    ...(close ? { Connection: 'close' } : {}),
  });
  res.end(text);
}

export function createPluginHttpServer(backend: VolumeDriverBackend, logger: Logger): http.Server {
  const metrics = pluginMetrics(processRegistry('docker-plugin'));
  return http.createServer((req, res) => {
    const started = process.hrtime.bigint();
    const url = (req.url ?? '').split('?')[0] ?? '';
    const handler = ROUTES[url];
    const elapsedMs = () => Number(process.hrtime.bigint() - started) / 1e6;
    if (!handler) {
      // 404 tells Docker an optional method is not implemented. The body is read (and
      // thrown away) first, as for any call, so the client is not cut off mid-send.
      logger.warn('unknown plugin call', { call: boundedForLog(url), method: req.method });
      readBody(req)
        .then(
          () => false,
          (err: unknown) => err instanceof BodyTooLargeError && err.close,
        )
        .then((close) => send(res, 404, { Err: `${url} is not implemented by the Flocker volume plugin.` }, close))
        .catch(() => res.destroy());
      return;
    }
    let request: unknown;
    let bodyBytes: number | undefined;
    readBody(req)
      .then((bytes) => {
        bodyBytes = bytes.length;
        request = decodeBody(bytes);
        return handler(request, backend, bytes.toString('utf8').trim() === '');
      })
      .then((result) => {
        const body = url === '/Plugin.Activate' ? result : { ...result, Err: '' };
        metrics.request(url.slice(1), elapsedMs() / 1000, true);
        send(res, 200, body);
        // After the answer (Docker waits for nothing here), and only built when the level is on. A log that
        // throws must not turn an answered call into a failed one.
        const level = successLevel(url);
        try {
          if (logger.isLevelEnabled(level))
            logger.log(level, 'plugin call', {
              call: url,
              request: boundedForLog(request),
              duration_ms: elapsedMs(),
              ok: true,
            });
        } catch {
          // Nothing to tell, and Docker has its answer.
        }
      })
      .catch((err: unknown) => {
        const message = errorMessage(err);
        const code = err instanceof VolumePluginError ? err.code : 'INTERNAL';
        // Docker asks Get (and Path) of every volume name before it creates one: "no such volume"
        // there is Docker's routine existence check, not a failure worth a warning.
        const routine = code === 'NO_SUCH_VOLUME' && (url === '/VolumeDriver.Get' || url === '/VolumeDriver.Path');
        metrics.request(url.slice(1), elapsedMs() / 1000, false);
        logger.log(routine ? 'debug' : 'warn', 'plugin call failed', {
          call: url,
          ...(request !== undefined ? { request: boundedForLog(request) } : {}),
          ...(bodyBytes !== undefined ? { body_bytes: bodyBytes } : {}),
          duration_ms: elapsedMs(),
          ok: false,
          code,
          error: boundedForLog(message),
        });
        send(res, statusOf(err), { Err: message }, err instanceof BodyTooLargeError && err.close);
      })
      // Logging or answering must never take the plugin down.
      .catch((err: unknown) => {
        try {
          logger.error('plugin call could not be answered', { call: url, error: boundedForLog(errorMessage(err)) });
        } catch {
          // Nothing left to tell.
        }
        if (!res.headersSent) send(res, 500, { Err: 'The Flocker volume plugin failed to answer; see its log.' });
        else res.destroy();
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
    throw new VolumePluginError(
      'SOCKET_PATH_TAKEN',
      `${socketPath} exists and is not a socket; refusing to replace it.`,
    );
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
