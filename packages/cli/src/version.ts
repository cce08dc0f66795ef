/** `flocker version`: this client's version (its package) and the control service's (GET /v1/version). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

const PackageJson = z.object({ version: z.string() });

/** The version in packages/cli/package.json (dist/ sits beside it), or "unknown" when it cannot be read. */
export function clientVersion(dir: string = join(__dirname, '..')): string {
  try {
    return PackageJson.parse(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))).version;
  } catch {
    return 'unknown';
  }
}

export interface Versions {
  client: string;
  server: { flocker: string | null; error: string | null };
  /** The releases the nodes' dataset agents report, each with its hosts (absent when the nodes were not asked). */
  nodes?: Array<{ release: string; hosts: string[] }>;
}

/** The nodes' reports grouped by release ("unknown": an agent that reports none, from before the field). */
export function nodeReleases(nodes: ReadonlyArray<{ host: string; version?: string }>): Versions['nodes'] {
  const by = new Map<string, string[]>();
  for (const n of nodes) by.set(n.version ?? 'unknown', [...(by.get(n.version ?? 'unknown') ?? []), n.host]);
  return [...by].map(([release, hosts]) => ({ release, hosts: hosts.sort() }));
}

/**
 * The client's and the nodes' releases compare (docs/compatibility.md: one release of skew); the server's number is
 * its Flocker API version (GET /v1/version, compatible with Flocker 1.x clients), not a release: said so, since
 * "Client: 0.1.0 / Server: 1.16.0-ts.0" read as a skew where there was none (review TN F9).
 */
export function versionText(v: Versions): string {
  const hosts = (h: string[]) =>
    h.length <= 3 ? h.join(', ') : `${h.slice(0, 3).join(', ')} and ${h.length - 3} more`;
  return [
    `Client:  ${v.client} (release)`,
    `Server:  ${v.server.flocker !== null ? `${v.server.flocker} (Flocker API version, not a release)` : `unknown — ${v.server.error ?? 'no answer'}`}`,
    ...(v.nodes === undefined
      ? []
      : [
          `Nodes:   ${v.nodes.length === 0 ? 'none reported' : v.nodes.map((n) => `${n.release} (${hosts(n.hosts)})`).join('; ')}`,
        ]),
  ].join('\n');
}
