/**
 * agent.yml names the control service by `hostname` (+ `port`) and, with several
 * control replicas, more of them in `hostnames` ("host" or "host:port"). This turns
 * them into the comma-separated base URL list FlockerClient fails over between.
 */
function hostPort(entry: string, defaultPort: number): string {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed !== null) return `[${bracketed[1] ?? ''}]:${bracketed[2] ?? defaultPort}`;
  // An IPv6 address without brackets has several colons and no port.
  if ((entry.match(/:/g) ?? []).length > 1) return `[${entry}]:${defaultPort}`;
  const m = /^([^:]+):(\d+)$/.exec(entry);
  return m !== null ? `${m[1] ?? ''}:${m[2] ?? ''}` : `${entry}:${defaultPort}`;
}

export function controlUrlsFromHosts(
  scheme: 'http' | 'https',
  hostname: string,
  port: number,
  hostnames: readonly string[] = [],
): string {
  const all = [hostname, ...hostnames].map((h) => `${scheme}://${hostPort(h, port)}`);
  return [...new Set(all)].join(',');
}
