/**
 * Typed HTTP client of the Flocker control service (public v1 API + agent channel).
 * Every response body is parsed with the wire schemas, leniently (lenientSchema: members a newer control service
 * added are dropped; the cluster views as FlockerClientOptions.clusterViews says); any non-2xx answer is thrown
 * as a FlockerApiError carrying the server's stable `code`.
 */
import { StringDecoder } from 'node:string_decoder';
import { errorMessage } from '@flocker/runtime';
import { Agent, request, type Dispatcher } from 'undici';
import { z } from 'zod';
import type {
  BackupConfiguration,
  BackupState,
  CreateBackupRequest,
  ClusterSnapshot,
  CreateDatasetRequest,
  CreateLeaseRequest,
  CreateSnapshotRequest,
  DatasetConfiguration,
  DatasetState,
  ForgottenNode,
  Lease,
  LeaseReleaseRequest,
  NodeReport,
  ReleasedLease,
  NodeStateSummary,
  ReportResponse,
  SnapshotConfiguration,
  SnapshotState,
  UpdateDatasetRequest,
  VersionResponse,
} from './schemas';
import {
  canonicalId,
  ClusterEvent,
  ClusterSnapshot as ClusterSnapshotSchema,
  CreateDatasetRequest as CreateDatasetRequestSchema,
  ErrorResponse,
  METADATA_NAME_KEY,
} from './schemas';
import { type ClusterAnswer, ClusterDelta, isClusterDelta } from './clusterDelta';
import { lenientSchema } from './lenientSchema';
import { createdAsAsked } from './repeatedCreate';
import type {
  ComposeRequest,
  ContainerConfiguration,
  ContainerReport,
  ContainerState,
  CreateContainerRequest,
  MoveContainerRequest,
} from './containers';
import {
  apiRoutes,
  CLIENT_WAIT_HEADER,
  CONFIGURATION_TAG_HEADER,
  DEFAULT_WAIT_MS,
  IF_CONFIGURATION_MATCHES_HEADER,
  MAX_WAIT_MS,
  type ResponseOf,
  type RouteContract,
  routePath,
  successSchema,
} from './contract';

export class FlockerApiError extends Error {
  override readonly name = 'FlockerApiError';
  constructor(
    /** HTTP status, or 0 when no answer arrived (connection refused, timeout). */
    readonly status: number,
    readonly code: string,
    readonly description: string,
    /** The single problems when the answer listed several (ErrorResponse.errors), e.g. what to do first. */
    readonly errors?: readonly string[],
    /**
     * The answer's Retry-After, in ms from when it came (delta-seconds or an HTTP date), when it had one: the control
     * service marks a refusal that can work when asked again this way (REPLICA_STALLED, NODE_DEAD; a LEASE_HELD
     * because the holder has not reported since a restart, review s28 G5), where the same code without it is final.
     */
    readonly retryAfterMs?: number,
  ) {
    super(`${description} (${status ? `HTTP ${status}, ` : ''}${code})`);
  }
}

/**
 * failoverTimeoutMs when the caller sets none (issue 23: a frozen replica — stopped, its connections open, nothing
 * answered — cost every client not tuned per component the whole timeoutMs, the Docker plugin's watcher and calls
 * included). 10 s: well inside Docker's plugin call timeouts (60 s; Create and Mount 120 s) and the 20 s between the
 * plugin's Mount deadline (100 s) and Docker's (a read or a lease call meeting a frozen replica still ends in time;
 * a write not safe to repeat still waits timeoutMs and fails: its outcome is unknown); and 3x the slowest headers a
 * healthy control service was measured to take (a first whole-list build at 10,000 agents, load 10-15: 2.8 s), so a
 * slow one is not left for nothing. Only with another replica to ask; bounds the wait for headers.
 */
export const DEFAULT_FAILOVER_TIMEOUT_MS = 10_000;

export interface FlockerClientOptions {
  /**
   * e.g. http://127.0.0.1:4523. Several control replicas may be given comma-separated
   * (http://a:4523,http://b:4523): the client fails over between them.
   */
  baseUrl: string;
  /** More control replicas to fail over to, after those in `baseUrl`. */
  baseUrls?: string[];
  /** An undici Dispatcher (Agent with TLS options, a MockAgent in tests, …). */
  dispatcher?: Dispatcher;
  /** Per-request timeout; long polls get their own wait time added. Default 30 s. */
  timeoutMs?: number;
  /**
   * With another replica left to ask, how long a request safe to repeat (and a watch's connect) waits for the
   * headers of an answer before it is asked of the next (long polls get their wait added); the last replica asked
   * waits timeoutMs. A read (GET) is hedged: the first request stays open and the first answer is taken (review R5:
   * a slow replica is not cut off for a frozen one); a write, or a watch's connect, is cut and sent on. A body, or a
   * watch stream, after its headers is bounded by timeoutMs (a long poll's wait added) as before, not by this. A
   * frozen replica (stopped, its connections open, nothing answered) otherwise holds every such request for
   * timeoutMs. A function is read at each request (an agent's follows its self-fence bound; its
   * undefined means timeoutMs). Absent: DEFAULT_FAILOVER_TIMEOUT_MS (one replica: nothing to move on to).
   */
  failoverTimeoutMs?: number | (() => number | undefined);
  /**
   * Repeat a whole-list read with If-None-Match (the ETag of the answer held) and answer from
   * what is held on a 304: a poller of an unchanged list is sent no body and parses nothing
   * (issue 23). Default true; false reads every list whole.
   */
  conditionalReads?: boolean;
  /**
   * How the cluster views (the agent channel's snapshots and deltas: waitForCluster, waitForClusterDelta,
   * watchCluster) are read. 'strict' (the default, for the agents and plugins that act on them): a member this
   * release does not know refuses the view, as docs/compatibility.md promises for the agent channel; a newer member
   * may qualify an older one (e.g. a node's empty lists meaning "not known yet"), and acting on the view without it
   * could take a volume that is in use. 'lenient': unknown members are dropped, for readers that only show the
   * views (the CLI, the web UI it serves), so that one release behind they keep working against a newer control
   * service. Every other answer is read leniently in either case: v1 adds members, never changes one's meaning.
   */
  clusterViews?: 'strict' | 'lenient';
  /** Where the client says it fell back to an older control service's behaviour (see createDataset); winston fits. */
  logger?: ClientLogger;
}

/** The little of a logger the client uses. */
export interface ClientLogger {
  warn(message: string, meta: Record<string, unknown>): unknown;
}

/**
 * How long a client, told by its control service that it does not know `unique_name`, creates without asking it
 * (one refused create per client and period, not one per create).
 */
export const UNIQUE_NAME_RECHECK_MS = 10 * 60_000;

/**
 * Request keys a control service of an older release refused (400, nothing done), each remembered for
 * UNIQUE_NAME_RECHECK_MS: meanwhile the client asks without it at once (one refusal per period, not per request),
 * then asks with it again — not for ever, as the service is upgraded after its clients (docs/compatibility.md).
 * Used by FlockerClient (unique_name) and the volume plugin (release_on_request, move_here).
 */
export class RefusedKeys {
  private readonly at = new Map<string, number>();

  constructor(private readonly now: () => number = () => Date.now()) {}

  /** Whether `key` was refused less than UNIQUE_NAME_RECHECK_MS ago. */
  lately(key: string): boolean {
    const t = this.at.get(key);
    return t !== undefined && this.now() - t < UNIQUE_NAME_RECHECK_MS;
  }

  note(key: string): void {
    this.at.set(key, this.now());
  }
}

/**
 * Whether a create was refused only for not knowing `unique_name`: a control service one release behind (before it
 * decided names) checks bodies strictly and answers 400 INVALID_REQUEST naming the key it does not know, exactly
 * `(body): Unrecognized key: "unique_name"` (zod's words; `Unrecognized keys: "a", "unique_name"` for several).
 */
export function refusedUnknownUniqueName(err: unknown): boolean {
  return refusedUnknownKey(err, 'unique_name');
}

/**
 * Whether a write was refused for not knowing the body's `key` (a member newer than the control service, which checks
 * bodies strictly): 400 INVALID_REQUEST naming it among the unrecognized keys, as refusedUnknownUniqueName.
 */
export function refusedUnknownKey(err: unknown, key: string): boolean {
  if (!(err instanceof FlockerApiError) || err.status !== 400 || err.code !== 'INVALID_REQUEST') return false;
  const problems = err.errors ?? [err.description];
  const named = new RegExp(`\\(body\\): Unrecognized keys?: (?:"[^"]*", )*"${key}"`);
  return problems.some((p) => named.test(p));
}

export interface WriteOptions {
  /** Only apply the write if the configuration still has this tag (else 412). */
  ifConfigurationMatches?: string;
}

export interface WaitOptions {
  /**
   * Ask only for what this node needs (its datasets, their leases, the nodes holding
   * them) instead of the whole cluster; the generation is the same either way.
   */
  node?: string;
}

/**
 * A connection pool for many concurrent requests (e.g. long-polls) to one server. Without
 * `keepAlive` each connection closes after its request; with it at most `connections` stay open
 * and are reused (a simulated agent's one connection, as a real agent on its own machine holds).
 */
export function createConnectionPool(connections: number, options: { keepAlive?: boolean } = {}): Dispatcher {
  return new Agent({ connections, pipelining: options.keepAlive === true ? 1 : 0 });
}

export interface Tagged<T> {
  value: T;
  configurationTag: string;
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** One attempt's bounds (a long poll's wait included in both): until the answer's headers, and for all of it. */
interface AttemptTimeouts {
  headers: number;
  whole: number;
}

/** What a call sends besides the route: path parameters, the body (checked by the route's schema), a query. */
interface CallInput<R extends RouteContract> {
  params?: Record<string, string>;
  body?: R['body'] extends z.ZodType ? z.input<R['body']> : never;
  query?: URLSearchParams;
  /** A write this call makes safe to repeat (a create naming its dataset_id): it may move on as a read does. */
  idempotent?: boolean;
}

/** Splits a comma-separated list of control URLs; trailing slashes dropped, duplicates removed. */
export function parseControlUrls(list: string): string[] {
  const urls = list
    .split(',')
    .map((u) => u.trim().replace(/\/+$/, ''))
    .filter((u) => u !== '');
  return [...new Set(urls)];
}

/**
 * Connection errors after which the request surely never reached a server, so even a
 * write may be sent to another replica without risk of applying it twice.
 */
const NOT_SENT = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * The code (status 0, client-side) of a request safe to repeat that was open on a replica when the client left it
 * (leave: another call learnt that its store is down): ended unanswered, so its outcome is unknown — it may have been
 * applied. Thrown only when no other replica is left to ask it of; the leave's reason is in its message.
 */
export const LEFT_REPLICA = 'LEFT_REPLICA';

/** Failures raised before the request could reach the server (see NOT_SENT). */
const neverSent = new WeakSet<FlockerApiError>();

/**
 * The connection closed under the request before any answer: most often a kept-alive connection the server closed
 * (idle at its connection limit or its keep-alive timeout) just as the client reused it. A call safe to repeat is
 * asked once more, on a new connection, even of the same replica (see call).
 */
const CLOSED_UNANSWERED = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);
const closedUnanswered = new WeakSet<FlockerApiError>();

/**
 * Answers to a request sent again after an attempt that may have been applied (no answer, a cut connection, a
 * timeout, STORE_OUTCOME_UNKNOWN): a create naming its dataset_id answered 409 DATASET_ID_IN_USE so may have been
 * made by that first attempt (see createDatasetOnce).
 */
const answeredRepeat = new WeakSet<FlockerApiError>();

/**
 * The 503 codes of a replica that cannot use its store while the other replicas may (review T4 F2: one cut off from
 * etcd is alive and answers every store call so): the client leaves it, and a call safe to repeat is asked of the
 * next replica at once. STORE_OUTCOME_UNKNOWN: a write etcd did not confirm (it may still be applied).
 */
const STORE_DOWN: ReadonlySet<string> = new Set([
  'STORE_UNAVAILABLE',
  'STORE_OUTCOME_UNKNOWN',
  'STORE_CLOSED',
  'STORE_TLS_REJECTED',
]);

/**
 * How long before a request refused REPLICA_STALLED by the last replica is asked of it once more: its Retry-After
 * (review S26B B3), this when it sent none the client can read, and never longer than STALLED_RETRY_MAX_MS (a Docker
 * call or a command waits on it).
 */
const STALLED_RETRY_MS = 1_000;
const STALLED_RETRY_MAX_MS = 5_000;

/** How long before a request refused REPLICA_STALLED by the last replica is asked of it again. */
function stalledRetryMs(err: FlockerApiError): number {
  return Math.min(err.retryAfterMs ?? STALLED_RETRY_MS, STALLED_RETRY_MAX_MS);
}

/** A Retry-After header's wait in ms (RFC 9110: delay-seconds or an IMF-fixdate); undefined when it is not one. */
export function retryAfterMs(value: string | string[] | undefined, nowMs = Date.now()): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (text === undefined || text === '') return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1_000;
  // The date form senders must use (IMF-fixdate): Date.parse alone takes '-1' or '1.5' for dates.
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/**
 * Codes of a request refused before anything of it was applied, so even a write may be sent to another replica: the
 * replica is stopping, its store is closed, or the store was not reached (STORE_UNAVAILABLE: nothing was written, as
 * the contract says since review T4 F1; a write sent to etcd but not confirmed is STORE_OUTCOME_UNKNOWN instead, and
 * a control service is never older than its clients: docs/compatibility.md), or the request was read right after the
 * replica's event loop stalled (REPLICA_STALLED, review S26 R3: its client may have moved on; refused unapplied).
 */
const NOT_APPLIED: ReadonlySet<string> = new Set([
  'SHUTTING_DOWN',
  'STORE_CLOSED',
  'STORE_UNAVAILABLE',
  'REPLICA_STALLED',
]);

function storeDown(err: FlockerApiError): boolean {
  return err.status === 503 && STORE_DOWN.has(err.code);
}

/**
 * Whether a call that failed on one replica may be sent to the next. A call safe to repeat (`idempotent`: reads,
 * long-polls, watches, whole-state reports, writes idempotent by construction) moves on after any failure to answer
 * (no answer, a cut connection, a timeout: it may have been applied, and applying it again changes nothing) and after
 * a store-down answer. Any other write only when it surely was not applied: it never left this host (NOT_SENT), or
 * the replica refused it before applying anything (NOT_APPLIED). A broken connection, a timeout or a 503 whose
 * outcome is unknown is thrown instead (the caller reads back before it writes again), so that it is never applied
 * twice: a create without dataset_id would make two datasets.
 */
function mayResend(err: FlockerApiError, idempotent: boolean): boolean {
  if (NOT_APPLIED.has(err.code)) return true;
  if (idempotent) return err.status === 0 || storeDown(err);
  return err.status === 0 && neverSent.has(err);
}

/** A non-2xx answer as the FlockerApiError it stands for. */
async function answerError(res: Dispatcher.ResponseData, what: string): Promise<FlockerApiError> {
  const text = await res.body.text();
  let json: unknown;
  try {
    json = text.length > 0 ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  const parsed = ErrorResponse.safeParse(json);
  const retryAfter = retryAfterMs(res.headers['retry-after']);
  return parsed.success
    ? new FlockerApiError(
        res.statusCode,
        parsed.data.code ?? `HTTP_${res.statusCode}`,
        parsed.data.description,
        parsed.data.errors,
        retryAfter,
      )
    : new FlockerApiError(
        res.statusCode,
        `HTTP_${res.statusCode}`,
        `${what}: ${text.slice(0, 200)}`,
        undefined,
        retryAfter,
      );
}

/**
 * Writes safe to repeat by construction: the agents' reports replace the node's whole state; a lease acquire by the
 * node already holding it renews it (200) and adds the same holder again; a declined release request stays declined.
 */
const SAFE_TO_REPEAT: ReadonlySet<RouteContract> = new Set<RouteContract>([
  apiRoutes.reportNodeState,
  apiRoutes.reportContainers,
  apiRoutes.acquireLease,
  // Clearing a release request twice is clearing it once.
  apiRoutes.declineReleaseRequest,
]);

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; typeof e === 'object' && e !== null && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * Whether a failed watch request's status means the control service does not offer that watch: 404 (no such
 * route: older than the watch) or 400/405 (the route or its query unknown to it). Any other failure (no answer, 5xx,
 * a cut stream) is worth asking for the watch again. The agents' and the plugins' fallback both follow it.
 */
export function watchRefusedStatus(status: number | undefined): boolean {
  return status === 400 || status === 404 || status === 405;
}

/** A watch is taken as dead after this many heartbeat periods without a byte (the server beats at most 2 apart). */
export const WATCH_IDLE_HEARTBEATS = 3;
/** The idle timeout against a server that announces no period (its heartbeat was 20 s). */
const LEGACY_WATCH_IDLE_MS = 60_000;

/** The heartbeat period a watch's Content-Type announces (`application/x-ndjson; heartbeat-ms=N`), if any. */
export function watchHeartbeatMs(contentType: string | string[] | undefined): number | undefined {
  const m = /;\s*heartbeat-ms=(\d+)/i.exec(String(contentType ?? ''));
  const ms = m === null ? NaN : Number(m[1]);
  return Number.isSafeInteger(ms) && ms > 0 ? ms : undefined;
}

interface ViewSchemas {
  snapshot: z.ZodType<ClusterSnapshot>;
  delta: z.ZodType<ClusterDelta>;
}
const strictViews: ViewSchemas = { snapshot: ClusterSnapshotSchema, delta: ClusterDelta };
const lenientViews: ViewSchemas = {
  snapshot: lenientSchema(ClusterSnapshotSchema),
  delta: lenientSchema(ClusterDelta),
};

/** The event kinds this release knows. */
const KNOWN_EVENT_KINDS: ReadonlySet<string> = new Set(ClusterEvent.shape.kind.options);
/**
 * GET /v1/state/events as read: an event of a kind this release does not know is skipped, as docs/compatibility.md
 * asks of a client (a newer service adds kinds: move_cancelled made every older CLI's `flocker status` and `events`
 * fail), instead of refusing the whole list; an event of a known kind is checked as any answer.
 */
const EventsAnswer: z.ZodType<{ events: ClusterEvent[] }> = z
  .object({
    events: z.array(
      z.union([
        lenientSchema(ClusterEvent),
        z.object({ kind: z.string().refine((kind) => !KNOWN_EVENT_KINDS.has(kind)) }).transform(() => undefined),
      ]),
    ),
  })
  .transform(({ events }) => ({ events: events.filter((e): e is ClusterEvent => e !== undefined) }));

/** One line of a watch: a delta or a whole view, each checked against its own schema (not the union's two tries). */
function parseWatchLine(line: string, path: string, views: ViewSchemas): ClusterAnswer {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    throw new FlockerApiError(
      200,
      'INVALID_RESPONSE',
      `GET ${path} sent a line that is not JSON: ${line.slice(0, 200)}`,
    );
  }
  const isDelta = typeof json === 'object' && json !== null && (json as { delta?: unknown }).delta === true;
  const parsed = isDelta ? views.delta.safeParse(json) : views.snapshot.safeParse(json);
  if (!parsed.success) {
    throw new FlockerApiError(
      200,
      'INVALID_RESPONSE',
      `GET ${path} sent a line that does not match the API schema: ${z.prettifyError(parsed.error)}`,
    );
  }
  return parsed.data;
}

/** Per answer this client returned: the control service's clock when it sent it, and this host's when it arrived. */
const answerClocks = new WeakMap<object, { serverMs: number; receivedAt: number }>();

/**
 * The control service's clock now, from an answer (array or object) this client returned: the answer's HTTP Date
 * header (whole seconds, rounded down: at most 1 s behind) plus the time since it arrived on this host's monotonic
 * clock. Compare the service's own times (a container's reported_at) with it, not with this host's clock, which may
 * be off by any amount (review FR F5). Undefined when the answer had no valid Date header or is not the client's.
 */
export function serverNow(answer: object): number | undefined {
  const clock = answerClocks.get(answer);
  return clock === undefined ? undefined : clock.serverMs + (performance.now() - clock.receivedAt);
}

/** Records the clock of an answer for serverNow; the value as it is. */
function withClock<T>(value: T, date: string | string[] | undefined, receivedAt: number): T {
  const serverMs = typeof date === 'string' ? Date.parse(date) : NaN;
  if (typeof value === 'object' && value !== null && Number.isFinite(serverMs))
    answerClocks.set(value, { serverMs, receivedAt });
  return value;
}

/** A whole list as last read, with the entity tag it came with (a conditional read's 304 answers with it). */
interface HeldList {
  readonly etag: string;
  readonly value: unknown;
  readonly configurationTag: string;
}

/**
 * The path at which the control service shows a dataset mounted on a node, from its state entries (the answer of
 * GET /v1/state/datasets, whole or narrowed to the dataset), or undefined. Its verdict on a node's "mounted": after a
 * move (back) onto the node, a report the agent built before it had acted on the move may still say mounted, and the
 * service shows it only from a report whose configuration_version is at least the move's (session 10). The one
 * spelling of the check that waiters (`flocker volumes move --wait`, the e2e scenarios) confirm a snapshot's
 * "mounted" by; FlockerClient.shownMountedOn reads and checks.
 */
export function shownMountedPath(
  states: readonly DatasetState[],
  datasetId: string,
  nodeUuid: string,
): string | undefined {
  const id = canonicalId(datasetId);
  const entry = states.find((d) => d.dataset_id === id);
  return entry?.primary === canonicalId(nodeUuid) ? entry.path : undefined;
}

/**
 * The Flocker API client. Whole lists are read conditionally (FlockerClientOptions.conditionalReads): the
 * elements of a list answered from a 304 are the objects of the previous answer (the array is a new one), so
 * treat answers as read-only.
 */
export class FlockerClient {
  private baseUrl: string;
  /** All control replicas; `baseUrl` is the one in use (the last that answered). */
  private readonly baseUrlList: string[];
  private readonly dispatcher: Dispatcher | undefined;
  private readonly timeoutMs: number;
  private readonly failoverTimeoutMs: () => number | undefined;
  /** The last answer of each whole list that carried an ETag, by path; undefined: conditional reads off. */
  private readonly held: Map<string, HeldList> | undefined;
  /** FlockerClientOptions.clusterViews: whether the agent channel's views are read strictly. */
  private readonly strictViews: boolean;
  private readonly logger: ClientLogger | undefined;
  /** When the control service last refused unique_name as a key it does not know (see createDataset). */
  private readonly refusedKeys = new RefusedKeys();
  /** The requests safe to repeat open on each replica (long-polls, watches, reads): ended when it is left. */
  private readonly open = new Map<string, Set<AbortController>>();
  /** Counts leaves; by replica, the count when it was last left (an answer asked before that does not bring it back). */
  private leaves = 0;
  private readonly leftAt = new Map<string, number>();

  constructor(options: FlockerClientOptions) {
    this.baseUrlList = parseControlUrls([options.baseUrl, ...(options.baseUrls ?? [])].join(','));
    this.baseUrl = this.baseUrlList[0] ?? options.baseUrl.replace(/\/+$/, '');
    this.dispatcher = options.dispatcher;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    const failover = options.failoverTimeoutMs ?? DEFAULT_FAILOVER_TIMEOUT_MS;
    this.failoverTimeoutMs = typeof failover === 'number' ? () => failover : failover;
    this.held = options.conditionalReads === false ? undefined : new Map();
    this.strictViews = options.clusterViews !== 'lenient';
    this.logger = options.logger;
  }

  async version(): Promise<VersionResponse> {
    return (await this.call(apiRoutes.version)).value;
  }

  async listDatasets(): Promise<DatasetConfiguration[]> {
    return (await this.listDatasetsTagged()).value;
  }

  /** The dataset configuration together with its X-Configuration-Tag. */
  async listDatasetsTagged(): Promise<Tagged<DatasetConfiguration[]>> {
    return this.call(apiRoutes.listDatasets);
  }

  /** One dataset's configuration; throws FlockerApiError 404 (DATASET_NOT_FOUND) when there is no such dataset. */
  async getDataset(datasetId: string): Promise<DatasetConfiguration> {
    return (await this.getDatasetTagged(datasetId)).value;
  }

  /** One dataset's configuration together with the X-Configuration-Tag it was read at. */
  async getDatasetTagged(datasetId: string): Promise<Tagged<DatasetConfiguration>> {
    return this.call(apiRoutes.getDataset, { params: { id: datasetId } });
  }

  /**
   * A create naming its dataset_id is safe to repeat: sent again after an unknown outcome and refused 409
   * DATASET_ID_IN_USE, it answers the dataset when that is the one asked for (the first attempt made it; see
   * createDatasetOnce). One without is sent to another replica only when surely not applied (see mayResend).
   */
  async createDataset(req: CreateDatasetRequest, options: WriteOptions = {}): Promise<DatasetConfiguration> {
    const { unique_name: _, ...older } = req;
    // Known not to know the key (said so lately): asked as before it at once, not refused once per create.
    if (req.unique_name === true && this.refusedKeys.lately('unique_name'))
      return this.createDatasetOnce(older, options);
    try {
      return await this.createDatasetOnce(req, options);
    } catch (err) {
      if (req.unique_name !== true || !refusedUnknownUniqueName(err)) throw err;
      // An older control service (upgraded after its clients) refused the key, recording nothing: ask as before it,
      // names unchecked (two creates of one name at once may both be made, as then).
      this.refusedKeys.note('unique_name');
      this.logger?.warn(
        `the control service does not know unique_name (older release): created without it, as this client's creates are for the next ${UNIQUE_NAME_RECHECK_MS / 60_000} min`,
        {
          name: req.metadata?.[METADATA_NAME_KEY],
          ...(req.dataset_id !== undefined ? { dataset_id: req.dataset_id } : {}),
        },
      );
      return await this.createDatasetOnce(older, options);
    }
  }

  private async createDatasetOnce(req: CreateDatasetRequest, options: WriteOptions): Promise<DatasetConfiguration> {
    try {
      return (
        await this.call(apiRoutes.createDataset, { body: req, idempotent: req.dataset_id !== undefined }, options)
      ).value;
    } catch (err) {
      // Repeated on another replica (or connection) after an unknown outcome, and refused as the id is taken: the
      // first attempt may have made it (a replica slower than the failover bound, since f4e13d9 10 s by default).
      // The dataset asked for is the create's result; anything else under that id was really taken (409 stays).
      if (!(err instanceof FlockerApiError) || err.code !== 'DATASET_ID_IN_USE' || !answeredRepeat.has(err)) throw err;
      const asked = CreateDatasetRequestSchema.parse(req);
      if (asked.dataset_id === undefined) throw err;
      const stored = await this.getDataset(asked.dataset_id).catch(() => undefined);
      if (stored === undefined) throw err;
      // A clone of a dataset: the snapshot it was cloned from must be that dataset's implicit one for this clone.
      const sourceSnapshot =
        asked.source_dataset_id !== undefined && stored.source_snapshot_id !== undefined
          ? await this.getSnapshot(stored.source_snapshot_id).catch(() => undefined)
          : undefined;
      if (!createdAsAsked(asked, stored, sourceSnapshot)) throw err;
      return stored;
    }
  }

  async updateDataset(
    datasetId: string,
    req: UpdateDatasetRequest,
    options: WriteOptions = {},
  ): Promise<DatasetConfiguration> {
    return (await this.call(apiRoutes.updateDataset, { params: { id: datasetId }, body: req }, options)).value;
  }

  /**
   * `releaseHolder`: that holder's share of the requester's own lease on the dataset ends in the delete's change (one
   * commit); a control service before it ignores it and refuses the delete of a leased dataset (409 LEASE_HELD).
   * `releaseNode`: only if the lease is that node's (a plugin names its own: on plain HTTP it is an API user).
   */
  async deleteDataset(
    datasetId: string,
    options: WriteOptions & { releaseHolder?: string; releaseNode?: string } = {},
  ): Promise<DatasetConfiguration> {
    const { releaseHolder, releaseNode, ...write } = options;
    const query =
      releaseHolder === undefined
        ? undefined
        : new URLSearchParams({
            release_holder: releaseHolder,
            ...(releaseNode === undefined ? {} : { release_node: releaseNode }),
          });
    return (await this.call(apiRoutes.deleteDataset, { params: { id: datasetId }, ...(query ? { query } : {}) }, write))
      .value;
  }

  /**
   * Where datasets actually are. With `datasetId`: only that dataset's entry (GET /v1/state/datasets?dataset_id=, a
   * few hundred bytes where the whole list is ~18 MB at 100,000 datasets); an older control service ignores the
   * parameter and answers the whole list, narrowed here, so the answer is the same.
   */
  async listDatasetState(options: { datasetId?: string } = {}): Promise<DatasetState[]> {
    if (options.datasetId === undefined) return (await this.call(apiRoutes.listDatasetState)).value;
    const id = canonicalId(options.datasetId);
    const query = new URLSearchParams({ dataset_id: id });
    return (await this.call(apiRoutes.listDatasetState, { query })).value.filter((d) => d.dataset_id === id);
  }

  /**
   * One dataset's state entry, or undefined when the service shows none (no alive node reports it, or its only
   * "mounted" is hidden as stale).
   */
  async datasetState(datasetId: string): Promise<DatasetState | undefined> {
    return (await this.listDatasetState({ datasetId }))[0];
  }

  /**
   * The path at which the control service shows the dataset mounted on the node (shownMountedPath over the
   * one-dataset read), or undefined: how a waiter confirms a "mounted" its snapshot shows.
   */
  async shownMountedOn(datasetId: string, nodeUuid: string): Promise<string | undefined> {
    return shownMountedPath(await this.listDatasetState({ datasetId }), datasetId, nodeUuid);
  }

  // ---- snapshots (issue 20) ---------------------------------------------------

  /** Asks for a snapshot of a dataset; its primary node takes it (see listSnapshotState for when it exists). */
  async createSnapshot(req: CreateSnapshotRequest, options: WriteOptions = {}): Promise<SnapshotConfiguration> {
    return (await this.call(apiRoutes.createSnapshot, { body: req }, options)).value;
  }

  async listSnapshots(): Promise<SnapshotConfiguration[]> {
    return (await this.call(apiRoutes.listSnapshots)).value;
  }

  /** Throws FlockerApiError 404 (SNAPSHOT_NOT_FOUND) when there is no such snapshot. */
  async getSnapshot(snapshotId: string): Promise<SnapshotConfiguration> {
    return (await this.call(apiRoutes.getSnapshot, { params: { id: snapshotId } })).value;
  }

  /** Marks the snapshot deleted (idempotent while it is still listed). */
  async deleteSnapshot(snapshotId: string, options: WriteOptions = {}): Promise<SnapshotConfiguration> {
    return (await this.call(apiRoutes.deleteSnapshot, { params: { id: snapshotId } }, options)).value;
  }

  /** What the storage backends hold, from the nodes' reports. */
  async listSnapshotState(): Promise<SnapshotState[]> {
    return (await this.call(apiRoutes.listSnapshotState)).value;
  }

  /** Asks for a backup of a dataset to an S3 target (issue 20); follow it with listBackupState. */
  async createBackup(req: CreateBackupRequest, options: WriteOptions = {}): Promise<BackupConfiguration> {
    return (await this.call(apiRoutes.createBackup, { body: req }, options)).value;
  }

  /** The backup requests whose implicit snapshot still exists. */
  async listBackups(): Promise<BackupConfiguration[]> {
    return (await this.call(apiRoutes.listBackups)).value;
  }

  /** Backups as the agents running them report them. */
  async listBackupState(): Promise<BackupState[]> {
    return (await this.call(apiRoutes.listBackupState)).value;
  }

  async listNodes(): Promise<NodeStateSummary[]> {
    return (await this.call(apiRoutes.listNodes)).value;
  }

  /** The UUID of the node currently in this era; throws 404 (NODE_ERA_UNKNOWN) if none. */
  async nodeByEra(era: string): Promise<string> {
    return (await this.call(apiRoutes.nodeByEra, { params: { era } })).value.uuid;
  }

  /**
   * Forgets a retired node, named by UUID or host (DELETE /v1/configuration/nodes/:node): 409 until it is not reporting and
   * nothing is configured on it (the error's `errors` say what to do first), 404 when unknown or already forgotten.
   */
  async forgetNode(node: string, options: WriteOptions = {}): Promise<ForgottenNode> {
    return (await this.call(apiRoutes.forgetNode, { params: { node } }, options)).value;
  }

  async listLeases(): Promise<Lease[]> {
    return (await this.call(apiRoutes.listLeases)).value;
  }

  async acquireLease(req: CreateLeaseRequest, options: WriteOptions = {}): Promise<Lease> {
    return (await this.call(apiRoutes.acquireLease, { body: req }, options)).value;
  }

  /**
   * Without `holder`, ends the whole lease. With it, only that holder lets go: `remains` in
   * the answer says whether other holders keep the lease.
   */
  async releaseLease(datasetId: string, options: WriteOptions & { holder?: string } = {}): Promise<ReleasedLease> {
    const { holder, ...write } = options;
    const query = holder === undefined ? undefined : new URLSearchParams({ holder });
    return (
      await this.call(apiRoutes.releaseLease, { params: { dataset_id: datasetId }, ...(query ? { query } : {}) }, write)
    ).value;
  }

  /**
   * The holder's "no" to a request to let go of its `release_on_request` lease (`release_requested`): the volume is
   * in use. Requests waiting for the lease are refused at once. Idempotent: a lease with no request pending is
   * answered as it is; no lease at all is 404 LEASE_NOT_FOUND. `request`: the release_requested it answers; only
   * that one is cleared, so a late or repeated decline leaves a newer request pending (a control service before it
   * refuses the query with 400).
   */
  async declineReleaseRequest(
    datasetId: string,
    options: WriteOptions & { request?: LeaseReleaseRequest } = {},
  ): Promise<Lease> {
    const { request: answered, ...write } = options;
    const query = answered === undefined ? undefined : new URLSearchParams({ by: answered.by, at: answered.at });
    return (
      await this.call(
        apiRoutes.declineReleaseRequest,
        { params: { dataset_id: datasetId }, ...(query ? { query } : {}) },
        write,
      )
    ).value;
  }

  /** What the control service decided on its own (node deaths, leases of dead nodes released), oldest first. */
  async listEvents(): Promise<ClusterEvent[]> {
    return (await this.call(apiRoutes.listEvents, {}, {}, 0, EventsAnswer)).value.events;
  }

  /** Agent channel: publish what this node observes. */
  async reportNodeState(report: NodeReport): Promise<z.infer<typeof ReportResponse>> {
    return (await this.call(apiRoutes.reportNodeState, { params: { uuid: report.uuid }, body: report })).value;
  }

  /**
   * Agent channel: the cluster snapshot. With `since` equal to the current generation
   * the server holds the request until something changes or `timeoutMs` elapses
   * (then the unchanged snapshot comes back).
   */
  async waitForCluster(
    since?: string,
    timeoutMs: number = DEFAULT_WAIT_MS,
    options: WaitOptions = {},
  ): Promise<ClusterSnapshot> {
    const wait = Math.max(0, Math.min(Math.floor(timeoutMs), MAX_WAIT_MS));
    const query = new URLSearchParams({ timeout_ms: String(wait) });
    if (since !== undefined) query.set('since', since);
    if (options.node !== undefined) query.set('node', options.node);
    const answer = (await this.call(apiRoutes.waitForCluster, { query }, {}, wait)).value;
    // Never asked for, so never sent: a delta here is a server bug, not something to merge silently.
    if (isClusterDelta(answer))
      throw new FlockerApiError(200, 'UNEXPECTED_DELTA', 'the agent channel sent a delta unasked');
    return answer;
  }

  /**
   * Agent channel, per-node deltas (issue 23): like waitForCluster with `node`, but the answer
   * may be a ClusterDelta of that node's view (`node` undefined: of the whole cluster; a control
   * service from before that answers whole snapshots) since `since` (merge it with applyClusterDelta;
   * its `since` says which view it applies to). The server does not wake the poll for changes
   * that leave the node's view as it was.
   */
  async waitForClusterDelta(
    since: string | undefined,
    timeoutMs: number,
    node: string | undefined,
  ): Promise<ClusterAnswer> {
    const wait = Math.max(0, Math.min(Math.floor(timeoutMs), MAX_WAIT_MS));
    const query = new URLSearchParams({ timeout_ms: String(wait), delta: 'true' });
    if (node !== undefined) query.set('node', node);
    if (since !== undefined) query.set('since', since);
    return (await this.call(apiRoutes.waitForCluster, { query }, {}, wait)).value;
  }

  /**
   * Agent channel, streaming (issue 23): node's view, then a delta per change of it, all on one
   * long-lived answer (`GET /v1/agent/cluster/watch`) — no request per change. Yields each answer
   * as it arrives (merge deltas with applyClusterDelta: each one's `since` is the generation of the
   * answer before). Ends when the server ends the stream (it is closing) or `signal` aborts; a
   * failure throws FlockerApiError (status 0: the connection, or WATCH_IDLE: nothing — heartbeats
   * included — for `idleTimeoutMs`, by default WATCH_IDLE_HEARTBEATS of the heartbeat period the
   * server announces in its Content-Type, or 60 s from a server that announces none; LEFT_REPLICA when the client left
   * that replica: FlockerClient.leave). Reconnect
   * then with the generation held: the stream resumes from it. The long-poll methods above are
   * unchanged (no heartbeats: each waits at most its own timeout).
   * With `node` undefined, the whole cluster (`whole=true`, as waitForCluster without `node`: the Docker plugin); a
   * control service from before that refuses it (400), one from before the watch answers 404: long-poll then.
   */
  async *watchCluster(
    node: string | undefined,
    since?: string,
    options: { signal?: AbortSignal; idleTimeoutMs?: number } = {},
  ): AsyncGenerator<ClusterAnswer, void, undefined> {
    const query = new URLSearchParams(node !== undefined ? { node } : { whole: 'true' });
    if (since !== undefined) query.set('since', since);
    const path = `${routePath(apiRoutes.watchCluster)}?${query.toString()}`;
    const gone = (): boolean => options.signal?.aborted === true;
    let res: Dispatcher.ResponseData | undefined;
    // The watch is ended when the client leaves its replica (leave: another call learnt that its store is down).
    let leaving: { signal: AbortSignal; done: () => void } | undefined;
    const urls = this.controlUrls;
    for (let i = 0; res === undefined; i++) {
      const url = urls[i] as string;
      leaving?.done();
      leaving = this.track(url);
      const asked = this.leaves;
      // Another replica left to ask: the connect (up to the headers) moves on after failoverTimeoutMs, as call() does
      // (a frozen replica held it timeoutMs). The stream after the headers is cut by the idle timer below only.
      const failover = i + 1 < urls.length ? this.failoverTimeoutMs() : undefined;
      let failure: FlockerApiError;
      try {
        const answer = await request(url + path, {
          method: 'GET',
          headers: { accept: 'application/x-ndjson' },
          dispatcher: this.dispatcher,
          headersTimeout: Math.min(this.timeoutMs, failover ?? this.timeoutMs),
          // A backstop: the idle timer below follows the period the server announces.
          bodyTimeout: options.idleTimeoutMs ?? LEGACY_WATCH_IDLE_MS,
          signal: options.signal === undefined ? leaving.signal : AbortSignal.any([options.signal, leaving.signal]),
        });
        if (answer.statusCode === 200) {
          res = answer;
          this.answered(url, asked);
          continue;
        }
        failure = await answerError(answer, `GET ${path}`);
      } catch (err) {
        if (gone()) return leaving.done();
        failure = leaving.signal.aborted
          ? (leaving.signal.reason as FlockerApiError)
          : new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', `GET ${url}${path} failed: ${errorMessage(err)}`);
      }
      if (storeDown(failure)) this.leave(url, failure);
      // Another replica answers a watch as well: try them in turn.
      if (i + 1 < urls.length && mayResend(failure, true)) continue;
      leaving.done();
      throw failure;
    }
    const left = leaving as { signal: AbortSignal; done: () => void };
    const body = res.body;
    const endOnLeave = (): void => void body.destroy();
    left.signal.addEventListener('abort', endOnLeave, { once: true });
    const beat = watchHeartbeatMs(res.headers['content-type']);
    const idleMs = options.idleTimeoutMs ?? (beat !== undefined ? WATCH_IDLE_HEARTBEATS * beat : LEGACY_WATCH_IDLE_MS);
    // A half-open connection (a silent partition, a dead peer) writes nothing: cut it after idleMs of waiting for it.
    // Only that wait counts: while a line is parsed or the caller handles one (a whole cluster's first line, ~35 MB at
    // 100,000 datasets: seconds on a loaded host) nothing is read and the heartbeats wait unread (as undici's
    // bodyTimeout, which does not run while the body is paused).
    let idled = false;
    let waiting = true;
    const idle = setTimeout(() => {
      // Busy with a chunk: started again (refresh below) once it waits for the server.
      if (!waiting) return;
      idled = true;
      body.destroy();
    }, idleMs);
    idle.unref();
    // A character split between two chunks is kept whole (undici's body yields Buffers whatever its encoding).
    const utf8 = new StringDecoder('utf8');
    // The parts of a line not ended yet: each chunk is searched once (a whole cluster's first line is ~35 MB at
    // 100,000 datasets: searching all that was held at each chunk cost seconds).
    let pending: string[] = [];
    try {
      for await (const bytes of body as AsyncIterable<Buffer | string>) {
        waiting = false;
        const chunk = typeof bytes === 'string' ? bytes : utf8.write(bytes);
        let start = 0;
        for (let nl = chunk.indexOf('\n'); nl >= 0; nl = chunk.indexOf('\n', start)) {
          pending.push(chunk.slice(start, nl));
          const line = pending.length === 1 ? (pending[0] as string) : pending.join('');
          pending = [];
          start = nl + 1;
          if (line !== '') yield parseWatchLine(line, path, this.strictViews ? strictViews : lenientViews);
        }
        if (start < chunk.length) pending.push(start === 0 ? chunk : chunk.slice(start));
        waiting = true;
        idle.refresh();
      }
    } catch (err) {
      if (gone()) return;
      if (err instanceof FlockerApiError) throw err;
      if (left.signal.aborted) throw left.signal.reason;
      if (idled)
        throw new FlockerApiError(0, 'WATCH_IDLE', `GET ${path}: nothing for ${idleMs} ms, not even a heartbeat`);
      throw new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', `GET ${path} failed: ${errorMessage(err)}`);
    } finally {
      clearTimeout(idle);
      left.signal.removeEventListener('abort', endOnLeave);
      left.done();
      body.destroy();
    }
    // Ended without an error because the client left the replica: as any end the leave caused.
    if (left.signal.aborted && !gone()) throw left.signal.reason;
    // Destroyed by the idle timer without an error: the stream did not end, it went silent.
    if (idled && !gone())
      throw new FlockerApiError(0, 'WATCH_IDLE', `GET ${path}: nothing for ${idleMs} ms, not even a heartbeat`);
  }

  // ---- containers (Flocker's container API) ----------------------------------

  async listContainers(): Promise<ContainerConfiguration[]> {
    return (await this.call(apiRoutes.listContainers)).value;
  }

  async createContainer(req: CreateContainerRequest, options: WriteOptions = {}): Promise<ContainerConfiguration> {
    return (await this.call(apiRoutes.createContainer, { body: req }, options)).value;
  }

  /** Moves a container (and, through it, its volume) to another node. */
  async moveContainer(
    name: string,
    req: MoveContainerRequest,
    options: WriteOptions = {},
  ): Promise<ContainerConfiguration> {
    return (await this.call(apiRoutes.moveContainer, { params: { name }, body: req }, options)).value;
  }

  async deleteContainer(name: string, options: WriteOptions = {}): Promise<ContainerConfiguration> {
    return (await this.call(apiRoutes.deleteContainer, { params: { name } }, options)).value;
  }

  async listContainerState(): Promise<ContainerState[]> {
    return (await this.call(apiRoutes.listContainerState)).value;
  }

  /** Replaces the container configuration with flocker-deploy's application and deployment files. */
  async compose(req: ComposeRequest, options: WriteOptions = {}): Promise<ContainerConfiguration[]> {
    return (await this.call(apiRoutes.compose, { body: req }, options)).value;
  }

  /** Agent channel: a container agent publishes the Flocker containers on its node. */
  async reportContainers(nodeUuid: string, report: ContainerReport): Promise<z.infer<typeof ReportResponse>> {
    return (await this.call(apiRoutes.reportContainers, { params: { uuid: nodeUuid }, body: report })).value;
  }

  /** The control replicas this client uses, the current one first. */
  get controlUrls(): string[] {
    return [this.baseUrl, ...this.baseUrlList.filter((u) => u !== this.baseUrl)];
  }

  /**
   * A replica answered that it cannot use its store (STORE_DOWN): later calls start at the next replica, and the
   * requests safe to repeat open on it end now (a long-poll is asked of the next replica; a watch throws `why` and is
   * watched again from the replica the client moved to). Such a replica still serves its views from memory, frozen:
   * an agent following them would see nodes it no longer hears declared dead, itself included. Those requests are
   * thrown (when no replica is left to ask) as LEFT_REPLICA, status 0: ended unanswered, their outcome unknown.
   */
  private leave(url: string, why: FlockerApiError): void {
    this.moveOff(url);
    const open = this.open.get(url);
    if (open === undefined) return;
    this.open.delete(url);
    // Not `why`'s code: STORE_UNAVAILABLE says "nothing written", untrue of a request already sent (FR19-4).
    const reason = new FlockerApiError(
      0,
      LEFT_REPLICA,
      `left ${url} while this request was open there (its outcome is unknown: it may have been applied): ${why.code}: ${why.description}`,
    );
    for (const request of open) request.abort(reason);
  }

  /**
   * Later calls start at the replica after `url`, and an answer from `url` to a request sent before does not bring
   * the client back to it (answered).
   */
  private moveOff(url: string): void {
    this.leftAt.set(url, ++this.leaves);
    if (this.baseUrl === url) {
      const at = this.baseUrlList.indexOf(url);
      this.baseUrl = this.baseUrlList[(at + 1) % this.baseUrlList.length] ?? url;
    }
  }

  /** `url` answered a request sent when leaves was `asked`: it becomes the one in use unless it was left since. */
  private answered(url: string, asked: number): void {
    if ((this.leftAt.get(url) ?? 0) <= asked) this.baseUrl = url;
  }

  /** Registers a request safe to repeat open on `url` (ended by leave, through `controller`); `done` when it is over. */
  private track(url: string, controller = new AbortController()): { signal: AbortSignal; done: () => void } {
    let open = this.open.get(url);
    if (open === undefined) this.open.set(url, (open = new Set()));
    open.add(controller);
    const held = open;
    return {
      signal: controller.signal,
      done: () => {
        held.delete(controller);
        if (held.size === 0 && this.open.get(url) === held) this.open.delete(url);
      },
    };
  }

  /**
   * Sends to the current replica; on a failure tries the others in turn as mayResend allows: a call safe to repeat
   * (reads, long-polls, whole-state reports, SAFE_TO_REPEAT, CallInput.idempotent) after no answer or a store-down
   * answer (a long-poll asked again elsewhere is answered at once, as generations differ between replicas); any other
   * write only when it surely was not applied. With several replicas a read is hedged instead (see hedged); a write
   * is never sent to two replicas at once (even one safe to repeat: two replicas applying it together could race).
   */
  private async call<R extends RouteContract>(
    route: R,
    input: CallInput<R> = {},
    options: WriteOptions = {},
    extraTimeoutMs = 0,
    /** How to read the answer, when not as the route's success schema says (leniently; see clusterViews). */
    answer?: z.ZodType<ResponseOf<R>>,
  ): Promise<Tagged<ResponseOf<R>>> {
    const method = route.method.toUpperCase() as Method;
    const query = input.query?.toString();
    const path = routePath(route, input.params) + (query !== undefined ? `?${query}` : '');
    // Bodies are checked (and canonicalised) by the route's schema before they are sent.
    const body = input.body === undefined || route.body === undefined ? undefined : route.body.parse(input.body);
    const success = successSchema(route) as z.ZodType<ResponseOf<R>>;
    // The agent channel's GETs are the cluster views; every other answer may carry members added since this release.
    const view = route.tag === 'agent' && route.method === 'get';
    const schema = answer ?? (view && this.strictViews ? success : lenientSchema(success));
    const idempotent = method === 'GET' || input.idempotent === true || SAFE_TO_REPEAT.has(route);
    const urls = this.controlUrls;
    if (method === 'GET' && urls.length > 1)
      return this.hedged(urls, path, schema, route.entityTag === true, extraTimeoutMs);
    let askedAgain = false;
    // An earlier attempt of this call may have been applied (it was not surely refused before anything was done).
    let mayHaveApplied = false;
    for (let i = 0; ; i++) {
      const url = urls[i] as string;
      const asked = this.leaves;
      // Another replica left to ask: a request safe to repeat moves on after failoverTimeoutMs (a frozen replica)
      // without its headers; once they came, the answer has the whole timeoutMs (a large list on a loaded host).
      const failover = idempotent && i + 1 < urls.length ? this.failoverTimeoutMs() : undefined;
      const timeoutMs = {
        headers: Math.min(this.timeoutMs, failover ?? this.timeoutMs) + extraTimeoutMs,
        whole: this.timeoutMs + extraTimeoutMs,
      };
      try {
        const answer = await this.callOne(url, method, path, schema, body, options, timeoutMs, {
          entityTag: route.entityTag === true,
          idempotent,
        });
        // A write answered late by a replica left meanwhile (not cut: see leave) does not bring the client back.
        this.answered(url, asked);
        return answer;
      } catch (err) {
        if (!(err instanceof FlockerApiError)) throw err;
        if (mayHaveApplied && err.status !== 0) answeredRepeat.add(err);
        mayHaveApplied ||= !neverSent.has(err) && !NOT_APPLIED.has(err.code);
        this.failedOn(url, asked, err, urls.length);
        if (i + 1 >= urls.length && idempotent && !askedAgain && closedUnanswered.has(err)) {
          // The last replica closed the connection unanswered: once more on a new connection.
          askedAgain = true;
          i--;
          continue;
        }
        if (i + 1 >= urls.length && !askedAgain && err.code === 'REPLICA_STALLED') {
          // The last replica (often the only one: the Docker plugin, the CLI) refused it unapplied for having just
          // stalled: once more a moment later, by then it reads requests sent since.
          askedAgain = true;
          await new Promise((resolve) => setTimeout(resolve, stalledRetryMs(err)));
          i--;
          continue;
        }
        if (i + 1 >= urls.length || !mayResend(err, idempotent)) throw err;
      }
    }
  }

  /** What a failed attempt on `url` (asked when leaves was `asked`) tells of that replica, for later calls. */
  private failedOn(url: string, asked: number, err: FlockerApiError, replicas: number): void {
    if (storeDown(err)) this.leave(url, err);
    // It has just stalled (and may again: overloaded, paused): the next calls start elsewhere (review S26B B3);
    // its requests open meanwhile are being answered, so none is ended.
    else if (err.code === 'REPLICA_STALLED' && replicas > 1) this.moveOff(url);
    // An answer below 500 (404, 409, ...) shows the replica works: used from now on, as after a success
    // (REVIEW-S26 R2: else a write after a read that moved off a frozen replica went back to it for timeoutMs).
    else if (err.status !== 0 && err.status < 500) this.answered(url, asked);
  }

  /**
   * A read with more than one replica, hedged (review R5): asked of the current replica; after the failover bound
   * (failoverTimeoutMs, a long poll's wait added) without an answer's headers it is asked of the next one too, the
   * first still open, and so on; the first answer is taken and the requests still open are ended. An attempt that
   * fails as mayResend allows (no answer, store down, refused unapplied) asks the next replica at once; any other
   * answer (404, 500, ...) is the call's. Each attempt keeps the whole timeoutMs: cutting the first at the bound, as
   * before, made a read that a slow but healthy replica answered in more than the bound wait the next replica's whole
   * timeoutMs when that one was frozen, and fail (10 + 30 s by default). A read applies nothing, so asking two
   * replicas at once is safe; a write is never hedged (see call). When every attempt failed, the last to end is
   * thrown, after the last replica's own retries (a connection closed unanswered, REPLICA_STALLED) as in call.
   */
  private hedged<T>(
    urls: readonly string[],
    path: string,
    schema: z.ZodType<T>,
    entityTag: boolean,
    extraTimeoutMs: number,
  ): Promise<Tagged<T>> {
    const hedgeMs = Math.min(this.timeoutMs, this.failoverTimeoutMs() ?? this.timeoutMs) + extraTimeoutMs;
    const timeoutMs = { headers: this.timeoutMs + extraTimeoutMs, whole: this.timeoutMs + extraTimeoutMs };
    return new Promise((resolve, reject) => {
      const open = new Set<AbortController>();
      let next = 0;
      let done = false;
      let askedAgain = false;
      let timer: NodeJS.Timeout | undefined;
      const end = (settle: () => void): void => {
        done = true;
        clearTimeout(timer);
        const lost = new FlockerApiError(0, 'HEDGE_ENDED', `${path}: answered by another replica first`);
        for (const attempt of open) attempt.abort(lost);
        settle();
      };
      const ask = (url: string): void => {
        const asked = this.leaves;
        const attempt = new AbortController();
        open.add(attempt);
        this.callOne(url, 'GET', path, schema, undefined, {}, timeoutMs, {
          entityTag,
          idempotent: true,
          attempt,
          // An answer is coming (its body may take long: a large list on a loaded host): no other replica is asked
          // unless this one then fails.
          headersCame: () => clearTimeout(timer),
        }).then(
          (answer) => {
            open.delete(attempt);
            if (done) return;
            this.answered(url, asked);
            end(() => resolve(answer));
          },
          (err: unknown) => {
            open.delete(attempt);
            if (done) return;
            if (!(err instanceof FlockerApiError))
              return end(() => reject(err instanceof Error ? err : new Error(String(err))));
            this.failedOn(url, asked, err, urls.length);
            if (!mayResend(err, true)) return end(() => reject(err));
            if (next < urls.length) return askNext();
            // Another replica still asked may answer.
            if (open.size > 0) return;
            if (!askedAgain && closedUnanswered.has(err)) {
              // Closed unanswered (a kept-alive connection the server had just closed): once more, a new connection.
              askedAgain = true;
              return ask(url);
            }
            if (!askedAgain && err.code === 'REPLICA_STALLED') {
              askedAgain = true;
              timer = setTimeout(() => ask(url), stalledRetryMs(err));
              return;
            }
            end(() => reject(err));
          },
        );
      };
      const askNext = (): void => {
        clearTimeout(timer);
        const url = urls[next++] as string;
        if (next < urls.length) timer = setTimeout(askNext, hedgeMs);
        ask(url);
      };
      askNext();
    });
  }

  private async callOne<T>(
    baseUrl: string,
    method: Method,
    path: string,
    schema: z.ZodType<T>,
    body: unknown,
    options: WriteOptions,
    timeoutMs: AttemptTimeouts,
    how: {
      /** A whole list (RouteContract.entityTag): read conditionally when one is held. */
      entityTag: boolean;
      /** Safe to repeat: ended when the client leaves the replica (leave), to be asked of the next. */
      idempotent: boolean;
      /** The attempt's controller, when the caller may end it too (a hedged read another replica answered). */
      attempt?: AbortController;
      /** Called when the answer's headers came (a hedged read asks no other replica after that). */
      headersCame?: () => void;
    },
  ): Promise<Tagged<T>> {
    // One signal ends the attempt, whatever ends it: its timeouts, and a leave when it is safe to repeat (issue 23: no
    // AbortSignal.any nor AbortSignal.timeout per request, whose timer outlived the answer; the plugin's Create).
    const attempt = how.attempt ?? new AbortController();
    const leaving = how.idempotent ? this.track(baseUrl, attempt) : undefined;
    const timedOut = (message: string) => () => attempt.abort(new DOMException(message, 'TimeoutError'));
    // The whole attempt, the connect and the body included (unref'd, as AbortSignal.timeout's; cleared at the end).
    const wholeTimer = setTimeout(timedOut('The operation was aborted due to timeout'), timeoutMs.whole).unref();
    // Cut if no headers came in time, the connect included (undici's headersTimeout starts once the request is sent);
    // not once they came (callOnce clears it): the body has the whole bound. Only with failover (see call).
    const headersTimer =
      timeoutMs.headers < timeoutMs.whole
        ? setTimeout(timedOut(`no answer within ${timeoutMs.headers} ms`), timeoutMs.headers)
        : undefined;
    try {
      return await this.callOnce(baseUrl, method, path, schema, body, options, timeoutMs, how.entityTag, {
        signal: attempt.signal,
        headersTimer,
        headersCame: how.headersCame,
      });
    } catch (err) {
      // Left while asking: the reason (LEFT_REPLICA), not the abort it caused (a timeout's reason is a DOMException).
      if (leaving !== undefined && attempt.signal.reason instanceof FlockerApiError) throw attempt.signal.reason;
      throw err;
    } finally {
      clearTimeout(headersTimer);
      clearTimeout(wholeTimer);
      leaving?.done();
    }
  }

  private async callOnce<T>(
    baseUrl: string,
    method: Method,
    path: string,
    schema: z.ZodType<T>,
    body: unknown,
    options: WriteOptions,
    timeout: AttemptTimeouts,
    entityTag: boolean,
    /** This attempt's end (callOne): its timeouts, a leave; the headers' timer is cleared once they came. */
    attempt: { signal: AbortSignal; headersTimer: NodeJS.Timeout | undefined; headersCame?: () => void },
  ): Promise<Tagged<T>> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const conditional = entityTag && method === 'GET' && this.held !== undefined;
    const held = conditional ? this.held?.get(path) : undefined;
    if (held !== undefined) headers['if-none-match'] = held.etag;
    if (options.ifConfigurationMatches !== undefined) {
      headers[IF_CONFIGURATION_MATCHES_HEADER] = options.ifConfigurationMatches;
    }
    // How long this attempt waits for the answer: a replica that stalls meanwhile still applies the write while this
    // client surely waits for it, rather than refusing it REPLICA_STALLED (review s27 F9).
    if (method !== 'GET') headers[CLIENT_WAIT_HEADER] = String(Math.ceil(timeout.headers));
    let res: Dispatcher.ResponseData;
    try {
      res = await request(baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        dispatcher: this.dispatcher,
        headersTimeout: timeout.headers,
        bodyTimeout: timeout.whole,
        signal: attempt.signal,
      });
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || /timeout/i.test(err.name + err.message));
      const failure = new FlockerApiError(
        0,
        timedOut ? 'REQUEST_TIMEOUT' : 'CONTROL_SERVICE_UNREACHABLE',
        `${method} ${baseUrl}${path} failed: ${errorMessage(err)}`,
      );
      const code = errorCode(err) ?? '';
      if (NOT_SENT.has(code)) neverSent.add(failure);
      else if (!timedOut && CLOSED_UNANSWERED.has(code)) closedUnanswered.add(failure);
      throw failure;
    } finally {
      clearTimeout(attempt.headersTimer);
    }
    attempt.headersCame?.();
    const receivedAt = performance.now();
    const date = res.headers['date'];
    const configurationTag = res.headers[CONFIGURATION_TAG_HEADER];
    if (res.statusCode === 304 && held !== undefined) {
      await res.body.dump();
      // Unchanged since it was held: a new array of the same (parsed and checked) elements.
      const value = Array.isArray(held.value) ? [...(held.value as unknown[])] : held.value;
      return {
        value: withClock(value as T, date, receivedAt),
        configurationTag: typeof configurationTag === 'string' ? configurationTag : held.configurationTag,
      };
    }
    if (res.statusCode < 200 || res.statusCode >= 300) throw await answerError(res, `${method} ${path}`);
    const text = await res.body.text();
    let json: unknown;
    try {
      json = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new FlockerApiError(
        res.statusCode,
        'INVALID_RESPONSE',
        `${method} ${path} returned a body that does not match the API schema: ${z.prettifyError(parsed.error)}`,
      );
    }
    const tag = typeof configurationTag === 'string' ? configurationTag : '';
    const etag = res.headers['etag'];
    if (conditional && this.held !== undefined) {
      // A strong tag only (a weak one may name a body that is not byte for byte this one).
      if (typeof etag === 'string' && /^"[^"]*"$/.test(etag)) {
        this.held.set(path, { etag, value: parsed.data, configurationTag: tag });
        // The caller gets its own array: sorting it in place leaves the held one as it was.
        if (Array.isArray(parsed.data))
          return { value: withClock([...(parsed.data as unknown[])] as T, date, receivedAt), configurationTag: tag };
      } else this.held.delete(path);
    }
    return { value: withClock(parsed.data, date, receivedAt), configurationTag: tag };
  }
}
