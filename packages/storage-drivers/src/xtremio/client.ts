/**
 * A small client of the XMS REST API v2 (https://<xms>/api/json/v2/types/<type>), basic auth.
 * Transient failures are retried with the runtime's jittered backoff: connection errors where the
 * request was not sent, and for requests that may be repeated also timeouts, resets and 5xx; 400
 * `system_is_busy` always (the array did nothing; Cinder retries it too: XtremIOArrayBusy).
 * Anything else surfaces as an XmsError carrying the array's own message.
 */
import { backoffDelay, errorMessage } from '@flocker/runtime';
import { readFileSync } from 'node:fs';
import { Agent, request, type Dispatcher } from 'undici';
import type { z } from 'zod';
import { XmsErrorSchema } from './schemas';

export type XmsMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** Messages of XMS error bodies (Cinder xtremio.py constants). */
export const OBJ_NOT_FOUND = 'obj_not_found';
export const VOL_NOT_UNIQUE = 'vol_obj_name_not_unique';
export const VOL_OBJ_NOT_FOUND = 'vol_obj_not_found';
export const ALREADY_MAPPED = 'already_mapped';
export const SYSTEM_BUSY = 'system_is_busy';

/** An HTTP answer of 400 or more: status and the array's message (or the raw body). */
export class XmsError extends Error {
  constructor(
    readonly status: number,
    readonly xmsMessage: string,
    readonly method: XmsMethod,
    readonly path: string,
  ) {
    super(`XMS answered ${method} ${path} with HTTP ${status}: ${xmsMessage}`);
    this.name = 'XmsError';
  }

  /** obj_not_found and its variants (Cinder: err_msg.endswith(OBJ_NOT_FOUND_ERR)). */
  get notFound(): boolean {
    return this.status === 400 && (this.xmsMessage.endsWith(OBJ_NOT_FOUND) || this.xmsMessage === VOL_OBJ_NOT_FOUND);
  }
}

/** No HTTP answer (refused, reset, timed out). */
export class XmsConnectionError extends Error {
  constructor(
    readonly method: XmsMethod,
    readonly path: string,
    readonly causeMessage: string,
    /** The request may have reached the array. */
    readonly ambiguous: boolean,
  ) {
    super(`XMS ${method} ${path} failed: ${causeMessage}`);
    this.name = 'XmsConnectionError';
  }
}

const NOT_SENT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

export interface XmsClientOptions {
  readonly baseUrl: string;
  readonly username: string;
  readonly password: string;
  readonly clusterName?: string;
  readonly verifyPeer: boolean;
  readonly caPath?: string;
  readonly timeoutMs: number;
  readonly attempts: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly onRetry?: (info: {
    method: XmsMethod;
    path: string;
    attempt: number;
    delayMs: number;
    reason: string;
  }) => void;
}

/** Query parameters; an array repeats the parameter (several `filter`s are ANDed, as Client4.find_lunmap sends them). */
export type Query = Record<string, string | number | readonly string[] | undefined>;

export interface XmsRequest {
  readonly query?: Query;
  readonly body?: Record<string, unknown>;
  /** May it be sent again after an ambiguous failure? Default: all but POST. */
  readonly idempotent?: boolean;
}

export class XmsClient {
  private readonly dispatcher: Dispatcher;
  private readonly auth: string;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly o: XmsClientOptions) {
    this.dispatcher = new Agent({
      headersTimeout: o.timeoutMs,
      bodyTimeout: o.timeoutMs,
      connect: {
        timeout: Math.min(o.timeoutMs, 10_000),
        rejectUnauthorized: o.verifyPeer,
        ...(o.caPath ? { ca: readFileSync(o.caPath) } : {}),
      },
    });
    this.auth = `Basic ${Buffer.from(`${o.username}:${o.password}`).toString('base64')}`;
    this.sleep = o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /** GET and parse with schema. */
  async get<T extends z.ZodType>(path: string, schema: T, query: Query = {}): Promise<z.output<T>> {
    const body = await this.send('GET', path, { query });
    const parsed = schema.safeParse(body);
    if (!parsed.success)
      throw new XmsError(
        200,
        `unexpected answer: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
        'GET',
        path,
      );
    return parsed.data;
  }

  /** One request with retries; the parsed JSON body (undefined when empty). */
  async send(method: XmsMethod, path: string, r: XmsRequest = {}): Promise<unknown> {
    const idempotent = r.idempotent ?? method !== 'POST';
    for (let attempt = 0; ; attempt++) {
      let outcome: unknown;
      let retryable: boolean;
      try {
        return await this.once(method, path, r);
      } catch (e) {
        outcome = e;
        retryable =
          (e instanceof XmsError &&
            ((e.status === 400 && e.xmsMessage === SYSTEM_BUSY) ||
              e.status === 503 ||
              (idempotent && e.status >= 500))) ||
          (e instanceof XmsConnectionError && (!e.ambiguous || idempotent));
      }
      if (!retryable || attempt + 1 >= this.o.attempts) throw outcome;
      const delayMs = backoffDelay(attempt, { initialMs: 250, maxMs: 8000, jitter: true });
      this.o.onRetry?.({ method, path, attempt: attempt + 1, delayMs, reason: errorMessage(outcome) });
      await this.sleep(delayMs);
    }
  }

  private url(path: string, query: Query, method: XmsMethod): string {
    const u = new URL(`${this.o.baseUrl.replace(/\/+$/, '')}/api/json/v2/types/${path}`);
    // Client4.update_url: GET and DELETE name the cluster as a query parameter.
    const q: Query = {
      ...query,
      ...(this.o.clusterName !== undefined && (method === 'GET' || method === 'DELETE')
        ? { 'cluster-name': this.o.clusterName }
        : {}),
    };
    for (const [k, v] of Object.entries(q)) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const item of v as readonly string[]) u.searchParams.append(k, item);
      else u.searchParams.append(k, String(v));
    }
    return u.toString();
  }

  private async once(method: XmsMethod, path: string, r: XmsRequest): Promise<unknown> {
    const url = this.url(path, r.query ?? {}, method);
    // Client4.update_data: other methods name the cluster in the body.
    const body =
      method === 'GET' || method === 'DELETE'
        ? undefined
        : JSON.stringify({
            ...r.body,
            ...(this.o.clusterName !== undefined ? { 'cluster-id': this.o.clusterName } : {}),
          });
    // The whole request, body included, within timeoutMs (undici's own timeouts bound each wait, not a body that
    // trickles): on expiry undici destroys the connection.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), this.o.timeoutMs);
    const timedOut = (): XmsConnectionError =>
      new XmsConnectionError(
        method,
        path,
        `timed out after ${this.o.timeoutMs} ms (no answer, or an answer that stopped or trickled)`,
        true,
      );
    let res: Dispatcher.ResponseData;
    let text: string;
    try {
      try {
        res = await request(url, {
          method,
          dispatcher: this.dispatcher,
          signal: deadline.signal,
          headers: {
            authorization: this.auth,
            accept: 'application/json',
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          ...(body !== undefined ? { body } : {}),
        });
      } catch (e) {
        if (deadline.signal.aborted) throw timedOut();
        const code = (e as { code?: unknown }).code;
        throw new XmsConnectionError(method, path, errorMessage(e), !(typeof code === 'string' && NOT_SENT.has(code)));
      }
      try {
        text = await res.body.text();
      } catch (e) {
        if (deadline.signal.aborted) throw timedOut();
        throw new XmsConnectionError(method, path, `reading the answer: ${errorMessage(e)}`, true);
      }
    } finally {
      clearTimeout(timer);
    }
    if (res.statusCode >= 400) throw new XmsError(res.statusCode, errorText(text), method, path);
    if (text.trim() === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new XmsError(res.statusCode, `answer is not JSON: ${text.slice(0, 200)}`, method, path);
    }
  }
}

/** The message of an XMS error body, else the raw text (shortened). */
export function errorText(body: string): string {
  try {
    const parsed = XmsErrorSchema.safeParse(JSON.parse(body));
    if (parsed.success) return parsed.data.message;
  } catch {
    // not JSON
  }
  const text = body
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return text.length > 300 ? `${text.slice(0, 300)}…` : text || '(empty body)';
}

/** The index at the end of a created object's href (Cinder _obj_from_result: href.split('/')[-2:]). */
export function indexOfHref(href: string): number {
  const n = Number(href.split('/').pop());
  if (!Number.isInteger(n)) throw new Error(`XMS answered a link without an index: ${href}`);
  return n;
}
