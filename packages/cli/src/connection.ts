/** Where the control service is and how to authenticate: flags, then environment, then defaults. */
import { readFileSync } from 'node:fs';
import { FlockerClient, tlsDispatcher } from '@flocker/api';

export interface ConnectionArgs {
  'control-url'?: string | undefined;
  cacert?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

export const DEFAULT_CONTROL_URL = 'http://127.0.0.1:4523';

export function connect(args: ConnectionArgs, env: NodeJS.ProcessEnv = process.env): FlockerClient {
  const baseUrl = args['control-url'] ?? env.FLOCKER_CONTROL_URL ?? DEFAULT_CONTROL_URL;
  const cacert = args.cacert ?? env.FLOCKER_CA_CERT;
  const cert = args.cert ?? env.FLOCKER_CERT;
  const key = args.key ?? env.FLOCKER_KEY;
  if (!cacert) return new FlockerClient({ baseUrl });
  const dispatcher = tlsDispatcher({
    ca: readFileSync(cacert),
    ...(cert ? { cert: readFileSync(cert) } : {}),
    ...(key ? { key: readFileSync(key) } : {}),
  });
  return new FlockerClient({ baseUrl, dispatcher });
}
