import { FlockerApiError, MINIMUM_DATASET_SIZE } from '@flocker/api';
import { status } from '@grpc/grpc-js';
import {
  capabilityProblem,
  requestedFilesystem,
  CsiError,
  datasetIdForName,
  int64,
  MiB,
  paginate,
  parseMountInfo,
  readOnlyMode,
  sizeForRange,
  sizeSatisfies,
  toCsiError,
  type VolumeCapability,
} from './mapping';

function codeOf(fn: () => unknown): status | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof CsiError) return err.code;
    throw err;
  }
  return undefined;
}

describe('sizeForRange (CreateVolume capacity_range → maximum_size)', () => {
  const def = 1024 * MiB;
  it('uses the default size without a range, and required bytes when given', () => {
    expect(sizeForRange(undefined, def)).toBe(def);
    expect(sizeForRange({ requiredBytes: 0, limitBytes: 0 }, def)).toBe(def);
    expect(sizeForRange({ requiredBytes: 200 * MiB, limitBytes: 0 }, def)).toBe(200 * MiB);
  });
  it("rounds a small request up to Flocker's 64 MiB minimum when the limit allows", () => {
    expect(sizeForRange({ requiredBytes: 1, limitBytes: 0 }, def)).toBe(MINIMUM_DATASET_SIZE);
    expect(sizeForRange({ requiredBytes: 1, limitBytes: 100 * MiB }, def)).toBe(MINIMUM_DATASET_SIZE);
  });
  it('caps the default size at the limit', () => {
    expect(sizeForRange({ requiredBytes: 0, limitBytes: 100 * MiB }, def)).toBe(100 * MiB);
  });
  it('is OUT_OF_RANGE when the limit is below the minimum or above what the backend allows', () => {
    expect(codeOf(() => sizeForRange({ requiredBytes: 0, limitBytes: MiB }, def))).toBe(status.OUT_OF_RANGE);
    expect(codeOf(() => sizeForRange({ requiredBytes: 2048 * MiB, limitBytes: 0 }, def, 1024 * MiB))).toBe(
      status.OUT_OF_RANGE,
    );
  });
  it('is INVALID_ARGUMENT for a malformed range', () => {
    expect(codeOf(() => sizeForRange({ requiredBytes: 200 * MiB, limitBytes: 100 * MiB }, def))).toBe(
      status.INVALID_ARGUMENT,
    );
    expect(codeOf(() => sizeForRange({ requiredBytes: -1, limitBytes: 0 }, def))).toBe(status.INVALID_ARGUMENT);
  });
});

describe('sizeSatisfies (CreateVolume idempotency by name)', () => {
  it('accepts an existing size inside the range and refuses one outside', () => {
    expect(sizeSatisfies(100 * MiB, { requiredBytes: 100 * MiB, limitBytes: 0 })).toBe(true);
    expect(sizeSatisfies(100 * MiB, { requiredBytes: 64 * MiB, limitBytes: 100 * MiB })).toBe(true);
    expect(sizeSatisfies(100 * MiB, { requiredBytes: 200 * MiB, limitBytes: 200 * MiB })).toBe(false);
    expect(sizeSatisfies(200 * MiB, { requiredBytes: 0, limitBytes: 100 * MiB })).toBe(false);
    expect(sizeSatisfies(100 * MiB, undefined)).toBe(true);
  });
  it('a dataset without a size only matches a request without a range', () => {
    expect(sizeSatisfies(null, undefined)).toBe(true);
    expect(sizeSatisfies(null, { requiredBytes: MiB, limitBytes: 0 })).toBe(false);
  });
});

describe('int64', () => {
  it('reads proto-loader strings and numbers; absent is 0; beyond 2^53 is OUT_OF_RANGE', () => {
    expect(int64('67108864', 'x')).toBe(67108864);
    expect(int64(5, 'x')).toBe(5);
    expect(int64(undefined, 'x')).toBe(0);
    expect(codeOf(() => int64('9223372036854775807', 'x'))).toBe(status.OUT_OF_RANGE);
  });
});

describe('capabilityProblem', () => {
  const cap = (
    accessMode: string | undefined,
    accessType: VolumeCapability['accessType'] = 'mount',
    fsType = '',
  ): VolumeCapability => ({
    accessMode,
    accessType,
    fsType,
    mountFlags: [],
  });
  it.each(['SINGLE_NODE_WRITER', 'SINGLE_NODE_READER_ONLY', 'SINGLE_NODE_SINGLE_WRITER', 'SINGLE_NODE_MULTI_WRITER'])(
    'supports %s mounts',
    (mode) => {
      expect(capabilityProblem(cap(mode))).toBeUndefined();
      expect(capabilityProblem(cap(mode, 'mount', 'ext4'))).toBeUndefined();
    },
  );
  it.each(['MULTI_NODE_READER_ONLY', 'MULTI_NODE_SINGLE_WRITER', 'MULTI_NODE_MULTI_WRITER'])(
    'does not confirm %s (one node at a time)',
    (mode) => {
      expect(capabilityProblem(cap(mode))).toMatch(/one node at a time/);
    },
  );
  it('refuses block access, file systems other than ext4 and xfs, and a missing access mode or type', () => {
    expect(capabilityProblem(cap('SINGLE_NODE_WRITER', 'block'))).toMatch(/block/);
    expect(capabilityProblem(cap('SINGLE_NODE_WRITER', 'mount', 'xfs'))).toBeUndefined();
    expect(capabilityProblem(cap('SINGLE_NODE_WRITER', 'mount', 'btrfs'))).toMatch(
      /btrfs is not supported.*ext4 or xfs/,
    );
    expect(capabilityProblem(cap(undefined))).toMatch(/access_mode/);
    expect(capabilityProblem(cap('UNKNOWN'))).toMatch(/access_mode/);
    expect(capabilityProblem({ ...cap('SINGLE_NODE_WRITER'), accessType: undefined })).toMatch(/access type/);
  });
  it('SINGLE_NODE_READER_ONLY publishes read-only', () => {
    expect(readOnlyMode(cap('SINGLE_NODE_READER_ONLY'))).toBe(true);
    expect(readOnlyMode(cap('SINGLE_NODE_WRITER'))).toBe(false);
  });
});

describe('paginate (ListVolumes)', () => {
  const ids = [
    '30000000-0000-4000-8000-000000000000',
    '10000000-0000-4000-8000-000000000000',
    '20000000-0000-4000-8000-000000000000',
    '40000000-0000-4000-8000-000000000000',
  ];
  const id = (s: string) => s;
  it('returns everything sorted when max_entries is 0, without a next token', () => {
    expect(paginate(ids, id, '', 0)).toEqual({ entries: [...ids].sort(), nextToken: '' });
  });
  it('walks pages with the last id as token and ends with an empty token', () => {
    const p1 = paginate(ids, id, '', 3);
    expect(p1.entries).toEqual([...ids].sort().slice(0, 3));
    expect(p1.nextToken).toBe(p1.entries[2]);
    const p2 = paginate(ids, id, p1.nextToken, 3);
    expect(p2).toEqual({ entries: [ids[3]], nextToken: '' });
  });
  it('a token stays valid when its volume is deleted, and new volumes after it appear on later pages', () => {
    const p1 = paginate(ids, id, '', 2);
    const after = ids.filter((x) => x !== p1.nextToken).concat('25000000-0000-4000-8000-000000000000');
    expect(paginate(after, id, p1.nextToken, 0).entries).toEqual([
      '25000000-0000-4000-8000-000000000000',
      ids[0],
      ids[3],
    ]);
  });
  it('is ABORTED on a token it never gave and INVALID_ARGUMENT on negative max_entries', () => {
    expect(codeOf(() => paginate(ids, id, 'invalid-token', 0))).toBe(status.ABORTED);
    expect(codeOf(() => paginate(ids, id, '', -1))).toBe(status.INVALID_ARGUMENT);
  });
});

describe('datasetIdForName', () => {
  it('is a stable version 5 UUID per name (the Docker plugin rule: one dataset per name across orchestrators)', () => {
    const a = datasetIdForName('pvc-1');
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(datasetIdForName('pvc-1')).toBe(a);
    expect(datasetIdForName('pvc-2')).not.toBe(a);
  });
});

describe('toCsiError (control service → gRPC status)', () => {
  it.each([
    [new FlockerApiError(0, 'CONTROL_SERVICE_UNREACHABLE', 'refused'), status.UNAVAILABLE],
    [new FlockerApiError(503, 'SHUTTING_DOWN', 'bye'), status.UNAVAILABLE],
    [new FlockerApiError(404, 'NOT_FOUND', 'no'), status.NOT_FOUND],
    [new FlockerApiError(409, 'LEASE_HELD', 'held'), status.FAILED_PRECONDITION],
    [new FlockerApiError(412, 'CONFIGURATION_CHANGED', 'changed'), status.ABORTED],
    [new FlockerApiError(400, 'BAD_REQUEST', 'bad'), status.INVALID_ARGUMENT],
    [new FlockerApiError(403, 'FORBIDDEN', 'no'), status.PERMISSION_DENIED],
    [new FlockerApiError(500, 'INTERNAL', 'oops'), status.INTERNAL],
    [new Error('boom'), status.INTERNAL],
    [new CsiError(status.OUT_OF_RANGE, 'big'), status.OUT_OF_RANGE],
  ])('%s → %s', (err, code) => {
    expect(toCsiError(err).code).toBe(code);
  });
});

describe('parseMountInfo', () => {
  it('reads device, root, mount point (octal escapes undone) and options', () => {
    const text =
      '36 35 7:3 / /tmp/x/a/mnt/d1 rw,relatime shared:1 - ext4 /dev/loop3 rw\n' +
      '37 35 7:3 / /tmp/x/staging\\040dir rw,relatime shared:1 - ext4 /dev/loop3 rw\n' +
      '38 35 7:3 / /tmp/x/target ro,relatime shared:1 - ext4 /dev/loop3 rw\n';
    const m = parseMountInfo(text);
    expect(m.map((e) => e.mountPoint)).toEqual(['/tmp/x/a/mnt/d1', '/tmp/x/staging dir', '/tmp/x/target']);
    expect(m[2]).toEqual({ device: '7:3', root: '/', mountPoint: '/tmp/x/target', options: ['ro', 'relatime'] });
  });
});

describe('requestedFilesystem', () => {
  it('the fsType parameter, else the capabilities’ fs_type, else ext4; undefined when they disagree', () => {
    expect(requestedFilesystem(undefined, [''])).toBe('ext4');
    expect(requestedFilesystem('xfs', [''])).toBe('xfs');
    expect(requestedFilesystem(undefined, ['xfs', 'xfs'])).toBe('xfs');
    expect(requestedFilesystem('ext4', ['ext4'])).toBe('ext4');
    expect(requestedFilesystem('xfs', ['ext4'])).toBeUndefined();
    expect(requestedFilesystem(undefined, ['xfs', 'ext4'])).toBeUndefined();
  });
});
