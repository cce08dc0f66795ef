/** Snapshots and clones against a fake control service that keeps its rules (issue 19 with issue 20). */
import {
  FlockerApiError,
  type BackendSnapshot,
  type ClusterSnapshot,
  type CreateDatasetRequest,
  type CreateSnapshotRequest,
  type DatasetConfiguration,
  type Lease,
  METADATA_CLONE_KEY,
  type NodeState,
  type SnapshotConfiguration,
} from '@flocker/api';
import { status } from '@grpc/grpc-js';
import winston from 'winston';
import { CsiDriver, type ControlClient } from './CsiDriver';
import { datasetIdForName, MiB } from './mapping';
import { snapshotIdForName } from './snapshots';

const ME = '11111111-1111-4111-8111-111111111111';
const UNKNOWN = '99999999-9999-4999-8999-999999999999';
const CAP = { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
const TAKEN_AT = '2026-02-03T04:05:06.250Z';

interface World {
  datasets: DatasetConfiguration[];
  snapshots: SnapshotConfiguration[];
  backend: BackendSnapshot[];
  leases: Lease[];
  node: NodeState;
  generation: number;
  calls: string[];
  /** What the agent does with a new snapshot: take it (ready or creating) after a moment, fail it, or nothing. */
  agent: 'ready' | 'creating' | 'error' | 'idle';
}

function world(extra: Partial<World> = {}): World {
  return {
    datasets: [],
    snapshots: [],
    backend: [],
    leases: [],
    node: {
      uuid: ME,
      era: 'e',
      host: 'node1',
      instance_id: 'i',
      backend: 'loopback',
      manifestations: [],
      errors: [],
      alive: true,
      last_seen: new Date().toISOString(),
    },
    generation: 1,
    calls: [],
    agent: 'ready',
    ...extra,
  };
}

function bump(w: World): void {
  w.generation += 1;
}

/** The control service's snapshot and clone rules, as packages/control-api/README.md states them. */
function client(w: World): ControlClient {
  const snap = (): ClusterSnapshot => ({
    generation: String(w.generation),
    configuration_tag: 't',
    datasets: w.datasets,
    snapshots: w.snapshots,
    leases: w.leases,
    nodes: [{ ...w.node, snapshots: w.backend }],
  });
  const unused = () => Promise.reject(new Error('unused'));
  const takeLater = (x: SnapshotConfiguration) => {
    if (w.agent === 'idle') return;
    setTimeout(() => {
      w.backend.push({
        snapshot_id: x.snapshot_id,
        dataset_id: x.dataset_id,
        size: w.datasets.find((d) => d.dataset_id === x.dataset_id)?.maximum_size ?? 0,
        created_at: TAKEN_AT,
        status: w.agent as BackendSnapshot['status'],
        backend_id: 'b',
        source_blockdevice_id: 'v',
      });
      bump(w);
    }, 30);
  };
  const addSnapshot = (req: CreateSnapshotRequest): SnapshotConfiguration => {
    const source = w.datasets.find((d) => d.dataset_id === req.dataset_id);
    if (!source) throw new FlockerApiError(404, 'DATASET_NOT_FOUND', 'no dataset');
    if (source.deleted) throw new FlockerApiError(400, 'SNAPSHOT_SOURCE_DELETED', 'deleted');
    const id = req.snapshot_id ?? `eeeeeeee-eeee-4eee-8eee-${String(w.snapshots.length).padStart(12, '0')}`;
    if (w.snapshots.some((x) => x.snapshot_id === id)) throw new FlockerApiError(409, 'SNAPSHOT_ID_IN_USE', 'id');
    const name = req.metadata?.name;
    if (name !== undefined && w.snapshots.some((x) => !x.deleted && x.metadata.name === name))
      throw new FlockerApiError(409, 'SNAPSHOT_NAME_IN_USE', 'name');
    const x: SnapshotConfiguration = {
      snapshot_id: id,
      dataset_id: req.dataset_id,
      metadata: req.metadata ?? {},
      created_at: '2026-02-03T04:05:00.000Z',
    };
    w.snapshots.push(x);
    bump(w);
    takeLater(x);
    return x;
  };
  return {
    version: async () => ({ flocker: 'test' }),
    listDatasets: async () => w.datasets,
    createDataset: async (req: CreateDatasetRequest) => {
      w.calls.push(`createDataset ${JSON.stringify(req)}`);
      const id = req.dataset_id ?? UNKNOWN;
      if (w.datasets.some((d) => d.dataset_id === id)) throw new FlockerApiError(409, 'DATASET_ID_IN_USE', 'id');
      let source = req.source_snapshot_id;
      if (source !== undefined && !w.snapshots.some((x) => x.snapshot_id === source && !x.deleted))
        throw new FlockerApiError(400, 'SOURCE_SNAPSHOT_UNKNOWN', 'no snapshot');
      if (req.source_dataset_id !== undefined) {
        if (!w.datasets.some((d) => d.dataset_id === req.source_dataset_id && !d.deleted))
          throw new FlockerApiError(400, 'SOURCE_DATASET_UNKNOWN', 'no dataset');
        source = addSnapshot({
          dataset_id: req.source_dataset_id,
          metadata: { [METADATA_CLONE_KEY]: id },
        }).snapshot_id;
      }
      const d: DatasetConfiguration = {
        dataset_id: id,
        primary: req.primary,
        maximum_size: req.maximum_size ?? null,
        metadata: req.metadata ?? {},
        deleted: false,
        ...(source !== undefined ? { source_snapshot_id: source } : {}),
      };
      w.datasets.push(d);
      bump(w);
      return d;
    },
    deleteDataset: async (id: string) => {
      w.calls.push(`deleteDataset ${id}`);
      const d = w.datasets.find((x) => x.dataset_id === id) as DatasetConfiguration;
      d.deleted = true;
      return d;
    },
    updateDataset: unused,
    listLeases: async () => w.leases,
    acquireLease: unused,
    releaseLease: unused,
    createSnapshot: async (req) => {
      w.calls.push(`createSnapshot ${req.snapshot_id ?? '-'}`);
      return addSnapshot(req);
    },
    deleteSnapshot: async (id: string) => {
      w.calls.push(`deleteSnapshot ${id}`);
      const x = w.snapshots.find((y) => y.snapshot_id === id);
      if (!x) throw new FlockerApiError(404, 'SNAPSHOT_NOT_FOUND', 'no snapshot');
      x.deleted = true;
      bump(w);
      return x;
    },
    // The long-poll: a changed generation at once, else a short wait (the fake has no events).
    waitForCluster: async (since?: string, timeoutMs?: number) => {
      if (since === String(w.generation) && (timeoutMs ?? 0) > 0)
        await new Promise((r) => setTimeout(r, Math.min(timeoutMs ?? 0, 20)));
      return snap();
    },
  };
}

function driver(w: World, stageTimeoutMs = 2000): CsiDriver {
  return new CsiDriver({
    client: client(w),
    logger: winston.createLogger({ silent: true }),
    mode: 'all',
    nodeId: ME,
    mounter: { mounts: async () => [], bind: async () => undefined, unmount: async () => undefined },
    version: '0.1.0',
    defaultSize: 1024 * MiB,
    stageTimeoutMs,
    pollMs: 50,
  });
}

async function withVolume(w: World, d: CsiDriver, name = 'pvc-src', bytes = 100 * MiB): Promise<string> {
  const r = (await d.createVolume({
    name,
    volume_capabilities: [CAP],
    capacity_range: { required_bytes: String(bytes) },
  })) as { volume: { volume_id: string } };
  return r.volume.volume_id;
}

type SnapshotAnswer = {
  snapshot: {
    snapshot_id: string;
    source_volume_id: string;
    size_bytes: number;
    ready_to_use: boolean;
    creation_time: { seconds: number; nanos: number };
  };
};

describe('CSI snapshots', () => {
  it('advertises CREATE_DELETE_SNAPSHOT, LIST_SNAPSHOTS, GET_SNAPSHOT and CLONE_VOLUME', async () => {
    const caps = (await driver(world()).controllerGetCapabilities()) as { capabilities: { rpc: { type: string } }[] };
    expect(caps.capabilities.map((c) => c.rpc.type)).toEqual(
      expect.arrayContaining(['CREATE_DELETE_SNAPSHOT', 'LIST_SNAPSHOTS', 'GET_SNAPSHOT', 'CLONE_VOLUME']),
    );
  });

  it('CreateSnapshot: a Flocker snapshot named by the CSI name, answered once the backend holds it', async () => {
    const w = world();
    const d = driver(w);
    const vol = await withVolume(w, d);
    const r = (await d.createSnapshot({ name: 'snap-1', source_volume_id: vol })) as SnapshotAnswer;
    expect(r.snapshot).toEqual({
      snapshot_id: snapshotIdForName('snap-1'),
      source_volume_id: vol,
      size_bytes: 100 * MiB,
      ready_to_use: true,
      creation_time: { seconds: Date.parse(TAKEN_AT) / 1000 - 0.25, nanos: 250_000_000 },
    });
    expect(w.snapshots).toEqual([expect.objectContaining({ dataset_id: vol, metadata: { name: 'snap-1' } })]);
    // Again: the same snapshot, no second one.
    expect(await d.createSnapshot({ name: 'snap-1', source_volume_id: vol })).toEqual(r);
    expect(w.calls.filter((c) => c.startsWith('createSnapshot'))).toHaveLength(1);
  });

  it('CreateSnapshot: cut but not ready (EBS pending) is answered with ready_to_use false', async () => {
    const w = world({ agent: 'creating' });
    const d = driver(w);
    const vol = await withVolume(w, d);
    const r = (await d.createSnapshot({ name: 's', source_volume_id: vol })) as SnapshotAnswer;
    expect(r.snapshot).toMatchObject({ ready_to_use: false, size_bytes: 100 * MiB });
    expect(r.snapshot.creation_time.seconds).toBe(Math.floor(Date.parse(TAKEN_AT) / 1000));
  });

  it('CreateSnapshot errors: INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, INTERNAL, DEADLINE_EXCEEDED', async () => {
    const w = world();
    const d = driver(w, 300);
    const vol = await withVolume(w, d);
    const other = await withVolume(w, d, 'pvc-other');
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'OK',
        (e: { code: status }) => status[e.code],
      );
    expect(await code(d.createSnapshot({ source_volume_id: vol }))).toBe('INVALID_ARGUMENT');
    expect(await code(d.createSnapshot({ name: 'x' }))).toBe('INVALID_ARGUMENT');
    expect(await code(d.createSnapshot({ name: 'x', source_volume_id: vol, parameters: { a: 'b' } }))).toBe(
      'INVALID_ARGUMENT',
    );
    expect(
      await code(
        d.createSnapshot({
          name: 'x',
          source_volume_id: vol,
          parameters: { 'csi.storage.k8s.io/volumesnapshot/name': 'n' },
        }),
      ),
    ).toBe('OK');
    expect(await code(d.createSnapshot({ name: 'y', source_volume_id: UNKNOWN }))).toBe('NOT_FOUND');
    expect(await code(d.createSnapshot({ name: 'y', source_volume_id: 'not-a-uuid' }))).toBe('NOT_FOUND');
    expect(await code(d.createSnapshot({ name: 'x', source_volume_id: other }))).toBe('ALREADY_EXISTS');
    w.agent = 'error';
    expect(await code(d.createSnapshot({ name: 'e', source_volume_id: vol }))).toBe('INTERNAL');
    w.agent = 'idle';
    await expect(d.createSnapshot({ name: 'i', source_volume_id: vol })).rejects.toMatchObject({
      code: status.DEADLINE_EXCEEDED,
      message: expect.stringContaining('the dataset agent on node1 has not taken it yet'),
    });
  });

  it('CreateSnapshot: a name whose id a deleted snapshot holds gets a new id; a racing create of the name is that one', async () => {
    const w = world();
    const d = driver(w);
    const vol = await withVolume(w, d);
    const first = (await d.createSnapshot({ name: 'again', source_volume_id: vol })) as SnapshotAnswer;
    await d.deleteSnapshot({ snapshot_id: first.snapshot.snapshot_id });
    const second = (await d.createSnapshot({ name: 'again', source_volume_id: vol })) as SnapshotAnswer;
    expect(second.snapshot.snapshot_id).not.toBe(first.snapshot.snapshot_id);
    expect(w.calls.filter((c) => c.startsWith('createSnapshot'))).toEqual([
      `createSnapshot ${snapshotIdForName('again')}`,
      `createSnapshot ${snapshotIdForName('again')}`,
      'createSnapshot -',
    ]);
  });

  it('DeleteSnapshot is idempotent (malformed, unknown, deleted ids are OK); INVALID_ARGUMENT without an id', async () => {
    const w = world();
    const d = driver(w);
    const vol = await withVolume(w, d);
    const r = (await d.createSnapshot({ name: 's', source_volume_id: vol })) as SnapshotAnswer;
    await expect(d.deleteSnapshot({})).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(await d.deleteSnapshot({ snapshot_id: 'reallyfakesnapshotid' })).toEqual({});
    expect(await d.deleteSnapshot({ snapshot_id: UNKNOWN })).toEqual({});
    expect(await d.deleteSnapshot({ snapshot_id: r.snapshot.snapshot_id })).toEqual({});
    expect(await d.deleteSnapshot({ snapshot_id: r.snapshot.snapshot_id })).toEqual({});
    expect(w.snapshots[0]?.deleted).toBe(true);
  });

  it('ListSnapshots: live snapshots by id, filtered, paged; GetSnapshot; a foreign token ABORTED', async () => {
    const w = world();
    const d = driver(w);
    const ids: string[] = [];
    for (const n of ['a', 'b', 'c']) {
      const vol = await withVolume(w, d, `pvc-${n}`);
      ids.push(
        ((await d.createSnapshot({ name: `s-${n}`, source_volume_id: vol })) as SnapshotAnswer).snapshot.snapshot_id,
      );
    }
    await d.deleteSnapshot({ snapshot_id: ids[2] });
    const sorted = ids.slice(0, 2).sort();
    type List = { entries: { snapshot: { snapshot_id: string } }[]; next_token: string };
    const all = (await d.listSnapshots({})) as List;
    expect(all.entries.map((e) => e.snapshot.snapshot_id)).toEqual(sorted);
    const p1 = (await d.listSnapshots({ max_entries: 1 })) as List;
    expect(p1.entries.map((e) => e.snapshot.snapshot_id)).toEqual([sorted[0]]);
    const p2 = (await d.listSnapshots({ starting_token: p1.next_token })) as List;
    expect(p2).toEqual({ entries: [expect.objectContaining({ snapshot: expect.anything() })], next_token: '' });
    expect(((await d.listSnapshots({ snapshot_id: ids[1] })) as List).entries).toHaveLength(1);
    expect(((await d.listSnapshots({ snapshot_id: ids[2] })) as List).entries).toHaveLength(0);
    expect(((await d.listSnapshots({ snapshot_id: 'none-exist-id' })) as List).entries).toHaveLength(0);
    expect(((await d.listSnapshots({ source_volume_id: datasetIdForName('pvc-a') })) as List).entries).toEqual([
      { snapshot: expect.objectContaining({ snapshot_id: ids[0] }) },
    ]);
    expect(((await d.listSnapshots({ source_volume_id: UNKNOWN })) as List).entries).toHaveLength(0);
    await expect(d.listSnapshots({ starting_token: 'bogus' })).rejects.toMatchObject({ code: status.ABORTED });
    await expect(d.listSnapshots({ max_entries: -1 })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(await d.getSnapshot({ snapshot_id: ids[0] })).toEqual({
      snapshot: expect.objectContaining({ snapshot_id: ids[0], ready_to_use: true }),
    });
    for (const snapshot_id of [ids[2], UNKNOWN, 'none-exist-id'])
      await expect(d.getSnapshot({ snapshot_id })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(d.getSnapshot({})).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
  });
});

describe('CSI clones (volume_content_source)', () => {
  it('from a snapshot: source_snapshot_id, at least the snapshot size, content_source answered; idempotent', async () => {
    const w = world();
    const d = driver(w);
    const vol = await withVolume(w, d);
    const snap = ((await d.createSnapshot({ name: 's', source_volume_id: vol })) as SnapshotAnswer).snapshot;
    const req = {
      name: 'pvc-clone',
      volume_capabilities: [CAP],
      volume_content_source: { snapshot: { snapshot_id: snap.snapshot_id }, type: 'snapshot' },
    };
    const r = await d.createVolume(req);
    expect(r).toEqual({
      volume: expect.objectContaining({
        volume_id: datasetIdForName('pvc-clone'),
        capacity_bytes: 100 * MiB,
        content_source: { snapshot: { snapshot_id: snap.snapshot_id } },
      }),
    });
    expect(w.datasets.find((x) => x.metadata.name === 'pvc-clone')).toMatchObject({
      source_snapshot_id: snap.snapshot_id,
      maximum_size: 100 * MiB,
    });
    expect(await d.createVolume(req)).toEqual(r);
    // Larger than the snapshot when asked.
    const big = (await d.createVolume({
      ...req,
      name: 'pvc-big',
      capacity_range: { required_bytes: String(200 * MiB) },
    })) as { volume: { capacity_bytes: number } };
    expect(big.volume.capacity_bytes).toBe(200 * MiB);
  });

  it('from a snapshot: NOT_FOUND for an unknown or deleted one, OUT_OF_RANGE below its size, ALREADY_EXISTS from another source', async () => {
    const w = world();
    const d = driver(w);
    const vol = await withVolume(w, d);
    const snap = ((await d.createSnapshot({ name: 's', source_volume_id: vol })) as SnapshotAnswer).snapshot;
    const gone = ((await d.createSnapshot({ name: 'g', source_volume_id: vol })) as SnapshotAnswer).snapshot;
    await d.deleteSnapshot({ snapshot_id: gone.snapshot_id });
    const from = (snapshot_id: string, extra: object = {}) => ({
      name: 'pvc-c',
      volume_capabilities: [CAP],
      volume_content_source: { snapshot: { snapshot_id } },
      ...extra,
    });
    for (const id of ['non-existing-snapshot-id', UNKNOWN, gone.snapshot_id])
      await expect(d.createVolume(from(id))).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(
      d.createVolume(from(snap.snapshot_id, { capacity_range: { limit_bytes: String(80 * MiB) } })),
    ).rejects.toMatchObject({ code: status.OUT_OF_RANGE });
    await expect(
      d.createVolume({ name: 'pvc-c', volume_capabilities: [CAP], volume_content_source: {} }),
    ).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    await d.createVolume(from(snap.snapshot_id));
    const snap2 = ((await d.createSnapshot({ name: 's2', source_volume_id: vol })) as SnapshotAnswer).snapshot;
    await expect(d.createVolume(from(snap2.snapshot_id))).rejects.toMatchObject({
      code: status.ALREADY_EXISTS,
      message: expect.stringContaining('not made from snapshot'),
    });
    await expect(
      d.createVolume({ ...from(snap.snapshot_id), volume_content_source: { volume: { volume_id: vol } } }),
    ).rejects.toMatchObject({ code: status.ALREADY_EXISTS });
  });

  it('from a volume: source_dataset_id, at least its size, NOT_FOUND for an unknown one; DeleteVolume drops the implicit snapshot', async () => {
    const w = world();
    const d = driver(w);
    const vol = await withVolume(w, d);
    const req = { name: 'pvc-copy', volume_capabilities: [CAP], volume_content_source: { volume: { volume_id: vol } } };
    const r = (await d.createVolume(req)) as { volume: { volume_id: string; capacity_bytes: number } };
    expect(r.volume).toMatchObject({ capacity_bytes: 100 * MiB, content_source: { volume: { volume_id: vol } } });
    expect(w.calls).toContainEqual(expect.stringContaining(`"source_dataset_id":"${vol}"`));
    expect(await d.createVolume(req)).toEqual(r);
    await expect(
      d.createVolume({ ...req, name: 'pvc-x', volume_content_source: { volume: { volume_id: UNKNOWN } } }),
    ).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(
      d.createVolume({
        ...req,
        name: 'pvc-x',
        volume_content_source: { volume: { volume_id: vol } },
        capacity_range: { limit_bytes: String(64 * MiB) },
      }),
    ).rejects.toMatchObject({ code: status.OUT_OF_RANGE });
    const implicit = w.snapshots.find((x) => x.metadata[METADATA_CLONE_KEY] === r.volume.volume_id);
    expect(implicit).toBeDefined();
    // The source's own snapshots are not the clone's to delete.
    const own = ((await d.createSnapshot({ name: 'mine', source_volume_id: vol })) as SnapshotAnswer).snapshot;
    await d.deleteVolume({ volume_id: r.volume.volume_id });
    expect(implicit?.deleted).toBe(true);
    expect(w.snapshots.find((x) => x.snapshot_id === own.snapshot_id)?.deleted).toBeUndefined();
    await d.deleteVolume({ volume_id: vol });
    expect(w.snapshots.find((x) => x.snapshot_id === own.snapshot_id)?.deleted).toBeUndefined();
  });

  it('a source that vanishes between the look and the create is NOT_FOUND', async () => {
    const w = world();
    const base = client(w);
    const d = new CsiDriver({
      client: {
        ...base,
        createDataset: () => Promise.reject(new FlockerApiError(400, 'SOURCE_SNAPSHOT_UNKNOWN', 'gone')),
      },
      logger: winston.createLogger({ silent: true }),
      mode: 'controller',
      mounter: { mounts: async () => [], bind: async () => undefined, unmount: async () => undefined },
      version: '0.1.0',
      defaultSize: 64 * MiB,
      stageTimeoutMs: 1000,
    });
    w.datasets.push({ dataset_id: UNKNOWN, primary: ME, maximum_size: 64 * MiB, metadata: {}, deleted: false });
    w.snapshots.push({ snapshot_id: ME, dataset_id: UNKNOWN, metadata: {}, created_at: TAKEN_AT });
    await expect(
      d.createVolume({
        name: 'v',
        volume_capabilities: [CAP],
        volume_content_source: { snapshot: { snapshot_id: ME } },
      }),
    ).rejects.toMatchObject({ code: status.NOT_FOUND });
  });
});
