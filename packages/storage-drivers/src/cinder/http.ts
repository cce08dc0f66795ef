/**
 * A small JSON-over-HTTP helper on undici for the OpenStack APIs: transient
 * failures (connection errors, 429, 5xx) are retried with the runtime's
 * backoff (jittered, bounded); everything else surfaces as an OpenStackHttpError that
 * carries the service's own message.
 */
import { backoffDelay, errorMessage } from '@flocker/runtime';
import { readFileSync } from 'node:fs';
import { Agent, request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { FaultSchema } from './schemas';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface RetryPolicy {
  /** Total attempts, including the first. */
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, baseDelayMs: 250, maxDelayMs: 8000 };

export class OpenStackHttpError extends Error {
  constructor(
    readonly status: number,
    /** The service's own message from the fault body, or the raw body. */
    readonly serviceMessage: string,
    readonly method: HttpMethod,
    readonly url: string,
  ) {
    super(`${method} ${redact(url)} failed with HTTP ${status}: ${serviceMessage}`);
    this.name = 'OpenStackHttpError';
  }
}

/** A failure before any HTTP answer (connection refused, reset, timeout). */
export class OpenStackConnectionError extends Error {
  constructor(
    readonly method: HttpMethod,
    readonly url: string,
    readonly causeMessage: string,
    /** The request may have reached the server (reset or timeout after sending). */
    readonly ambiguous: boolean,
  ) {
    super(`${method} ${redact(url)} failed: ${causeMessage}`);
    this.name = 'OpenStackConnectionError';
  }
}

function redact(url: string): string {
  return url.replace(/(secret|password)=[^&]*/gi, '$1=…');
}

/** Pulls the message out of an OpenStack fault body ({"badRequest": {"message": …}} or {"error": {"message": …}}). */
export function faultMessage(body: string): string {
  try {
    const parsed = FaultSchema.safeParse(JSON.parse(body));
    if (parsed.success) {
      for (const v of Object.values(parsed.data)) if (v.message) return v.message;
    }
  } catch {
    // not JSON: fall through to the raw text
  }
  const text = body
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return text.length > 300 ? `${text.slice(0, 300)}…` : text || '(empty body)';
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: unknown;
}

export interface HttpOptions {
  readonly verifyPeer?: boolean;
  readonly caPath?: string;
  readonly retry?: RetryPolicy;
  /**
   * Bound on one request as a whole (connecting, the answer's headers and its whole body), default 60 s. undici's
   * own timeouts alone bound each wait (connect 10 s, headers, each gap in the body) but not a body that trickles.
   */
  readonly timeoutMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
  readonly onRetry?: (info: {
    method: HttpMethod;
    url: string;
    attempt: number;
    delayMs: number;
    reason: string;
  }) => void;
}

export interface RequestOptions {
  readonly headers?: Record<string, string>;
  readonly body?: unknown;
  /**
   * May the request be sent again after an ambiguous failure (5xx other than
   * 503, reset after sending)? True for GET/PUT/DELETE; POSTs that create
   * things say false and recover on their own.
   */
  readonly idempotent?: boolean;
}

const CONNECT_CODES_NOT_SENT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

export class JsonHttp {
  private readonly dispatcher: Dispatcher;
  private readonly retry: RetryPolicy;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly timeoutMs: number;

  constructor(private readonly options: HttpOptions = {}) {
    const timeout = options.timeoutMs ?? 60_000;
    this.timeoutMs = timeout;
    this.dispatcher = new Agent({
      headersTimeout: timeout,
      bodyTimeout: timeout,
      connect: {
        timeout: Math.min(timeout, 10_000),
        rejectUnauthorized: options.verifyPeer ?? true,
        ...(options.caPath ? { ca: readFileSync(options.caPath) } : {}),
      },
    });
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.random = options.random ?? Math.random;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /** Sends one request (with retries) and returns any HTTP answer below 400; throws OpenStackHttpError otherwise. */
  async request(method: HttpMethod, url: string, opts: RequestOptions = {}): Promise<HttpResponse> {
    const idempotent = opts.idempotent ?? method !== 'POST';
    for (let attempt = 0; ; attempt++) {
      const last = attempt + 1 >= this.retry.attempts;
      let outcome: HttpResponse | Error;
      try {
        outcome = await this.once(method, url, opts);
      } catch (e) {
        outcome = e instanceof Error ? e : new Error(String(e));
      }
      let retryable: boolean;
      if (outcome instanceof OpenStackConnectionError) {
        retryable = !outcome.ambiguous || idempotent;
      } else if (outcome instanceof Error) {
        throw outcome;
      } else if (outcome.status === 429 || outcome.status === 503) {
        retryable = true; // refused before doing anything
      } else if (outcome.status >= 500) {
        retryable = idempotent;
      } else {
        retryable = false;
      }
      if (!(outcome instanceof Error) && outcome.status < 400) return outcome;
      if (!retryable || last) {
        if (outcome instanceof Error) throw outcome;
        throw new OpenStackHttpError(
          outcome.status,
          faultMessage(typeof outcome.body === 'string' ? outcome.body : JSON.stringify(outcome.body)),
          method,
          url,
        );
      }
      let delayMs = backoffDelay(
        attempt,
        { initialMs: this.retry.baseDelayMs, maxMs: this.retry.maxDelayMs, jitter: true },
        this.random,
      );
      const retryAfter = outcome instanceof Error ? undefined : Number(outcome.headers['retry-after']);
      if (retryAfter !== undefined && Number.isFinite(retryAfter) && retryAfter > 0)
        delayMs = Math.max(delayMs, Math.min(retryAfter * 1000, this.retry.maxDelayMs));
      this.options.onRetry?.({
        method,
        url: redact(url),
        attempt: attempt + 1,
        delayMs,
        reason: outcome instanceof Error ? outcome.message : `HTTP ${outcome.status}`,
      });
      await this.sleep(delayMs);
    }
  }

  private async once(method: HttpMethod, url: string, opts: RequestOptions): Promise<HttpResponse> {
    const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    // The whole request, body included, within timeoutMs: on expiry undici destroys the connection.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), this.timeoutMs);
    const timedOut = (): OpenStackConnectionError =>
      new OpenStackConnectionError(
        method,
        url,
        `timed out after ${this.timeoutMs} ms (no answer, or an answer that stopped or trickled)`,
        true,
      );
    let res: Dispatcher.ResponseData;
    let text: string;
    try {
      try {
        res = await request(url, { method, headers, body, dispatcher: this.dispatcher, signal: deadline.signal });
      } catch (e) {
        if (deadline.signal.aborted) throw timedOut();
        const code = (e as { code?: unknown }).code;
        const message = errorMessage(e);
        throw new OpenStackConnectionError(
          method,
          url,
          `${typeof code === 'string' ? `${code}: ` : ''}${message}`,
          !(typeof code === 'string' && CONNECT_CODES_NOT_SENT.has(code)),
        );
      }
      try {
        text = await res.body.text();
      } catch (e) {
        if (deadline.signal.aborted) throw timedOut();
        throw new OpenStackConnectionError(method, url, `reading the answer: ${errorMessage(e)}`, true);
      }
    } finally {
      clearTimeout(timer);
    }
    let parsed: unknown = text;
    if (text !== '' && String(res.headers['content-type'] ?? '').includes('json')) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    } else if (text === '') {
      parsed = null;
    }
    return { status: res.statusCode, headers: res.headers, body: parsed };
  }
}

/** Parses a response body with a schema; a mismatch is a backend fault with a readable reason. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown, what: string): z.output<T> {
  const result = schema.safeParse(body);
  if (!result.success) {
    throw new Error(`unexpected ${what} from OpenStack: ${z.prettifyError(result.error).replace(/\n/g, '; ')}`);
  }
  return result.data;
}
