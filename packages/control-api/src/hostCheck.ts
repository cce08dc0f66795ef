/**
 * DNS rebinding against a development control service (--insecure-http): a web page of evil.example whose DNS name
 * is re-pointed at 127.0.0.1 talks to the service as its own origin. Its requests carry `Host: evil.example` (and an
 * Origin of the same name, which crossOrigin.ts takes for the service's own), so the plain-HTTP listener answers only
 * requests whose Host names the service: an IP address (no DNS is involved, so nothing can be rebound: it covers
 * 127.0.0.0/8, [::1] and the addresses other hosts reach a 0.0.0.0 listener by), `localhost`, the --host name, or a
 * name given with --allowed-host. With mutual TLS a client certificate authenticates every request; no check there.
 */
import type { NextFunction, Request, Response } from 'express';
import { type HostAllowList, hostAllowList, hostRefusal as refusalOf, parseHost } from '@flocker/runtime';
import { z } from 'zod';
import { RequestError } from './errors';
import { sendError } from './httpErrors';

export { hostAllowList, type HostAllowList };

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

/** Why a request with this Host header is refused (its description), or undefined when it names the service. Pure;
 * the check itself is @flocker/runtime's, shared with the metrics listeners. */
export function hostRefusal(host: string | undefined, list: HostAllowList): string | undefined {
  return refusalOf(host, list, {
    listener: 'This control service',
    allowHint: (name) => `start flocker-control with --allowed-host ${name}`,
  });
}

/** Express middleware: hostRefusal's refusals answered 403 HOST_NOT_ALLOWED, before any other handler. */
export function refuseForeignHost(list: HostAllowList): (req: Request, res: Response, next: NextFunction) => void {
  return (req, res, next) => {
    const refusal = hostRefusal(req.headers.host, list);
    if (refusal === undefined) return next();
    sendError(res, new RequestError('HOST_NOT_ALLOWED', refusal));
  };
}
