/** Express wiring: body parsing, the route table, error mapping; and startControlService. */
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import express, { type NextFunction, type Request, type Response } from 'express';
import winston, { type Logger } from 'winston';
import {
  CONFIGURATION_TAG_HEADER,
  findProtoKey,
  IF_CONFIGURATION_MATCHES_HEADER,
  RESERVED_KEY_MESSAGE,
  safeLogStream,
} from '@flocker/api';
import { systemClock } from '@flocker/runtime';
import { ControlState, DEFAULT_HANDOVER_WAIT_MS, DEFAULT_LEASE_GRACE_MS } from './ControlState';
import { type ConfigurationStore, FileConfigurationStore } from './ConfigurationStore';
import { invalidRequest, RequestError, UsageError } from './errors';
import { MAX_BODY_BYTES, sendError, toApiError } from './httpErrors';
import { refuseCrossOrigin } from './crossOrigin';
import { AllowedHost, hostAllowList, type HostAllowList, refuseForeignHost } from './hostCheck';
import { buildOpenApi } from './openapi';
import { routes } from './routes';
import { checkInput, type Reply } from './routeSpec';
import { GZIP_MIN_BYTES, Views } from './Views';
import { ListBody } from './listBodies';
import { auditEntry, isAudited } from './audit';
import { authorizeRoute, peerIdentity, requireIdentity, type ServerTlsCredentials } from './tls';
import { rejectDeepJson } from './jsonDepth';
import { hotFirst } from './routeOrder';
import { guardConnections } from './connectionGuard';
import {
  handleMarked,
  markOf,
  refuseWritesAfterStall,
  STALLED_RETRY_AFTER_S,
  StallGuard,
  type StallGuardOptions,
} from './stallGuard';
import { responseSink } from './streamSink';
import {
  controlMetrics,
  processRegistry,
  readiness,
  registerCertificateExpiry,
  secondsSince,
  startMetricsServer,
  type MetricsCheckHost,
  type MetricsServer,
} from '@flocker/metrics';
import { controlHealth, etcdQuorumOf, instrumentStore } from './metrics';

export const DEFAULT_PORT = 4523;

export interface ServerLimits {
  /** Time to receive a request's headers: a client dripping them (slow loris) is cut off. */
  headersTimeoutMs: number;
  /** Time to receive a whole request (headers and body); a long-poll's wait is not part of it. */
  requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open between requests. */
  keepAliveTimeoutMs: number;
  /** How often the limits above are enforced. */
  checkIntervalMs: number;
  /**
   * Open connections beyond this are refused (each costs memory), unless room is made: keep-alive connections idle
   * after an answer are closed, or the oldest silent connection (no request yet; with TLS, no finished handshake) of
   * the address holding the most silent ones, when that is not the newcomer's own address.
   */
  maxConnections: number;
  /**
   * An answer whose bytes make no progress for this long (the client stopped reading; a watch stream included) has
   * its connection closed: an unread answer would otherwise hold its slot and its buffers for ever.
   */
  writeStallMs: number;
  maxHeaderBytes: number;
  /**
   * Connections the kernel queues before the service accepts them (capped by net.core.somaxconn).
   * Node's 511 overflowed when thousands of agents connected at once: each dropped SYN waits 1 s or more.
   */
  listenBacklog: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  // Longer than an agent's longest wait (60 s), so a connection between polls is never cut mid-way.
  keepAliveTimeoutMs: 65_000,
  checkIntervalMs: 1_000,
  maxConnections: 10_000,
  // 15 watch heartbeats (WATCH_HEARTBEAT_MS); a reading client over a slow link still makes progress in each.
  writeStallMs: 30_000,
  maxHeaderBytes: 16 * 1024,
  listenBacklog: 4096,
};
export { MAX_BODY_BYTES };

export interface ControlServiceOptions {
  /** 0 = an ephemeral port. Default 4523. */
  port?: number;
  host?: string;
  /** Where the configuration file lives; ignored when `store` is given. */
  dataDir?: string;
  store?: ConfigurationStore;
  /** The file store compacts its log once it exceeds this many bytes (and the snapshot's size). Default 1 MiB. */
  compactLogBytes?: number;
  /** A node is dead when it has not reported for this long. Default 30 s. */
  nodeTimeoutSeconds?: number;
  /** Seconds a node stays dead before its unpinned leases are released (0 = at once). Default 5. */
  leaseGraceSeconds?: number;
  /**
   * Seconds a request blocked by a release_on_request lease of a live node waits for its holder to let go of it (the
   * lease hand-over; 0 = refuse at once, as before the hand-over). Default DEFAULT_HANDOVER_WAIT_MS / 1000 (5).
   */
  handoverWaitSeconds?: number;
  /** ControlStateOptions.newMembersSince (tests: a release the nodes' reports are compared with). */
  newMembersSince?: string;
  logLevel?: string;
  logger?: Logger;
  /** Limits against slow or idle clients; see DEFAULT_LIMITS. */
  limits?: Partial<ServerLimits>;
  /** Wall-clock epoch ms (ControlStateOptions.now); default Date.now. */
  now?: () => number;
  /** Monotonic ms: node liveness, lease grace, the idle-connection close rate (ControlStateOptions.monoNow). */
  monoNow?: () => number;
  /** Serve HTTPS with mutual TLS against this cluster CA and authorize by certificate; absent = plain HTTP. */
  tls?: ServerTlsCredentials;
  /**
   * Plain HTTP only (--allowed-host): DNS names besides localhost and `host` that a request's Host may carry (an IP
   * address always may); any other name is refused 403 HOST_NOT_ALLOWED (DNS rebinding, hostCheck.ts).
   */
  allowedHosts?: readonly string[];
  /**
   * TESTS ONLY: the shortest snapshot schedule accepted and run, in seconds, instead of
   * MIN_SNAPSHOT_INTERVAL_MS (5 minutes), so a test sees schedules run in seconds.
   */
  testOnlyMinSnapshotIntervalSeconds?: number;
  /** The metrics and health listener (/metrics, /healthz, /readyz; plain HTTP); absent = none. */
  metrics?: { host: string; port: number; checkHost?: MetricsCheckHost };
  /**
   * Send whole lists of 64 KiB or more gzipped to clients that accept it (compressed once per
   * change, off the request path). Default off: on a LAN the compression and the client's
   * unpacking cost more time than the bytes saved; worth it over slow links.
   */
  compressLists?: boolean;
  /**
   * Refuse writes read right after this process's event loop stalled (SIGSTOP, a paused VM, a long GC) with 503
   * REPLICA_STALLED (stallGuard.ts): their clients may have moved on to another replica. Only replicas sharing a store
   * need it (main.ts: --store etcd). true = DEFAULT_STALL_GUARD. Default off.
   */
  stallGuard?: boolean | Partial<StallGuardOptions>;
}

export interface ControlService {
  url: string;
  port: number;
  state: ControlState;
  /** The metrics listener's base URL, when one was asked for. */
  metricsUrl?: string;
  close(): Promise<void>;
}

/** The control service's timing flags, checked: T > 0 and G >= 0 (both finite), in ms. */
export function checkTiming(
  nodeTimeoutSeconds: number,
  leaseGraceSeconds: number,
): { nodeTimeoutMs: number; leaseGraceMs: number } {
  if (!Number.isFinite(nodeTimeoutSeconds) || nodeTimeoutSeconds <= 0) {
    throw new UsageError(
      'INVALID_NODE_TIMEOUT',
      `--node-timeout must be a positive number of seconds (got ${nodeTimeoutSeconds}).`,
    );
  }
  if (!Number.isFinite(leaseGraceSeconds) || leaseGraceSeconds < 0) {
    throw new UsageError(
      'INVALID_LEASE_GRACE',
      `--lease-grace must be zero or a positive number of seconds (got ${leaseGraceSeconds}).`,
    );
  }
  return { nodeTimeoutMs: nodeTimeoutSeconds * 1000, leaseGraceMs: leaseGraceSeconds * 1000 };
}

/** The longest hand-over wait: well inside the clients' per-request timeout (30 s by default). */
export const MAX_HANDOVER_WAIT_SECONDS = 20;

/** --handover-wait, checked: 0 to MAX_HANDOVER_WAIT_SECONDS, in ms. */
export function checkHandoverWait(seconds: number): number {
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > MAX_HANDOVER_WAIT_SECONDS) {
    throw new UsageError(
      'INVALID_HANDOVER_WAIT',
      `--handover-wait must be 0 to ${MAX_HANDOVER_WAIT_SECONDS} seconds (got ${seconds}): a longer wait would outlast the clients' request timeout.`,
    );
  }
  return Math.round(seconds * 1000);
}

export function createLogger(level = 'info'): Logger {
  return winston.createLogger({
    level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { service: 'flocker-control' },
    // JSON lines on stderr; a full disk under the log drops lines, never stops the service.
    transports: [new winston.transports.Stream({ stream: safeLogStream('stderr') })],
  });
}

/** Whether an If-None-Match header names `etag` (weak comparison, RFC 9110 13.1.2), or is `*`. */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const bare = etag.replace(/^W\//, '');
  return header.split(',').some((t) => {
    const candidate = t.trim();
    return candidate === '*' || candidate.replace(/^W\//, '') === bare;
  });
}

/**
 * Bytes of a whole list a response keeps queued before it waits for the socket to drain: enough
 * to keep the kernel's buffer fed between event-loop turns on a loaded host, few enough that a
 * turn over TLS encrypts ~1 MiB, not the whole 18 MB (which held the event loop 11 ms at load 12).
 */
const WRITE_WINDOW_BYTES = 1 << 20;

/**
 * A whole list's chunks written one after another (issue 23), never copied together: up to
 * WRITE_WINDOW_BYTES queued at a time (the queued chunks are the cached list's own Buffers; over
 * TLS their ciphertext), then the rest as the socket drains.
 */
function writeChunks(req: Request, res: Response, body: ListBody): void {
  res.setHeader('Content-Length', body.length);
  if (req.method === 'HEAD') return void res.end();
  const chunks = body.chunks;
  let next = 0;
  const pump = (): void => {
    while (next < chunks.length) {
      res.write(chunks[next++]);
      if (next < chunks.length && res.writableNeedDrain && res.writableLength >= WRITE_WINDOW_BYTES)
        return void res.once('drain', pump);
    }
    res.end();
  };
  res.once('close', () => res.off('drain', pump));
  pump();
}

/** The Content-Type every JSON answer carries: what express's res.type('application/json') and res.send make of it. */
const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';
/** The Retry-After (s) of a NODE_DEAD refusal (review s27 F7). */
const NODE_DEAD_RETRY_AFTER_S = 1;

/**
 * A JSON answer (a string, or a cached body's Buffer) as express's res.send wrote it, without its per-answer work
 * (issue 23: every hop of a move is a few answers, each parsing and re-formatting its Content-Type, looking up
 * mime types and checking freshness). The same bytes (sendJson.test: against express's res.send on random bodies):
 * Content-Type where the caller set it first, then Content-Length, and no body for HEAD. express's 304 check
 * (req.fresh) is made only for a request with If-None-Match or If-Modified-Since (rare: a list's ETag was compared
 * with If-None-Match before, by noneMatch): `If-None-Match: *` is fresh on a GET or HEAD of any 2xx answer, ETag or not
 * (sendJson.fresh.test). express sends no body with 204, 205 or 304; no route answers those with a body.
 */
export function sendJson(req: Request, res: Response, body: string | Buffer): void {
  res.setHeader('Content-Type', JSON_CONTENT_TYPE);
  res.setHeader('Content-Length', String(typeof body === 'string' ? Buffer.byteLength(body) : body.length));
  const conditional = req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined;
  if (conditional && req.fresh) {
    // As res.send: 304, without the body's headers.
    res.statusCode = 304;
    res.removeHeader('Content-Type');
    res.removeHeader('Content-Length');
    res.end();
  } else if (req.method === 'HEAD') res.end();
  else res.end(body);
}

/** The reason long-poll handlers see when their client goes away (a shared value: no DOMException per request). */
const CLIENT_GONE = new Error('client closed the connection');

/**
 * `validateResponses`: check every outgoing cached body against its schema. On in
 * tests (NODE_ENV=test, as jest sets); off in production, where the bodies are built
 * from values validated on their way in.
 */
export function createApp(
  state: ControlState,
  logger: Logger,
  validateResponses = process.env['NODE_ENV'] === 'test',
  /** Requests carry verified client certificates: answer only known identities, authorize every route. */
  authorizeByCertificate = false,
  /** Gzip big whole lists for clients sending Accept-Encoding: gzip (ControlServiceOptions.compressLists). */
  compress = false,
  /** Plain HTTP: answer only requests whose Host names the service (hostCheck.ts); absent = any Host. */
  hosts?: HostAllowList,
  /** Refuse writes read right after an event-loop stall (stallGuard.ts); absent = never. */
  stall?: StallGuard,
): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  // First: the check must run in the very turn the request is read (a stall is seen by its clock, not by a timer).
  if (stall !== undefined) app.use(refuseWritesAfterStall(stall));
  // Before anything else: a rebound page may not even read. crossOrigin.ts's "own origin" is built from this Host.
  if (hosts !== undefined) app.use(refuseForeignHost(hosts));
  if (authorizeByCertificate) app.use(requireIdentity);
  // Parse any body as JSON whatever its content type (s23 USER-T F8, kept): curl users forget the header (`curl -d`
  // sends application/x-www-form-urlencoded). Flocker v1 refused all but application/json; every v1 client sends it
  // (flocker-go, its docs' curl examples), so none breaks here. A web page can POST such a body cross-site (text/plain
  // needs no CORS preflight): a change from another origin is refused first (crossOrigin.ts; with --insecure-http
  // nothing else stops one; its "own origin" is the Host, which refuseForeignHost has checked on plain HTTP).
  app.use(refuseCrossOrigin);
  // Bodies nesting deeper than any API shape are refused before parsing.
  app.use(express.json({ limit: MAX_BODY_BYTES, type: () => true, strict: true, verify: rejectDeepJson }));

  const views = new Views(state, validateResponses, compress);
  const metrics = controlMetrics(processRegistry('control-service'));
  const openapi = JSON.stringify(buildOpenApi(routes));

  const send = (req: Request, res: Response, reply: Reply, signal: AbortSignal): void => {
    if (reply.tag !== undefined) res.setHeader(CONFIGURATION_TAG_HEADER, reply.tag);
    if (reply.stream !== undefined) {
      // A long-lived answer (the agent channel's watch): headers now, then the route writes chunks.
      res.status(reply.status);
      res.setHeader('Content-Type', reply.stream.contentType);
      res.setHeader('Cache-Control', 'no-store');
      res.flushHeaders();
      // Each line one HTTP chunk, framed once per shared line and written straight to the socket (streamSink.ts).
      reply.stream.run(responseSink(res, signal));
      return;
    }
    res.statusCode = reply.status;
    res.setHeader('Content-Type', JSON_CONTENT_TYPE);
    const cached = Buffer.isBuffer(reply.json) || reply.json instanceof ListBody ? reply.json : undefined;
    // A whole list carries its entity tag: a client repeating the poll with If-None-Match gets a 304 and no body
    // while the list is unchanged (express's res.send answers it).
    const etag = cached !== undefined && reply.status === 200 ? views.etagOf(cached) : undefined;
    // Gzip only when the operator enabled it (--compress-lists): on a LAN or loopback, compressing and unpacking
    // cost more than sending (10,000 datasets: 3.3 ms plain, 32 ms gzipped and unpacked by the client), and Go's
    // and Python's HTTP clients ask for gzip by default. Then a big cached body goes gzipped to a client that
    // accepts it, once its copy is made (Views.gzipOf); only on an explicit Accept-Encoding.
    const compressible = compress && cached !== undefined && cached.length >= GZIP_MIN_BYTES;
    if (compressible) res.vary('Accept-Encoding');
    const gz = compressible && req.headers['accept-encoding'] !== undefined ? views.gzipOf(cached) : undefined;
    const gzipped = gz !== undefined && req.acceptsEncodings('gzip') === 'gzip';
    // Another representation, another tag.
    const tag = etag !== undefined && gzipped ? `${etag.slice(0, -1)}-gzip"` : etag;
    if (tag !== undefined) {
      res.setHeader('ETag', tag);
      // Checked here, not by express's res.send: that one ignores If-None-Match when the request says
      // Cache-Control: no-cache, which fetch() adds to every conditional request.
      if (noneMatch(req.headers['if-none-match'], tag)) {
        res.removeHeader('Content-Type');
        res.status(304).end();
        return;
      }
    }
    if (gzipped) {
      res.setHeader('Content-Encoding', 'gzip');
      res.send(gz);
      return;
    }
    if (reply.json instanceof ListBody) return writeChunks(req, res, reply.json);
    sendJson(req, res, reply.json ?? JSON.stringify(reply.body));
  };

  // The agent channel and the state list first: express tries the layers in order for every request (routeOrder.ts).
  for (const route of hotFirst(routes)) {
    const audited = isAudited(route.method, route.path);
    const audit = (
      req: Request,
      params: Readonly<Record<string, string>>,
      status: number,
      code?: string,
      body?: unknown,
    ): void =>
      void logger.info('audit', {
        ...auditEntry({
          method: route.method,
          route: route.path,
          params,
          identity: peerIdentity(req),
          status,
          ...(code !== undefined ? { code } : {}),
          body,
        }),
      });
    app[route.method](route.path, async (req: Request, res: Response) => {
      // By route template, never the path: ids in labels would grow without bound.
      const t0 = process.hrtime.bigint();
      let errorCode: string | undefined;
      res.on('close', () => metrics.request(route.method, route.path, res.statusCode, secondsSince(t0), errorCode));
      let auditParams: Readonly<Record<string, string>> = req.params as Record<string, string>;
      const abort = new AbortController();
      res.on('close', () => {
        if (!res.writableFinished) abort.abort(CLIENT_GONE);
      });
      try {
        const ifMatches = req.get(IF_CONFIGURATION_MATCHES_HEADER);
        // No prototype: a parameter named __proto__ is an ordinary (unknown, refused) key.
        const query = Object.create(null) as Record<string, string>;
        for (const [k, v] of Object.entries(req.query as Record<string, unknown>)) {
          if (typeof v === 'string') query[k] = v;
          else throw new RequestError('INVALID_REQUEST', `The query parameter ${k} must be given once.`);
        }
        // zod's records would drop a __proto__ key silently: refuse it wherever it is.
        const proto = findProtoKey(req.body);
        if (proto !== undefined) {
          throw new RequestError(
            'RESERVED_KEY',
            `The request body has the key ${proto.join('.')}: ${RESERVED_KEY_MESSAGE}.`,
          );
        }
        // Parsed by the route's schemas (ids canonical); what a schema refuses is kept as sent, for authorization.
        const input = checkInput(route, { params: req.params as Record<string, string>, query, body: req.body });
        if (authorizeByCertificate) {
          // Authorize exactly what the handler will act on: ids as the route's schemas canonicalise them.
          req.params = input.params;
          req.body = input.body;
          // Synchronously before the handler's mutate(): check and change see the same configuration.
          authorizeRoute(state, req, route);
        }
        if (input.error !== undefined) throw invalidRequest(input.error);
        auditParams = input.params;
        const handle = () =>
          route.handle(
            state,
            {
              params: input.params,
              query: input.query,
              body: input.body,
              ifMatches: route.conditional ? ifMatches : undefined,
              signal: abort.signal,
              identity: peerIdentity(req),
              // A change applied after a wait (a lease hand-over) is authorized again then.
              reauthorize: authorizeByCertificate ? () => authorizeRoute(state, req, route) : undefined,
            },
            views,
          );
        // A write the stall guard let through carries its mark to the committer, through the handler's awaits.
        const reply = await handleMarked(markOf(req), handle);
        if (!res.headersSent && !res.writableEnded) send(req, res, reply, abort.signal);
        if (audited) audit(req, auditParams, reply.status, undefined, reply.body);
      } catch (err) {
        const apiError = toApiError(err);
        errorCode = apiError.code;
        if (audited) audit(req, auditParams, apiError.status, apiError.code);
        // A write a stall kept from being applied is no failure of the service: its client sends it again.
        if (apiError.code === 'REPLICA_STALLED')
          logger.warn('a write read before an event-loop stall was not applied', {
            method: req.method,
            path: req.path,
            code: apiError.code,
          });
        else if (apiError.status >= 500)
          logger.error('request failed', {
            method: req.method,
            path: req.path,
            error: String(err),
            stack: (err as Error).stack,
          });
        else logger.debug('request rejected', { method: req.method, path: req.path, code: apiError.code });
        if (!res.headersSent) {
          if (apiError.code === 'REPLICA_STALLED') res.setHeader('Retry-After', String(STALLED_RETRY_AFTER_S));
          // The node is dead here until its agent reports (the liveness check's period, at most 1 s, after that): a
          // client that predates the code (review s27 F7: an older CSI driver asked again every 50 ms) waits that long.
          if (apiError.code === 'NODE_DEAD') res.setHeader('Retry-After', String(NODE_DEAD_RETRY_AFTER_S));
          sendError(res, apiError);
        }
      }
    });
  }
  app.get('/v1/openapi.json', (_req, res) => {
    res.type('application/json').send(openapi);
  });

  // Known path, wrong method → 405 with Allow.
  const byPath = new Map<string, string[]>();
  for (const r of routes) byPath.set(r.path, [...(byPath.get(r.path) ?? []), r.method.toUpperCase()]);
  byPath.set('/v1/openapi.json', ['GET']);
  for (const [path, methods] of byPath) {
    app.all(path, (req, res) => {
      res.setHeader('Allow', methods.join(', '));
      sendError(
        res,
        new RequestError(
          'METHOD_NOT_ALLOWED',
          `${req.method} is not allowed on ${req.path}; use ${methods.join(' or ')}.`,
        ),
      );
    });
  }
  app.use((req, res) => {
    sendError(res, new RequestError('NOT_FOUND', `There is no ${req.path} in the Flocker API.`));
  });
  // Errors from the body parser land here (express needs the 4-argument signature).
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const apiError = toApiError(err);
    if (apiError.status >= 500)
      logger.error('request failed', { method: req.method, path: req.path, error: String(err) });
    if (!res.headersSent) sendError(res, apiError);
  });
  return app;
}

/** --allowed-host values, checked: names (or addresses) without a port, and only for plain HTTP. */
export function checkAllowedHosts(allowed: readonly string[], tls: boolean): string[] {
  if (allowed.length > 0 && tls) {
    throw new UsageError(
      'INVALID_ALLOWED_HOST',
      '--allowed-host applies to plain HTTP (--insecure-http) only: with mutual TLS the client certificate ' +
        'authenticates a request whatever host name it used.',
    );
  }
  return allowed.map((text) => {
    const parsed = AllowedHost.safeParse(text);
    if (!parsed.success) throw new UsageError('INVALID_ALLOWED_HOST', parsed.error.issues[0]?.message ?? text);
    return parsed.data;
  });
}

export async function startControlService(options: ControlServiceOptions = {}): Promise<ControlService> {
  const logger = options.logger ?? createLogger(options.logLevel ?? 'info');
  const allowedHosts = checkAllowedHosts(options.allowedHosts ?? [], options.tls !== undefined);
  const { nodeTimeoutMs, leaseGraceMs } = checkTiming(
    options.nodeTimeoutSeconds ?? 30,
    options.leaseGraceSeconds ?? DEFAULT_LEASE_GRACE_MS / 1000,
  );
  const handoverWaitMs = checkHandoverWait(options.handoverWaitSeconds ?? DEFAULT_HANDOVER_WAIT_MS / 1000);
  const registry = processRegistry('control-service');
  const rawStore =
    options.store ??
    new FileConfigurationStore(options.dataDir ?? '/var/lib/flocker', {
      ...(options.compactLogBytes !== undefined ? { compactMinBytes: options.compactLogBytes } : {}),
      onCompactionError: (err) =>
        logger.error('configuration log compaction failed; will retry', { error: String(err) }),
    });
  const store = instrumentStore(rawStore, registry);
  const state = await ControlState.open({
    store,
    logger,
    nodeTimeoutMs,
    leaseGraceMs,
    handoverWaitMs,
    ...(options.newMembersSince !== undefined ? { newMembersSince: options.newMembersSince } : {}),
    ...(options.now !== undefined ? { now: options.now } : {}),
    ...(options.monoNow !== undefined ? { monoNow: options.monoNow } : {}),
    ...(options.testOnlyMinSnapshotIntervalSeconds !== undefined
      ? { minSnapshotIntervalMs: options.testOnlyMinSnapshotIntervalSeconds * 1000 }
      : {}),
  });
  if (options.testOnlyMinSnapshotIntervalSeconds !== undefined) {
    logger.warn('snapshot schedules may run as often as every few seconds (test-only option)', {
      min_snapshot_interval_seconds: options.testOnlyMinSnapshotIntervalSeconds,
    });
  }
  const host = options.host ?? '0.0.0.0';
  // The real clock, never an injected one: what stalls is this process's event loop.
  const stall =
    options.stallGuard === undefined || options.stallGuard === false
      ? undefined
      : new StallGuard(() => systemClock.now(), logger, options.stallGuard === true ? {} : options.stallGuard);
  const app = createApp(
    state,
    logger,
    undefined,
    options.tls !== undefined,
    options.compressLists ?? false,
    // With mutual TLS the client certificate authenticates every request, whatever name it used.
    options.tls === undefined ? hostAllowList(host, allowedHosts) : undefined,
    stall,
  );
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const httpOptions = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: limits.checkIntervalMs,
    maxHeaderSize: limits.maxHeaderBytes,
  };
  // With TLS, only certificates issued by the cluster CA get past the handshake.
  const server: Server =
    options.tls === undefined
      ? createServer(httpOptions, app)
      : createHttpsServer(
          {
            ...httpOptions,
            ...options.tls,
            requestCert: true,
            rejectUnauthorized: true,
            handshakeTimeout: limits.headersTimeoutMs,
          },
          app,
        );
  const slots = guardConnections(server, limits, options.monoNow ?? (() => systemClock.now()), logger);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: options.port ?? DEFAULT_PORT, host, backlog: limits.listenBacklog }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  // Nodes unheard since this start are counted from now: no agent could report before (ControlState.serving).
  state.serving();
  stall?.start();
  let metricsServer: MetricsServer | undefined;
  let etcdTimer: NodeJS.Timeout | undefined;
  if (options.metrics !== undefined) {
    const checks = controlHealth(registry, {
      state,
      store,
      nodeTimeoutMs,
      ...(options.store === undefined ? { dataDir: options.dataDir ?? '/var/lib/flocker' } : {}),
      ...(etcdQuorumOf(rawStore) !== undefined ? { etcdQuorum: etcdQuorumOf(rawStore) } : {}),
    });
    if (options.tls !== undefined)
      registerCertificateExpiry(registry, { 'control-service': options.tls.cert, 'cluster-ca': options.tls.ca });
    // Metrics are no reason to refuse the API: a taken port is logged, and the service runs without them.
    // Its --allowed-host names too (review s27 F5): the names the operator said this host has; refusals are logged.
    metricsServer = await startMetricsServer({
      registry,
      checks,
      allowedHosts,
      logger,
      ...options.metrics,
    }).catch((err: unknown) => {
      logger.warn('the metrics listener could not start; running without it', {
        code: 'METRICS_LISTEN_FAILED',
        address: `${options.metrics?.host ?? ''}:${options.metrics?.port ?? ''}`,
        error: String(err),
      });
      return undefined;
    });
    if (metricsServer !== undefined) logger.info('metrics listening', { url: metricsServer.url });
    // flocker_etcd_up between readiness probes too.
    const etcd = checks.find((c) => c.name === 'etcd');
    if (etcd !== undefined) {
      void readiness([etcd]);
      etcdTimer = setInterval(() => void readiness([etcd]), 15_000);
      etcdTimer.unref();
    }
  }
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  logger.info('control service listening', {
    host,
    port,
    configuration: state.configurationTag,
    node_timeout_seconds: nodeTimeoutMs / 1000,
    lease_grace_seconds: leaseGraceMs / 1000,
    handover_wait_seconds: handoverWaitMs / 1000,
  });
  let closing: Promise<void> | undefined;
  return {
    url: `${options.tls === undefined ? 'http' : 'https'}://${urlHost}:${port}`,
    port,
    state,
    ...(metricsServer !== undefined ? { metricsUrl: metricsServer.url } : {}),
    close: () =>
      (closing ??= (async () => {
        clearInterval(etcdTimer);
        stall?.stop();
        slots.stop();
        await metricsServer?.close();
        await state.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
      })()),
  };
}
