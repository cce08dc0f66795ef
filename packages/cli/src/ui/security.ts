/**
 * The UI server acts with the user's API credentials, so only pages it served may
 * drive it: the Host header must name the loopback listener (no DNS rebinding) and
 * every mutation must come from its own origin as JSON (no cross-site forms).
 */
export interface RequestFacts {
  method: string;
  host: string | undefined;
  origin: string | undefined;
  contentType: string | undefined;
}

export type Verdict = { ok: true } | { ok: false; status: number; code: string; message: string };

const SAFE_METHODS = new Set(['GET', 'HEAD']);

export function allowedHosts(port: number): string[] {
  return [`127.0.0.1:${port}`, `localhost:${port}`];
}

export function checkRequest(req: RequestFacts, port: number): Verdict {
  const hosts = allowedHosts(port);
  if (!req.host || !hosts.includes(req.host.toLowerCase())) {
    return {
      ok: false,
      status: 403,
      code: 'FORBIDDEN_HOST',
      message: `this UI server answers only to ${hosts.join(' or ')}`,
    };
  }
  if (SAFE_METHODS.has(req.method)) return { ok: true };
  if (!req.origin || !hosts.some((h) => req.origin === `http://${h}`)) {
    return {
      ok: false,
      status: 403,
      code: 'FORBIDDEN_ORIGIN',
      message: 'changes are accepted only from the UI page this server serves',
    };
  }
  if (req.method !== 'DELETE' && !/^application\/json\b/i.test(req.contentType ?? '')) {
    return {
      ok: false,
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
      message: 'send the request body as application/json',
    };
  }
  return { ok: true };
}
