/** The manifest: the one object that makes a backup exist. Pure: build, checksum, validate. */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { BackupError } from './errors';
import { parseBackupId } from './layout';

export const BACKUP_FORMAT = 'flocker-volume-backup';
export const BACKUP_FORMAT_VERSION = 1;

export const MIN_CHUNK_SIZE = 64 * 1024;
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024;
export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;

const Entry = z.string().regex(/^[0-9a-f]{64}(\.[0-9a-f]{64})?$/, 'a lower-case hex SHA-256, or two joined by a dot');
const Count = z.number().int().nonnegative();

export const ManifestStats = z.object({
  /** Chunks holding data (not holes). */
  dataChunks: Count,
  /** All-zero chunks: recorded as holes, never stored. */
  holeChunks: Count,
  /** Plain bytes of the data chunks. */
  dataBytes: Count,
  /** Data chunks stored as a delta against another chunk. */
  deltaChunks: Count,
  /** Chunks this backup uploaded (the rest the store already held). */
  uploadedChunks: Count,
  /** Compressed bytes this backup uploaded. */
  uploadedBytes: Count,
  /** Plain bytes of the chunks it uploaded (whole, or as deltas). */
  uploadedPlainBytes: Count,
});
export type ManifestStats = z.infer<typeof ManifestStats>;

export const ManifestBody = z.object({
  format: z.literal(BACKUP_FORMAT),
  version: z.literal(BACKUP_FORMAT_VERSION),
  backupId: z.string().refine((id) => parseBackupId(id) !== undefined, 'a backup id VOLUME/STAMP-SNAPSHOT'),
  volumeId: z.string().min(1),
  snapshotId: z.string().min(1),
  label: z.string(),
  /** ISO 8601 UTC. */
  createdAt: z.iso.datetime(),
  /** Bytes of the volume. */
  size: Count,
  chunkSize: z.number().int().min(MIN_CHUNK_SIZE).max(MAX_CHUNK_SIZE),
  /** What this backup compressed with; readers tell each chunk's codec from its magic bytes. */
  compression: z.enum(['zstd', 'gzip']),
  /** The backup this one was made against, if any (informational: chunks are found by hash). */
  previous: z.string().optional(),
  /**
   * One entry per chunk in volume order: null for a hole (all zeros); else the SHA-256 of its plain bytes, stored
   * whole (`H`), or `H.B`: stored as the XOR with the full chunk B (a small change to a chunk uploads little).
   */
  chunks: z.array(Entry.nullable()),
  stats: ManifestStats,
  /**
   * What each object the chunks need held when this backup checked or wrote it: its stored (compressed) size and
   * the base64 SHA-256 of those bytes. The next backup compares them with the store's answer to a HEAD (length,
   * and S3's recorded checksum) before it trusts the object again. Absent in manifests of older versions.
   */
  objects: z.record(z.string(), z.object({ size: Count, sha256: z.string().regex(/^[A-Za-z0-9+/]{43}=$/) })).optional(),
});
export type ManifestBody = z.infer<typeof ManifestBody>;
export type StoredObject = NonNullable<ManifestBody['objects']>[string];

export const Manifest = ManifestBody.extend({
  /** `sha256:` + hex SHA-256 of the canonical JSON of every other field. */
  checksum: z.string().regex(/^sha256:[0-9a-f]{64}$/),
});
export type Manifest = z.infer<typeof Manifest>;

/** JSON with object keys sorted at every level, so the checksum does not depend on key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function manifestChecksum(body: ManifestBody): string {
  const { checksum: _ignored, ...rest } = body as ManifestBody & { checksum?: string };
  return `sha256:${createHash('sha256').update(canonicalJson(rest)).digest('hex')}`;
}

export function chunkCount(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize);
}

/** Length of chunk `index` (the last one may be short). */
export function chunkLength(size: number, chunkSize: number, index: number): number {
  return Math.max(0, Math.min(chunkSize, size - index * chunkSize));
}

/** Seals a body: checks its invariants and adds the checksum. */
export function sealManifest(body: ManifestBody): Manifest {
  const parsed = ManifestBody.parse(body);
  const problem = inconsistency(parsed);
  if (problem !== undefined) throw new Error(`refusing to write an inconsistent manifest: ${problem}`);
  return { ...parsed, checksum: manifestChecksum(parsed) };
}

function inconsistency(m: ManifestBody): string | undefined {
  if (m.chunks.length !== chunkCount(m.size, m.chunkSize))
    return `${m.chunks.length} chunk entries for ${m.size} bytes in chunks of ${m.chunkSize}`;
  const parts = parseBackupId(m.backupId);
  if (parts?.volumeId !== m.volumeId || parts.snapshotId !== m.snapshotId)
    return `backup id ${m.backupId} does not match volume ${m.volumeId} and snapshot ${m.snapshotId}`;
  const deltas = m.chunks.filter((c) => c !== null && c.includes('.')).length;
  if (deltas !== m.stats.deltaChunks) return `stats count ${m.stats.deltaChunks} delta chunks, the list ${deltas}`;
  const data = m.chunks.filter((c) => c !== null).length;
  if (data !== m.stats.dataChunks || m.chunks.length - data !== m.stats.holeChunks)
    return `stats count ${m.stats.dataChunks} data and ${m.stats.holeChunks} hole chunks, the list ${data} and ${m.chunks.length - data}`;
  return undefined;
}

export function serializeManifest(m: Manifest): Buffer {
  return Buffer.from(JSON.stringify(m, null, 1) + '\n');
}

/** Parses and verifies a manifest read from `key`: any defect is MANIFEST_CORRUPT naming the key. */
export function parseManifest(bytes: Uint8Array, key: string): Manifest {
  const corrupt = (why: string) =>
    new BackupError('MANIFEST_CORRUPT', `backup manifest ${key} is corrupt: ${why}`, key);
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw corrupt(`not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const r = Manifest.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw corrupt(`${issue?.path.join('.') || 'manifest'}: ${issue?.message ?? 'invalid'}`);
  }
  // Checked on the input as read (not as zod rebuilt it), so no field can change unnoticed.
  const expected = manifestChecksum(json as ManifestBody);
  if (expected !== r.data.checksum)
    throw corrupt(`checksum ${r.data.checksum} does not match its content (${expected})`);
  const problem = inconsistency(r.data);
  if (problem !== undefined) throw corrupt(problem);
  return r.data;
}
