/**
 * The configuration kept in an etcd v3 cluster, shared by several control replicas.
 *
 * Layout under the prefix (default /flocker), like the file store's snapshot + log:
 *   head                 {"version": N, "commit": id}: the compare-and-swap key; `commit`
 *                        is a random id of the commit that wrote it (detects our own retried write)
 *   log/<version>        {"prev": P, "record": LogRecord}: the change from version P to <version>
 *   snapshot             {"version": S, "config": <document>}: everything up to S; log keys up
 *                        to S are deleted after it is written, LOG_DELETE_BATCH at a time (by whichever
 *                        replica passes the limit; a load skips records a snapshot covers).
 *                        A document over SNAPSHOT_CHUNK_BYTES is {"version": S, "id": X, "chunks": N}
 *                        instead, its text in snapshot/X/<i>: one etcd request is limited (1.5 MiB
 *                        by default, --max-request-bytes), and 100,000 datasets are ~20 MB
 *   nodes/<uuid>         {"last_seen": epoch ms, "report": NodeReport}: liveness every replica sees
 *   containers/<uuid>    {"last_seen": epoch ms, "node": uuid, "report": ContainerReport}: what a node's
 *                        container agent reports, so every replica answers /v1/state/containers alike
 *
 * A commit that takes a node out of the configuration's nodes (only forgetting a retired node does:
 * forgetNode.ts) deletes its nodes/<uuid> and containers/<uuid> in the same transaction, guarded by the
 * mod_revision of nodes/<uuid> this replica last saw: a report stored meanwhile (the node came back through
 * another replica) fails the transaction and is delivered, so the re-applied forget judges it alive. Every
 * replica's watch sees the delete and forgets the node (StoreListener.nodeGone); a restart reads no report of it.
 *
 * A commit is one small transaction whatever the configuration's size: compare head's
 * mod_revision with the revision the new configuration was computed from, then put
 * head and the log record. A lost race answers StoreConflict carrying the winner, which
 * ControlState re-applies its pending changes onto. A write is acknowledged only once
 * etcd answered the transaction, i.e. a quorum of members committed it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3, type IKeyValue, type IOptions, isRecoverableError, type Namespace, type Watcher } from 'etcd3';
import { z } from 'zod';
import { ContainerReport, NodeReport, NodeUuid } from '@flocker/api';
import { errorMessage } from '@flocker/runtime';
import type { Configuration } from '../configuration';
import { emptyConfiguration } from '../configuration';
import { applyRecords, diffConfiguration, LogRecord } from '../ConfigurationLog';
import {
  decodeConfiguration,
  ENCODE_SLICE_ENTRIES,
  encodeConfiguration,
  encodeConfigurationSlices,
  type EncodeYieldingOptions,
  type ConfigurationStore,
  type StoreListener,
  TurnBudget,
} from '../ConfigurationStore';
import { type ControlError, isControlError, StoreError, UsageError } from '../errors';
import { StoreConflict } from './conflict';

export { StoreConflict };

export const DEFAULT_ETCD_PREFIX = '/flocker';
export const DEFAULT_ETCD_TIMEOUT_MS = 3000;
/**
 * A replica folds the log into a new snapshot once it holds at least this many records
 * and more bytes than the snapshot: rewriting a big configuration is then rare enough
 * to cost O(1) per write on average.
 */
export const DEFAULT_SNAPSHOT_EVERY = 500;
/**
 * A snapshot's text is split into values of at most this many bytes (under etcd's default 1.5 MiB
 * request limit), put one at a time: etcd applies requests in order, so a commit waits behind at
 * most one chunk (4 chunks of 1 MiB at once held commits 25-48 ms, issue 23).
 */
export const SNAPSHOT_CHUNK_BYTES = 256 * 1024;
/**
 * Log records a snapshot covers are deleted this many per request, after the snapshot is stored: etcd
 * applies requests one after another, and deleting them in the snapshot's own transaction (thousands
 * of keys: 4,000 took 45 ms on a loaded host, 250 took 3 ms) held every commit behind it (issue 23).
 */
export const LOG_DELETE_BATCH = 256;
/**
 * A fold's etcd requests (the snapshot's chunks, its transaction, the log deletes) wait until no commit
 * has been in flight for this long: etcd applies requests in order, so a commit sent while one of them
 * is in flight waits behind it (a 256 KiB chunk took 10-50 ms on the loaded 2-core host, and creates
 * timed during a fold were 2-3x slower; the scale bench's slow creates on etcd, issue 23).
 */
export const FOLD_QUIET_MS = 10;
/** …but a step waits at most this long, so a steady stream of writes still gets the log folded. */
export const FOLD_MAX_DEFER_MS = 500;

/**
 * Pure: how long a fold's next etcd request should still wait (0: send it now) — until commits have been
 * quiet for `quietMs` (none in flight, the last one ended that long ago), and never past `deadline`.
 */
export function foldWaitMs(
  now: number,
  commitInFlight: boolean,
  lastCommitEnd: number,
  quietMs: number,
  deadline: number,
): number {
  if (now >= deadline) return 0;
  const quietFor = commitInFlight ? 0 : now - lastCommitEnd;
  if (quietFor >= quietMs) return 0;
  return Math.min(deadline - now, quietMs - quietFor);
}

/**
 * Retries of a failed etcd call (each on the next member; the etcd3 client's default): with a deadline of a third of
 * the timeout per attempt.
 */
const ETCD_RETRIES = 3;
/** Failed probes in a row before the store counts as unreachable (one slow answer on a loaded host is not an outage). */
const PROBE_FAILURES = 2;
/** While the outcome of a sent transaction is unknown, it is re-sent this often (each re-send has its own deadline). */
const RESOLVE_PAUSE_MS = 250;

/**
 * Pure: whether an etcd call that failed with `err` was never sent to a member, so it cannot apply: gRPC had no
 * connection to send it on ("No connection established"), its deadline passed before a connection was picked, or
 * every member's circuit breaker was open. Anything else may have reached a member (review T4 finding 1).
 */
export function neverSent(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  if ('isBrokenCircuitError' in err && err.isBrokenCircuitError === true) return true;
  const message = errorMessage(err);
  return (
    /No connection established/.test(message) ||
    /Waiting for LB pick|waiting for name resolution|waiting for metadata filters/i.test(message)
  );
}

/** The failed attempts of the etcd calls made inside `run` (the transaction of a commit). */
const attemptsOfCall = new AsyncLocalStorage<unknown[]>();

type GlobalPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/**
 * The etcd3 client's default retry (ETCD_RETRIES more attempts of a recoverable failure, at once), which also notes
 * each failed attempt for the call in progress: whether any of them may have reached etcd decides between
 * STORE_UNAVAILABLE and an outcome to resolve. etcd3 only calls execute().
 */
const retryNotingAttempts = {
  async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    const context = { signal: signal ?? new AbortController().signal };
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await fn(context);
      } catch (err) {
        attemptsOfCall.getStore()?.push(err);
        const recoverable = err instanceof Error && isRecoverableError(err);
        if (!recoverable || attempt >= ETCD_RETRIES || context.signal.aborted) throw err;
      }
    }
  },
} as unknown as GlobalPolicy;

/** Unchanged reports are re-published at least this often (and more often under a short node timeout). */
export const DEFAULT_REPORT_REFRESH_MS = 5000;

/**
 * Pure: how long an unchanged node report may go without being re-published, so that every
 * replica sees a live node's last_seen move at least every nodeTimeoutMs / 4 (a replica that
 * does not receive the node's reports judges its liveness on what etcd tells it alone).
 */
export function reportRefreshMs(nodeTimeoutMs: number, capMs: number = DEFAULT_REPORT_REFRESH_MS): number {
  return Math.max(0, Math.min(capMs, nodeTimeoutMs / 4));
}
const HEAD_KEY = 'head';
const SNAPSHOT_KEY = 'snapshot';
const LOG_PREFIX = 'log/';
/** The first key after every log/… key ('0' follows '/'). */
const LOG_END = 'log0';
const CHUNKS_PREFIX = 'snapshot/';
/** The first key after every snapshot/… key. */
const CHUNKS_END = 'snapshot0';
const NODES_PREFIX = 'nodes/';
const CONTAINERS_PREFIX = 'containers/';

export interface EtcdStoreOptions {
  endpoints: string[];
  prefix?: string;
  /** PEM paths for TLS to etcd: the CA alone, or with a client certificate and key. */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** Deadline of each etcd call; a write without an answer by then fails with STORE_UNAVAILABLE. */
  timeoutMs?: number;
  /**
   * Upper bound of how often an unchanged report is re-published (its last_seen refresh);
   * node reports are refreshed at least every node timeout / 4 whatever this says (see reportRefreshMs).
   */
  reportRefreshMs?: number;
  snapshotEvery?: number;
  /** A snapshot larger than this is stored in chunks of at most this many bytes (default SNAPSHOT_CHUNK_BYTES). */
  snapshotChunkBytes?: number;
  /** Log records deleted per request once a snapshot covers them (default LOG_DELETE_BATCH). */
  logDeleteBatch?: number;
  /** A fold's requests wait for commits to be quiet this long (default FOLD_QUIET_MS; 0: never wait)… */
  foldQuietMs?: number;
  /** …for at most this long each (default FOLD_MAX_DEFER_MS). */
  foldMaxDeferMs?: number;
  /**
   * How long a commit sent to etcd without an answer keeps being resolved (re-sent with the same commit id) before it
   * fails with STORE_OUTCOME_UNKNOWN (default: twice timeoutMs).
   */
  resolveMs?: number;
  /**
   * Once subscribed, etcd is probed (a linearizable read, which needs a quorum) this often (default: max(1 s, timeoutMs
   * / 2)); PROBE_FAILURES failures in a row tell the listener the store is unreachable, a success that it is back.
   */
  probeMs?: number;
  /** Told about watch and background trouble (reconnects are automatic). */
  onError?: (err: unknown) => void;
  /** Told when a commit that failed with STORE_OUTCOME_UNKNOWN is seen applied after all (the audit trail's sequel). */
  onLateWrite?: (message: string) => void;
}

const Head = z.object({ version: z.number().int().nonnegative(), commit: z.string() }).strict();
const LogEntry = z.object({ prev: z.number().int().nonnegative(), record: LogRecord }).strict();
const Snapshot = z.union([
  z.object({ version: z.number().int().nonnegative(), config: z.unknown() }).strict(),
  z
    .object({
      version: z.number().int().nonnegative(),
      id: z.string().regex(/^[0-9a-f]+$/),
      chunks: z.number().int().positive(),
    })
    .strict(),
]);
const StoredReport = z.object({ last_seen: z.number(), report: NodeReport });
const StoredContainers = z.object({ last_seen: z.number(), node: NodeUuid, report: ContainerReport });

/**
 * Pure: the nodes `config` takes out of `from`'s nodes. Only forgetting a retired node removes one (forgetNode.ts), so
 * these are the nodes whose stored reports go in the same transaction.
 */
export function forgottenNodes(from: Configuration, config: Configuration): string[] {
  if (from.nodes === config.nodes) return [];
  const out: string[] = [];
  for (const uuid of from.nodes.keys()) if (!config.nodes.has(uuid)) out.push(uuid);
  return out;
}

/** log/<version> with the version zero-padded so keys sort in version order. */
function logKey(version: number): string {
  return `${LOG_PREFIX}${String(version).padStart(16, '0')}`;
}

/** Pure: the version a watched log key names (logKey's, after any namespace prefix), undefined for another key. */
export function logKeyVersion(key: string): number | undefined {
  const m = /(?:^|\/)log\/(\d{16})$/.exec(key);
  return m === null ? undefined : Number(m[1]);
}

/**
 * After a transaction (writing log entry `entry` at from + 1 and head naming commit `id`) answered "head moved": did a
 * copy of it commit first? 'none' when proven not (head never left `from`; or the entry at from + 1 is another), the
 * revision of our copy when head as of that entry names `id`, 'unknown' when it cannot tell (review FR19-1): the
 * entry at from + 1 is gone (folded into a snapshot since) or head as of it cannot be read (etcd flaky, or compacted).
 * `ambiguous`: a copy other than the one answered may have reached etcd; if not, the answer is the whole story.
 */
export async function landedCopy(
  logKvs: readonly IKeyValue[],
  from: number,
  headVersion: number | undefined,
  entry: string,
  id: string,
  ambiguous: boolean,
  headAt: (revision: string) => Promise<string | undefined>,
): Promise<number | 'none' | 'unknown'> {
  if (!ambiguous || headVersion === undefined || headVersion <= from) return 'none';
  const key = logKey(from + 1);
  const kv = logKvs.find((k) => k.key.toString('utf8').endsWith(key));
  if (kv === undefined) return 'unknown';
  // Another replica's identical change would match too (two creates of the same dataset_id): head tells.
  if (kv.value.toString('utf8') !== entry) return 'none';
  let commit;
  try {
    commit = await headAt(kv.mod_revision);
  } catch {
    return 'unknown';
  }
  if (commit === undefined) return 'unknown';
  return commit === id ? Number(kv.mod_revision) : 'none';
}

/** snapshot/<id>/<i> with the index zero-padded so chunks sort in order. */
function chunkKey(id: string, i: number): string {
  return `${CHUNKS_PREFIX}${id}/${String(i).padStart(8, '0')}`;
}

/**
 * Pure: what to store for a snapshot of `version` whose document is `doc` — the `snapshot` value and, for a
 * document over `chunkBytes`, the chunk values holding its text (split on UTF-16 units; joined back before parsing).
 */
export function snapshotValues(
  version: number,
  doc: string,
  id: string,
  chunkBytes: number = SNAPSHOT_CHUNK_BYTES,
): { value: string; chunks: [string, string][] } {
  if (Buffer.byteLength(doc) <= chunkBytes) return { value: `{"version":${version},"config":${doc}}`, chunks: [] };
  const chunks = splitText(doc, chunkBytes).map((text, i): [string, string] => [chunkKey(id, i), text]);
  return { value: JSON.stringify({ version, id, chunks: chunks.length }), chunks };
}

/** Pure: `text` cut into pieces of at most `chunkBytes` UTF-8 bytes (on UTF-16 units, never inside a surrogate pair). */
function splitText(text: string, chunkBytes: number): string[] {
  const out: string[] = [];
  for (let at = 0; at < text.length;) {
    let end = Math.min(text.length, at + chunkBytes);
    // Text beyond ASCII takes more bytes than units: shrink until the slice fits.
    while (Buffer.byteLength(text.slice(at, end)) > chunkBytes) end = at + Math.max(1, Math.floor((end - at) * 0.75));
    // Never split a surrogate pair.
    const last = text.charCodeAt(end - 1);
    if (end < text.length && end - at > 1 && last >= 0xd800 && last <= 0xdbff) end -= 1;
    out.push(text.slice(at, end));
    at = end;
  }
  return out;
}

/**
 * What to store for a snapshot of `config` (as snapshotValues of its whole document: its chunks join back to
 * encodeConfiguration's text), built from the encoder's slices a chunk at a time, the event loop let run between
 * slices (EncodeYieldingOptions). The fold used to join the whole document first and then measure and cut it: at
 * 100,000 datasets (~17 MB) the join and the scans ran in single turns that held every request 69-288 ms on the
 * loaded 2-core host (a create arriving then waited: the etcd create tail, issue 23).
 */
export async function snapshotValuesYielding(
  version: number,
  config: Configuration,
  id: string,
  chunkBytes: number = SNAPSHOT_CHUNK_BYTES,
  options: EncodeYieldingOptions = {},
): Promise<{ value: string; chunks: [string, string][] }> {
  const texts: string[] = [];
  let parts: string[] = [];
  let bytes = 0;
  const budget = new TurnBudget(options.budgetMs, options.now);
  for (const slice of encodeConfigurationSlices(config, options.entriesPerSlice ?? ENCODE_SLICE_ENTRIES)) {
    const size = Buffer.byteLength(slice);
    if (bytes + size > chunkBytes && parts.length > 0) {
      texts.push(parts.join(''));
      parts = [];
      bytes = 0;
    }
    if (size > chunkBytes) {
      // One slice over a chunk (an entry with large metadata): cut; its last piece starts the next chunk.
      const pieces = splitText(slice, chunkBytes);
      const tail = pieces.pop() ?? '';
      texts.push(...pieces);
      parts = [tail];
      bytes = Buffer.byteLength(tail);
    } else {
      parts.push(slice);
      bytes += size;
    }
    await budget.spent();
  }
  if (texts.length === 0) return { value: `{"version":${version},"config":${parts.join('')}}`, chunks: [] };
  if (parts.length > 0) texts.push(parts.join(''));
  const chunks = texts.map((text, i): [string, string] => [chunkKey(id, i), text]);
  return { value: JSON.stringify({ version, id, chunks: chunks.length }), chunks };
}

/** Parses `--etcd-endpoints a,b,c` into URLs (host:port gets http://). */
export function parseEndpoints(list: string): string[] {
  const out = list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => (/^[a-z]+:\/\//.test(s) ? s : `http://${s}`));
  for (const e of out) {
    const u = URL.canParse(e) ? new URL(e) : undefined;
    if (u === undefined || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.port === '') {
      throw new UsageError('BAD_ETCD_ENDPOINT', `"${e}" is not an etcd endpoint like http://127.0.0.1:2379.`);
    }
  }
  if (out.length === 0) throw new UsageError('BAD_ETCD_ENDPOINT', 'No etcd endpoint given (--etcd-endpoints).');
  return out;
}

/**
 * Which side of a TLS handshake with etcd failed, from the gRPC error text: `server` when
 * we do not trust the member's certificate, `client` when the member refused ours (or
 * none was sent), undefined when the failure is not about TLS.
 */
export function etcdTlsFailure(message: string): 'server' | 'client' | undefined {
  // Alerts the member sent: it rejected (or missed) our client certificate.
  if (CLIENT_CERTIFICATE_REFUSED.some((r) => r.test(message))) return 'client';
  // Our own verification of the member's certificate.
  if (MEMBER_CERTIFICATE_UNTRUSTED.some((r) => r.test(message))) return 'server';
  return undefined;
}

const CLIENT_CERTIFICATE_REFUSED = [
  /alert (bad certificate|certificate required|unknown ca|certificate unknown)/i,
  /alert (certificate expired|certificate revoked|unsupported certificate)/i,
];
const MEMBER_CERTIFICATE_UNTRUSTED = [
  /unable to verify/i,
  /self[- ]signed certificate/i,
  /certificate has expired/i,
  /certificate is not yet valid/i,
  /Hostname\/IP does not match/i,
  /unable to get (local )?issuer certificate/i,
  /certificate signature failure/i,
];

function unavailable(action: string, err: unknown): ControlError {
  if (isControlError(err)) return err;
  const message = errorMessage(err);
  const tls = etcdTlsFailure(message);
  // A TLS mistake is a configuration error, not an outage: say which file to look at.
  if (tls === 'server') {
    return new StoreError(
      'STORE_TLS_REJECTED',
      `etcd did not ${action}: its certificate is not trusted (${message.trim()}); --etcd-ca must be the CA ` +
        "that issued the etcd members' certificates, and they must name the endpoint's host or IP.",
    );
  }
  if (tls === 'client') {
    return new StoreError(
      'STORE_TLS_REJECTED',
      `etcd did not ${action}: the etcd members refused the client certificate (${message.trim()}); pass ` +
        '--etcd-cert and --etcd-key with a client certificate issued by the CA the members trust (their --trusted-ca-file).',
    );
  }
  return new StoreError(
    'STORE_UNAVAILABLE',
    `etcd did not ${action} (${message}); is a quorum of etcd members reachable?`,
  );
}

export class EtcdConfigurationStore implements ConfigurationStore {
  readonly prefix: string;
  private readonly client: Etcd3;
  private readonly ns: Namespace;
  private readonly timeoutMs: number;
  private readonly reportRefreshMs: number;
  private readonly snapshotEvery: number;
  private readonly snapshotChunkBytes: number;
  private readonly logDeleteBatch: number;
  private readonly foldQuietMs: number;
  private readonly foldMaxDeferMs: number;
  /** When the last commit ended (performance.now()): a fold's requests wait for a quiet moment. */
  private lastCommitEnd = -Infinity;
  /** Aborted by close(): a fold waiting for a quiet moment stops waiting. */
  private readonly closing = new AbortController();
  private readonly onError: (err: unknown) => void;
  private readonly onLateWrite: (message: string) => void;
  private readonly resolveMs: number;
  /** The deadline of each attempt of a unary etcd call. */
  private readonly attemptMs: number;
  private readonly probeMs: number;
  private probeTimer: NodeJS.Timeout | undefined;
  /** The log entries (as stored) of commits answered STORE_OUTCOME_UNKNOWN, with when: told when they land. */
  private readonly unresolved = new Map<string, { version: number; at: string }>();
  /** head's mod_revision for each configuration this store loaded, committed or watched. */
  private readonly revisions = new WeakMap<Configuration, number>();
  /** etcd revision of the last load; watches start after it. */
  private loadedRevision = 0;
  /** The newest configuration this store knows of, and the records since the snapshot. */
  private latest: Configuration = emptyConfiguration;
  private sinceSnapshot = 0;
  private logBytes = 0;
  private snapshotBytes = 0;
  private snapshotting = false;
  /** The fold's step in progress ('encode', or its etcd request in flight): a commit's timeline names it (debug). */
  private foldStep: string | undefined;
  /** The last successful commit's timeline (lastCommitTimeline). */
  private timeline: Record<string, number | string> = {};
  /** What was last published per key, and its put (in flight or settled; a failed one is forgotten). */
  private readonly published = new Map<string, { json: string; at: number; value: string; put: Promise<void> }>();
  private listener: StoreListener | undefined;
  /**
   * The version our transaction in flight writes, and the log records watched meanwhile
   * at or after it: our own record often arrives before the transaction's answer, and
   * taken for another replica's it would be applied a second time. They are looked at
   * once the answer says whose they are.
   */
  private committing: number | undefined;
  private held: IKeyValue[] = [];
  private watchers: Watcher[] = [];
  private closed = false;
  /**
   * The mod_revision of nodes/<uuid> this replica last saw (read, watched or put): the guard of a commit that forgets
   * the node, so a report stored since is not deleted unseen.
   */
  private readonly reportRevisions = new Map<string, number>();
  /** Puts of nodes/<uuid> in flight, per node: a delete watched meanwhile is older than the report being put. */
  private readonly putsInFlight = new Map<string, number>();

  /** Bytes stored: the snapshot plus the log since (the metric flocker_store_size_bytes). */
  get storedBytes(): number {
    return this.snapshotBytes + this.logBytes;
  }

  constructor(options: EtcdStoreOptions) {
    this.prefix = (options.prefix ?? DEFAULT_ETCD_PREFIX).replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? DEFAULT_ETCD_TIMEOUT_MS;
    this.reportRefreshMs = options.reportRefreshMs ?? DEFAULT_REPORT_REFRESH_MS;
    this.snapshotEvery = options.snapshotEvery ?? DEFAULT_SNAPSHOT_EVERY;
    this.snapshotChunkBytes = options.snapshotChunkBytes ?? SNAPSHOT_CHUNK_BYTES;
    this.logDeleteBatch = Math.max(1, options.logDeleteBatch ?? LOG_DELETE_BATCH);
    this.foldQuietMs = Math.max(0, options.foldQuietMs ?? FOLD_QUIET_MS);
    this.foldMaxDeferMs = Math.max(0, options.foldMaxDeferMs ?? FOLD_MAX_DEFER_MS);
    this.onError = options.onError ?? (() => undefined);
    this.onLateWrite = options.onLateWrite ?? (() => undefined);
    this.resolveMs = Math.max(0, options.resolveMs ?? 2 * this.timeoutMs);
    this.attemptMs = Math.max(200, Math.floor(this.timeoutMs / 3));
    this.probeMs = Math.max(50, options.probeMs ?? Math.max(1000, Math.floor(this.timeoutMs / 2)));
    const etcdOptions: IOptions = {
      hosts: options.endpoints,
      dialTimeout: this.timeoutMs,
      // Streams (watches) live forever. Unary calls get a deadline per attempt of a third
      // of the timeout: the client makes up to 3 attempts, so a lost quorum answers 503
      // after about timeoutMs, and a request stranded by a dying leader is re-sent after
      // a third of it (re-sending a transaction is safe: see the commit id).
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + this.attemptMs }),
      faultHandling: { global: retryNotingAttempts },
      ...(options.caFile !== undefined
        ? {
            credentials: {
              rootCertificate: readFileSync(options.caFile),
              ...(options.keyFile !== undefined ? { privateKey: readFileSync(options.keyFile) } : {}),
              ...(options.certFile !== undefined ? { certChain: readFileSync(options.certFile) } : {}),
            },
          }
        : {}),
    };
    this.client = new Etcd3(etcdOptions);
    this.ns = this.client.namespace(`${this.prefix}/`);
  }

  private corrupt(key: string, why: string): StoreError {
    const full = key.startsWith(`${this.prefix}/`) ? key : `${this.prefix}/${key}`;
    return new StoreError('STORE_CORRUPT', `etcd key ${full} ${why}; restore it from a backup.`);
  }

  private parse<S extends z.ZodType>(schema: S, key: string, value: Buffer): z.infer<S> {
    let raw: unknown;
    try {
      raw = JSON.parse(value.toString('utf8'));
    } catch (err) {
      throw this.corrupt(key, `is not valid JSON (${(err as Error).message})`);
    }
    const parsed = schema.safeParse(raw);
    if (!parsed.success) throw this.corrupt(key, `is not valid: ${z.prettifyError(parsed.error)}`);
    return parsed.data;
  }

  /** Reads head, snapshot and log at one etcd revision and folds them into a configuration. */
  private async readAll(): Promise<{
    config: Configuration;
    revision: number;
    records: number;
    logBytes: number;
    snapshotBytes: number;
  }> {
    let head;
    let snapshot;
    let log;
    try {
      head = await this.ns.get(HEAD_KEY).exec();
      const at = head.header.revision;
      [snapshot, log] = await Promise.all([
        this.ns.get(SNAPSHOT_KEY).revision(at).exec(),
        this.ns.getAll().prefix(LOG_PREFIX).revision(at).sort('Key', 'Ascend').exec(),
      ]);
    } catch (err) {
      throw unavailable('answer a read', err);
    }
    const revision = Number(head.header.revision);
    const headKv = head.kvs[0];
    if (headKv === undefined) {
      this.revisions.set(emptyConfiguration, 0);
      return { config: emptyConfiguration, revision, records: 0, logBytes: 0, snapshotBytes: 0 };
    }
    const h = this.parse(Head, HEAD_KEY, headKv.value);
    let config = emptyConfiguration;
    const snapKv = snapshot.kvs[0];
    let snapshotBytes = snapKv?.value.length ?? 0;
    if (snapKv !== undefined) {
      const snap = this.parse(Snapshot, SNAPSHOT_KEY, snapKv.value);
      let doc: unknown;
      if ('config' in snap) doc = snap.config;
      else {
        // Chunks are written before the snapshot naming them, and deleted only by a later one: at this revision they are all there.
        let chunks;
        try {
          chunks = await this.ns
            .getAll()
            .prefix(`${CHUNKS_PREFIX}${snap.id}/`)
            .revision(head.header.revision)
            .sort('Key', 'Ascend')
            .exec();
        } catch (err) {
          throw unavailable('answer a read', err);
        }
        if (chunks.kvs.length !== snap.chunks)
          throw this.corrupt(
            SNAPSHOT_KEY,
            `names ${snap.chunks} chunks under snapshot/${snap.id}/, ${chunks.kvs.length} found`,
          );
        const text = chunks.kvs.map((kv) => kv.value.toString('utf8')).join('');
        snapshotBytes += chunks.kvs.reduce((n, kv) => n + kv.value.length, 0);
        try {
          doc = JSON.parse(text);
        } catch (err) {
          throw this.corrupt(SNAPSHOT_KEY, `chunks do not join into JSON (${(err as Error).message})`);
        }
      }
      config = decodeConfiguration(doc);
      if (config.version !== snap.version)
        throw this.corrupt(SNAPSHOT_KEY, `holds v${config.version}, not v${snap.version}`);
    }
    let records = 0;
    let logBytes = 0;
    for (const kv of log.kvs) {
      const key = kv.key.toString('utf8');
      const entry = this.parse(LogEntry, key, kv.value);
      if (entry.record.version <= config.version) continue; // covered by the snapshot
      if (entry.prev !== config.version)
        throw this.corrupt(key, `follows v${entry.prev}, but the log before it ends at v${config.version}`);
      config = applyRecords(config, [entry.record]);
      records += 1;
      logBytes += kv.value.length;
    }
    if (config.version !== h.version)
      throw this.corrupt(HEAD_KEY, `names v${h.version}, but snapshot and log end at v${config.version}`);
    this.revisions.set(config, Number(headKv.mod_revision));
    return { config, revision, records, logBytes, snapshotBytes };
  }

  async load(): Promise<Configuration> {
    const { config, revision, records, logBytes, snapshotBytes } = await this.readAll();
    this.loadedRevision = revision;
    this.latest = config;
    this.sinceSnapshot = records;
    this.logBytes = logBytes;
    this.snapshotBytes = snapshotBytes;
    return config;
  }

  /** True when etcd holds no configuration under the prefix (migration target check). */
  async isEmpty(): Promise<boolean> {
    try {
      return (await this.ns.get(HEAD_KEY).exec()).kvs.length === 0;
    } catch (err) {
      throw unavailable('answer a read', err);
    }
  }

  /**
   * Compare-and-swap from `base` (default: the newest configuration this store saw).
   * Resolves once etcd committed; rejects StoreConflict when `base` is out of date.
   */
  async commit(config: Configuration, base?: Configuration): Promise<void> {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'The configuration store is closed.');
    const from = base ?? this.latest;
    const expected = this.revisions.get(from);
    if (expected === undefined) {
      throw new StoreError(
        'STORE_BASE_UNKNOWN',
        `Configuration v${from.version} was not read from etcd; cannot compare-and-swap from it.`,
      );
    }
    this.committing = config.version;
    try {
      return await this.compareAndSwap(from, expected, config);
    } finally {
      this.committing = undefined;
      this.lastCommitEnd = performance.now();
      const held = this.held;
      this.held = [];
      if (this.listener !== undefined) for (const kv of held) this.onRecord(this.listener, kv);
    }
  }

  /**
   * Where the last successful commit's time went (ms): its log entry's encoding, its transaction (sent to answered),
   * and the fold's step in progress when it was sent and answered (a fold request in front of it in etcd's queue).
   */
  lastCommitTimeline(): Record<string, number | string> {
    return this.timeline;
  }

  private async compareAndSwap(from: Configuration, expected: number, config: Configuration): Promise<void> {
    const started = performance.now();
    const foldAtSend = this.foldStep;
    const id = randomBytes(12).toString('hex');
    const entry = JSON.stringify({ prev: from.version, record: diffConfiguration(from, config) });
    const encoded = performance.now();
    const ms = (x: number): number => Math.round(x * 100) / 100;
    const timeline = (): Record<string, number | string> => ({
      encode_ms: ms(encoded - started),
      txn_ms: ms(performance.now() - encoded),
      entry_bytes: entry.length,
      ...(foldAtSend !== undefined ? { fold_at_send: foldAtSend } : {}),
      ...(this.foldStep !== undefined ? { fold_at_answer: this.foldStep } : {}),
    });
    const forgotten = forgottenNodes(from, config);
    // The same transaction each time it is sent: only one of its copies can apply (they all compare head with
    // `expected`), and an answer to any copy tells whether one did (head's commit id, or our log entry).
    const send = () => {
      let txn = this.ns.if(HEAD_KEY, 'Mod', '==', expected);
      // A forgotten node's report as this replica last saw it (0: none stored), else it is not deleted.
      for (const uuid of forgotten)
        txn = txn.and(NODES_PREFIX + uuid, 'Mod', '==', this.reportRevisions.get(uuid) ?? 0);
      return (
        txn
          .then(
            this.ns.put(HEAD_KEY).value(JSON.stringify({ version: config.version, commit: id })),
            this.ns.put(logKey(config.version)).value(entry),
            ...forgotten.flatMap((uuid) => [
              this.ns.delete().key(NODES_PREFIX + uuid),
              this.ns.delete().key(CONTAINERS_PREFIX + uuid),
            ]),
          )
          // On a lost race, the records since `from` are usually all it takes to catch up.
          .else(
            this.ns.get(HEAD_KEY),
            this.ns.getAll().inRange({ start: logKey(from.version + 1), end: LOG_END }),
            ...forgotten.map((uuid) => this.ns.get(NODES_PREFIX + uuid)),
          )
          .commit()
      );
    };
    let res;
    const attempts: unknown[] = [];
    let resolved = false;
    try {
      res = await attemptsOfCall.run(attempts, send);
    } catch (err) {
      // Never sent: nothing can apply, a clean STORE_UNAVAILABLE.
      if (isControlError(err) || attempts.every(neverSent)) throw unavailable('confirm the write', err);
      // Sent without an answer: a leader may hold it in its log and commit it once a quorum is back (review T4
      // finding 1). Resolved before answering, else answered STORE_OUTCOME_UNKNOWN.
      resolved = true;
      res = await this.resolve(send, err, entry, config.version);
    }
    // An attempt before the answered one may have reached etcd (the client's retry, or resolve's re-sends).
    const ambiguous = resolved || !attempts.every(neverSent);
    if (res.succeeded) {
      this.timeline = timeline();
      this.reportsDeleted(forgotten);
      this.remember(from, config, Number(res.header.revision), entry.length);
      return;
    }
    const headKv = res.responses[0]?.response_range?.kvs?.[0];
    const logKvs = res.responses[1]?.response_range?.kvs ?? [];
    if (headKv !== undefined && this.parse(Head, HEAD_KEY, headKv.value).commit === id) {
      // The transaction was re-sent after a copy of it had committed: it is ours.
      this.reportsDeleted(forgotten);
      this.remember(from, config, Number(headKv.mod_revision), entry.length);
      return;
    }
    const mine = await landedCopy(
      logKvs,
      from.version,
      headKv === undefined ? undefined : this.parse(Head, HEAD_KEY, headKv.value).version,
      entry,
      id,
      ambiguous,
      async (revision) => {
        const then = (await this.ns.get(HEAD_KEY).revision(revision).exec()).kvs[0];
        return then === undefined ? undefined : this.parse(Head, HEAD_KEY, then.value).commit;
      },
    );
    // A copy may have committed and we cannot prove it did not: re-applying the request could apply it twice.
    if (mine === 'unknown')
      throw this.outcomeUnknown(
        entry,
        config.version,
        'a copy of it may have been applied before another commit (its proof, the log entry or head as of it, is ' +
          'not readable now)',
      );
    if (mine !== 'none') {
      // A copy committed and another replica's commit followed it (head moved on): ours, at the log entry's revision.
      // The commits after it come through the watch, as any other replica's.
      this.reportsDeleted(forgotten);
      this.remember(from, config, mine, entry.length);
      return;
    }
    // A forgotten node's report stored since this replica saw it (or head moved): what etcd holds is delivered, so
    // the forget re-applied on the StoreConflict below judges the node on it (alive: refused; else deleted next time).
    forgotten.forEach((uuid, i) => {
      const kv = res.responses[2 + i]?.response_range?.kvs?.[0];
      if (kv === undefined) {
        this.reportsDeleted([uuid]);
        return;
      }
      if (Number(kv.mod_revision) === this.reportRevisions.get(uuid)) return;
      this.reportRevisions.set(uuid, Number(kv.mod_revision));
      if (this.listener !== undefined) this.deliverReport(this.listener, NODES_PREFIX + uuid, kv.value);
    });
    // Lost the race: the winner is what etcd holds now.
    const steps: Configuration[] = [];
    const caught = this.catchUp(from, headKv, logKvs, steps);
    const winner = caught ?? (await this.readAll()).config;
    const known = this.latest.version;
    if (winner.version > known) this.latest = winner;
    // The records held while this commit was in flight are not delivered after it (none is newer than the winner):
    // each configuration they make is, here (the listener notes moves per configuration), or the re-read whole.
    if (caught === undefined) {
      if (winner.version > known) this.listener?.configuration(winner, true);
    } else for (const step of steps) if (step.version > known) this.listener?.configuration(step);
    throw new StoreConflict(winner);
  }

  /**
   * Re-sends a transaction that was sent without an answer until one copy is answered (whether an earlier copy
   * applied is then known: see compareAndSwap) or resolveMs has passed: then it fails with STORE_OUTCOME_UNKNOWN.
   * A copy still pending in a leader's log can apply later only while head stays at the revision it compares:
   * once any commit moves head (ours or another replica's), it never will.
   */
  private async resolve(
    send: () => ReturnType<ReturnType<Namespace['if']>['commit']>,
    first: unknown,
    entry: string,
    version: number,
  ): Promise<Awaited<ReturnType<ReturnType<Namespace['if']>['commit']>>> {
    let last = first;
    const deadline = performance.now() + this.resolveMs;
    // A copy is sent only if all its attempts can end by the deadline: the answer comes within resolveMs.
    const callMs = (ETCD_RETRIES + 1) * this.attemptMs;
    while (!this.closed && performance.now() + RESOLVE_PAUSE_MS + callMs <= deadline) {
      await sleep(RESOLVE_PAUSE_MS);
      if (this.closed) break;
      try {
        return await send();
      } catch (err) {
        if (isControlError(err)) throw err;
        last = err;
      }
    }
    throw this.outcomeUnknown(
      entry,
      version,
      `etcd did not confirm the write within ${Math.round((this.timeoutMs + this.resolveMs) / 1000)} s ` +
        `(${errorMessage(last)}): it was sent, so it may still be applied once etcd has a quorum`,
    );
  }

  /** STORE_OUTCOME_UNKNOWN for a sent write (`why`), remembered so that its landing later is told (landedLate). */
  private outcomeUnknown(entry: string, version: number, why: string): StoreError {
    const at = new Date().toISOString();
    // Bounded: an entry is forgotten once its version is taken (landedLate).
    if (this.unresolved.size >= 64) this.unresolved.delete(this.unresolved.keys().next().value ?? '');
    this.unresolved.set(entry, { version, at });
    return new StoreError('STORE_OUTCOME_UNKNOWN', `${why}; read it back before retrying.`);
  }

  /**
   * `from` plus the log records after it, if they reach head; undefined when the log no longer has them all. `steps`
   * gets the configuration after each record.
   */
  private catchUp(
    from: Configuration,
    headKv: IKeyValue | undefined,
    kvs: IKeyValue[],
    steps?: Configuration[],
  ): Configuration | undefined {
    if (headKv === undefined) return undefined;
    const head = this.parse(Head, HEAD_KEY, headKv.value);
    let config = from;
    for (const kv of kvs) {
      const entry = this.parse(LogEntry, kv.key.toString('utf8'), kv.value);
      if (entry.prev !== config.version) return undefined;
      config = applyRecords(config, [entry.record]);
      steps?.push(config);
    }
    if (config.version !== head.version) return undefined;
    this.revisions.set(config, Number(headKv.mod_revision));
    return config;
  }

  private remember(from: Configuration, config: Configuration, revision: number, bytes: number): void {
    this.revisions.set(config, revision);
    if (from === this.latest || config.version > this.latest.version) {
      this.latest = config;
      this.counted(bytes);
    }
    if (this.sinceSnapshot >= this.snapshotEvery && this.logBytes > this.snapshotBytes)
      void this.snapshot().catch(this.onError);
  }

  private counted(bytes: number): void {
    this.sinceSnapshot += 1;
    this.logBytes += bytes;
  }

  /** A snapshot's version from its first bytes (we write it first), without parsing megabytes. */
  private snapshotVersion(value: Buffer): number {
    const m = /^\{"version":(\d+),/.exec(value.subarray(0, 40).toString('utf8'));
    return m !== null ? Number(m[1]) : this.parse(Snapshot, SNAPSHOT_KEY, value).version;
  }

  /** Folds the log into a new snapshot of the newest configuration and deletes the records it covers. */
  async snapshot(): Promise<void> {
    if (this.snapshotting || this.closed) return;
    this.snapshotting = true;
    try {
      const config = this.latest;
      // What this snapshot covers; records counted meanwhile still count towards the next.
      const records = this.sinceSnapshot;
      const bytes = this.logBytes;
      const id = randomBytes(8).toString('hex');
      // Encoded and cut into chunks a slice at a time: in one go it blocked every request 80-600 ms at 100,000
      // datasets; joined whole and then cut, 69-288 ms (snapshotValuesYielding).
      this.foldStep = 'encode';
      const { value, chunks } = await snapshotValuesYielding(config.version, config, id, this.snapshotChunkBytes);
      this.foldStep = undefined;
      if (this.closed) return;
      // Never replace a newer snapshot (another replica may have folded further meanwhile).
      await this.giveWay();
      const current = await this.folding('get snapshot', () => this.ns.get(SNAPSHOT_KEY).exec());
      const kv = current.kvs[0];
      if (kv !== undefined && this.snapshotVersion(kv.value) >= config.version) return;
      await this.putChunks(chunks, true);
      await this.giveWay();
      const res = await this.folding('snapshot txn', () =>
        this.ns
          .if(SNAPSHOT_KEY, 'Mod', '==', kv === undefined ? 0 : Number(kv.mod_revision))
          .then(this.ns.put(SNAPSHOT_KEY).value(value), ...this.deleteOtherChunks(id))
          .commit(),
      );
      // Another replica's snapshot won (its commit deleted our chunks, or will): nothing to count.
      if (!res.succeeded) return;
      this.snapshotBytes = value.length + chunks.reduce((n, [, c]) => n + Buffer.byteLength(c), 0);
      // Under a steady stream of writes `latest` has always moved on by now: resetting
      // only when it had not left the counters high, and every write started a new snapshot.
      this.sinceSnapshot = Math.max(0, this.sinceSnapshot - records);
      this.logBytes = Math.max(0, this.logBytes - bytes);
      await this.deleteLogThrough(config.version);
    } catch (err) {
      // Closed part way (giveWay stops waiting): the rest goes with a later fold; nothing to report.
      if (this.closed) return;
      throw err;
    } finally {
      this.snapshotting = false;
      this.foldStep = undefined;
    }
  }

  /** A fold's etcd request, named while in flight (lastCommitTimeline). */
  private async folding<T>(step: string, run: () => Promise<T>): Promise<T> {
    this.foldStep = step;
    try {
      return await run();
    } finally {
      this.foldStep = undefined;
    }
  }

  /**
   * Delivers the stored node reports, then watches the log and the reports for changes
   * made through other replicas.
   */
  async subscribe(listener: StoreListener): Promise<void> {
    let reports;
    let containers;
    try {
      reports = await this.ns.getAll().prefix(NODES_PREFIX).exec();
      containers = await this.ns.getAll().prefix(CONTAINERS_PREFIX).exec();
    } catch (err) {
      throw unavailable('answer a read', err);
    }
    for (const kv of reports.kvs) {
      const key = kv.key.toString('utf8');
      this.sawReport(key, Number(kv.mod_revision));
      // What etcd held at this start: no news of the node, however recent its last_seen (review FR M1).
      this.deliverReport(listener, key, kv.value, true);
    }
    for (const kv of containers.kvs) this.deliverContainers(listener, kv.key.toString('utf8'), kv.value, true);
    const logWatch = await this.ns
      .watch()
      .prefix(LOG_PREFIX)
      .startRevision(String(this.loadedRevision + 1))
      .create();
    this.listener = listener;
    logWatch.on('put', (kv) => this.onRecord(listener, kv));
    const nodesWatch = await this.watchShared(
      NODES_PREFIX,
      reports.header.revision,
      (key, value) => this.deliverReport(listener, key, value),
      (uuid, revision) => {
        // Back already: a report of it this replica put after the delete, or is putting (one put before the delete
        // would have failed its transaction's guard, or been judged alive by the replica that forgot it).
        if ((this.reportRevisions.get(uuid) ?? 0) > revision || (this.putsInFlight.get(uuid) ?? 0) > 0) return;
        // Forgotten (through this replica or another): gone from here too, as after a restart, whatever this
        // replica made of the report it held (the forgetting replica judged it, on the newest stored).
        this.reportsDeleted([uuid]);
        listener.nodeGone?.(uuid);
      },
    );
    const containersWatch = await this.watchShared(
      CONTAINERS_PREFIX,
      containers.header.revision,
      (key, value) => this.deliverContainers(listener, key, value),
      // Deleted with nodes/<uuid>, whose delete tells the listener.
      (uuid) => this.published.delete(CONTAINERS_PREFIX + uuid),
    );
    for (const w of [logWatch, nodesWatch, containersWatch]) w.on('error', (err) => this.onError(err));
    this.probe(listener);
    this.watchers = [logWatch, nodesWatch, containersWatch];
  }

  /**
   * Watches the reports under `prefix` after `revision`, delivering those other replicas wrote, and every delete (a
   * forgotten node's: `deleted` gets its UUID).
   */
  private async watchShared(
    prefix: string,
    revision: string,
    deliver: (key: string, value: Buffer) => void,
    deleted: (uuid: string, revision: number) => void,
  ): Promise<Watcher> {
    const watch = await this.ns
      .watch()
      .prefix(prefix)
      .startRevision(String(Number(revision) + 1))
      .create();
    watch.on('delete', (kv) => {
      const key = kv.key.toString('utf8');
      deleted(key.slice(key.lastIndexOf('/') + 1), Number(kv.mod_revision));
    });
    watch.on('put', (kv) => {
      const key = kv.key.toString('utf8');
      this.sawReport(key, Number(kv.mod_revision));
      // Our own report coming back: known already, so not parsed again (1,000 agents
      // reporting would otherwise cost 1,000 schema checks on this replica too).
      const mine = this.published.get(prefix + key.slice(key.lastIndexOf('/') + 1))?.value;
      if (mine !== undefined && kv.value.length === Buffer.byteLength(mine) && kv.value.toString('utf8') === mine)
        return;
      deliver(key, kv.value);
    });
    return watch;
  }

  /**
   * A commit answered STORE_OUTCOME_UNKNOWN whose log entry is seen stored applied after all: told. One whose version
   * another entry took never will: forgotten.
   */
  private landedLate(value: string, version: number): void {
    const late = this.unresolved.get(value);
    if (late !== undefined) {
      this.onLateWrite(
        `the configuration write answered STORE_OUTCOME_UNKNOWN at ${late.at} was applied after all (v${late.version})`,
      );
    }
    for (const [key, u] of this.unresolved) if (u.version <= version) this.unresolved.delete(key);
  }

  private onRecord(listener: StoreListener, kv: IKeyValue): void {
    try {
      const key = kv.key.toString('utf8');
      // Our own commit coming back (each commit's, on the replica that wrote it) or one known already: its key says
      // its version, so it is skipped, or held while our commit is in flight, unparsed (a JSON parse and schema check
      // of the whole record for nothing, twice when held). Not while a commit answered STORE_OUTCOME_UNKNOWN waits to
      // be seen landing (landedLate reads every record).
      const keyed = this.unresolved.size === 0 ? logKeyVersion(key) : undefined;
      if (keyed !== undefined) {
        if (keyed <= this.latest.version) return;
        if (this.committing !== undefined && keyed >= this.committing) {
          this.held.push(kv);
          return;
        }
      }
      const entry = this.parse(LogEntry, key, kv.value);
      if (this.unresolved.size > 0) this.landedLate(kv.value.toString('utf8'), entry.record.version);
      if (entry.record.version <= this.latest.version) return; // ours, or already known
      if (this.committing !== undefined && entry.record.version >= this.committing) {
        this.held.push(kv);
        return;
      }
      if (entry.prev !== this.latest.version) {
        // Missed a record (e.g. a watch restarted after compaction): read everything again.
        void this.readAll().then((all) => {
          if (all.config.version <= this.latest.version) return;
          this.latest = all.config;
          listener.configuration(all.config, true);
        }, this.onError);
        return;
      }
      const config = applyRecords(this.latest, [entry.record]);
      // head was written in the same transaction, so it carries this revision.
      this.revisions.set(config, Number(kv.mod_revision));
      this.latest = config;
      this.counted(kv.value.length);
      listener.configuration(config);
    } catch (err) {
      this.onError(err);
    }
  }

  /** Notes the revision of a nodes/<uuid> key seen (the newest wins: a put's answer and its watch event race). */
  private sawReport(key: string, revision: number): void {
    if (!key.startsWith(NODES_PREFIX)) return;
    const uuid = key.slice(NODES_PREFIX.length);
    if (revision > (this.reportRevisions.get(uuid) ?? 0)) this.reportRevisions.set(uuid, revision);
  }

  /** The reports of `uuids` are gone from etcd: the next report of one is put again (it joins again as new). */
  private reportsDeleted(uuids: readonly string[]): void {
    for (const uuid of uuids) {
      this.reportRevisions.delete(uuid);
      this.published.delete(NODES_PREFIX + uuid);
      this.published.delete(CONTAINERS_PREFIX + uuid);
    }
  }

  private deliverReport(listener: StoreListener, key: string, value: Buffer, stored = false): void {
    try {
      const parsed = this.parse(StoredReport, key, value);
      listener.report(parsed.report, parsed.last_seen, stored);
    } catch (err) {
      this.onError(err);
    }
  }

  private deliverContainers(listener: StoreListener, key: string, value: Buffer, stored = false): void {
    try {
      const parsed = this.parse(StoredContainers, key, value);
      listener.containers?.(parsed.node, parsed.report, parsed.last_seen, stored);
    } catch (err) {
      this.onError(err);
    }
  }

  /**
   * Shares a node's report with the other replicas: at once when it changed, else at
   * most every reportRefreshMs(nodeTimeoutMs, the reportRefreshMs option) (refreshing
   * last_seen is all an unchanged report does). Resolves once etcd stored it (or the
   * put of an identical report in flight did); rejects STORE_UNAVAILABLE when it did not,
   * so the report is not answered as received.
   */
  publishReport(report: NodeReport, json: string, lastSeen: number, nodeTimeoutMs?: number): Promise<void> {
    const refresh =
      nodeTimeoutMs === undefined ? this.reportRefreshMs : reportRefreshMs(nodeTimeoutMs, this.reportRefreshMs);
    return this.share(
      NODES_PREFIX,
      report.uuid,
      json,
      lastSeen,
      `{"last_seen":${lastSeen},"report":${json}}`,
      'a node report',
      refresh,
    );
  }

  /** Shares a node's container report with the other replicas, as publishReport does node reports (failures go to onError). */
  publishContainers(uuid: string, report: ContainerReport, lastSeen: number): void {
    if (this.closed) return;
    const json = JSON.stringify(report);
    this.share(
      CONTAINERS_PREFIX,
      uuid,
      json,
      lastSeen,
      `{"last_seen":${lastSeen},"node":${JSON.stringify(uuid)},"report":${json}}`,
      'a container report',
      this.reportRefreshMs,
    ).catch((err: unknown) => this.onError(err));
  }

  private share(
    prefix: string,
    uuid: string,
    json: string,
    lastSeen: number,
    value: string,
    what: string,
    refreshMs: number,
  ): Promise<void> {
    // Closing: not shared, so not answered as received (503, the agent reports to another replica).
    if (this.closed) return Promise.reject(new StoreError('STORE_CLOSED', 'The configuration store is closed.'));
    const key = `${prefix}${uuid}`;
    const prev = this.published.get(key);
    // Identical and recent: answered with that put (a report is not taken as shared before it is). An earlier last_seen
    // (this replica's wall clock stepped back) is put: the others hear from the node by a changed one.
    if (prev !== undefined && prev.json === json && lastSeen >= prev.at && lastSeen - prev.at < refreshMs)
      return prev.put;
    const node = prefix === NODES_PREFIX ? uuid : undefined;
    if (node !== undefined) this.putsInFlight.set(node, (this.putsInFlight.get(node) ?? 0) + 1);
    const put = this.ns
      .put(key)
      .value(value)
      .exec()
      .finally(() => {
        if (node === undefined) return;
        const left = (this.putsInFlight.get(node) ?? 1) - 1;
        if (left > 0) this.putsInFlight.set(node, left);
        else this.putsInFlight.delete(node);
      })
      .then(
        (res) => this.sawReport(key, Number(res.header.revision)),
        (err: unknown) => {
          // Forgotten, so the next report is put again.
          if (this.published.get(key)?.put === put) this.published.delete(key);
          throw unavailable(`store ${what}`, err);
        },
      );
    this.published.set(key, { json, at: lastSeen, value, put });
    return put;
  }

  /**
   * Deletes the log records up to `version` (a stored snapshot covers them), at most logDeleteBatch
   * keys per request from the oldest left: a commit waits behind one batch, not thousands of keys.
   * Versions are consecutive, so batches are ranges of versions; a range that deleted nothing (records
   * another replica's snapshot took) looks the oldest up again. Stopped part way (a crash, closing),
   * the rest goes with the next snapshot's; until then a load skips them.
   */
  private async deleteLogThrough(version: number): Promise<void> {
    await this.giveWay();
    let from = await this.folding('find log', () => this.oldestLogVersion(version));
    while (from !== undefined && from <= version && !this.closed) {
      const start = logKey(from);
      const to = Math.min(version + 1, from + this.logDeleteBatch);
      await this.giveWay();
      const res = await this.folding('delete log', () =>
        this.ns
          .delete()
          .inRange({ start, end: logKey(to) })
          .exec(),
      );
      if (Number(res.deleted) === 0) await this.giveWay();
      from = Number(res.deleted) > 0 ? to : await this.folding('find log', () => this.oldestLogVersion(version));
    }
  }

  /** The oldest log record's version at or below `version`, if any. */
  private async oldestLogVersion(version: number): Promise<number | undefined> {
    const [key] = await this.ns
      .getAll()
      .inRange({ start: logKey(0), end: logKey(version + 1) })
      .limit(1)
      .keys();
    if (key === undefined) return undefined;
    const v = Number(key.slice(key.lastIndexOf('/') + 1));
    // Only logKey() names are written here; anything else is left alone rather than looped on.
    return Number.isSafeInteger(v) ? v : undefined;
  }

  /**
   * One chunk at a time (see SNAPSHOT_CHUNK_BYTES): commits go to etcd between them; a fold's (`fold`)
   * each when commits are quiet (giveWay).
   */
  private async putChunks(chunks: [string, string][], fold = false): Promise<void> {
    for (const [k, v] of chunks) {
      if (fold) await this.giveWay();
      const put = () => this.ns.put(k).value(v).exec();
      await (fold ? this.folding('put chunk', put) : put());
    }
  }

  /**
   * Waits until commits have been quiet for foldQuietMs (at most foldMaxDeferMs): a fold's next request
   * then does not land in front of a commit in etcd's queue (see FOLD_QUIET_MS).
   */
  private async giveWay(): Promise<void> {
    const deadline = performance.now() + this.foldMaxDeferMs;
    for (;;) {
      // A fold never goes on past close (its next request would fail on the closed client anyway).
      if (this.closed) throw new StoreError('STORE_CLOSED', 'The configuration store is closed.');
      const ms = foldWaitMs(
        performance.now(),
        this.committing !== undefined,
        this.lastCommitEnd,
        this.foldQuietMs,
        deadline,
      );
      if (ms <= 0) return;
      await sleep(Math.max(1, ms), undefined, { signal: this.closing.signal }).catch(() => undefined);
    }
  }

  /**
   * Deletes every snapshot chunk but those of `id` (the snapshot being committed): the previous snapshot's,
   * and any a replica wrote and never committed (it lost the race, or died between its chunks and its commit).
   */
  private deleteOtherChunks(id: string) {
    return [
      this.ns.delete().inRange({ start: CHUNKS_PREFIX, end: `${CHUNKS_PREFIX}${id}/` }),
      // '0' follows '/': the first key after snapshot/<id>/….
      this.ns.delete().inRange({ start: `${CHUNKS_PREFIX}${id}0`, end: CHUNKS_END }),
    ];
  }

  /** Replaces whatever the prefix holds by `config` as a snapshot (for migrate-store). */
  async replaceAll(config: Configuration, force: boolean): Promise<void> {
    const id = randomBytes(8).toString('hex');
    const { value, chunks } = snapshotValues(config.version, encodeConfiguration(config), id, this.snapshotChunkBytes);
    // Written first (a refused replace leaves them to the next snapshot's clean-up, never named by a snapshot).
    await this.putChunks(chunks).catch((err: unknown) => {
      throw unavailable('store the snapshot', err);
    });
    const ops = [
      this.ns.delete().prefix(LOG_PREFIX),
      ...this.deleteOtherChunks(id),
      this.ns.put(SNAPSHOT_KEY).value(value),
      this.ns.put(HEAD_KEY).value(JSON.stringify({ version: config.version, commit: randomBytes(12).toString('hex') })),
    ];
    const res = force
      ? await this.ns
          .if(HEAD_KEY, 'Mod', '<', Number.MAX_SAFE_INTEGER)
          .then(...ops)
          .commit()
      : await this.ns
          .if(HEAD_KEY, 'Create', '==', 0)
          .then(...ops)
          .commit();
    if (!res.succeeded) {
      throw new StoreError(
        'STORE_NOT_EMPTY',
        `etcd already holds a configuration under ${this.prefix}/; pass --force to overwrite it.`,
      );
    }
  }

  /**
   * Reads head linearizably every probeMs (never two at once) and tells `listener` when etcd stops or starts again
   * answering: a watch alone does not tell, a minority member keeps serving it (review T4 finding 2).
   */
  private probe(listener: StoreListener): void {
    let up = true;
    let failures = 0;
    const tick = async (): Promise<void> => {
      try {
        await this.ns.get(HEAD_KEY).exec();
        if (!up && !this.closed) await this.catchUpReports(listener);
        failures = 0;
        if (!up && !this.closed) {
          up = true;
          listener.reachable?.(true);
        }
      } catch (err) {
        failures += 1;
        if (up && failures >= PROBE_FAILURES && !this.closed) {
          up = false;
          listener.reachable?.(false, `etcd did not answer a read (${errorMessage(err)})`);
        }
      }
      if (!this.closed) this.probeTimer = setTimeout(() => void tick(), this.probeMs).unref();
    };
    this.probeTimer = setTimeout(() => void tick(), this.probeMs).unref();
  }

  /**
   * The node reports other replicas stored while this one was cut off, read at once and delivered (news, as from the
   * watch) before the listener is told the store answers again: its watch reconnects on its own backoff (up to 30 s,
   * the node timeout's order), and the listener judges liveness from then on (review FR19-10). Throws when unreadable:
   * the store still counts as unreachable.
   */
  private async catchUpReports(listener: StoreListener): Promise<void> {
    const reports = await this.ns.getAll().prefix(NODES_PREFIX).exec();
    for (const kv of reports.kvs) {
      const key = kv.key.toString('utf8');
      const uuid = key.slice(key.lastIndexOf('/') + 1);
      // Seen already (read, watched or put by this replica).
      if (Number(kv.mod_revision) <= (this.reportRevisions.get(uuid) ?? 0)) continue;
      this.sawReport(NODES_PREFIX + uuid, Number(kv.mod_revision));
      this.deliverReport(listener, key, kv.value);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.probeTimer);
    this.closing.abort();
    await Promise.all(this.watchers.map((w) => w.cancel().catch(() => undefined)));
    this.client.close();
  }
}
