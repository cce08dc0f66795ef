import { ComposeRequest, ContainerConfiguration, Environment, parseApplicationFile } from './containers';
import {
  ClusterSnapshot,
  configurationVersionOfTag,
  CreateDatasetRequest,
  CreateLeaseRequest,
  CreateSnapshotRequest,
  DatasetConfiguration,
  findProtoKey,
  Metadata,
  NodeReport,
  SnapshotConfiguration,
  SnapshotState,
  Uuid,
} from './schemas';

const LOWER = '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f';

describe('UUIDs are canonical (lower case) after every parse', () => {
  it.each([
    ['upper case', LOWER.toUpperCase()],
    ['mixed case', '3F9a0C4e-1B2d-4C5e-8F70-9a1B2c3D4e5F'],
    ['lower case', LOWER],
  ])('%s parses to lower case', (_name, input) => {
    expect(Uuid.parse(input)).toBe(LOWER);
    expect(CreateDatasetRequest.parse({ primary: input, dataset_id: input })).toEqual({
      primary: LOWER,
      dataset_id: LOWER,
    });
    expect(CreateLeaseRequest.parse({ dataset_id: input, node_uuid: input, expires: null })).toMatchObject({
      dataset_id: LOWER,
      node_uuid: LOWER,
    });
    expect(
      ContainerConfiguration.parse({
        name: 'web',
        node_uuid: input,
        image: 'nginx',
        volumes: [{ dataset_id: input, mountpoint: '/d' }],
      }),
    ).toMatchObject({
      node_uuid: LOWER,
      volumes: [{ dataset_id: LOWER }],
    });
  });

  it.each([
    ['braces', `{${LOWER}}`],
    ['urn', `urn:uuid:${LOWER}`],
    ['no dashes', LOWER.replace(/-/g, '')],
    ['surrounding space', ` ${LOWER}`],
  ])('other forms are refused (%s)', (_name, input) => {
    expect(Uuid.safeParse(input).success).toBe(false);
  });

  it('a node report: uuid, dataset ids, and UUID-shaped era and instance ids are lower-cased; other ids kept', () => {
    const r = NodeReport.parse({
      uuid: LOWER.toUpperCase(),
      era: LOWER.toUpperCase(),
      host: 'h',
      instance_id: LOWER.toUpperCase(),
      backend: 'loopback',
      manifestations: [{ dataset_id: LOWER.toUpperCase(), blockdevice_id: 'Vol-A', size: 1, status: 'attached' }],
      volumes: [
        { blockdevice_id: 'Vol-A', dataset_id: LOWER.toUpperCase(), size: 1, attached_to: LOWER.toUpperCase() },
      ],
    });
    expect(r).toMatchObject({
      uuid: LOWER,
      era: LOWER,
      instance_id: LOWER,
      manifestations: [{ dataset_id: LOWER, blockdevice_id: 'Vol-A' }],
    });
    expect(r.volumes?.[0]).toMatchObject({ dataset_id: LOWER, attached_to: LOWER });
    const ebs = NodeReport.parse({
      uuid: LOWER,
      era: 'Boot-1',
      host: 'h',
      instance_id: 'i-0ABC',
      backend: 'aws',
      manifestations: [],
    });
    expect(ebs).toMatchObject({ era: 'Boot-1', instance_id: 'i-0ABC' });
  });
});

describe('keys that reach the prototype are refused, not dropped', () => {
  const withKey = (key: string): unknown => JSON.parse(`{"${key}": "x", "ok": "y"}`);

  it.each(['constructor', 'prototype'])('metadata key %s: refused with a message naming the reserved keys', (key) => {
    const r = Metadata.safeParse(withKey(key));
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toMatch(/reserved/);
    expect(CreateDatasetRequest.safeParse({ primary: LOWER, metadata: withKey(key) }).success).toBe(false);
  });

  it('__proto__, which zod records skip silently, is found wherever it is (the control service refuses the body)', () => {
    expect(findProtoKey(JSON.parse(`{"primary": "${LOWER}", "metadata": {"__proto__": "x"}}`))).toEqual([
      'metadata',
      '__proto__',
    ]);
    expect(findProtoKey(JSON.parse('{"a": [{"b": {"__proto__": {"polluted": true}}}]}'))).toEqual([
      'a',
      0,
      'b',
      '__proto__',
    ]);
    expect(findProtoKey(JSON.parse('{"\\u005f_proto__": 1}'))).toEqual(['__proto__']);
    expect(findProtoKey(JSON.parse('{"proto": {"constructor": "x"}}'))).toBeUndefined();
    expect(findProtoKey([1, 'a', null])).toBeUndefined();
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('ordinary keys that merely contain the words are kept', () => {
    expect(Metadata.parse({ my_constructor: 'a', proto: 'b' })).toEqual({ my_constructor: 'a', proto: 'b' });
  });

  it.each(['constructor', 'prototype'])(
    'environment names, compose files and Compose environment lists (%s)',
    (key) => {
      expect(Environment.safeParse(withKey(key)).success).toBe(false);
      expect(ComposeRequest.safeParse({ applications: withKey(key), deployment: {} }).success).toBe(false);
      expect(ComposeRequest.safeParse({ applications: {}, deployment: withKey(key) }).success).toBe(false);
      expect(parseApplicationFile({ services: { web: { image: 'nginx', environment: [`${key}=1`] } } }).ok).toBe(false);
      expect(parseApplicationFile({ services: { web: { image: 'nginx', environment: ['__proto__=1'] } } }).ok).toBe(
        false,
      );
    },
  );
});

describe('snapshots (issue 20)', () => {
  const SNAP = '0d1e2f3a-4b5c-4d6e-8f70-a1b2c3d4e5f6';
  const snapshot = {
    snapshot_id: SNAP,
    dataset_id: LOWER,
    metadata: { name: 's1' },
    created_at: '2026-12-04T00:00:00Z',
  };

  it('a configured snapshot: ids lower-cased; deleted is absent or true, never false', () => {
    const upper = { ...snapshot, snapshot_id: SNAP.toUpperCase(), dataset_id: LOWER.toUpperCase() };
    expect(SnapshotConfiguration.parse(upper)).toEqual(snapshot);
    expect(SnapshotConfiguration.parse({ ...snapshot, deleted: true })).toEqual({ ...snapshot, deleted: true });
    expect(SnapshotConfiguration.safeParse({ ...snapshot, deleted: false }).success).toBe(false);
    expect(SnapshotConfiguration.safeParse({ ...snapshot, extra: 1 }).success).toBe(false);
  });

  it('a create request needs a dataset id; snapshot_id and metadata are optional; unknown fields are refused', () => {
    expect(CreateSnapshotRequest.parse({ dataset_id: LOWER.toUpperCase() })).toEqual({ dataset_id: LOWER });
    expect(CreateSnapshotRequest.safeParse({}).success).toBe(false);
    expect(CreateSnapshotRequest.safeParse({ dataset_id: LOWER, snapshot_id: 'nope' }).success).toBe(false);
    expect(CreateSnapshotRequest.safeParse({ dataset_id: LOWER, size: 1 }).success).toBe(false);
  });

  it('a dataset may name the snapshot it is cloned from, in the request and in the configuration', () => {
    expect(CreateDatasetRequest.parse({ primary: LOWER, source_snapshot_id: SNAP.toUpperCase() })).toEqual({
      primary: LOWER,
      source_snapshot_id: SNAP,
    });
    expect(CreateDatasetRequest.safeParse({ primary: LOWER, source_snapshot_id: 'x' }).success).toBe(false);
    const d = { dataset_id: LOWER, primary: LOWER, metadata: {}, deleted: false };
    expect(DatasetConfiguration.parse({ ...d, source_snapshot_id: SNAP })).toMatchObject({ source_snapshot_id: SNAP });
    expect(DatasetConfiguration.parse(d)).not.toHaveProperty('source_snapshot_id');
  });

  it('node reports may list the backend snapshots; state entries have a known status', () => {
    const entry = { snapshot_id: SNAP, dataset_id: LOWER, size: 1024, created_at: 'now', status: 'ready' };
    const report = {
      uuid: LOWER,
      era: 'e',
      host: 'h',
      instance_id: 'i',
      backend: 'loopback',
      manifestations: [],
      snapshots: [{ ...entry, backend_id: 'b', source_blockdevice_id: 'v' }],
    };
    expect(NodeReport.parse(report).snapshots).toHaveLength(1);
    expect(NodeReport.parse({ ...report, snapshots: undefined }).snapshots).toBeUndefined();
    expect(NodeReport.safeParse({ ...report, snapshots: [entry] }).success).toBe(false);
    expect(SnapshotState.parse(entry)).toEqual(entry);
    expect(SnapshotState.safeParse({ ...entry, status: 'pending' }).success).toBe(false);
  });

  it('the cluster snapshot agents receive carries the configured snapshots (optional: older services send none)', () => {
    const base = { generation: 'g', configuration_tag: 't', datasets: [], leases: [], nodes: [] };
    expect(ClusterSnapshot.parse(base).snapshots).toBeUndefined();
    expect(ClusterSnapshot.parse({ ...base, snapshots: [snapshot] }).snapshots).toEqual([snapshot]);
  });
});

describe('configuration_version in node reports (session 10, stale mounted)', () => {
  const report = {
    uuid: LOWER,
    era: 'e',
    host: 'h',
    instance_id: 'i',
    backend: 'loopback',
    manifestations: [],
    errors: [],
  };

  it('is optional (older agents send none), a non-negative integer when present', () => {
    expect(NodeReport.parse(report).configuration_version).toBeUndefined();
    expect(NodeReport.parse({ ...report, configuration_version: 0 }).configuration_version).toBe(0);
    expect(NodeReport.parse({ ...report, configuration_version: 12 }).configuration_version).toBe(12);
    for (const bad of [-1, 1.5, 'v12', null])
      expect(NodeReport.safeParse({ ...report, configuration_version: bad }).success).toBe(false);
  });

  it("configurationVersionOfTag reads the control service's tags ('v' and the version), nothing else", () => {
    expect(configurationVersionOfTag('v0')).toBe(0);
    expect(configurationVersionOfTag('v12')).toBe(12);
    expect(configurationVersionOfTag('v9007199254740')).toBe(9007199254740);
    for (const other of [undefined, '', 'v', 't', '12', 'v1.2', 'v-1', 'x12', 'v12 ', 'v1234567890123456'])
      expect(configurationVersionOfTag(other)).toBeUndefined();
    // Comparable for "at least" (not as strings).
    expect((configurationVersionOfTag('v10') ?? 0) >= (configurationVersionOfTag('v9') ?? 0)).toBe(true);
  });
});
