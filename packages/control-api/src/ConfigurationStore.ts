/**
 * Durable storage of the configuration. The embedded default keeps a snapshot
 * (current_configuration.json, replaced atomically: temp file, fsync, rename, fsync
 * dir) plus an append-only write-ahead log of changes (configuration.log): a commit
 * appends one small checksummed record and fsyncs it, instead of rewriting the whole
 * document. The log is folded into a new snapshot in the background once it grows
 * past the snapshot's size. Recovery = snapshot + every valid log record after it; a
 * torn last record (crash mid-append) was never acknowledged and is cut off.
 * A full disk (ENOSPC, a short write) fails the commit with 503 STORE_FULL, never
 * acknowledges it, and cuts the log back to its last whole record at once; commits
 * work again as soon as there is space, without a restart.
 */
import { constants as fsConstants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { errorMessage } from '@flocker/runtime';
import { z } from 'zod';
import {
  ContainerConfiguration,
  DatasetConfiguration,
  isNoSpace,
  NodeSummary,
  NodeUuid,
  OpaqueId,
  SnapshotConfiguration,
  writeAll,
  writeFileDurable,
} from '@flocker/api';
import type { DurableFileOps } from '@flocker/api';
import type { ContainerReport, NodeReport } from '@flocker/api';
import type { Configuration, StoredLease } from './configuration';
import { emptyConfiguration } from './configuration';
import { type ControlError, isControlError, StoreError } from './errors';
import { jsonOf } from './json';
import { applyRecords, decodeLog, diffConfiguration, encodeRecord, StoredLeaseSchema } from './ConfigurationLog';
import { PersistentMap } from './PersistentMap';

export interface ConfigurationStore {
  /** The last committed configuration, or the empty one on first start. */
  load(): Promise<Configuration>;
  /**
   * Resolves only once `config` is durable. Callers serialize commits. A store shared
   * by several replicas compares against `base` (what `config` was computed from) and
   * rejects with a StoreConflict carrying the newer configuration when it lost a race.
   */
  commit(config: Configuration, base?: Configuration): Promise<void>;
  /** Finishes background work and releases files; the store is unusable afterwards. */
  close?(): Promise<void>;
  /** Shared stores: delivers stored node reports, then changes made through other replicas. */
  subscribe?(listener: StoreListener): Promise<void>;
  /**
   * Shared stores: makes a node's report (and its last-seen time) visible to other replicas,
   * an unchanged one at least every nodeTimeoutMs / 4; resolves once it is (rejects if it is not).
   */
  publishReport?(report: NodeReport, json: string, lastSeen: number, nodeTimeoutMs: number): Promise<void>;
  /** Shared stores: makes a node's container report (and when it came) visible to other replicas. */
  publishContainers?(uuid: string, report: ContainerReport, lastSeen: number): void;
  /** Bytes the configuration takes in the store (snapshot plus log), for the metrics. */
  readonly storedBytes?: number;
  /** Where the last successful commit's time went inside the store (ms, and what ran beside it): debug logs only. */
  lastCommitTimeline?(): Record<string, number | string>;
  /**
   * Stores without node reports (the file store): the identity each node last reported (NODE_IDENTITIES_FILE). A
   * restarted service names a node it declares dead without a report since its start to the agents by it (its
   * instance, to force-detach; its host, for messages). etcd keeps whole reports (nodes/…) instead.
   */
  loadNodeIdentities?(): Promise<NodeIdentitiesLoaded>;
  /**
   * Resolves once `identity` is durable (with any others recorded meanwhile: one write for all of them). Another
   * node's identity naming the same compute instance is dropped in the same write (superseded).
   */
  recordNodeIdentity?(identity: NodeIdentity): Promise<void>;
  /** Resolves once the identities of `uuids` are durably gone (a forgotten node: forgetNode.ts). */
  forgetNodeIdentities?(uuids: readonly string[]): Promise<void>;
}

/**
 * What a node report says about the node itself, not its state: kept by the file store beside the configuration, in a
 * file of its own (older releases ignore it: the store format is unchanged).
 */
export const NodeIdentity = z
  .object({
    uuid: NodeUuid,
    era: OpaqueId,
    host: z.string().min(1),
    instance_id: OpaqueId,
    backend: z.string().min(1),
    zone: z.string().min(1).max(255).optional(),
  })
  .strict();
export type NodeIdentity = z.infer<typeof NodeIdentity>;

/** The identities a store kept, and how many of its entries it could not read (skipped, logged by the caller). */
export interface NodeIdentitiesLoaded {
  readonly identities: ReadonlyMap<string, NodeIdentity>;
  readonly skipped: number;
}

/** The identity part of a report (NodeIdentity). */
export function identityOf(report: NodeReport): NodeIdentity {
  const { uuid, era, host, instance_id, backend, zone } = report;
  return { uuid, era, host, instance_id, backend, ...(zone !== undefined ? { zone } : {}) };
}

export function sameIdentity(a: NodeIdentity | undefined, b: NodeIdentity): boolean {
  return (
    a !== undefined &&
    a.uuid === b.uuid &&
    a.era === b.era &&
    a.host === b.host &&
    a.instance_id === b.instance_id &&
    a.backend === b.backend &&
    a.zone === b.zone
  );
}

export const NODE_IDENTITIES_FILE = 'node_identities.json';
/** The file's frame; each entry is checked on its own (loadNodeIdentities). */
const NodeIdentityList = z.object({ nodes: z.array(z.unknown()) });

/** What a shared store tells the control state about other replicas' changes. */
export interface StoreListener {
  /** `whole`: read whole again (records were missed): the changes since the last one delivered are not known. */
  configuration(config: Configuration, whole?: boolean): void;
  /**
   * A node report another replica stored. `stored`: read at subscribe (what the store held at this start, however
   * old: no news of the node), not a put seen since (a replica heard from it).
   */
  report(report: NodeReport, lastSeen: number, stored?: boolean): void;
  /**
   * A container agent's report received by another replica. `stored`: from the store's read at this start (its age is
   * judged on this replica's wall clock then, NodeReports.externalContainers).
   */
  containers?(uuid: string, report: ContainerReport, lastSeen: number, stored?: boolean): void;
  /**
   * A node's stored report was deleted: it was forgotten (forgetNode.ts), through this replica or another. To be dropped
   * whatever this replica made of its held report (not when the node reports here again meanwhile: the store then
   * does not call this, its put being newer than the delete).
   */
  nodeGone?(uuid: string): void;
  /**
   * Shared stores: the store stopped (up false, `why`) or started again (up true) answering this replica's probe (a
   * linearizable read): while it does not, this replica's view may be stale (review T4 finding 2).
   */
  reachable?(up: boolean, why?: string): void;
}

export const CURRENT_FORMAT_VERSION = 1;
export const CONFIGURATION_FILE = 'current_configuration.json';
export const LOG_FILE = 'configuration.log';
export const LOG_FORMAT_VERSION = 1;
const LOG_HEADER = `flocker-configuration-log ${LOG_FORMAT_VERSION}\n`;

const PersistedV1 = z
  .object({
    format_version: z.literal(1),
    version: z.number().int().nonnegative(),
    datasets: z.array(DatasetConfiguration),
    leases: z.array(StoredLeaseSchema),
    nodes: z.array(NodeSummary),
    /** Added with the container API; older documents have none. */
    containers: z.array(ContainerConfiguration).optional(),
    /** Added with snapshots (issue 20); older documents have none, and a configuration without any writes none. */
    snapshots: z.array(SnapshotConfiguration).optional(),
  })
  .strict();
type PersistedV1 = z.infer<typeof PersistedV1>;

/**
 * Upgrades an older on-disk document by one format version. Key = the version it
 * upgrades from. Empty while format 1 is the only one; add `1: (doc) => …` for format 2.
 */
export type Migration = (doc: Record<string, unknown>) => Record<string, unknown>;
export const migrations: Readonly<Record<number, Migration>> = {};

export function migrate(
  raw: unknown,
  steps: Readonly<Record<number, Migration>> = migrations,
  target = CURRENT_FORMAT_VERSION,
): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  let doc = raw as Record<string, unknown>;
  for (;;) {
    const v = doc['format_version'];
    if (typeof v !== 'number' || v >= target) return doc;
    const step = steps[v];
    if (step === undefined) {
      throw new StoreError('STORE_FORMAT_UNSUPPORTED', `No migration from configuration format ${v}.`);
    }
    doc = step(doc);
  }
}

export function decodeConfiguration(raw: unknown): Configuration {
  const migrated = migrate(raw);
  const parsed = PersistedV1.safeParse(migrated);
  if (!parsed.success) {
    const v =
      typeof migrated === 'object' && migrated !== null
        ? (migrated as { format_version?: unknown }).format_version
        : undefined;
    if (typeof v === 'number' && v > CURRENT_FORMAT_VERSION) {
      throw new StoreError(
        'STORE_FORMAT_TOO_NEW',
        `The stored configuration has format ${v}, newer than this control service understands (${CURRENT_FORMAT_VERSION}). Upgrade flocker-control.`,
      );
    }
    throw new StoreError('STORE_CORRUPT', `The stored configuration is not valid: ${z.prettifyError(parsed.error)}`);
  }
  const doc = parsed.data;
  // Persistent from the start: the first writes after a load share these bases (no copy, no full diff).
  const own = <V>(entries: Array<[string, V]>): ReadonlyMap<string, V> => PersistentMap.adopt(new Map(entries));
  return {
    version: doc.version,
    datasets: own(doc.datasets.map((d) => [d.dataset_id, d])),
    leases: own(doc.leases.map((l): [string, StoredLease] => [l.dataset_id, l])),
    nodes: own(doc.nodes.map((n) => [n.uuid, n])),
    ...(doc.containers !== undefined ? { containers: own(doc.containers.map((c) => [c.name, c])) } : {}),
    ...(doc.snapshots !== undefined ? { snapshots: own(doc.snapshots.map((s) => [s.snapshot_id, s])) } : {}),
  };
}

export function encodeConfiguration(config: Configuration): string {
  return Array.from(encodeConfigurationSlices(config)).join('');
}

/**
 * Encoding work allowed between two turns of the event loop while a snapshot is encoded. A create
 * needs several turns (its request, the group commit, the store's answer, its response) and waits
 * up to this long at each: slices of a fixed 2,000 entries took 4-8 ms of CPU (20-150 ms on a loaded
 * host) when their values had not been stringified before; at 1,000 agents the etcd store's snapshot
 * fell on the scale bench's measured creates (issue 23).
 */
export const ENCODE_TURN_MS = 1;
/** Entries encoded between two looks at the clock: ~0.1 ms quiet, a few ms at worst under load. */
export const ENCODE_SLICE_ENTRIES = 32;

/**
 * Resolves after one turn of the event loop (setImmediate: after the I/O callbacks already due), so
 * requests that arrived meanwhile run before what follows: a group commit gathering the writes of
 * this turn, or long work giving way between two slices.
 */
export function nextTurn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/** Lets the event loop run (nextTurn) once `budgetMs` of work went by since the last turn. */
export class TurnBudget {
  private since: number;
  constructor(
    private readonly budgetMs: number = ENCODE_TURN_MS,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.since = now();
  }

  /** Resolves at once within the budget; past it, after a turn of the event loop (and starts a new budget). */
  async spent(): Promise<void> {
    if (this.now() - this.since < this.budgetMs) return;
    await nextTurn();
    this.reset();
  }

  /** The event loop ran anyway (another await): a new budget from now. */
  reset(): void {
    this.since = this.now();
  }
}

export interface EncodeYieldingOptions {
  /** Entries encoded between looks at the budget (default ENCODE_SLICE_ENTRIES). */
  entriesPerSlice?: number;
  /** Work between turns of the event loop (default ENCODE_TURN_MS). */
  budgetMs?: number;
  /** The clock the budget is measured on (default performance.now; tests pass a fake one). */
  now?: () => number;
}

/**
 * The snapshot document (exactly encodeConfiguration's text) in slices of at most
 * `entriesPerSlice` entries, so the store can write it a slice at a time and let
 * requests run in between: 100,000 datasets are ~16 MB of JSON, ~0.5 s of encoding
 * in one go after a restart (values not stringified yet), ~80 ms after.
 */
export function* encodeConfigurationSlices(config: Configuration, entriesPerSlice = 2000): Generator<string, void> {
  const head: Omit<PersistedV1, 'datasets' | 'leases' | 'nodes' | 'containers' | 'snapshots'> = {
    format_version: CURRENT_FORMAT_VERSION,
    version: config.version,
  };
  yield JSON.stringify(head).slice(0, -1);
  yield* arraySlices('datasets', config.datasets.values(), entriesPerSlice);
  yield* arraySlices('leases', config.leases.values(), entriesPerSlice);
  yield* arraySlices('nodes', config.nodes.values(), entriesPerSlice);
  if (config.containers !== undefined && config.containers.size > 0)
    yield* arraySlices('containers', config.containers.values(), entriesPerSlice);
  if (config.snapshots !== undefined && config.snapshots.size > 0)
    yield* arraySlices('snapshots', config.snapshots.values(), entriesPerSlice);
  yield '}\n';
}

/** `,\n"<name>":[\n` then the values' JSON one a line (comma-separated), then `]`. */
function* arraySlices(name: string, values: Iterable<object>, perSlice: number): Generator<string, void> {
  yield `,\n"${name}":[\n`;
  let parts: string[] = [];
  let separator = '';
  for (const v of values) {
    parts.push(jsonOf(v));
    if (parts.length >= perSlice) {
      yield separator + parts.join(',\n');
      separator = ',\n';
      parts = [];
    }
  }
  if (parts.length > 0) yield separator + parts.join(',\n');
  yield ']';
}

/**
 * How the log is opened for appends: read-write (compaction reads its tail; not O_APPEND, records go at a known
 * offset) and O_DSYNC, so each record is on stable storage when its write returns, as after an fdatasync. Where the
 * platform has no O_DSYNC (Node leaves it undefined, e.g. on Windows) the log is opened read-write and each record is
 * followed by an fdatasync instead: never an acknowledged commit without a sync (review s28 F8).
 */
export function logAppendMode(constants: { O_RDWR: number; O_DSYNC?: number }): {
  flags: number;
  syncAfterWrite: boolean;
} {
  return constants.O_DSYNC === undefined
    ? { flags: constants.O_RDWR, syncAfterWrite: true }
    : { flags: constants.O_RDWR | constants.O_DSYNC, syncAfterWrite: false };
}
const LOG_APPEND_MODE = logAppendMode(fsConstants);
export const LOG_APPEND_FLAGS = LOG_APPEND_MODE.flags;

/** The snapshot is encoded and written about this much at a time (see writeSnapshot). */
const SNAPSHOT_WRITE_BYTES = 512 * 1024;

export interface FileConfigurationStoreOptions {
  /** The log is compacted once it is larger than this and than the last snapshot. Default 1 MiB. */
  compactMinBytes?: number;
  /** Told about a failed background compaction (the log keeps growing; retried later). */
  onCompactionError?: (err: unknown) => void;
  /**
   * Opens the log and snapshot files (fs.promises.open); tests put a disk that runs full here. The log is opened with
   * numeric flags (LOG_APPEND_FLAGS), the others with fs.open's letters.
   */
  openFile?: (file: string, flags: string | number, mode?: number) => Promise<FileHandle>;
  /** Bytes of snapshot encoded and written at a time (default 512 KiB); tests cut a snapshot into many writes. */
  snapshotWriteBytes?: number;
}

export class FileConfigurationStore implements ConfigurationStore {
  readonly file: string;
  readonly logFile: string;
  private readonly tmp: string;
  private readonly logTmp: string;
  private readonly compactMinBytes: number;
  private readonly snapshotWriteBytes: number;
  private readonly onCompactionError: (err: unknown) => void;
  private readonly openFile: (file: string, flags: string | number, mode?: number) => Promise<FileHandle>;

  /** The configuration the snapshot plus the log on disk amount to. */
  private last: Configuration | undefined;
  private log: FileHandle | undefined;
  private logBytes = 0;
  private snapshotBytes = 0;
  /** Serializes appends with the log swap at the end of a compaction. */
  private queue: Promise<unknown> = Promise.resolve();
  private compacting: Promise<void> | undefined;
  /** A failed append is not cut off yet: appending more would bury garbage mid-log. */
  private needsRepair = false;
  /** A rename in dataDir is not fsynced yet: the next commit does it before acknowledging. */
  private dirUnsynced = false;
  private readonly fileOps: DurableFileOps;
  private closed = false;
  private readonly identitiesFile: string;
  private readonly identities = new Map<string, NodeIdentity>();
  /** The identities write in flight, and the next one (callers arriving meanwhile share it). */
  private identityWrite: Promise<void> = Promise.resolve();
  private nextIdentityWrite: Promise<void> | undefined;

  /** Bytes stored: the snapshot plus the log since (the metric flocker_store_size_bytes). */
  get storedBytes(): number {
    return this.snapshotBytes + this.logBytes;
  }

  constructor(
    readonly dataDir: string,
    options: FileConfigurationStoreOptions = {},
  ) {
    this.file = path.join(dataDir, CONFIGURATION_FILE);
    this.tmp = `${this.file}.tmp`;
    this.logFile = path.join(dataDir, LOG_FILE);
    this.logTmp = `${this.logFile}.tmp`;
    this.compactMinBytes = options.compactMinBytes ?? 1024 * 1024;
    this.snapshotWriteBytes = options.snapshotWriteBytes ?? SNAPSHOT_WRITE_BYTES;
    this.onCompactionError = options.onCompactionError ?? (() => undefined);
    this.openFile = options.openFile ?? ((file, flags, mode) => fs.open(file, flags, mode));
    this.fileOps = { open: this.openFile, rename: (from, to) => fs.rename(from, to), rm: (file, o) => fs.rm(file, o) };
    this.identitiesFile = path.join(dataDir, NODE_IDENTITIES_FILE);
  }

  /**
   * The identities recorded. An unreadable file is not the configuration: it costs only the naming of nodes dead
   * since before a restart, so it is read as empty (and rewritten at the next identity recorded).
   */
  async loadNodeIdentities(): Promise<NodeIdentitiesLoaded> {
    this.identities.clear();
    let text: string;
    try {
      text = await fs.readFile(this.identitiesFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { identities: new Map(), skipped: 0 };
      // The caller reads it as empty and says so (ControlState.open): the service starts.
      throw new Error(`${this.identitiesFile} cannot be read: ${String(err)}`, { cause: err });
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      // Written by rename, so only a hand edit or a broken disk makes it so.
      throw new Error(`${this.identitiesFile} is not JSON: ${String(err)}`, { cause: err });
    }
    const list = NodeIdentityList.safeParse(doc);
    if (!list.success) throw new Error(`${this.identitiesFile} is not a list of node identities`);
    // Entry by entry: one a newer release wrote differently costs only that node's naming, not everyone's.
    let skipped = 0;
    for (const entry of list.data.nodes) {
      const n = NodeIdentity.safeParse(entry);
      if (n.success) this.identities.set(n.data.uuid, n.data);
      else skipped++;
    }
    return { identities: new Map(this.identities), skipped };
  }

  recordNodeIdentity(identity: NodeIdentity): Promise<void> {
    // Another node naming this compute instance is superseded (the host's agent reinstalled under a new UUID): kept,
    // it would come back after each restart as a ghost carrying a live node's instance (review FR finding 9).
    for (const [uuid, other] of this.identities)
      if (uuid !== identity.uuid && other.instance_id === identity.instance_id) this.identities.delete(uuid);
    this.identities.set(identity.uuid, identity);
    return this.writeIdentities();
  }

  forgetNodeIdentities(uuids: readonly string[]): Promise<void> {
    for (const uuid of uuids) this.identities.delete(uuid);
    return this.writeIdentities();
  }

  /** Writes the identities as they are now, after the write in flight (callers arriving meanwhile share the next). */
  private writeIdentities(): Promise<void> {
    if (this.nextIdentityWrite !== undefined) return this.nextIdentityWrite;
    const next = this.identityWrite
      .catch(() => undefined)
      .then(() => {
        // From here on a new identity waits for the write after this one.
        this.nextIdentityWrite = undefined;
        const doc = JSON.stringify({ nodes: [...this.identities.values()] });
        return writeFileDurable(this.identitiesFile, `${doc}\n`, { ops: this.fileOps });
      });
    this.nextIdentityWrite = next;
    this.identityWrite = next;
    return next;
  }

  async load(): Promise<Configuration> {
    await fs.mkdir(this.dataDir, { recursive: true, mode: 0o700 });
    await this.log?.close();
    this.log = undefined;
    const snapshot = await this.readSnapshot();
    const config = await this.replayLog(snapshot);
    this.needsRepair = false;
    // The append handle opens at the first commit, so a read-only load holds no file open.
    this.last = config;
    return config;
  }

  private async readSnapshot(): Promise<Configuration> {
    let text: string;
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.snapshotBytes = 0;
        return emptyConfiguration;
      }
      throw err;
    }
    this.snapshotBytes = Buffer.byteLength(text);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new StoreError('STORE_CORRUPT', `${this.file} is not valid JSON: ${(err as Error).message}`);
    }
    return decodeConfiguration(raw);
  }

  /** Applies the log's records newer than the snapshot; cuts off a torn tail; writes a fresh log if none. */
  private async replayLog(snapshot: Configuration): Promise<Configuration> {
    let data: Buffer;
    try {
      data = await fs.readFile(this.logFile);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await this.writeFreshLog(Buffer.alloc(0));
      return snapshot;
    }
    const header = Buffer.from(LOG_HEADER);
    if (data.length < header.length || !data.subarray(0, header.length).equals(header)) {
      const firstLine = data.toString('utf8', 0, Math.min(data.length, 64)).split('\n')[0] ?? '';
      const m = /^flocker-configuration-log (\d+)$/.exec(firstLine);
      if (m !== null && Number(m[1]) > LOG_FORMAT_VERSION) {
        throw new StoreError(
          'STORE_FORMAT_TOO_NEW',
          `${this.logFile} has format ${m[1]}, newer than this control service understands (${LOG_FORMAT_VERSION}). Upgrade flocker-control.`,
        );
      }
      if (data.length <= header.length && header.subarray(0, data.length).equals(data)) {
        // Crashed while creating the log: it held nothing yet.
        await this.writeFreshLog(Buffer.alloc(0));
        return snapshot;
      }
      throw new StoreError('STORE_CORRUPT', `${this.logFile} does not start with "${LOG_HEADER.trim()}".`);
    }
    const decoded = decodeLog(data, header.length, snapshot.version, this.logFile);
    if (decoded.tornBytes > 0) {
      // Never acknowledged (acks wait for the fsync): drop it so appends continue from a clean end.
      await fs.truncate(this.logFile, decoded.validBytes);
      const h = await fs.open(this.logFile, 'r+');
      try {
        await h.datasync();
      } finally {
        await h.close();
      }
    }
    this.logBytes = decoded.validBytes;
    return applyRecords(snapshot, decoded.records);
  }

  /**
   * Replaces the log by header + `records` atomically (temp, every byte, fsync, rename).
   * Once renamed, appends go to the new file even if the directory fsync then fails:
   * the next commit syncs the directory before it is acknowledged.
   */
  private async writeFreshLog(records: Buffer): Promise<void> {
    const data = Buffer.concat([Buffer.from(LOG_HEADER), records]);
    await writeFileDurable(this.logFile, data, { tmp: this.logTmp, syncDir: false, ops: this.fileOps });
    // The old handle points at the replaced file; the next commit opens the new one.
    const old = this.log;
    this.log = undefined;
    this.logBytes = data.length;
    this.dirUnsynced = true;
    await old?.close().catch(() => undefined);
    await this.syncDir();
    this.dirUnsynced = false;
  }

  private async syncDir(): Promise<void> {
    // A rename is only durable once the directory entry is.
    const dir = await fs.open(this.dataDir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Appends what changed since the last commit as one record and resolves once it is
   * durable (LOG_APPEND_FLAGS). Every byte is written at the log's known end (a short write is continued);
   * any failure cuts the log back to exactly that end, so it stays a sequence of whole
   * records, and rejects with 503 (STORE_FULL on ENOSPC/EDQUOT): never acknowledged.
   */
  async commit(config: Configuration): Promise<void> {
    if (this.last === undefined) await this.load();
    await this.exclusive(async () => {
      if (this.closed) throw new StoreError('STORE_CLOSED', 'The configuration store is closed.');
      const last = this.last as Configuration;
      const line = Buffer.from(encodeRecord(diffConfiguration(last, config)));
      const at = this.logBytes;
      let log: FileHandle | undefined;
      try {
        // Not O_APPEND: records go exactly at `at`, never after bytes a failed write left.
        log = this.log ??= await this.openFile(this.logFile, LOG_APPEND_FLAGS);
        if (this.needsRepair) await this.cutBack(log, at);
        if (this.dirUnsynced) {
          await this.syncDir();
          this.dirUnsynced = false;
        }
        // Durable when the write returns (O_DSYNC: fdatasync's guarantee, the record and the file's new size): one
        // trip to the thread pool per commit where a write and then a datasync took two (issue 23: every write's
        // answer, `docker volume rm`'s DELETE among them, waits on it).
        await writeAll(log, line, at, this.logFile);
        if (LOG_APPEND_MODE.syncAfterWrite) await log.datasync();
      } catch (err) {
        if (log !== undefined) await this.cutBack(log, at).catch(() => undefined);
        throw this.writeFailure(err);
      }
      this.logBytes = at + line.length;
      this.last = config;
    });
    if (this.logBytes > Math.max(this.compactMinBytes, this.snapshotBytes))
      void this.compact().catch(this.onCompactionError);
  }

  /**
   * Undoes a failed append: truncates the log to `end` (the end of the last whole
   * record), flushes and checks the size. Truncating frees space, so it works on a
   * full disk; if it does not, every commit retries it first and fails until it does.
   */
  private async cutBack(log: FileHandle, end: number): Promise<void> {
    this.needsRepair = true;
    await log.truncate(end);
    await log.datasync();
    const { size } = await log.stat();
    if (size !== end) throw new Error(`${this.logFile} is ${size} bytes after truncating it to ${end}`);
    this.needsRepair = false;
  }

  private writeFailure(err: unknown): ControlError {
    if (isControlError(err)) return err;
    const code =
      typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string'
        ? (err as { code: string }).code
        : undefined;
    if (isNoSpace(err)) {
      return new StoreError(
        'STORE_FULL',
        `The configuration was not saved: no space left on the device of ${this.dataDir} (${code}). Nothing changed; free space there and retry.`,
      );
    }
    const repair = this.needsRepair
      ? ` ${this.logFile} could not be cut back to its last whole record yet; it is retried before the next change.`
      : '';
    return new StoreError(
      'STORE_UNAVAILABLE',
      `The configuration was not saved: writing ${this.logFile} failed (${errorMessage(err)}). Nothing changed.${repair}`,
    );
  }

  /**
   * Writes the configuration as a new snapshot and drops the log records it covers.
   * Commits continue meanwhile: records appended during the snapshot write are
   * carried over into the new log under the commit lock.
   */
  compact(): Promise<void> {
    this.compacting ??= (async () => {
      try {
        const { config, offset } = await this.exclusive(async () => ({
          config: this.last as Configuration,
          offset: this.logBytes,
        }));
        // A partial snapshot never replaces the good one, and never stays behind taking space.
        this.snapshotBytes = await this.writeSnapshot(config);
        // A crash from here to the log swap only leaves records the snapshot covers; replay skips them.
        await this.exclusive(async () => {
          if (this.closed) return;
          const tail = Buffer.alloc(this.logBytes - offset);
          const src = this.log ?? (await fs.open(this.logFile, 'r'));
          try {
            if (tail.length > 0) {
              const { bytesRead } = await src.read(tail, 0, tail.length, offset);
              if (bytesRead !== tail.length)
                throw new Error(
                  `${this.logFile} ended at ${offset + bytesRead}, before its last record (${this.logBytes})`,
                );
            }
          } finally {
            if (src !== this.log) await src.close();
          }
          await this.writeFreshLog(tail);
        });
      } finally {
        this.compacting = undefined;
      }
    })();
    return this.compacting;
  }

  /**
   * Writes `config` as the new snapshot (temp file, fsync, rename, fsync dir), encoding,
   * writing and flushing ~512 KiB at a time: each write is an await, so commits and reads
   * run between slices instead of waiting for the whole document (16-25 MB at 100,000
   * datasets), and no commit's fdatasync waits behind megabytes of it. `config` is an immutable value: reading it across awaits is safe.
   * Returns the snapshot's size in bytes.
   */
  private async writeSnapshot(config: Configuration): Promise<number> {
    let at = 0;
    try {
      const handle = await this.openFile(this.tmp, 'w', 0o600);
      try {
        let pending: string[] = [];
        let pendingLength = 0;
        const flush = async (): Promise<void> => {
          const bytes = Buffer.from(pending.join(''));
          pending = [];
          pendingLength = 0;
          await writeAll(handle, bytes, at, this.tmp);
          at += bytes.length;
          // Flushed slice by slice: on ext4 (data=ordered) a commit's fdatasync of the log waits for the
          // journal, which waits for the dirty data of this file; 25 MB left for one sync at the end held
          // the log's fdatasync up to ~20 ms (~0.6 ms per slice so, issue 23).
          await handle.datasync();
        };
        // Between writes, encoding lets requests run every ENCODE_TURN_MS (~2,000 entries per 512 KiB
        // write held them for 4 ms quiet, up to 150 ms loaded, when not stringified before).
        const budget = new TurnBudget();
        const perSlice = Math.max(1, Math.min(ENCODE_SLICE_ENTRIES, Math.floor(this.snapshotWriteBytes / 256)));
        for (const slice of encodeConfigurationSlices(config, perSlice)) {
          pending.push(slice);
          pendingLength += slice.length;
          if (pendingLength >= this.snapshotWriteBytes) {
            await flush();
            budget.reset();
          } else await budget.spent();
        }
        await flush();
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(this.tmp, this.file);
    } catch (err) {
      await fs.rm(this.tmp, { force: true }).catch(() => undefined);
      throw err;
    }
    await this.syncDir();
    return at;
  }

  async close(): Promise<void> {
    await this.compacting?.catch(() => undefined);
    await this.exclusive(async () => {
      this.closed = true;
      await this.log?.close();
      this.log = undefined;
    });
  }
}

/** A store that keeps nothing; for tests and benchmarks of everything but the disk. */
export class MemoryConfigurationStore implements ConfigurationStore {
  committed: Configuration = emptyConfiguration;
  commits = 0;
  async load(): Promise<Configuration> {
    return this.committed;
  }
  async commit(config: Configuration): Promise<void> {
    this.committed = config;
    this.commits += 1;
  }
}
