/**
 * `flocker ui`'s local web server: serves the built app, pushes the cluster to the
 * browser as server-sent events and turns the app's JSON calls into API calls made
 * with the user's credentials (as `kubectl proxy` does). Listens on 127.0.0.1 only.
 *
 * Host/Origin checks stop browsers only: any local process can send any Origin. So the server makes a random token
 * at start, shows it in the URL it prints (`/?token=…`, as Jupyter), exchanges it once for an HttpOnly
 * SameSite=Strict cookie (then redirects to the page without it), and answers every /api call — the state and the
 * event stream too — only with that cookie (review T6 F0b). The app's static files stay public (they hold nothing).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { UiMessage } from '@flocker/web-ui';
import { Uuid } from '@flocker/api';
import { toActionError, UiActionError, UiActions } from './actions';
import type { ClusterFeed } from './ClusterFeed';
import { checkRequest } from './security';

export interface UiServerOptions {
  feed: ClusterFeed;
  actions: UiActions;
  /** Directory of the built browser app. */
  appDir: string;
  /** Seconds between SSE keep-alive comments. */
  heartbeatMs?: number;
}

const MAX_BODY = 64 * 1024;
const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
  '.woff2': 'font/woff2',
};
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy':
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
};
/** A path segment; a route applies only when it is a UUID by the API's rule (Uuid: any hex 8-4-4-4-12, lower-cased). */
const UUID = '[^/]+';
const ROUTES: Array<{
  method: string;
  path: RegExp;
  run: (a: UiActions, id: string, body: unknown) => Promise<unknown>;
}> = [
  { method: 'POST', path: /^\/api\/volumes$/, run: (a, _id, body) => a.create(body) },
  { method: 'POST', path: new RegExp(`^/api/volumes/(${UUID})/move$`), run: (a, id, body) => a.move(id, body) },
  { method: 'POST', path: new RegExp(`^/api/volumes/(${UUID})/resize$`), run: (a, id, body) => a.resize(id, body) },
  {
    method: 'POST',
    path: new RegExp(`^/api/volumes/(${UUID})/release-lease$`),
    run: (a, id, body) => a.releaseLease(id, body),
  },
  { method: 'DELETE', path: new RegExp(`^/api/volumes/(${UUID})$`), run: (a, id) => a.delete(id) },
  {
    method: 'POST',
    path: new RegExp(`^/api/volumes/(${UUID})/snapshots$`),
    run: (a, id, body) => a.takeSnapshot(id, body),
  },
  { method: 'POST', path: new RegExp(`^/api/snapshots/(${UUID})/clone$`), run: (a, id, body) => a.clone(id, body) },
  {
    method: 'POST',
    path: new RegExp(`^/api/volumes/(${UUID})/snapshot-schedule$`),
    run: (a, id, body) => a.setSchedule(id, body),
  },
  { method: 'DELETE', path: new RegExp(`^/api/snapshots/(${UUID})$`), run: (a, id) => a.deleteSnapshot(id) },
];

/** Equal secrets, compared in constant time (hashed first: timingSafeEqual needs equal lengths). */
function sameSecret(given: string, secret: string): boolean {
  const h = (x: string) => createHash('sha256').update(x).digest();
  return timingSafeEqual(h(given), h(secret));
}

/** One cookie of a Cookie header, or undefined. */
function cookieOf(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

export class UiServer {
  private readonly server: Server;
  private port = 0;
  private readonly streams = new Set<ServerResponse>();
  /** Made at each start: 256 bits, URL-safe. */
  private readonly token = randomBytes(32).toString('base64url');

  constructor(private readonly options: UiServerOptions) {
    this.server = createServer((req, res) => {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
      this.handle(req, res).catch((e: unknown) => this.sendError(res, toActionError(e)));
    });
  }

  /** Listen on 127.0.0.1 (port 0 picks a free port); resolves to the UI's URL. */
  async listen(port: number): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return `http://127.0.0.1:${this.port}/?token=${this.token}`;
  }

  /** Cookies are not kept apart by port: two `flocker ui` on one host each need their own name. */
  private get cookieName(): string {
    return `flocker_ui_${this.port}`;
  }

  async close(): Promise<void> {
    for (const s of this.streams) s.end();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const verdict = checkRequest(
      { method, host: req.headers.host, origin: req.headers.origin, contentType: req.headers['content-type'] },
      this.port,
    );
    if (!verdict.ok) return this.sendError(res, new UiActionError(verdict.status, verdict.code, verdict.message));
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    if (path.startsWith('/api/')) {
      const cookie = cookieOf(req.headers.cookie, this.cookieName);
      if (cookie === undefined || !sameSecret(cookie, this.token))
        throw new UiActionError(
          401,
          'UNAUTHORIZED',
          'open the address "flocker ui" printed, with its ?token= (it changes at each start): this server acts with your credentials',
        );
    } else if (url.searchParams.has('token') && (method === 'GET' || method === 'HEAD')) {
      if (!sameSecret(url.searchParams.get('token') ?? '', this.token))
        throw new UiActionError(
          403,
          'FORBIDDEN_TOKEN',
          'this is not the token "flocker ui" printed (it changes at each start): open the address it printed last',
        );
      url.searchParams.delete('token');
      // The token leaves the address bar (and history) at once; the cookie carries it from now on.
      res.writeHead(303, {
        location: `${path}${url.search}`,
        'set-cookie': `${this.cookieName}=${this.token}; HttpOnly; SameSite=Strict; Path=/`,
        'cache-control': 'no-store',
        'content-length': 0,
      });
      res.end();
      return;
    }

    if (path === '/api/events' && method === 'GET') return this.stream(req, res);
    if (path === '/api/state' && method === 'GET') return this.sendJson(res, 200, this.options.feed.current());
    if (path.startsWith('/api/')) {
      const matches = ROUTES.flatMap((r) => {
        const m = r.path.exec(path);
        if (!m) return [];
        if (m[1] === undefined) return [{ r, id: '' }];
        const id = Uuid.safeParse(m[1]);
        return id.success ? [{ r, id: id.data }] : [];
      });
      const hit = matches.find(({ r }) => r.method === method);
      if (hit !== undefined) {
        const body = method === 'POST' ? await readJson(req) : undefined;
        return this.sendJson(res, 200, await hit.r.run(this.options.actions, hit.id, body));
      }
      const known = matches.length > 0;
      throw new UiActionError(
        known ? 405 : 404,
        known ? 'METHOD_NOT_ALLOWED' : 'NOT_FOUND',
        `${method} ${path} is not a UI server call`,
      );
    }
    if (method !== 'GET' && method !== 'HEAD')
      throw new UiActionError(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed here`);
    return this.serveFile(res, path);
  }

  private stream(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    const send = (m: UiMessage) => res.write(`data: ${JSON.stringify(m)}\n\n`);
    res.write('retry: 2000\n\n');
    send(this.options.feed.current());
    const unsubscribe = this.options.feed.subscribe(send);
    const beat = setInterval(() => res.write(': keep-alive\n\n'), this.options.heartbeatMs ?? 15_000);
    this.streams.add(res);
    const done = () => {
      clearInterval(beat);
      unsubscribe();
      this.streams.delete(res);
    };
    req.on('close', done);
    res.on('close', done);
  }

  private async serveFile(res: ServerResponse, urlPath: string): Promise<void> {
    const root = normalize(this.options.appDir + sep);
    let decoded: string;
    try {
      decoded = decodeURIComponent(urlPath);
    } catch {
      // A malformed %-escape names no file of the app (it threw URIError: a 500 "URI malformed").
      throw new UiActionError(404, 'NOT_FOUND', `${urlPath} not found`);
    }
    let file = normalize(join(root, decoded));
    if (!file.startsWith(root)) throw new UiActionError(404, 'NOT_FOUND', 'no such file');
    const isFile = await stat(file).then(
      (s) => s.isFile(),
      () => false,
    );
    // Client-side paths (no extension) get the app; missing assets get a 404.
    if (!isFile) {
      if (extname(file) !== '') throw new UiActionError(404, 'NOT_FOUND', `${urlPath} not found`);
      file = join(root, 'index.html');
    }
    let body: Buffer;
    try {
      body = await readFile(file);
    } catch {
      throw new UiActionError(
        503,
        'UI_NOT_BUILT',
        `the web UI is not built in ${root}: run "npm run build -w @flocker/web-ui"`,
      );
    }
    const hashed = /\/assets\//.test(file);
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'cache-control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
      'content-length': body.length,
    });
    res.end(body);
  }

  private sendJson(res: ServerResponse, status: number, value: unknown): void {
    const body = JSON.stringify(value);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  }

  private sendError(res: ServerResponse, e: UiActionError): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    this.sendJson(res, e.status, { error: { code: e.code, message: e.message } });
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    const b = c as Buffer;
    size += b.length;
    if (size > MAX_BODY) throw new UiActionError(413, 'BODY_TOO_LARGE', `request bodies are at most ${MAX_BODY} bytes`);
    chunks.push(b);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UiActionError(400, 'INVALID_JSON', 'the request body is not valid JSON');
  }
}
