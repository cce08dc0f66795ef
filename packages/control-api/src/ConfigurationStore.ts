/**
 * Durable storage of the configuration. The embedded default keeps one JSON file
 * in the data directory, replaced atomically (temp file, fsync, rename, fsync dir),
 * so a crash leaves either the old or the new configuration, never a torn one.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { DatasetConfiguration, NodeSummary } from '@flocker/api';
import type { Configuration, StoredLease } from './configuration';
import { emptyConfiguration } from './configuration';
import { ApiError } from './errors';

export interface ConfigurationStore {
  /** The last committed configuration, or the empty one on first start. */
  load(): Promise<Configuration>;
  /** Resolves only once `config` is durable. Callers serialize commits. */
  commit(config: Configuration): Promise<void>;
}

export const CURRENT_FORMAT_VERSION = 1;
export const CONFIGURATION_FILE = 'current_configuration.json';

const StoredLeaseSchema = z
  .object({ dataset_id: z.string(), node_uuid: z.string(), expires_at: z.number().nullable() })
  .strict();

const PersistedV1 = z
  .object({
    format_version: z.literal(1),
    version: z.number().int().nonnegative(),
    datasets: z.array(DatasetConfiguration),
    leases: z.array(StoredLeaseSchema),
    nodes: z.array(NodeSummary),
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
      throw new ApiError(500, 'STORE_FORMAT_UNSUPPORTED', `No migration from configuration format ${v}.`);
    }
    doc = step(doc);
  }
}

export function decodeConfiguration(raw: unknown): Configuration {
  const migrated = migrate(raw);
  const parsed = PersistedV1.safeParse(migrated);
  if (!parsed.success) {
    const v = typeof migrated === 'object' && migrated !== null ? (migrated as { format_version?: unknown }).format_version : undefined;
    if (typeof v === 'number' && v > CURRENT_FORMAT_VERSION) {
      throw new ApiError(
        500,
        'STORE_FORMAT_TOO_NEW',
        `The stored configuration has format ${v}, newer than this control service understands (${CURRENT_FORMAT_VERSION}). Upgrade flocker-control.`,
      );
    }
    throw new ApiError(500, 'STORE_CORRUPT', `The stored configuration is not valid: ${z.prettifyError(parsed.error)}`);
  }
  const doc = parsed.data;
  return {
    version: doc.version,
    datasets: new Map(doc.datasets.map((d) => [d.dataset_id, d])),
    leases: new Map(doc.leases.map((l): [string, StoredLease] => [l.dataset_id, l])),
    nodes: new Map(doc.nodes.map((n) => [n.uuid, n])),
  };
}

// Datasets are immutable values, so each one's JSON is computed once and reused by
// every later commit: a commit with 10,000 datasets then costs a string join, not a stringify.
const serialized = new WeakMap<object, string>();
function cachedJson(value: object): string {
  let s = serialized.get(value);
  if (s === undefined) {
    s = JSON.stringify(value);
    serialized.set(value, s);
  }
  return s;
}

export function encodeConfiguration(config: Configuration): string {
  const head: Omit<PersistedV1, 'datasets' | 'leases' | 'nodes'> = {
    format_version: CURRENT_FORMAT_VERSION,
    version: config.version,
  };
  const datasets = Array.from(config.datasets.values(), cachedJson).join(',\n');
  const leases = Array.from(config.leases.values(), cachedJson).join(',\n');
  const nodes = Array.from(config.nodes.values(), cachedJson).join(',\n');
  const h = JSON.stringify(head);
  return `${h.slice(0, -1)},\n"datasets":[\n${datasets}],\n"leases":[\n${leases}],\n"nodes":[\n${nodes}]}\n`;
}

export class FileConfigurationStore implements ConfigurationStore {
  readonly file: string;
  private readonly tmp: string;

  constructor(readonly dataDir: string) {
    this.file = path.join(dataDir, CONFIGURATION_FILE);
    this.tmp = `${this.file}.tmp`;
  }

  async load(): Promise<Configuration> {
    await fs.mkdir(this.dataDir, { recursive: true, mode: 0o700 });
    let text: string;
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyConfiguration;
      throw err;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new ApiError(500, 'STORE_CORRUPT', `${this.file} is not valid JSON: ${(err as Error).message}`);
    }
    return decodeConfiguration(raw);
  }

  async commit(config: Configuration): Promise<void> {
    const data = encodeConfiguration(config);
    const handle = await fs.open(this.tmp, 'w', 0o600);
    try {
      await handle.writeFile(data, 'utf8');
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await fs.rename(this.tmp, this.file);
    // The rename is only durable once the directory entry is.
    const dir = await fs.open(this.dataDir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
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
