/**
 * The audit trail (issue 21): one log line per request that changes the configuration — who
 * (the client certificate's identity; "anonymous" over plain HTTP), what (method and route),
 * on what (the route's ids and the ids a create answered with), and the result (status, and
 * the error code when refused). The agents' own channel (/v1/agent/…: reports every few
 * seconds) is not a change by anyone and is not audited. Pure: the server passes the facts in.
 */
import type { Identity } from '@flocker/api';

export interface AuditFacts {
  readonly method: string;
  /** The route's path template, e.g. /v1/configuration/datasets/:id. */
  readonly route: string;
  readonly params: Readonly<Record<string, string>>;
  readonly identity: Identity | undefined;
  readonly status: number;
  /** The error code of a refused request. */
  readonly code?: string;
  /** The reply body (a created object's ids are taken from it). */
  readonly body?: unknown;
}

export type AuditEntry = Record<string, string | number>;

const ID_KEYS = ['dataset_id', 'snapshot_id', 'node_uuid', 'name'] as const;

export function isAudited(method: string, route: string): boolean {
  return method.toLowerCase() !== 'get' && route.startsWith('/v1/configuration/');
}

export function who(identity: Identity | undefined): string {
  if (identity === undefined) return 'anonymous';
  if (identity.kind === 'user') return `user:${identity.name}`;
  if (identity.kind === 'node') return `node:${identity.uuid}`;
  return 'control';
}

export function auditEntry(f: AuditFacts): AuditEntry {
  const entry: AuditEntry = {
    who: who(f.identity),
    action: `${f.method.toUpperCase()} ${f.route}`,
    status: f.status,
    // A write etcd did not confirm may still be applied (STORE_OUTCOME_UNKNOWN): not "refused".
    result: f.status < 400 ? 'ok' : f.code === 'STORE_OUTCOME_UNKNOWN' ? 'unknown' : 'refused',
  };
  for (const [k, v] of Object.entries(f.params)) entry[k === 'id' ? 'target' : k] = v;
  if (f.code !== undefined) entry['code'] = f.code;
  const body = f.body;
  if (f.status < 400 && body !== null && typeof body === 'object' && !Array.isArray(body)) {
    const fields = body as Record<string, unknown>;
    for (const k of ID_KEYS) {
      const v = fields[k];
      if (typeof v === 'string' && entry[k] === undefined) entry[k] = v;
    }
  }
  return entry;
}
