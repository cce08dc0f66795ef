/**
 * Why a request to the control service failed, in words that say what to fix.
 *
 * The HTTP client reports every failure below HTTP alike ("other side closed",
 * "self-signed certificate in certificate chain"), so on such a failure the CLI
 * looks again itself: it checks the certificate files (expiry, key, issuer) and
 * probes the control service with one TLS handshake of its own, which tells an
 * unreachable service from a server certificate we do not trust (or that has
 * expired, or names another host) and from a client certificate the server refuses.
 * `explain` (pure) turns those facts into a CliError with a stable code and exit code.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { FlockerApiError, LEFT_REPLICA, SizeError } from '@flocker/api';
import { errorCode, errorMessage } from '@flocker/runtime';
import { resolveConnection, type ConnectionArgs, type ResolvedConnection } from './connection';
import { CliError, EXIT } from './errors';
import { z } from 'zod';

/** Stable codes of connection failures (`--json` errors carry them). */
export const CONNECTION_CODES = {
  UNREACHABLE: 'CONTROL_SERVICE_UNREACHABLE',
  SERVER_UNTRUSTED: 'TLS_SERVER_UNTRUSTED',
  SERVER_NAME_MISMATCH: 'TLS_SERVER_NAME_MISMATCH',
  CLIENT_CERT_REJECTED: 'TLS_CLIENT_CERT_REJECTED',
  CERT_EXPIRED: 'TLS_CERT_EXPIRED',
  CREDENTIALS_UNREADABLE: 'TLS_CREDENTIALS_UNREADABLE',
  KEY_MISMATCH: 'TLS_KEY_MISMATCH',
  /** An http:// URL for a control service that serves HTTPS. */
  TLS_REQUIRED: 'TLS_REQUIRED',
  /** An https:// URL for a control service that serves plain HTTP (--insecure-http). */
  TLS_NOT_SERVED: 'TLS_NOT_SERVED',
} as const;

/** What a certificate says about itself (the parts a message needs). */
export interface CertFacts {
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
}

/** The certificate files as read: facts, whether the client certificate was issued by the CA file, whether the key fits. */
export interface LocalFacts {
  cacertPath?: string;
  ca?: CertFacts;
  certPath?: string;
  cert?: CertFacts;
  /** Whether the client certificate was signed by the CA file's key (undefined: not both given). */
  certSignedByCa?: boolean;
  /** False when the client certificate may not be used by a client (e.g. the control service's own). */
  certForClients?: boolean;
  keyMatches?: boolean;
}

/** What one handshake with the control service showed. */
export type Probe =
  | { kind: 'answered'; status?: number }
  | { kind: 'unreachable'; code: string; detail: string }
  | { kind: 'server-untrusted'; reason: string; peer?: CertFacts }
  | { kind: 'server-name'; detail: string; peer: CertFacts }
  | { kind: 'client-rejected'; alert: string }
  /** The server speaks the other protocol: HTTPS to our plain HTTP, or plain HTTP to our TLS. */
  | { kind: 'wrong-protocol'; serverSpeaks: 'https' | 'http' };

/** "CN=user-admin\nO=…" or a PeerCertificate's subject → "user-admin" (the common name, else the whole). */
function commonName(dn: string | Record<string, unknown> | undefined): string {
  if (dn === undefined) return '?';
  if (typeof dn === 'string') return /(?:^|\n)CN=([^\n]*)/.exec(dn)?.[1] ?? dn.replace(/\n/g, ', ');
  const cn = dn.CN;
  return typeof cn === 'string' ? cn : JSON.stringify(dn);
}

function factsOf(cert: X509Certificate): CertFacts {
  return {
    subject: commonName(cert.subject),
    issuer: commonName(cert.issuer),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
  };
}

function peerFacts(peer: PeerCertificate): CertFacts {
  return {
    subject: commonName(peer.subject),
    issuer: commonName(peer.issuer),
    notBefore: new Date(peer.valid_from),
    notAfter: new Date(peer.valid_to),
  };
}

function readOrExplain(path: string, what: string, read: (p: string) => Buffer): Buffer {
  try {
    return read(path);
  } catch (e) {
    throw new CliError(
      EXIT.CREDENTIALS,
      `cannot read the ${what} ${path}: ${errorMessage(e)}`,
      CONNECTION_CODES.CREDENTIALS_UNREADABLE,
    );
  }
}

function parseCert(pem: Buffer, path: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (e) {
    throw new CliError(
      EXIT.CREDENTIALS,
      `the ${what} ${path} is not a PEM certificate: ${errorMessage(e)}`,
      CONNECTION_CODES.CREDENTIALS_UNREADABLE,
    );
  }
}

/** Reads and checks the credential files; throws a CliError for files that cannot be used at all. */
export function inspectCredentials(
  c: Pick<ResolvedConnection, 'cacert' | 'cert' | 'key'>,
  read: (p: string) => Buffer = readFileSync,
): LocalFacts {
  const facts: LocalFacts = {};
  let ca: X509Certificate | undefined;
  let cert: X509Certificate | undefined;
  if (c.cacert !== undefined) {
    ca = parseCert(readOrExplain(c.cacert, 'CA certificate (--cacert)', read), c.cacert, 'CA certificate (--cacert)');
    facts.cacertPath = c.cacert;
    facts.ca = factsOf(ca);
  }
  if (c.cert !== undefined) {
    cert = parseCert(readOrExplain(c.cert, 'client certificate (--cert)', read), c.cert, 'client certificate (--cert)');
    facts.certPath = c.cert;
    facts.cert = factsOf(cert);
    if (ca !== undefined) facts.certSignedByCa = cert.checkIssued(ca) && cert.verify(ca.publicKey);
    // Extended key usage; absent means any use.
    const usages = cert.keyUsage as string[] | undefined;
    facts.certForClients = usages === undefined || usages.includes(CLIENT_AUTH);
  }
  if (c.key !== undefined) {
    const pem = readOrExplain(c.key, 'private key (--key)', read);
    let key;
    try {
      key = createPrivateKey(pem);
    } catch (e) {
      throw new CliError(
        EXIT.CREDENTIALS,
        `the private key (--key) ${c.key} is not a PEM private key: ${errorMessage(e)}`,
        CONNECTION_CODES.CREDENTIALS_UNREADABLE,
      );
    }
    if (cert !== undefined) facts.keyMatches = cert.checkPrivateKey(key);
  }
  return facts;
}

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

const day = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** A failure the certificate files show by themselves, before any network (undefined: none). */
export function localProblem(f: LocalFacts, now: Date): CliError | undefined {
  if (f.cert !== undefined && f.keyMatches === false)
    return new CliError(
      EXIT.CREDENTIALS,
      `the private key (--key) does not belong to the client certificate ${f.certPath}: give the .key file made with it`,
      CONNECTION_CODES.KEY_MISMATCH,
    );
  if (f.cert !== undefined && f.cert.notAfter < now)
    return new CliError(
      EXIT.CREDENTIALS,
      `your client certificate ${f.certPath} (${f.cert.subject}) expired on ${day(f.cert.notAfter)}: ` +
        `issue a new one with "flocker-ca create-api-certificate ${f.cert.subject.replace(/^user-/, '')}"`,
      CONNECTION_CODES.CERT_EXPIRED,
    );
  if (f.cert !== undefined && f.cert.notBefore > now)
    return new CliError(
      EXIT.CREDENTIALS,
      `your client certificate ${f.certPath} is not valid until ${day(f.cert.notBefore)}: check this machine's clock`,
      CONNECTION_CODES.CERT_EXPIRED,
    );
  if (f.ca !== undefined && f.ca.notAfter < now)
    return new CliError(
      EXIT.CREDENTIALS,
      `the cluster CA certificate ${f.cacertPath} (${f.ca.subject}) expired on ${day(f.ca.notAfter)}: ` +
        'the cluster needs a new CA ("flocker-ca initialize") and new certificates',
      CONNECTION_CODES.CERT_EXPIRED,
    );
  return undefined;
}

/** The CliError for a request that got no HTTP answer, from the local facts and the probe. Pure. */
export function explain(target: string, f: LocalFacts, probe: Probe, original: string, now: Date): CliError {
  const local = localProblem(f, now);
  if (local !== undefined) return local;
  const caFile = f.cacertPath ?? 'the default CA store';
  switch (probe.kind) {
    case 'unreachable': {
      const why =
        probe.code === 'ECONNREFUSED'
          ? 'nothing is listening there: is the control service running, on this port?'
          : probe.code === 'ENOTFOUND' || probe.code === 'EAI_AGAIN'
            ? 'the host name does not resolve: check the address'
            : probe.code === 'ETIMEDOUT' || probe.code === 'TIMEOUT'
              ? 'no answer in time: check the address, the network and firewalls'
              : `${probe.detail}: check the address and the network`;
      return new CliError(
        EXIT.UNREACHABLE,
        `cannot reach the control service at ${target} (${probe.code}): ${why} ` +
          '(set --control-url or FLOCKER_CONTROL_URL)',
        CONNECTION_CODES.UNREACHABLE,
      );
    }
    case 'server-untrusted': {
      if (/EXPIRED/.test(probe.reason) && probe.peer !== undefined)
        return new CliError(
          EXIT.CREDENTIALS,
          `the control service's certificate (${probe.peer.subject}) expired on ${day(probe.peer.notAfter)}: ` +
            'issue a new one with "flocker-ca create-control-certificate HOST" and restart the control service',
          CONNECTION_CODES.CERT_EXPIRED,
        );
      const issuer = probe.peer ? ` (issued by ${probe.peer.issuer})` : '';
      const sameAsCert =
        probe.peer !== undefined && f.cert !== undefined && f.cert.issuer === probe.peer.issuer && f.ca !== undefined
          ? `; your client certificate comes from that CA, so ${caFile} is the wrong file`
          : '';
      return new CliError(
        EXIT.CREDENTIALS,
        `the control service at ${target} presented a certificate${issuer} ` +
          (f.cacertPath !== undefined
            ? `that the CA in ${f.cacertPath}${f.ca ? ` (${f.ca.subject})` : ''} did not sign`
            : 'that no public CA signed, and no --cacert was given') +
          ` (${probe.reason})${sameAsCert}: give this cluster's cluster.crt with --cacert or FLOCKER_CA_CERT`,
        CONNECTION_CODES.SERVER_UNTRUSTED,
      );
    }
    case 'server-name':
      return new CliError(
        EXIT.CREDENTIALS,
        `the control service's certificate is not valid for ${target} (${probe.detail}): ` +
          'connect with an address the certificate lists, or issue one for this address with ' +
          '"flocker-ca create-control-certificate HOST"',
        CONNECTION_CODES.SERVER_NAME_MISMATCH,
      );
    case 'client-rejected': {
      if (f.cert === undefined)
        return new CliError(
          EXIT.CREDENTIALS,
          `the control service at ${target} requires a client certificate (${probe.alert}): give --cert and --key ` +
            '(an API user certificate: "flocker-ca create-api-certificate NAME")',
          CONNECTION_CODES.CLIENT_CERT_REJECTED,
        );
      const why =
        f.certSignedByCa === false
          ? `it was issued by ${f.cert.issuer}, not by this cluster's CA ${f.ca?.subject ?? ''} (${caFile})`
          : f.certForClients === false
            ? 'it is not a client certificate (the control service certificate, for instance, is only for the server)'
            : /EXPIRED/.test(probe.alert)
              ? 'the control service says it has expired (check the clocks)'
              : 'it was not signed by the CA the control service uses (another cluster?) or it was revoked';
      return new CliError(
        EXIT.CREDENTIALS,
        `the control service at ${target} rejected your client certificate ${f.certPath} ` +
          `(${f.cert.subject}; ${probe.alert}): ${why}. Use an API user certificate of this cluster: ` +
          '"flocker-ca create-api-certificate NAME" with its cluster.crt and cluster.key',
        CONNECTION_CODES.CLIENT_CERT_REJECTED,
      );
    }
    case 'wrong-protocol': {
      const other = target.replace(/^https?:/, probe.serverSpeaks === 'https' ? 'https:' : 'http:');
      return probe.serverSpeaks === 'https'
        ? new CliError(
            EXIT.CREDENTIALS,
            `the control service at ${target} does not answer plain HTTP: it serves HTTPS with mutual TLS. ` +
              `Use ${other} with --cacert, --cert and --key (or leave out --control-url to use the local ` +
              "cluster's credentials in /etc/flocker)",
            CONNECTION_CODES.TLS_REQUIRED,
          )
        : new CliError(
            EXIT.CREDENTIALS,
            `the control service at ${target} does not speak TLS (it runs with --insecure-http): use ${other}`,
            CONNECTION_CODES.TLS_NOT_SERVED,
          );
    }
    case 'answered':
      return new CliError(
        EXIT.UNREACHABLE,
        `${original} (the control service at ${target} answers now: try again)`,
        CONNECTION_CODES.UNREACHABLE,
      );
  }
}

const PROBE_TIMEOUT_MS = 5_000;

/** Connects once to the first control URL as the client would, and reports what happened. Never throws. */
export function probeControl(
  c: ResolvedConnection,
  read: (p: string) => Buffer = readFileSync,
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<Probe> {
  const url = new URL(c.baseUrl.split(',')[0]?.trim() ?? c.baseUrl);
  const https = url.protocol === 'https:';
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(url.port || (https ? 443 : 80));
  return new Promise<Probe>((resolve) => {
    let socket: Socket | TLSSocket | undefined;
    let connected = false;
    const done = (p: Probe) => {
      clearTimeout(timer);
      socket?.destroy();
      resolve(p);
    };
    const timer = setTimeout(
      () =>
        done(
          connected
            ? { kind: 'client-rejected', alert: 'no answer after the handshake' }
            : { kind: 'unreachable', code: 'TIMEOUT', detail: `no connection within ${timeoutMs / 1000}s` },
        ),
      timeoutMs,
    );
    const onError = (e: unknown) => {
      const code = errorCode(e) ?? 'ERROR';
      if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST/.test(code))
        return done({ kind: 'wrong-protocol', serverSpeaks: 'http' });
      if (/^ERR_SSL_.*ALERT/.test(code) || (connected && code === 'ECONNRESET'))
        return done({ kind: 'client-rejected', alert: code });
      if (connected) return done({ kind: 'server-untrusted', reason: `${code}: ${errorMessage(e)}` });
      done({ kind: 'unreachable', code, detail: errorMessage(e) });
    };
    try {
      if (!https) {
        const plain = netConnect({ host, port }, () => {
          connected = true;
          plain.write(`GET /v1/version HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`);
        });
        socket = plain;
        plain.on('error', (e) => (connected ? done({ kind: 'wrong-protocol', serverSpeaks: 'https' }) : onError(e)));
        // An HTTPS server closes on a plain request without a word (or with a TLS alert).
        plain.once('data', (chunk: Buffer) => {
          const status = /^HTTP\/1\.\d (\d{3})/.exec(chunk.toString('latin1'))?.[1];
          done(
            status !== undefined
              ? { kind: 'answered', status: Number(status) }
              : { kind: 'wrong-protocol', serverSpeaks: 'https' },
          );
        });
        plain.once('end', () => done({ kind: 'wrong-protocol', serverSpeaks: 'https' }));
        return;
      }
      const tcp = netConnect({ host, port });
      socket = tcp;
      tcp.on('error', onError);
      tcp.on('connect', () => {
        connected = true;
        let tls: TLSSocket;
        try {
          tls = tlsConnect({
            socket: tcp,
            host,
            ...(isIP(host) === 0 ? { servername: host } : {}),
            ...(c.cacert !== undefined ? { ca: read(c.cacert) } : {}),
            ...(c.cert !== undefined ? { cert: read(c.cert) } : {}),
            ...(c.key !== undefined ? { key: read(c.key) } : {}),
            // Look at the server's certificate ourselves, to say what is wrong with it.
            rejectUnauthorized: false,
          });
        } catch (e) {
          // e.g. a key that does not fit the certificate: createSecureContext throws at once.
          return done({ kind: 'server-untrusted', reason: `${errorCode(e) ?? 'ERROR'}: ${errorMessage(e)}` });
        }
        socket = tls;
        tls.on('error', onError);
        tls.on('secureConnect', () => {
          const peer = peerFacts(tls.getPeerCertificate());
          // Trust first (a certificate from another CA is the problem whatever name it has), then the name.
          const reason = String(tls.authorizationError);
          if (!tls.authorized && !/ALTNAME/.test(reason)) return done({ kind: 'server-untrusted', reason, peer });
          const nameError = checkServerIdentity(host, tls.getPeerCertificate());
          if (nameError !== undefined) return done({ kind: 'server-name', detail: nameError.message, peer });
          // With TLS 1.3 the server judges our certificate after the handshake: ask for something and see.
          tls.write(`GET /v1/version HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`);
          tls.once('data', (chunk: Buffer) => {
            const status = /^HTTP\/1\.\d (\d{3})/.exec(chunk.toString('latin1'))?.[1];
            done({ kind: 'answered', ...(status !== undefined ? { status: Number(status) } : {}) });
          });
          tls.once('end', () => done({ kind: 'client-rejected', alert: 'the connection was closed' }));
        });
      });
    } catch (e) {
      done({ kind: 'unreachable', code: errorCode(e) ?? 'ERROR', detail: errorMessage(e) });
    }
  });
}

/** Turns what a command threw into a CliError people can act on (undefined: not ours to explain; rethrow it). */
export async function toCliError(
  e: unknown,
  args: ConnectionArgs,
  probe: (c: ResolvedConnection) => Promise<Probe> = (c) => probeControl(c),
  now: () => Date = () => new Date(),
): Promise<CliError | undefined> {
  if (e instanceof CliError) return e;
  if (e instanceof SizeError) return new CliError(EXIT.USAGE, e.message, e.code);
  if (isZodError(e)) return new CliError(EXIT.USAGE, zodMessage(e), 'INVALID_INPUT');
  if (!(e instanceof FlockerApiError)) return undefined;
  // Ended by the client when it left a replica whose store is down (the replica was reached): no connection problem.
  if (e.status !== 0 || e.code === LEFT_REPLICA) return apiError(e);
  let c: ResolvedConnection;
  try {
    c = resolveConnection(args);
  } catch (err) {
    return err instanceof CliError ? err : undefined;
  }
  const target = c.baseUrl.split(',')[0] ?? c.baseUrl;
  if (e.code === 'REQUEST_TIMEOUT')
    return new CliError(EXIT.TIMEOUT, `${e.description} (the control service at ${target} did not answer in time)`);
  let facts: LocalFacts;
  try {
    facts = inspectCredentials(c);
  } catch (err) {
    if (err instanceof CliError) return err;
    throw err;
  }
  // The files alone may say what is wrong (expired, key of another certificate): no need to probe then.
  return localProblem(facts, now()) ?? explain(target, facts, await probe(c), e.description, now());
}

/** A refusal from the control service: its description, an exit code by status, and its code. */
export function apiError(e: FlockerApiError): CliError {
  const exit =
    e.status === 404
      ? EXIT.NOT_FOUND
      : e.status === 409 || e.status === 412
        ? EXIT.CONFLICT
        : e.status === 400
          ? EXIT.USAGE
          : e.status === 403
            ? EXIT.CREDENTIALS
            : EXIT.FAILURE;
  if (e.status === 403 && /certificate/i.test(e.description))
    return new CliError(
      exit,
      `${e.description} Use an API user certificate: "flocker-ca create-api-certificate NAME".`,
      CONNECTION_CODES.CLIENT_CERT_REJECTED,
    );
  // The API names the metadata key the refusal is about ("clusterhq:flocker:snapshot-schedule: the snapshot
  // schedule … is more frequent …"); the sentence says it already, and people set it with an option (review TN F9).
  const description = e.description.replace(/^clusterhq:flocker:snapshot-(schedule|keep): /, '');
  return new CliError(exit, description, e.code);
}

/** What is read of a ZodError: by shape, since the zod that threw may be another copy than this package's. */
const ZodLike = z.object({
  name: z.literal('ZodError'),
  issues: z.array(
    z.object({ path: z.array(z.union([z.string(), z.number(), z.symbol()])), message: z.string() }).loose(),
  ),
});
type ZodLike = z.infer<typeof ZodLike>;

function isZodError(e: unknown): e is ZodLike {
  return e instanceof Error && ZodLike.safeParse(e).success;
}

/** "metadata.owner: metadata values are at most 256 characters; …" instead of zod's JSON array. */
export function zodMessage(e: ZodLike): string {
  return e.issues
    .map((i) => {
      const path = i.path.map(String).join('.');
      return path ? `${path}: ${i.message}` : i.message;
    })
    .join('; ');
}
