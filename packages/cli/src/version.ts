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
}

export function versionText(v: Versions): string {
  // The server answers its Flocker API version (GET /v1/version, compatible with Flocker 1.x clients), not a release.
  return [
    `Client:  ${v.client}`,
    `Server:  ${v.server.flocker !== null ? `${v.server.flocker} (Flocker API)` : `unknown — ${v.server.error ?? 'no answer'}`}`,
  ].join('\n');
}
