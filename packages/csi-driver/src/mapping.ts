/**
 * The pure decisions of the CSI driver: capacity ranges to dataset sizes, volume
 * capabilities, ListVolumes pagination tokens, the dataset id of a CSI volume name, and
 * control-service errors to gRPC status codes. No I/O here.
 */
import { FlockerApiError, MINIMUM_DATASET_SIZE, volumeDatasetId } from '@flocker/api';
import { status } from '@grpc/grpc-js';
import { errorMessage } from '@flocker/runtime';

/** An error the driver answers with: a gRPC status code and a message. */
export class CsiError extends Error {
  override readonly name = 'CsiError';
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

export const MiB = 1024 * 1024;

// ---- capacity ------------------------------------------------------------------

export interface CapacityRange {
  /** 0 = not given. */
  requiredBytes: number;
  /** 0 = not given. */
  limitBytes: number;
}

/**
 * The size of a new dataset for a CSI capacity range: the required bytes (at least
 * Flocker's 64 MiB minimum), else the default size, never above the limit. The CSI
 * spec: OUT_OF_RANGE when the range cannot be met, INVALID_ARGUMENT when it is
 * malformed (negative, required above limit).
 */
export function sizeForRange(range: CapacityRange | undefined, defaultSize: number, maxVolumeSize?: number): number {
  const required = range?.requiredBytes ?? 0;
  const limit = range?.limitBytes ?? 0;
  if (required < 0 || limit < 0)
    throw new CsiError(status.INVALID_ARGUMENT, 'capacity_range bytes must not be negative');
  if (limit > 0 && required > limit) {
    throw new CsiError(
      status.INVALID_ARGUMENT,
      `capacity_range.required_bytes ${required} exceeds limit_bytes ${limit}`,
    );
  }
  if (limit > 0 && limit < MINIMUM_DATASET_SIZE) {
    throw new CsiError(
      status.OUT_OF_RANGE,
      `capacity_range.limit_bytes ${limit} is below Flocker's minimum volume size of ${MINIMUM_DATASET_SIZE} bytes (64 MiB)`,
    );
  }
  let size = required > 0 ? Math.max(required, MINIMUM_DATASET_SIZE) : Math.max(defaultSize, MINIMUM_DATASET_SIZE);
  if (limit > 0 && size > limit) size = limit; // only when required is 0 or below the minimum
  if (!Number.isSafeInteger(size)) throw new CsiError(status.OUT_OF_RANGE, `capacity ${size} is too large`);
  if (maxVolumeSize !== undefined && size > maxVolumeSize) {
    throw new CsiError(
      status.OUT_OF_RANGE,
      `a volume of ${size} bytes is larger than the storage backend allows (${maxVolumeSize} bytes)`,
    );
  }
  return size;
}

/** Whether an existing dataset's size satisfies a capacity range (CreateVolume's idempotency). */
export function sizeSatisfies(size: number | null | undefined, range: CapacityRange | undefined): boolean {
  const required = range?.requiredBytes ?? 0;
  const limit = range?.limitBytes ?? 0;
  if (size === null || size === undefined) return required === 0 && limit === 0;
  return size >= required && (limit === 0 || size <= limit);
}

/** A gRPC int64 (proto-loader gives a string with `longs: String`) as a safe integer. */
export function int64(value: string | number | undefined | null, field: string): number {
  if (value === undefined || value === null || value === '') return 0;
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n))
    throw new CsiError(status.OUT_OF_RANGE, `${field} ${String(value)} is not a byte count this driver can handle`);
  return n;
}

// ---- capabilities --------------------------------------------------------------

export const SUPPORTED_ACCESS_MODES: ReadonlySet<string> = new Set([
  'SINGLE_NODE_WRITER',
  'SINGLE_NODE_READER_ONLY',
  'SINGLE_NODE_SINGLE_WRITER',
  'SINGLE_NODE_MULTI_WRITER',
]);

/** File systems the dataset agent formats volumes with. */
export const SUPPORTED_FS_TYPES: ReadonlySet<string> = new Set(['', 'ext4', 'xfs']);

/**
 * The file system a new volume gets: the StorageClass's fsType parameter, else the one the
 * capabilities ask for (Kubernetes puts csi.storage.k8s.io/fstype there), else ext4. undefined
 * when they disagree.
 */
export function requestedFilesystem(
  param: string | undefined,
  capabilityFsTypes: readonly string[],
): 'ext4' | 'xfs' | undefined {
  const asked = new Set([param ?? '', ...capabilityFsTypes].filter((f) => f !== ''));
  if (asked.size > 1) return undefined;
  return [...asked][0] === 'xfs' ? 'xfs' : 'ext4';
}

export interface VolumeCapability {
  accessType: 'mount' | 'block' | undefined;
  fsType: string;
  mountFlags: string[];
  accessMode: string | undefined;
}

/**
 * Why Flocker cannot give a volume this capability, or undefined when it can. A dataset
 * is mounted on one node at a time (its primary), so MULTI_NODE_* modes are not
 * offered; it is a file system the agent formatted, so block access is not offered.
 */
export function capabilityProblem(c: VolumeCapability): string | undefined {
  if (c.accessMode === undefined || c.accessMode === 'UNKNOWN') return 'volume_capability.access_mode is required';
  if (!SUPPORTED_ACCESS_MODES.has(c.accessMode)) {
    return `access mode ${c.accessMode} is not supported: a Flocker dataset is mounted on one node at a time`;
  }
  if (c.accessType === undefined) return 'volume_capability needs an access type (mount or block)';
  if (c.accessType === 'block') return 'block access is not supported: Flocker volumes are file systems';
  if (!SUPPORTED_FS_TYPES.has(c.fsType))
    return `fs_type ${c.fsType} is not supported (the dataset agent formats ext4 or xfs)`;
  return undefined;
}

/** Read-only publish demanded by the capability itself. */
export function readOnlyMode(c: VolumeCapability): boolean {
  return c.accessMode === 'SINGLE_NODE_READER_ONLY';
}

// ---- ListVolumes pagination ------------------------------------------------------

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isDatasetId(id: string): boolean {
  return UUID_PATTERN.test(id);
}

export interface Page<T> {
  entries: T[];
  nextToken: string;
}

/**
 * One page of volumes ordered by id. The token is the id of the last entry returned,
 * so a page stays valid when that volume is deleted and never repeats or skips a volume
 * that existed throughout. A token that is not a dataset id is ABORTED (the spec's
 * code for an invalid starting_token); a negative max_entries is INVALID_ARGUMENT.
 */
export function paginate<T>(
  items: readonly T[],
  idOf: (t: T) => string,
  startingToken: string,
  maxEntries: number,
): Page<T> {
  if (maxEntries < 0) throw new CsiError(status.INVALID_ARGUMENT, 'max_entries must not be negative');
  if (startingToken !== '' && !isDatasetId(startingToken)) {
    throw new CsiError(
      status.ABORTED,
      `starting_token ${JSON.stringify(startingToken.slice(0, 64))} was not returned by this driver`,
    );
  }
  const sorted = [...items].sort((a, b) => (idOf(a) < idOf(b) ? -1 : idOf(a) > idOf(b) ? 1 : 0));
  const rest = startingToken === '' ? sorted : sorted.filter((t) => idOf(t) > startingToken);
  if (maxEntries === 0 || rest.length <= maxEntries) return { entries: rest, nextToken: '' };
  const entries = rest.slice(0, maxEntries);
  return { entries, nextToken: idOf(entries[entries.length - 1] as T) };
}

// ---- names ------------------------------------------------------------------------

/**
 * A CSI volume's dataset id: @flocker/api's name-based rule, the Docker plugin's too, so a
 * CSI volume and a Docker volume of one name are one dataset, and two concurrent
 * CreateVolume calls of one name ask for one id (the control service lets exactly one win).
 */
export const datasetIdForName = volumeDatasetId;

// ---- errors ------------------------------------------------------------------------

/**
 * A control-service failure as a gRPC status: unreachable or timed out → UNAVAILABLE
 * (the CO retries); 404 → NOT_FOUND; 409 (in use, leased elsewhere, exists) →
 * FAILED_PRECONDITION; 412 (configuration changed under us) → ABORTED; 400 →
 * INVALID_ARGUMENT; 401/403 → PERMISSION_DENIED; else INTERNAL. A CsiError keeps its code.
 */
export function toCsiError(err: unknown): CsiError {
  if (err instanceof CsiError) return err;
  if (err instanceof FlockerApiError) {
    const message = `control service: ${err.message}`;
    if (err.status === 0 || err.code === 'SHUTTING_DOWN' || err.status === 503)
      return new CsiError(status.UNAVAILABLE, message);
    if (err.status === 404) return new CsiError(status.NOT_FOUND, message);
    if (err.status === 409) return new CsiError(status.FAILED_PRECONDITION, message);
    if (err.status === 412) return new CsiError(status.ABORTED, message);
    if (err.status === 400 || err.status === 422) return new CsiError(status.INVALID_ARGUMENT, message);
    if (err.status === 401 || err.status === 403) return new CsiError(status.PERMISSION_DENIED, message);
    return new CsiError(status.INTERNAL, message);
  }
  return new CsiError(status.INTERNAL, errorMessage(err));
}

// ---- mounts ---------------------------------------------------------------------------

export interface MountInfoEntry {
  /** major:minor of the file system. */
  device: string;
  /** The directory of that file system mounted here ("/" unless a bind of a subdirectory). */
  root: string;
  mountPoint: string;
  options: string[];
}

function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** /proc/self/mountinfo, one entry per line. */
export function parseMountInfo(text: string): MountInfoEntry[] {
  const out: MountInfoEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 6) continue;
    out.push({
      device: f[2] as string,
      root: unescapeOctal(f[3] as string),
      mountPoint: unescapeOctal(f[4] as string),
      options: (f[5] as string).split(','),
    });
  }
  return out;
}
