/**
 * State-changing requests from another origin's web page are refused (cross-site request forgery). Any body is
 * parsed as JSON whatever its Content-Type (server.ts: `curl -d` works), and a page can POST text/plain
 * cross-origin without a CORS preflight: with --insecure-http (development, nothing authenticated) any site the
 * developer visits could change a local cluster. Browsers say where a request comes from (Origin on every
 * non-GET request, Sec-Fetch-Site); curl, the Flocker clients and the agents send neither, so they are not
 * affected, nor is a page the service itself served. With mTLS the browser must hold an API user's certificate;
 * the same check is harmless there. The service's own origin is the connection's scheme and Host: on plain HTTP
 * hostCheck.ts has refused any Host that does not name the service first, so a page whose DNS name was rebound
 * to the service (Origin = Host = its own name) never gets here.
 */
import type { NextFunction, Request, Response } from 'express';
import { RequestError } from './errors';
import { sendError } from './httpErrors';

/** What the check reads of a request. */
export interface OriginFacts {
  readonly method: string;
  /** The scheme the request came over ('http' or 'https'). */
  readonly protocol: string;
  readonly host: string | undefined;
  readonly origin: string | undefined;
  readonly fetchSite: string | undefined;
}

/** Methods that change nothing (HTTP's safe methods): any origin may read, as any client on the network may. */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/** `scheme://host[:port]` normalized (lower case, no default port), or undefined for anything else ('null'). */
function originOf(text: string): string | undefined {
  try {
    const url = new URL(text);
    // An Origin header is exactly scheme://host[:port]; a path or credentials are no origin of a browser's.
    return url.origin === 'null' ? undefined : url.origin;
  } catch {
    return undefined;
  }
}

/** Why the request is refused (its description), or undefined when it may go on. Pure. */
export function crossOriginRefusal(req: OriginFacts): string | undefined {
  if (SAFE_METHODS.has(req.method.toUpperCase())) return undefined;
  const own = req.host === undefined ? undefined : originOf(`${req.protocol}://${req.host}`);
  if (req.origin !== undefined) {
    const from = originOf(req.origin);
    if (from !== undefined && from === own) return undefined;
    return (
      `A ${req.method} from a web page of origin ${JSON.stringify(req.origin)} may not change this cluster: ` +
      `the control service takes changes only from its own origin (${own ?? 'none: the request names no Host'}) ` +
      'or from clients that send no Origin (curl, the flocker CLI, the agents).'
    );
  }
  // A browser that sent no Origin still says a page of another site made the request.
  if (req.fetchSite?.toLowerCase() === 'cross-site') {
    return (
      `A ${req.method} made by a web page of another site (Sec-Fetch-Site: cross-site) may not change this ` +
      'cluster: the control service takes changes only from clients that send no such header (curl, the flocker ' +
      'CLI, the agents).'
    );
  }
  return undefined;
}

const header = (req: Request, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
};

/** Express middleware: crossOriginRefusal's refusals answered 403 FORBIDDEN, before the body is read. */
export function refuseCrossOrigin(req: Request, res: Response, next: NextFunction): void {
  const refusal = crossOriginRefusal({
    method: req.method,
    protocol: req.protocol,
    host: header(req, 'host'),
    origin: header(req, 'origin'),
    fetchSite: header(req, 'sec-fetch-site'),
  });
  if (refusal === undefined) return next();
  sendError(res, new RequestError('FORBIDDEN', refusal));
}
