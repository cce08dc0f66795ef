/**
 * A route of the control service: its contract from @flocker/api (method, path, schemas,
 * responses) with a handler attached. The server validates a request's path parameters,
 * body and query against the contract's schemas before the handler runs, so a handler
 * receives parsed, typed input and parses nothing by hand.
 */
import type { z } from 'zod';
import type { ApiRoutes, BodyOf, Identity, ParamsOf, QueryOf, RouteContract, RouteName } from '@flocker/api';
import type { ControlState } from './ControlState';
import type { ListBody } from './listBodies';
import type { Views } from './Views';

/** What a handler returns: status, a body (object or pre-serialized JSON) and whether to send the tag. */
export interface Reply {
  status: number;
  body?: unknown;
  /** A pre-serialized body, possibly a Buffer (or a whole list's chunks) shared by many replies. */
  json?: string | Buffer | ListBody;
  tag?: string;
  /**
   * A streamed answer (the agent channel's watch): the server writes the status and headers, then
   * hands the open response to this, which writes lines until the client goes away (`signal`).
   */
  stream?: { contentType: string; run: (sink: StreamSink) => void };
}

/** Where a streamed answer writes: write() says false when the client is not keeping up (wait for drain). */
export interface StreamSink {
  write(chunk: Buffer | string): boolean;
  /** Resolves once the buffered output was sent, or the client went away. */
  drained(): Promise<void>;
  /** Ends the answer (the service is closing). */
  end(): void;
  readonly signal: AbortSignal;
}

/** A request's input, as the route's schemas parsed it. */
export interface RouteContext<R extends RouteContract> {
  params: ParamsOf<R>;
  query: QueryOf<R>;
  body: BodyOf<R>;
  ifMatches: string | undefined;
  signal: AbortSignal;
  /** Who asks, from its verified client certificate; absent without mutual TLS (then taken for an API user). */
  identity?: Identity | undefined;
  /**
   * Authorizes the request again on the latest configuration (throws FORBIDDEN), for a change applied after a wait
   * (a lease hand-over): absent when the server does not authorize (plain HTTP).
   */
  reauthorize?: (() => void) | undefined;
}

export type Handler<R extends RouteContract> = (
  state: ControlState,
  ctx: RouteContext<R>,
  views: Views,
) => Promise<Reply> | Reply;
/** A handler for every route of the contract (the compiler checks none is missing). */
export type Handlers = { [K in RouteName]: Handler<ApiRoutes[K]> };

/** What the server hands a route's handler: input its schemas accepted, not typed per route here. */
export interface CheckedContext {
  params: Record<string, unknown>;
  query: Record<string, unknown>;
  body: unknown;
  ifMatches: string | undefined;
  signal: AbortSignal;
  identity?: Identity | undefined;
  reauthorize?: (() => void) | undefined;
}

export interface RouteSpec extends RouteContract {
  handle(state: ControlState, ctx: CheckedContext, views: Views): Promise<Reply> | Reply;
}

/** Attaches a handler to a route of the contract. */
export function implement<R extends RouteContract>(contract: R, handle: Handler<R>): RouteSpec {
  // The server hands the handler only input that the contract's schemas parsed, so the handler's narrower context
  // type holds; RouteSpec.handle is a method, whose parameters the compiler compares bivariantly, so no cast.
  return { ...contract, handle };
}

/** A request's input as express delivers it. */
export interface RawInput {
  params: Record<string, string>;
  query: Record<string, string>;
  body: unknown;
}

/**
 * The request's input as the route's schemas parse them (UUIDs in canonical lower case).
 * A part a schema refuses is kept as it came (authorization still decides on it), and the
 * first refusal (path parameters, then body, then query) is returned as `error`: the
 * server answers 400 with it once authorization has had its say.
 */
export function checkInput(
  route: Pick<RouteContract, 'params' | 'body' | 'query' | 'emptyBodyIsObject'>,
  raw: RawInput,
): RawInput & { error?: z.ZodError } {
  let error: z.ZodError | undefined;
  const parse = <T>(schema: z.ZodType | undefined, value: T): T => {
    if (schema === undefined) return value;
    const result = schema.safeParse(value);
    if (result.success) return result.data as T;
    error ??= result.error;
    return value;
  };
  const params = parse(route.params, raw.params);
  const body = parse(route.body, raw.body === undefined && route.emptyBodyIsObject === true ? {} : raw.body);
  const query = parse(route.query, raw.query);
  return error === undefined ? { params, body, query } : { params, body, query, error };
}

/**
 * The request's path parameters and body as the route's schemas parse them, for
 * authorization to decide on exactly what the handler will act on.
 */
export function canonicalInput(
  route: Pick<RouteContract, 'params' | 'body'>,
  params: Record<string, string>,
  body: unknown,
): { params: Record<string, string>; body: unknown } {
  const checked = checkInput(route, { params, body, query: {} });
  return { params: checked.params, body: checked.body };
}
