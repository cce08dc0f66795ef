/** A dispatcher for FlockerClient that speaks mutual TLS with the cluster CA. */
import { Agent, type Dispatcher } from 'undici';

export interface TlsCredentials {
  /** PEM of the cluster CA certificate. */
  ca: string | Buffer;
  /** PEM of this client's certificate (API user, node or plugin). */
  cert?: string | Buffer;
  key?: string | Buffer;
}

export function tlsDispatcher(credentials: TlsCredentials): Dispatcher {
  return new Agent({
    connect: {
      ca: credentials.ca,
      ...(credentials.cert ? { cert: credentials.cert } : {}),
      ...(credentials.key ? { key: credentials.key } : {}),
    },
  });
}
