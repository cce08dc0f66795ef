/**
 * DNS rebinding against a development control service (--insecure-http): a web page of evil.example whose DNS name
 * is re-pointed at 127.0.0.1 talks to the service as its own origin. Its requests carry `Host: evil.example` (and an
 * Origin of the same name, which crossOrigin.ts takes for the service's own), so the plain-HTTP listener answers only
 * requests whose Host names the service: an IP address (no DNS is involved, so nothing can be rebound: it covers
 * 127.0.0.0/8, [::1] and the addresses other hosts reach a 0.0.0.0 listener by), `localhost`, the --host name, or a
 * name given with --allowed-host. With mutual TLS a client certificate authenticates every request; no check there.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { NextFunction, Request, Response } from 'express';
import { z } from 'zod';
import { RequestError } from './errors';
import { sendError } from './httpErrors';

/** `text` as exactly host[:port] gives: its hostname as a URL has it (lower case, IPv4 dotted, IPv6 in brackets,
 * no trailing dot) and its port; undefined for anything else (a path, credentials, blanks, an empty name). */
function parseHost(text: string): { hostname: string; port: string } | undefined {
  // URL would read `a@b`, `a/b` or `a\b` as more than a host: none of them is a Host header or a name.
  if (text === '' || /[\s/\\?#@]/.test(text)) return undefined;
  let url: URL;
  try {
    url = new URL(`http://${text}`);
  } catch {
    return undefined;
  }
  const hostname = url.hostname.replace(/\.$/, '');
  return hostname === '' ? undefined : { hostname, port: url.port };
}

/** An IP address literal (what URL makes of it: dotted IPv4, bracketed IPv6). */
function isAddress(hostname: string): boolean {
  return isIPv4(hostname) || (hostname.startsWith('[') && hostname.endsWith(']') && isIPv6(hostname.slice(1, -1)));
}

/** The names (not addresses) a request's Host may carry besides `localhost`. */
export interface HostAllowList {
  readonly names: ReadonlySet<string>;
}

/** A value of --allowed-host: a DNS name or an address, without a port; lower-cased as Host headers are compared. */
export const AllowedHost = z.string().transform((text, ctx) => {
  const parsed = parseHost(text.trim());
  if (parsed === undefined || parsed.port !== '') {
    ctx.addIssue({
      code: 'custom',
      message: `--allowed-host ${JSON.stringify(text)} is not a host name or address (no scheme, port or path), e.g. control.example.com`,
    });
    return z.NEVER;
  }
  return parsed.hostname;
});

/** The allow-list of a listener on `listenHost` (--host: its name counts when it is one) plus `allowed` names. */
export function hostAllowList(listenHost: string, allowed: readonly string[]): HostAllowList {
  const names = new Set<string>(['localhost']);
  for (const text of [listenHost, ...allowed]) {
    const parsed = parseHost(text);
    if (parsed !== undefined && !isAddress(parsed.hostname)) names.add(parsed.hostname);
  }
  return { names };
}

/** Why a request with this Host header is refused (its description), or undefined when it names the service. Pure. */
export function hostRefusal(host: string | undefined, list: HostAllowList): string | undefined {
  // Only HTTP/1.0 may omit Host (node answers an HTTP/1.1 request without one 400): no browser does, nothing to rebind.
  if (host === undefined) return undefined;
  const parsed = parseHost(host);
  if (parsed !== undefined && (isAddress(parsed.hostname) || list.names.has(parsed.hostname))) return undefined;
  const name = parsed?.hostname;
  return (
    `This control service answers only requests naming it, and Host ${JSON.stringify(host)} does not: it takes an ` +
    `IP address, localhost${[...list.names]
      .filter((n) => n !== 'localhost')
      .map((n) => `, ${n}`)
      .join('')}. ` +
    'A web page whose DNS name was pointed at this service (DNS rebinding) would name its own host. ' +
    (name !== undefined
      ? `If ${name} is a name of this service, start flocker-control with --allowed-host ${name}.`
      : 'The header is not a host name or address.')
  );
}

/** Express middleware: hostRefusal's refusals answered 403 HOST_NOT_ALLOWED, before any other handler. */
export function refuseForeignHost(list: HostAllowList): (req: Request, res: Response, next: NextFunction) => void {
  return (req, res, next) => {
    const refusal = hostRefusal(req.headers.host, list);
    if (refusal === undefined) return next();
    sendError(res, new RequestError('HOST_NOT_ALLOWED', refusal));
  };
}
