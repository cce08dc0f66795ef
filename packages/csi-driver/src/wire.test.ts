/**
 * The hand-written request schemas (wire.ts) and the driver's answers against the pinned
 * csi.proto itself: every field a schema reads is a field of its message, and every answer
 * survives the real serialiser unchanged (a misspelt field or enum name would be dropped).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { status, type ServiceDefinition } from '@grpc/grpc-js';
import type { ClusterSnapshot, CreateDatasetRequest, DatasetConfiguration } from '@flocker/api';
import winston from 'winston';
import type { z } from 'zod';
import { CsiDriver, type ControlClient } from './CsiDriver';
import { CsiError, datasetIdForName, MiB } from './mapping';
import { loadCsiPackage, loadCsiServices, PACKAGE_DIR, type CsiServices } from './proto';
import { TOPOLOGY_ZONE_KEY } from './topology';
import * as wire from './wire';

interface DescriptorField {
  name: string;
  typeName?: string;
}
interface Descriptor {
  name: string;
  field: DescriptorField[];
  nestedType: Descriptor[];
}

let def: ReturnType<typeof loadCsiPackage>;
let services: CsiServices;

beforeAll(() => {
  execFileSync('bash', [join(PACKAGE_DIR, 'scripts/fetch-proto.sh')], { stdio: 'inherit' });
  def = loadCsiPackage();
  services = loadCsiServices();
});

/** The descriptor of csi.v1.<path>, nested messages by dotted path (VolumeCapability.MountVolume). */
function message(path: string): Descriptor {
  const [top, ...rest] = path.split('.');
  const entry = def[`csi.v1.${top}`] as { type?: Descriptor } | undefined;
  let d = entry?.type;
  for (const n of rest) d = d?.nestedType.find((x) => x.name === n);
  if (!d) throw new Error(`no message csi.v1.${path}`);
  return d;
}

function keysOf(schema: z.ZodObject): string[] {
  return Object.keys(schema.shape);
}

describe('request schemas name only fields of csi.proto', () => {
  const ONEOF_VIRTUAL = new Set(['access_type', 'type']);
  it.each([
    ['CreateVolumeRequest', wire.CreateVolumeRequest],
    ['DeleteVolumeRequest', wire.DeleteVolumeRequest],
    ['ValidateVolumeCapabilitiesRequest', wire.ValidateVolumeCapabilitiesRequest],
    ['ListVolumesRequest', wire.ListVolumesRequest],
    ['NodeStageVolumeRequest', wire.NodeStageVolumeRequest],
    ['NodeUnstageVolumeRequest', wire.NodeUnstageVolumeRequest],
    ['NodePublishVolumeRequest', wire.NodePublishVolumeRequest],
    ['NodeUnpublishVolumeRequest', wire.NodeUnpublishVolumeRequest],
    ['NodeGetVolumeStatsRequest', wire.NodeGetVolumeStatsRequest],
    ['NodeGetVolumeHealthRequest', wire.NodeGetVolumeHealthRequest],
    ['ControllerExpandVolumeRequest', wire.ControllerExpandVolumeRequest],
    // The health RPCs reuse these schemas: every field they name must exist in those messages too.
    ['ControllerGetVolumeHealthRequest', wire.DeleteVolumeRequest],
    ['ControllerListVolumeHealthRequest', wire.ListVolumesRequest],
    ['VolumeCapability', wire.VolumeCapabilityWire],
    ['CapacityRange', wire.CapacityRangeWire],
    ['GetCapacityRequest', wire.GetCapacityRequest],
    ['TopologyRequirement', wire.TopologyRequirementWire],
    ['Topology', wire.TopologyWire],
    ['CreateSnapshotRequest', wire.CreateSnapshotRequest],
    ['DeleteSnapshotRequest', wire.DeleteSnapshotRequest],
    ['GetSnapshotRequest', wire.GetSnapshotRequest],
    ['ListSnapshotsRequest', wire.ListSnapshotsRequest],
    ['VolumeContentSource', wire.VolumeContentSourceWire],
    ['VolumeContentSource.SnapshotSource', wire.SnapshotSourceWire],
    ['VolumeContentSource.VolumeSource', wire.VolumeSourceWire],
  ] as [string, z.ZodObject][])('%s', (name, schema) => {
    const fields = message(name).field.map((f) => f.name);
    for (const k of keysOf(schema)) if (!ONEOF_VIRTUAL.has(k)) expect(fields).toContain(k);
  });
  it('VolumeCapability.MountVolume and AccessMode', () => {
    expect(message('VolumeCapability.MountVolume').field.map((f) => f.name)).toEqual(
      expect.arrayContaining(['fs_type', 'mount_flags']),
    );
    expect(message('VolumeCapability.AccessMode').field.map((f) => f.name)).toContain('mode');
  });
});

// ---- answers through the real serialiser ----------------------------------------------------

const NODE = '11111111-1111-4111-8111-111111111111';

function fakeClient(datasets: DatasetConfiguration[]): ControlClient {
  const snapshot = (): ClusterSnapshot => ({
    generation: '1',
    configuration_tag: 't',
    datasets,
    leases: [],
    nodes: [
      {
        uuid: NODE,
        era: 'e',
        host: '127.0.0.1',
        instance_id: 'i',
        backend: 'loopback',
        manifestations: [],
        errors: [],
        alive: true,
        last_seen: new Date().toISOString(),
      },
    ],
  });
  const unused = () => Promise.reject(new Error('not used in this test'));
  return {
    version: async () => ({ flocker: 'test' }),
    listDatasets: async () => datasets,
    createDataset: async (req: CreateDatasetRequest) => {
      const d: DatasetConfiguration = {
        dataset_id: req.dataset_id as string,
        primary: req.primary,
        maximum_size: req.maximum_size ?? null,
        metadata: req.metadata ?? {},
        deleted: false,
      };
      datasets.push(d);
      return d;
    },
    waitForCluster: async () => snapshot(),
    updateDataset: unused,
    deleteDataset: unused,
    createSnapshot: unused,
    deleteSnapshot: unused,
    listLeases: async () => [],
    acquireLease: unused,
    releaseLease: unused,
  };
}

function driver(datasets: DatasetConfiguration[] = []): CsiDriver {
  return new CsiDriver({
    client: fakeClient(datasets),
    logger: winston.createLogger({ silent: true }),
    mode: 'all',
    nodeId: NODE,
    mounter: { mounts: async () => [], bind: async () => undefined, unmount: async () => undefined },
    version: '0.1.0',
    defaultSize: 1024 * MiB,
    stageTimeoutMs: 1000,
  });
}

/** Serialises an answer as grpc-js would and decodes it as a client would. */
function roundTrip(service: ServiceDefinition, method: string, response: object): unknown {
  const m = service[method];
  if (!m) throw new Error(`no method ${method}`);
  return m.responseDeserialize(m.responseSerialize(response));
}

describe('topology and capacity answers survive the serialiser', () => {
  const ZONED = '44444444-4444-4444-8444-444444444444';
  function zonedDriver(datasets: DatasetConfiguration[] = []): CsiDriver {
    const base = fakeClient(datasets);
    return new CsiDriver({
      client: {
        ...base,
        waitForCluster: async (since, timeoutMs) => {
          const s = await base.waitForCluster(since, timeoutMs);
          return {
            ...s,
            nodes: s.nodes.map((n) => ({
              ...n,
              zone: ZONED,
              available_bytes: 2048 * MiB,
              max_volume_size: 4096 * MiB,
            })),
          };
        },
      },
      logger: winston.createLogger({ silent: true }),
      mode: 'all',
      nodeId: NODE,
      mounter: { mounts: async () => [], bind: async () => undefined, unmount: async () => undefined },
      version: '0.1.0',
      defaultSize: 1024 * MiB,
      stageTimeoutMs: 1000,
    });
  }
  const segments = { [TOPOLOGY_ZONE_KEY]: ZONED };

  it('GetPluginCapabilities, NodeGetInfo with its topology, GetCapacity (int64 as strings, wrappers as values)', async () => {
    const d = zonedDriver();
    const caps = await d.getPluginCapabilities();
    expect(roundTrip(services.Identity, 'GetPluginCapabilities', caps)).toMatchObject(caps);
    expect(roundTrip(services.Node, 'NodeGetInfo', await d.nodeGetInfo())).toEqual({
      node_id: NODE,
      max_volumes_per_node: '0',
      accessible_topology: { segments },
    });
    expect(
      roundTrip(services.Controller, 'GetCapacity', await d.getCapacity({ accessible_topology: { segments } })),
    ).toEqual({
      available_capacity: String(2048 * MiB),
      maximum_volume_size: { value: String(4096 * MiB) },
      minimum_volume_size: { value: String(64 * MiB) },
    });
  });

  it('CreateVolume with accessibility_requirements answers the volume with its accessible_topology', async () => {
    const d = zonedDriver();
    const created = await d.createVolume({
      name: 'pvc-t',
      volume_capabilities: [{ mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }],
      accessibility_requirements: { requisite: [{ segments }], preferred: [{ segments }] },
    });
    expect(roundTrip(services.Controller, 'CreateVolume', created)).toEqual({
      volume: {
        volume_id: datasetIdForName('pvc-t'),
        capacity_bytes: String(1024 * MiB),
        accessible_topology: [{ segments }],
      },
    });
  });
});

describe('answers survive the serialiser unchanged', () => {
  it('Identity', async () => {
    const d = driver();
    for (const [method, answer] of [
      ['GetPluginInfo', await d.getPluginInfo()],
      ['GetPluginCapabilities', await d.getPluginCapabilities()],
      ['Probe', await d.probe()],
    ] as const) {
      // toMatchObject: the decoder adds the name of the set oneof member ("type": "service").
      expect(roundTrip(services.Identity, method, answer)).toMatchObject(answer);
    }
  });
  it('Controller and Node capabilities, NodeGetInfo', async () => {
    const d = driver();
    const controllerCaps = await d.controllerGetCapabilities();
    expect(roundTrip(services.Controller, 'ControllerGetCapabilities', controllerCaps)).toMatchObject(controllerCaps);
    const nodeCaps = await d.nodeGetCapabilities();
    expect(roundTrip(services.Node, 'NodeGetCapabilities', nodeCaps)).toMatchObject(nodeCaps);
    const expanded = { capacity_bytes: String(128 * MiB), node_expansion_required: false };
    expect(roundTrip(services.Controller, 'ControllerExpandVolume', expanded)).toMatchObject({
      capacity_bytes: String(128 * MiB),
    });
    const health = {
      volume_health: {
        volume_id: NODE,
        health_statuses: [{ status: 'DEGRADED', reason: 'RESIZE_FAILED', message: 'm' }],
      },
    };
    expect(roundTrip(services.Node, 'NodeGetVolumeHealth', health)).toEqual(health);
    expect(roundTrip(services.Controller, 'ControllerGetVolumeHealth', health)).toEqual(health);
    const list = { entries: [health.volume_health], next_token: 'x' };
    expect(roundTrip(services.Controller, 'ControllerListVolumeHealth', list)).toEqual(list);
    // int64 comes back as a string (longs: String).
    expect(roundTrip(services.Node, 'NodeGetInfo', await d.nodeGetInfo())).toEqual({
      node_id: NODE,
      max_volumes_per_node: '0',
    });
  });
  it('CreateVolume: the dataset of the name, sized by the range; again the same; another size ALREADY_EXISTS', async () => {
    const datasets: DatasetConfiguration[] = [];
    const d = driver(datasets);
    const req = {
      name: 'pvc-a',
      capacity_range: { required_bytes: String(100 * MiB) },
      volume_capabilities: [{ mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'mount' }],
    };
    const created = await d.createVolume(req);
    expect(roundTrip(services.Controller, 'CreateVolume', created)).toEqual({
      volume: { volume_id: datasetIdForName('pvc-a'), capacity_bytes: String(100 * MiB) },
    });
    expect(datasets).toEqual([
      expect.objectContaining({ primary: NODE, maximum_size: 100 * MiB, metadata: { name: 'pvc-a' } }),
    ]);
    expect(await d.createVolume(req)).toEqual(created);
    await expect(
      d.createVolume({ ...req, capacity_range: { required_bytes: String(200 * MiB), limit_bytes: String(200 * MiB) } }),
    ).rejects.toMatchObject({
      code: status.ALREADY_EXISTS,
    });
    await expect(
      d.createVolume({
        ...req,
        volume_capabilities: [{ mount: {}, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } }],
      }),
    ).rejects.toBeInstanceOf(CsiError);
  });
  it('ListVolumes pages and ValidateVolumeCapabilities confirms single-node modes only', async () => {
    const datasets: DatasetConfiguration[] = [];
    const d = driver(datasets);
    const cap = (mode: string) => ({ mount: {}, access_mode: { mode } });
    for (const n of ['a', 'b', 'c'])
      await d.createVolume({ name: n, volume_capabilities: [cap('SINGLE_NODE_WRITER')] });
    const p1 = roundTrip(services.Controller, 'ListVolumes', await d.listVolumes({ max_entries: 2 })) as {
      entries: unknown[];
      next_token: string;
    };
    expect(p1.entries).toHaveLength(2);
    const p2 = roundTrip(
      services.Controller,
      'ListVolumes',
      await d.listVolumes({ starting_token: p1.next_token }),
    ) as { entries: unknown[]; next_token?: string };
    expect(p2.entries).toHaveLength(1);
    expect(p2.next_token ?? '').toBe('');
    const id = datasetIdForName('a');
    const ok = await d.validateVolumeCapabilities({
      volume_id: id,
      volume_capabilities: [cap('SINGLE_NODE_MULTI_WRITER')],
    });
    expect(roundTrip(services.Controller, 'ValidateVolumeCapabilities', ok)).toMatchObject({
      confirmed: { volume_capabilities: [{ access_mode: { mode: 'SINGLE_NODE_MULTI_WRITER' } }] },
    });
    const refused = (await d.validateVolumeCapabilities({
      volume_id: id,
      volume_capabilities: [cap('MULTI_NODE_READER_ONLY')],
    })) as { confirmed?: unknown; message: string };
    expect(refused.confirmed).toBeUndefined();
    expect(refused.message).toMatch(/MULTI_NODE_READER_ONLY/);
    await expect(
      d.validateVolumeCapabilities({ volume_id: 'nope', volume_capabilities: [cap('SINGLE_NODE_WRITER')] }),
    ).rejects.toMatchObject({ code: status.NOT_FOUND });
  });
});

describe('snapshot and clone answers survive the serialiser unchanged', () => {
  const snapshot = wire.snapshotWire({
    snapshotId: NODE,
    sourceVolumeId: datasetIdForName('v'),
    sizeBytes: 64 * MiB,
    creationTime: '2026-02-03T04:05:06.250Z',
    readyToUse: true,
  });
  const decoded = {
    size_bytes: String(64 * MiB),
    snapshot_id: NODE,
    source_volume_id: datasetIdForName('v'),
    creation_time: { seconds: String(Date.parse('2026-02-03T04:05:06Z') / 1000), nanos: 250_000_000 },
    ready_to_use: true,
  };
  it('CreateSnapshot, GetSnapshot, ListSnapshots (Timestamp, int64 as strings)', () => {
    expect(roundTrip(services.Controller, 'CreateSnapshot', { snapshot })).toEqual({ snapshot: decoded });
    expect(roundTrip(services.Controller, 'GetSnapshot', { snapshot })).toEqual({ snapshot: decoded });
    expect(roundTrip(services.Controller, 'ListSnapshots', { entries: [{ snapshot }], next_token: 't' })).toEqual({
      entries: [{ snapshot: decoded }],
      next_token: 't',
    });
    expect(roundTrip(services.Controller, 'DeleteSnapshot', {})).toEqual({});
  });
  it('CreateVolume with a content source answers it (snapshot or volume)', () => {
    for (const content_source of [{ snapshot: { snapshot_id: NODE } }, { volume: { volume_id: NODE } }]) {
      const volume = { volume_id: NODE, capacity_bytes: 64 * MiB, volume_context: {}, content_source };
      expect(roundTrip(services.Controller, 'CreateVolume', { volume })).toEqual({
        volume: {
          volume_id: NODE,
          capacity_bytes: String(64 * MiB),
          content_source: expect.objectContaining(content_source),
        },
      });
    }
  });
  it('a decoded content source parses (the oneof name beside its member); one of neither kind is INVALID_ARGUMENT', () => {
    const m = services.Controller.CreateVolume;
    if (!m) throw new Error('no CreateVolume');
    const req = m.requestDeserialize(
      m.requestSerialize({ name: 'n', volume_content_source: { snapshot: { snapshot_id: NODE } } }),
    );
    const parsed = wire.parseRequest(wire.CreateVolumeRequest, req, 'CreateVolume');
    expect(wire.toContentSource(parsed.volume_content_source)).toEqual({ kind: 'snapshot', snapshotId: NODE });
    expect(wire.toContentSource({ volume: { volume_id: NODE } })).toEqual({ kind: 'volume', volumeId: NODE });
    expect(wire.toContentSource(undefined)).toBeUndefined();
    expect(() => wire.toContentSource({})).toThrow(expect.objectContaining({ code: status.INVALID_ARGUMENT }));
    expect(() => wire.toContentSource({ snapshot: {} })).toThrow(
      expect.objectContaining({ code: status.INVALID_ARGUMENT }),
    );
  });
});
