/** Topology and GetCapacity against a fake control service: what a CO sees (issue 19). */
import type { DatasetConfiguration, NodeState } from '@flocker/api';
import { status } from '@grpc/grpc-js';
import type { CsiDriver, ControlClient } from './CsiDriver';
import { addDataset, datasetsClient, fakeNode, quietDriver } from './csiTestSupport';
import { datasetIdForName, MiB } from './mapping';
import { TOPOLOGY_ZONE_KEY, UNBOUNDED_CAPACITY } from './topology';

const ME = '11111111-1111-4111-8111-111111111111';
const B = '22222222-2222-4222-8222-222222222222';
const C = '33333333-3333-4333-8333-333333333333';
const K = TOPOLOGY_ZONE_KEY;
const CAP = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
const GiB = 1024 * MiB;

function node(uuid: string, extra: Partial<NodeState> = {}): NodeState {
  return fakeNode(uuid, uuid.slice(0, 1), extra);
}

interface World {
  datasets: DatasetConfiguration[];
  nodes: NodeState[];
  generation: number;
}

function client(w: World): ControlClient {
  return datasetsClient(w, (req) => addDataset(w.datasets, req, req.dataset_id as string));
}

function driver(w: World, extra: { nodeInfoWaitMs?: number } = {}): CsiDriver {
  return quietDriver(client(w), ME, [], {
    mode: 'all',
    version: '0.1.0',
    stageTimeoutMs: 1000,
    pollMs: 50,
    ...extra,
  });
}

const create = (name: string, accessibility_requirements?: object) => ({
  name,
  volume_capabilities: [CAP],
  ...(accessibility_requirements !== undefined ? { accessibility_requirements } : {}),
});
const seg = (zone: string) => ({ segments: { [K]: zone } });

describe('CSI topology', () => {
  it('advertises VOLUME_ACCESSIBILITY_CONSTRAINTS and GET_CAPACITY', async () => {
    const d = driver({ datasets: [], nodes: [node(ME)], generation: 1 });
    expect(await d.getPluginCapabilities()).toEqual({
      capabilities: [
        { service: { type: 'CONTROLLER_SERVICE' } },
        { service: { type: 'VOLUME_ACCESSIBILITY_CONSTRAINTS' } },
      ],
    });
    expect(await d.controllerGetCapabilities()).toMatchObject({
      capabilities: expect.arrayContaining([{ rpc: { type: 'GET_CAPACITY' } }]),
    });
  });

  it('NodeGetInfo: this node zone as the topology; none while the agent reports none', async () => {
    const w = { datasets: [], nodes: [node(ME, { zone: 'pool-1' })], generation: 1 };
    expect(await driver(w).nodeGetInfo()).toEqual({
      node_id: ME,
      max_volumes_per_node: 0,
      accessible_topology: { segments: { [K]: 'pool-1' } },
    });
    w.nodes = [node(ME)];
    expect(await driver(w).nodeGetInfo()).toEqual({ node_id: ME, max_volumes_per_node: 0 });
  });

  it('NodeGetInfo waits for the agent first report, then UNAVAILABLE after nodeInfoWaitMs', async () => {
    const w: World = { datasets: [], nodes: [], generation: 1 };
    const later = setTimeout(() => {
      w.nodes = [node(ME, { zone: 'pool-1' })];
      w.generation = 2;
    }, 60);
    expect(await driver(w, { nodeInfoWaitMs: 5000 }).nodeGetInfo()).toMatchObject({
      accessible_topology: { segments: { [K]: 'pool-1' } },
    });
    clearTimeout(later);
    const empty: World = { datasets: [], nodes: [], generation: 1 };
    await expect(driver(empty, { nodeInfoWaitMs: 100 }).nodeGetInfo()).rejects.toMatchObject({
      code: status.UNAVAILABLE,
      message: expect.stringMatching(/has not reported/),
    });
  });

  it('CreateVolume: a node in the preferred zone, then the requisite; the volume topology is that zone', async () => {
    const w: World = {
      datasets: [],
      nodes: [node(ME, { zone: 'z1' }), node(B, { zone: 'z2' }), node(C, { zone: 'z2', alive: false })],
      generation: 1,
    };
    const d = driver(w);
    expect(await d.createVolume(create('a', { requisite: [seg('z1'), seg('z2')], preferred: [seg('z2')] }))).toEqual({
      volume: {
        volume_id: datasetIdForName('a'),
        capacity_bytes: 64 * MiB,
        volume_context: {},
        accessible_topology: [{ segments: { [K]: 'z2' } }],
      },
    });
    expect(w.datasets.find((x) => x.metadata.name === 'a')?.primary).toBe(B);
    await d.createVolume(create('b', { requisite: [seg('z1')] }));
    expect(w.datasets.find((x) => x.metadata.name === 'b')?.primary).toBe(ME);
    // Only a dead node in z3 (C's zone made z3): nothing live there.
    w.nodes = [node(ME, { zone: 'z1' }), node(C, { zone: 'z3', alive: false })];
    await expect(d.createVolume(create('c', { requisite: [seg('z3')] }))).rejects.toMatchObject({
      code: status.RESOURCE_EXHAUSTED,
    });
    expect(w.datasets.some((x) => x.metadata.name === 'c')).toBe(false);
  });

  it('CreateVolume again: the volume with its topology; ALREADY_EXISTS when its zone is outside the requisite', async () => {
    const w: World = { datasets: [], nodes: [node(ME, { zone: 'z1' }), node(B, { zone: 'z2' })], generation: 1 };
    const d = driver(w);
    const first = await d.createVolume(create('a', { requisite: [seg('z1')] }));
    expect(await d.createVolume(create('a', { requisite: [seg('z1')] }))).toEqual(first);
    expect(await d.createVolume(create('a'))).toEqual(first);
    await expect(d.createVolume(create('a', { requisite: [seg('z2')] }))).rejects.toMatchObject({
      code: status.ALREADY_EXISTS,
      message: expect.stringMatching(/zone z1/),
    });
  });

  it('CreateVolume without zones anywhere: no topology, and any requisite zone is RESOURCE_EXHAUSTED', async () => {
    const w: World = { datasets: [], nodes: [node(ME)], generation: 1 };
    const d = driver(w);
    expect(await d.createVolume(create('a'))).toMatchObject({ volume: { accessible_topology: [] } });
    await expect(d.createVolume(create('b', { requisite: [seg('z1')] }))).rejects.toMatchObject({
      code: status.RESOURCE_EXHAUSTED,
    });
  });

  it('CreateVolume: a malformed requirement is INVALID_ARGUMENT', async () => {
    const d = driver({ datasets: [], nodes: [node(ME)], generation: 1 });
    await expect(d.createVolume(create('a', { requisite: 'z1' }))).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
    });
    await expect(d.createVolume(create('a', { preferred: [{ segments: { [K]: 1 } }] }))).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
    });
  });
});

describe('GetCapacity', () => {
  const w: World = {
    datasets: [],
    nodes: [
      node(ME, { zone: 'z1', available_bytes: 5 * GiB, max_volume_size: 16 * GiB }),
      node(B, { zone: 'z1', available_bytes: 3 * GiB, max_volume_size: 8 * GiB }),
      node(C, { zone: 'z2', available_bytes: GiB, alive: false }),
    ],
    generation: 1,
  };
  const limits = { maximum_volume_size: { value: 8 * GiB }, minimum_volume_size: { value: 64 * MiB } };

  it('the smallest free bytes of the live nodes (in the topology), the largest and smallest volume', async () => {
    const d = driver(w);
    expect(await d.getCapacity({})).toEqual({ available_capacity: 3 * GiB, ...limits });
    expect(await d.getCapacity({ accessible_topology: seg('z1') })).toEqual({
      available_capacity: 3 * GiB,
      ...limits,
    });
    // Only a dead node in z2: nothing can be created there.
    expect(await d.getCapacity({ accessible_topology: seg('z2') })).toEqual({ available_capacity: 0, ...limits });
    expect(
      await d.getCapacity({ volume_capabilities: [CAP], parameters: { profile: 'gold', 'csi.storage.k8s.io/x': 'y' } }),
    ).toEqual({ available_capacity: 3 * GiB, ...limits });
  });

  it('capabilities it cannot give: 0; unknown parameters: INVALID_ARGUMENT', async () => {
    const d = driver(w);
    const multi = { mount: {}, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } };
    expect(await d.getCapacity({ volume_capabilities: [CAP, multi] })).toEqual({ available_capacity: 0, ...limits });
    await expect(d.getCapacity({ parameters: { speed: 'fast' } })).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
    });
  });

  it('backends without a figure: their largest volume, else unbounded; no maximum when none is reported', async () => {
    const cloud: World = {
      datasets: [],
      nodes: [node(ME, { zone: 'us-east-1a', max_volume_size: 16 * GiB })],
      generation: 1,
    };
    expect(await driver(cloud).getCapacity({})).toEqual({
      available_capacity: 16 * GiB,
      maximum_volume_size: { value: 16 * GiB },
      minimum_volume_size: { value: 64 * MiB },
    });
    const bare: World = { datasets: [], nodes: [node(ME)], generation: 1 };
    expect(await driver(bare).getCapacity({})).toEqual({
      available_capacity: UNBOUNDED_CAPACITY,
      minimum_volume_size: { value: 64 * MiB },
    });
  });
});

describe('CSI CreateVolume file systems', () => {
  const xfsCap = { ...CAP, mount: { fs_type: 'xfs' } };
  it('fsType=xfs (parameter or capability) makes an xfs dataset of at least 300 MiB; ext4 by default', async () => {
    const w: World = { datasets: [], nodes: [node(ME, { zone: 'pool-1' })], generation: 1 };
    const d = driver(w);
    await d.createVolume({ name: 'by-param', volume_capabilities: [CAP], parameters: { fsType: 'xfs' } });
    await d.createVolume({ name: 'by-cap', volume_capabilities: [xfsCap] });
    await d.createVolume({ name: 'plain', volume_capabilities: [CAP] });
    const by = (n: string) => w.datasets.find((x) => x.metadata['name'] === n);
    expect(by('by-param')).toMatchObject({
      maximum_size: 300 * MiB,
      metadata: { 'clusterhq:flocker:filesystem': 'xfs' },
    });
    expect(by('by-cap')?.metadata['clusterhq:flocker:filesystem']).toBe('xfs');
    expect(by('plain')?.metadata['clusterhq:flocker:filesystem']).toBeUndefined();
    expect(by('plain')?.maximum_size).toBe(64 * MiB);
  });
  it('refuses an xfs volume whose limit is below 300 MiB (OUT_OF_RANGE) and disagreeing file systems (INVALID_ARGUMENT)', async () => {
    const w: World = { datasets: [], nodes: [node(ME, { zone: 'pool-1' })], generation: 1 };
    const d = driver(w);
    await expect(
      d.createVolume({
        name: 'small',
        volume_capabilities: [xfsCap],
        capacity_range: { required_bytes: String(64 * MiB), limit_bytes: String(128 * MiB) },
      }),
    ).rejects.toMatchObject({ code: status.OUT_OF_RANGE });
    await expect(
      d.createVolume({ name: 'mixed', volume_capabilities: [xfsCap], parameters: { fsType: 'ext4' } }),
    ).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(w.datasets).toEqual([]);
  });
});
