/**
 * DNS rebinding (shared by every plain-HTTP listener: the control service's --insecure-http API, the metrics and
 * health listeners): a web page of evil.example whose DNS name is re-pointed at 127.0.0.1 (or at any address of the
 * listener) talks to it as its own origin and may read its answers. Its requests carry `Host: evil.example`, so a
 * listener answers only requests whose Host names it: an IP address (no DNS is involved, nothing can be rebound),
 * `localhost`, or a name the listener was given. Pure: each listener answers a refusal in its own way.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** `text` as exactly host[:port] gives: its hostname as a URL has it (lower case, IPv4 dotted, IPv6 in brackets,
 * no trailing dot) and its port; undefined for anything else (a path, credentials, blanks, an empty name). */
export function parseHost(text: string): { hostname: string; port: string } | undefined {
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

/** The allow-list of a listener on `listenHost` (its name counts when it is one) plus the `allowed` names. */
export function hostAllowList(listenHost: string, allowed: readonly string[]): HostAllowList {
  const names = new Set<string>(['localhost']);
  for (const text of [listenHost, ...allowed]) {
    const parsed = parseHost(text);
    if (parsed !== undefined && !isAddress(parsed.hostname)) names.add(parsed.hostname);
  }
  return { names };
}

export interface RefusalWording {
  /** Who refuses, e.g. 'This control service'. */
  readonly listener: string;
  /** How to allow a name, e.g. `start flocker-control with --allowed-host ${name}`. */
  readonly allowHint: (name: string) => string;
}

/** Why a request with this Host header is refused (its description), or undefined when it names the listener. Pure. */
export function hostRefusal(
  host: string | undefined,
  list: HostAllowList,
  wording: RefusalWording,
): string | undefined {
  // Only HTTP/1.0 may omit Host (node answers an HTTP/1.1 request without one 400): no browser does, nothing to rebind.
  if (host === undefined) return undefined;
  const parsed = parseHost(host);
  if (parsed !== undefined && (isAddress(parsed.hostname) || list.names.has(parsed.hostname))) return undefined;
  const name = parsed?.hostname;
  return (
    `${wording.listener} answers only requests naming it, and Host ${JSON.stringify(host)} does not: it takes an ` +
    `IP address, localhost${[...list.names]
      .filter((n) => n !== 'localhost')
      .map((n) => `, ${n}`)
      .join('')}. ` +
    'A web page whose DNS name was pointed at this listener (DNS rebinding) would name its own host. ' +
    (name !== undefined
      ? `If ${name} is a name of this host, ${wording.allowHint(name)}.`
      : 'The header is not a host name or address.')
  );
}
