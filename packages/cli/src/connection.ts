/**
 * Where the control service is and how to authenticate: flags, then environment,
 * then the local cluster's credentials (./dev up installs /etc/flocker/cluster.crt
 * and the API user certificate admin.crt/admin.key), then plain HTTP on localhost.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { errorMessage } from '@flocker/runtime';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CliError, EXIT } from './errors';
import { type ClientLogger, FlockerClient, tlsDispatcher } from '@flocker/api';

export interface ConnectionArgs {
  'control-url'?: string | undefined;
  cacert?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

export const DEFAULT_CONTROL_URL = 'http://127.0.0.1:4523';
export const DEFAULT_TLS_CONTROL_URL = 'https://127.0.0.1:4523';
export const DEFAULT_CREDENTIALS_DIR = '/etc/flocker';
export const DEFAULT_API_USER = 'admin';

export interface ResolvedConnection {
  baseUrl: string;
  cacert?: string;
  cert?: string;
  key?: string;
}

/** The CLI's config file: `$FLOCKER_CONFIG`, else ~/.config/flocker/cli.yml, else /etc/flocker/cli.yml. */
export const CliConfigFile = z
  .object({
    control_url: z.url().optional(),
    cacert: z.string().min(1).optional(),
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
  })
  .strict();
export type CliConfigFile = z.infer<typeof CliConfigFile>;

export function cliConfigPaths(env: NodeJS.ProcessEnv): string[] {
  if (env.FLOCKER_CONFIG !== undefined) return [env.FLOCKER_CONFIG];
  return [join(env.HOME ?? homedir(), '.config', 'flocker', 'cli.yml'), '/etc/flocker/cli.yml'];
}

/** Reads the first config file that exists; relative certificate paths are relative to it. */
export function loadCliConfig(
  env: NodeJS.ProcessEnv = process.env,
  exists: (p: string) => boolean = existsSync,
): CliConfigFile {
  const paths = cliConfigPaths(env);
  const path = paths.find((p) => exists(p));
  if (path === undefined) {
    if (env.FLOCKER_CONFIG !== undefined)
      throw new CliError(EXIT.USAGE, `FLOCKER_CONFIG names ${env.FLOCKER_CONFIG}, which does not exist`);
    return {};
  }
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(path, 'utf8')) ?? {};
  } catch (e) {
    throw new CliError(EXIT.USAGE, `${path} is not valid YAML: ${errorMessage(e)}`);
  }
  const parsed = CliConfigFile.safeParse(doc);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw new CliError(EXIT.USAGE, `${path}: ${why} (expected control_url, cacert, cert, key)`);
  }
  const base = dirname(path);
  const abs = (p: string): string => resolve(base, p);
  const c = parsed.data;
  return {
    ...(c.control_url !== undefined ? { control_url: c.control_url } : {}),
    ...(c.cacert !== undefined ? { cacert: abs(c.cacert) } : {}),
    ...(c.cert !== undefined ? { cert: abs(c.cert) } : {}),
    ...(c.key !== undefined ? { key: abs(c.key) } : {}),
  };
}

/** Decides the URL and credential files: flags, environment, config file, local cluster (pure but for `exists` and `file`). */
export function resolveConnection(
  args: ConnectionArgs,
  env: NodeJS.ProcessEnv = process.env,
  exists: (path: string) => boolean = existsSync,
  credentialsDir: string = env.FLOCKER_CREDENTIALS_DIR ?? DEFAULT_CREDENTIALS_DIR,
  file: CliConfigFile = loadCliConfig(env, exists),
): ResolvedConnection {
  const url = args['control-url'] ?? env.FLOCKER_CONTROL_URL ?? file.control_url;
  const cacert = args.cacert ?? env.FLOCKER_CA_CERT ?? file.cacert;
  const cert = args.cert ?? env.FLOCKER_CERT ?? file.cert;
  const key = args.key ?? env.FLOCKER_KEY ?? file.key;
  if (cacert !== undefined || cert !== undefined || key !== undefined) {
    // A client certificate without a CA file: trust the local cluster's CA, as the rest of Flocker does
    // (without one Node would check the server against the public CAs and fail with "self-signed certificate").
    const clusterCa = join(credentialsDir, 'cluster.crt');
    if (cacert === undefined && cert !== undefined && !exists(clusterCa))
      throw new CliError(
        EXIT.USAGE,
        `--cert needs the cluster CA certificate to check the control service with: give --cacert ` +
          `(or FLOCKER_CA_CERT); ${clusterCa}, the default, does not exist`,
        'CACERT_MISSING',
      );
    const ca = cacert ?? (cert !== undefined ? clusterCa : undefined);
    return {
      baseUrl: url ?? DEFAULT_TLS_CONTROL_URL,
      ...(ca !== undefined ? { cacert: ca } : {}),
      ...(cert !== undefined ? { cert } : {}),
      ...(key !== undefined ? { key } : {}),
    };
  }
  const local = {
    cacert: join(credentialsDir, 'cluster.crt'),
    cert: join(credentialsDir, `${DEFAULT_API_USER}.crt`),
    key: join(credentialsDir, `${DEFAULT_API_USER}.key`),
  };
  const haveLocal = exists(local.cacert) && exists(local.cert) && exists(local.key);
  // An explicit plain-HTTP URL means no credentials; otherwise the local cluster's, when present.
  if (haveLocal && (url === undefined || url.startsWith('https:')))
    return { baseUrl: url ?? DEFAULT_TLS_CONTROL_URL, ...local };
  return { baseUrl: url ?? DEFAULT_CONTROL_URL };
}

function readCredential(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new CliError(
      EXIT.CREDENTIALS,
      `cannot read the ${what} ${path}: ${errorMessage(e)}`,
      'TLS_CREDENTIALS_UNREADABLE',
    );
  }
}

/** What the client says it did differently (an older control service's fallback): a warning line on stderr. */
const stderrWarnings: ClientLogger = {
  warn: (message) => process.stderr.write(`warning: ${message}\n`),
};

export function connect(args: ConnectionArgs, env: NodeJS.ProcessEnv = process.env): FlockerClient {
  const c = resolveConnection(args, env);
  // The CLI and its web UI only show the cluster views: members a newer control service adds are dropped (FR F12).
  if (c.cacert === undefined && c.cert === undefined)
    return new FlockerClient({ baseUrl: c.baseUrl, clusterViews: 'lenient', logger: stderrWarnings });
  const dispatcher = tlsDispatcher({
    ca: c.cacert !== undefined ? readCredential(c.cacert, 'CA certificate (--cacert)') : '',
    ...(c.cert ? { cert: readCredential(c.cert, 'client certificate (--cert)') } : {}),
    ...(c.key ? { key: readCredential(c.key, 'private key (--key)') } : {}),
  });
  return new FlockerClient({ baseUrl: c.baseUrl, dispatcher, clusterViews: 'lenient', logger: stderrWarnings });
}
