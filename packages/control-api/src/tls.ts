/**
 * Mutual TLS for the control service: which certificate files to serve with, the
 * caller's identity from its verified client certificate, and the express glue
 * that applies the authorization rules (authorization.ts) to every request.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';
import type { NextFunction, Request, Response } from 'express';
import {
  IF_CONFIGURATION_MATCHES_HEADER,
  identityFromCommonName,
  type Identity,
  METADATA_DATA_NODE_KEY,
} from '@flocker/api';
import { authorize, type AuthorizationFacts, type AuthorizationRequest, reportShowsLocalCopy } from './authorization';
import { liveLease } from './configuration';
import type { ControlState } from './ControlState';
import { RequestError } from './errors';
import { sendError } from './httpErrors';

export const DEFAULT_TLS_DIR = '/etc/flocker';
export const CONTROL_CERT_FILE = 'control-service.crt';
export const CONTROL_KEY_FILE = 'control-service.key';
export const CLUSTER_CERT_FILE = 'cluster.crt';

/** PEM contents the HTTPS server needs. */
export interface ServerTlsCredentials {
  /** The cluster CA: the only issuer whose client certificates are accepted. */
  ca: string | Buffer;
  cert: string | Buffer;
  key: string | Buffer;
}

export interface TlsFilePaths {
  ca: string;
  cert: string;
  key: string;
}

export class TlsConfigError extends Error {
  override readonly name = 'TlsConfigError';
  constructor(
    readonly code: 'TLS_FILES_MISSING' | 'TLS_FILES_UNREADABLE' | 'TLS_OPTIONS_CONFLICT',
    message: string,
  ) {
    super(message);
  }
}

export interface TlsChoiceArgs {
  tlsDir?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  ca?: string | undefined;
  insecureHttp?: boolean | undefined;
}

export type TlsChoice = { mode: 'https'; files: TlsFilePaths } | { mode: 'http' };

function filesIn(dir: string): TlsFilePaths {
  return { ca: join(dir, CLUSTER_CERT_FILE), cert: join(dir, CONTROL_CERT_FILE), key: join(dir, CONTROL_KEY_FILE) };
}

/**
 * Decides between HTTPS and plain HTTP from the flags (pure but for `exists`):
 * explicit --cert/--key/--ca, else --tls-dir, else /etc/flocker when it holds the
 * files. Plain HTTP only with --insecure-http, never silently.
 */
export function chooseTls(args: TlsChoiceArgs, exists: (path: string) => boolean = existsSync): TlsChoice {
  const explicit = [args.cert, args.key, args.ca].filter((x) => x !== undefined).length;
  if (args.insecureHttp === true) {
    if (explicit > 0 || args.tlsDir !== undefined) {
      throw new TlsConfigError(
        'TLS_OPTIONS_CONFLICT',
        '--insecure-http cannot be combined with --tls-dir, --cert, --key or --ca.',
      );
    }
    return { mode: 'http' };
  }
  if (explicit > 0) {
    if (args.cert === undefined || args.key === undefined || args.ca === undefined) {
      throw new TlsConfigError('TLS_OPTIONS_CONFLICT', '--cert, --key and --ca must be given together.');
    }
    return { mode: 'https', files: { ca: args.ca, cert: args.cert, key: args.key } };
  }
  const dir = args.tlsDir ?? DEFAULT_TLS_DIR;
  const files = filesIn(dir);
  const missing = [files.ca, files.cert, files.key].filter((f) => !exists(f));
  if (missing.length === 0) return { mode: 'https', files };
  throw new TlsConfigError(
    'TLS_FILES_MISSING',
    `${missing.join(', ')} ${missing.length === 1 ? 'does' : 'do'} not exist. Create the cluster's certificates with flocker-ca ` +
      `(initialize, create-control-certificate) and install them in ${dir}, pass --tls-dir/--cert/--key/--ca, ` +
      'or pass --insecure-http to serve unauthenticated plain HTTP (development only).',
  );
}

export function readTlsFiles(files: TlsFilePaths): ServerTlsCredentials {
  const read = (path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new TlsConfigError('TLS_FILES_UNREADABLE', `cannot read ${path}: ${(err as Error).message}`);
    }
  };
  return { ca: read(files.ca), cert: read(files.cert), key: read(files.key) };
}

// A connection's peer certificate cannot change: resolve the identity once per socket.
const identities = new WeakMap<TLSSocket, Identity | undefined>();

/** The identity named by the verified client certificate's common name, if any. */
export function peerIdentity(req: IncomingMessage): Identity | undefined {
  const socket = req.socket;
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  if (identities.has(socket)) return identities.get(socket);
  const cn: unknown = socket.getPeerCertificate().subject?.CN;
  const identity = typeof cn === 'string' ? identityFromCommonName(cn) : undefined;
  identities.set(socket, identity);
  return identity;
}

function forbidden(res: Response, description: string): void {
  sendError(res, new RequestError('FORBIDDEN', description));
}

/** Express middleware: only API users and nodes get any answer at all (unknown CN → 403). */
export function requireIdentity(req: Request, res: Response, next: NextFunction): void {
  const identity = peerIdentity(req);
  if (identity === undefined) {
    forbidden(
      res,
      'The client certificate names no Flocker identity (expected a common name user-<name> or node-<uuid>).',
    );
    return;
  }
  if (identity.kind === 'control') {
    forbidden(res, 'The control service certificate is not a client identity; use an API user or node certificate.');
    return;
  }
  next();
}

/**
 * Throws RequestError FORBIDDEN when the caller may not use this route with this body.
 * Call it in the same turn of the event loop as the route's handler (server.ts does).
 */
/** What authorize() asks of the latest (possibly not yet durable) configuration and the nodes' reports. */
export function authorizationFacts(state: ControlState): AuthorizationFacts {
  const config = state.latestConfiguration;
  return {
    leaseHolder: (id) => liveLease(config, id, state.now())?.node_uuid,
    primaryOf: (id) => config.datasets.get(id)?.primary,
    leasePinned: (id) => liveLease(config, id, state.now())?.pinned === true,
    dataNodeOf: (id) => config.datasets.get(id)?.metadata?.[METADATA_DATA_NODE_KEY],
    holdsLocalCopy: (id, node) => reportShowsLocalCopy(state.reportedNode(node)?.report, id),
    hostOf: (node) => state.reportedNode(node)?.report.host ?? config.nodes.get(node)?.host,
    datasetOfSnapshot: (id) => config.snapshots?.get(id)?.dataset_id,
  };
}

export function authorizeRoute(state: ControlState, req: Request, route: { method: string; path: string }): void {
  requireAuthorized(state, peerIdentity(req), {
    method: route.method,
    route: route.path,
    params: req.params as Record<string, string>,
    body: req.body,
    ifConfigurationMatches: req.get(IF_CONFIGURATION_MATCHES_HEADER),
  });
}

/**
 * authorize() on the latest (possibly not yet durable) configuration: call it in the same turn as the mutate() it
 * guards (the handler's; after a lease hand-over's wait, its second one), so check and change see the same value.
 */
export function requireAuthorized(
  state: ControlState,
  identity: Identity | undefined,
  request: AuthorizationRequest,
): void {
  const decision = authorize(identity, request, authorizationFacts(state));
  if (!decision.allowed) throw new RequestError('FORBIDDEN', decision.description);
}
