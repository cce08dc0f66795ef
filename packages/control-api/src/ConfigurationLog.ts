/**
 * The write-ahead log's records, as pure functions: the difference between two
 * committed configurations, applying it, and the line format on disk
 * (`<crc32 hex> <json>\n`). No I/O here; FileConfigurationStore does the files.
 */
import { crc32 } from 'node:zlib';
import { z } from 'zod';
import {
  ContainerConfiguration,
  DatasetConfiguration,
  DatasetId,
  LeaseHolder,
  LeaseReleaseRequest,
  NodeSummary,
  NodeUuid,
  SnapshotConfiguration,
  SnapshotId,
} from '@flocker/api';
import type { Configuration, StoredLease } from './configuration';
import { StoreError } from './errors';
import { deleteEntry, PersistentMap, setEntry } from './PersistentMap';

export const StoredLeaseSchema = z
  .object({
    // Canonical (lower-case) on load too: a store written before identities were
    // canonicalised may hold another case, which no request could reach any more.
    dataset_id: DatasetId,
    node_uuid: NodeUuid,
    expires_at: z.number().nullable(),
    /** Only written when true; stores from before the field load unchanged. */
    pinned: z.literal(true).optional(),
    /** Named holders (never empty) and whether an unnamed acquire holds it too; absent in stores from before them. */
    holders: z.array(LeaseHolder).min(1).readonly().optional(),
    unnamed: z.literal(true).optional(),
    /** The holder lets go of it when asked while unused (session 21); written only when true. */
    release_on_request: z.literal(true).optional(),
    /** Someone asked for it (by a node UUID or api, at an ISO time); written only while pending. */
    release_requested: LeaseReleaseRequest.readonly().optional(),
  })
  .strict();

const LogOp = z.discriminatedUnion('op', [
  z.object({ op: z.literal('dataset'), value: DatasetConfiguration }).strict(),
  z.object({ op: z.literal('dataset-delete'), id: DatasetId }).strict(),
  z.object({ op: z.literal('lease'), value: StoredLeaseSchema }).strict(),
  z.object({ op: z.literal('lease-delete'), id: DatasetId }).strict(),
  z.object({ op: z.literal('node'), value: NodeSummary }).strict(),
  z.object({ op: z.literal('node-delete'), id: NodeUuid }).strict(),
  z.object({ op: z.literal('container'), value: ContainerConfiguration }).strict(),
  z.object({ op: z.literal('container-delete'), id: z.string() }).strict(),
  z.object({ op: z.literal('snapshot'), value: SnapshotConfiguration }).strict(),
  z.object({ op: z.literal('snapshot-delete'), id: SnapshotId }).strict(),
]);
export type LogOp = z.infer<typeof LogOp>;

/** One commit: the configuration version it produces and what changed to get there. */
export const LogRecord = z.object({ version: z.number().int().nonnegative(), ops: z.array(LogOp) }).strict();
export type LogRecord = z.infer<typeof LogRecord>;

/**
 * What changed from `prev` to `next`. Configurations are immutable values sharing
 * unchanged entries, so an identity check per entry finds the changes.
 */
export function diffConfiguration(prev: Configuration, next: Configuration): LogRecord {
  const ops: LogOp[] = [];
  diffMaps(
    prev.datasets,
    next.datasets,
    (value) => ops.push({ op: 'dataset', value }),
    (id) => ops.push({ op: 'dataset-delete', id }),
  );
  diffMaps(
    prev.leases,
    next.leases,
    (value) => ops.push({ op: 'lease', value }),
    (id) => ops.push({ op: 'lease-delete', id }),
  );
  diffMaps(
    prev.nodes,
    next.nodes,
    (value) => ops.push({ op: 'node', value }),
    (id) => ops.push({ op: 'node-delete', id }),
  );
  if (prev.containers !== next.containers) {
    diffMaps(
      prev.containers ?? new Map<string, ContainerConfiguration>(),
      next.containers ?? new Map<string, ContainerConfiguration>(),
      (value) => ops.push({ op: 'container', value }),
      (id) => ops.push({ op: 'container-delete', id }),
    );
  }
  if (prev.snapshots !== next.snapshots) {
    diffMaps(
      prev.snapshots ?? new Map<string, SnapshotConfiguration>(),
      next.snapshots ?? new Map<string, SnapshotConfiguration>(),
      (value) => ops.push({ op: 'snapshot', value }),
      (id) => ops.push({ op: 'snapshot-delete', id }),
    );
  }
  return { version: next.version, ops };
}

function diffMaps<V>(
  prev: ReadonlyMap<string, V>,
  next: ReadonlyMap<string, V>,
  set: (v: V) => void,
  remove: (id: string) => void,
): void {
  const { deletes, sets } = PersistentMap.diff(prev, next);
  for (const id of deletes) remove(id);
  for (const id of sets) set(next.get(id) as V);
}
/**
 * One map of a configuration being edited: a few records (a watched write of another
 * replica) edit it persistently, sharing structure, so a 10,000-dataset map is not
 * copied per write; a long replay copies it once and edits the copy. Untouched maps
 * keep their identity.
 */
class MapEdit<V> {
  private copy: Map<string, V> | undefined;
  constructor(
    private current: ReadonlyMap<string, V>,
    private readonly persistent: boolean,
  ) {}

  set(key: string, value: V): void {
    if (this.persistent) this.current = setEntry(this.current, key, value);
    else this.own().set(key, value);
  }

  delete(key: string): void {
    if (this.persistent) this.current = deleteEntry(this.current, key);
    else this.own().delete(key);
  }

  /** A copy edited in place is handed over as a persistent map: later writes share it. */
  get result(): ReadonlyMap<string, V> {
    return this.copy !== undefined ? PersistentMap.adopt(this.copy) : this.current;
  }

  private own(): Map<string, V> {
    if (this.copy === undefined) {
      this.copy = new Map(this.current);
      this.current = this.copy;
    }
    return this.copy;
  }
}

/** Applies records in order (an updated entry keeps its place, as in the live maps). */
export function applyRecords(config: Configuration, records: readonly LogRecord[]): Configuration {
  if (records.length === 0) return config;
  const persistent = records.length <= 16;
  const datasets = new MapEdit(config.datasets, persistent);
  const leases = new MapEdit(config.leases, persistent);
  const nodes = new MapEdit(config.nodes, persistent);
  const containers = new MapEdit(config.containers ?? new Map<string, ContainerConfiguration>(), persistent);
  const snapshots = new MapEdit(config.snapshots ?? new Map<string, SnapshotConfiguration>(), persistent);
  let version = config.version;
  for (const r of records) {
    for (const o of r.ops) {
      switch (o.op) {
        case 'dataset':
          datasets.set(o.value.dataset_id, o.value);
          break;
        case 'dataset-delete':
          datasets.delete(o.id);
          break;
        case 'lease':
          leases.set(o.value.dataset_id, o.value satisfies StoredLease);
          break;
        case 'lease-delete':
          leases.delete(o.id);
          break;
        case 'node':
          nodes.set(o.value.uuid, o.value);
          break;
        case 'node-delete':
          nodes.delete(o.id);
          break;
        case 'container':
          containers.set(o.value.name, o.value);
          break;
        case 'container-delete':
          containers.delete(o.id);
          break;
        case 'snapshot':
          snapshots.set(o.value.snapshot_id, o.value);
          break;
        case 'snapshot-delete':
          snapshots.delete(o.id);
          break;
      }
    }
    version = r.version;
  }
  const c = containers.result;
  const s = snapshots.result;
  return {
    version,
    datasets: datasets.result,
    leases: leases.result,
    nodes: nodes.result,
    ...(c.size > 0 || config.containers !== undefined ? { containers: c } : {}),
    ...(s.size > 0 || config.snapshots !== undefined ? { snapshots: s } : {}),
  };
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

export function encodeRecord(record: LogRecord): string {
  const json = JSON.stringify(record);
  return `${hex8(crc32(json))} ${json}\n`;
}

export interface DecodedLog {
  /** Records newer than `afterVersion`, in order. */
  records: LogRecord[];
  /** Bytes from the start of `data` up to the end of the last valid record. */
  validBytes: number;
  /** Bytes after `validBytes`: a torn last append, to be cut off before appending again. */
  tornBytes: number;
}

const NEWLINE = 0x0a;

/**
 * Parses log lines starting at `offset`. An invalid record counts as torn (a crash
 * mid-append, never acknowledged) only when nothing valid follows it; a bad record
 * followed by a good one means the file is damaged, and the store refuses to guess.
 */
export function decodeLog(data: Buffer, offset: number, afterVersion: number, file = LOG_NAME_FOR_ERRORS): DecodedLog {
  const records: LogRecord[] = [];
  let pos = offset;
  let validBytes = offset;
  let firstBad: number | undefined;
  let last = afterVersion;
  while (pos < data.length) {
    const nl = data.indexOf(NEWLINE, pos);
    const end = nl < 0 ? data.length : nl + 1;
    const record = nl < 0 ? undefined : parseLine(data.subarray(pos, nl), file, pos);
    if (record === undefined) {
      firstBad ??= pos;
    } else {
      if (firstBad !== undefined) {
        throw new StoreError(
          'STORE_CORRUPT',
          `${file} has a damaged record at byte ${firstBad} followed by valid ones; restore it from a backup.`,
        );
      }
      if (record.version > afterVersion) {
        if (record.version <= last) {
          throw new StoreError(
            'STORE_CORRUPT',
            `${file} has records out of order at byte ${pos} (version ${record.version} after ${last}).`,
          );
        }
        records.push(record);
        last = record.version;
      }
      validBytes = end;
    }
    pos = end;
  }
  return { records, validBytes, tornBytes: data.length - validBytes };
}

const LOG_NAME_FOR_ERRORS = 'The configuration log';

/** undefined = not a whole record (checksum fails); a checksummed record we cannot read is corruption. */
function parseLine(line: Buffer, file: string, at: number): LogRecord | undefined {
  if (line.length < 10 || line[8] !== 0x20) return undefined;
  const json = line.subarray(9);
  if (line.toString('latin1', 0, 8) !== hex8(crc32(json))) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw new StoreError('STORE_CORRUPT', `${file} has an unreadable record at byte ${at}: ${(err as Error).message}`);
  }
  const parsed = LogRecord.safeParse(raw);
  if (!parsed.success) {
    throw new StoreError(
      'STORE_CORRUPT',
      `${file} has an invalid record at byte ${at}: ${z.prettifyError(parsed.error)}`,
    );
  }
  return parsed.data;
}
