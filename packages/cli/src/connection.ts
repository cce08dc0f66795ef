/**
 * Where the control service is and how to authenticate: flags, then environment,
 * then the local cluster's credentials (./dev up installs /etc/flocker/cluster.crt
 * and the API user certificate admin.crt/admin.key), then plain HTTP on localhost.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FlockerClient, tlsDispatcher } from '@flocker/api';

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

/** Decides the URL and credential files (pure but for `exists`). */
export function resolveConnection(
  args: ConnectionArgs,
  env: NodeJS.ProcessEnv = process.env,
  exists: (path: string) => boolean = existsSync,
  credentialsDir: string = env.FLOCKER_CREDENTIALS_DIR ?? DEFAULT_CREDENTIALS_DIR,
): ResolvedConnection {
  const url = args['control-url'] ?? env.FLOCKER_CONTROL_URL;
  const cacert = args.cacert ?? env.FLOCKER_CA_CERT;
  const cert = args.cert ?? env.FLOCKER_CERT;
  const key = args.key ?? env.FLOCKER_KEY;
  if (cacert !== undefined || cert !== undefined || key !== undefined) {
    return {
      baseUrl: url ?? DEFAULT_TLS_CONTROL_URL,
      ...(cacert !== undefined ? { cacert } : {}),
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
  if (haveLocal && (url === undefined || url.startsWith('https:'))) return { baseUrl: url ?? DEFAULT_TLS_CONTROL_URL, ...local };
  return { baseUrl: url ?? DEFAULT_CONTROL_URL };
}

export function connect(args: ConnectionArgs, env: NodeJS.ProcessEnv = process.env): FlockerClient {
  const c = resolveConnection(args, env);
  if (c.cacert === undefined && c.cert === undefined) return new FlockerClient({ baseUrl: c.baseUrl });
  const dispatcher = tlsDispatcher({
    ca: c.cacert !== undefined ? readFileSync(c.cacert) : '',
    ...(c.cert ? { cert: readFileSync(c.cert) } : {}),
    ...(c.key ? { key: readFileSync(c.key) } : {}),
  });
  return new FlockerClient({ baseUrl: c.baseUrl, dispatcher });
}
