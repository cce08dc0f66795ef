/**
 * The snapshot decisions (issue 20), exhaustively: every role x every discovered state of
 * the source volume x a live or deleted snapshot x held by the backend or not x listed or
 * not, against the rules written out once more here; then who destroys, clones, and the
 * order against the volume's own steps.
 */
import { caretakerOf } from '@flocker/api/caretaker';
import type { BlockDeviceSnapshot } from '@flocker/storage-drivers';
import { calculateChanges, discoveredOf, TRANSITIONS, type Discovered, type Role } from './calculateChanges';
import type {
  Action,
  ClusterNode,
  DecisionContext,
  DesiredDataset,
  DesiredSnapshot,
  DesiredState,
  DiscoveredVolume,
  LocalState,
} from './LocalState';
import { desiredStateOf } from './desiredState';
import { snapshotDestroyer } from './snapshotChanges';

const ME = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';
const DEAD = '33333333-3333-4333-8333-333333333333';
const LOW = '00000000-0000-4000-8000-000000000000';
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const SNAP = '5a5a5a5a-0000-4000-8000-000000000001';
const SNAP2 = '5a5a5a5a-0000-4000-8000-000000000002';
const MiB = 1024 * 1024;
const MOUNT_PATH = `/flocker/${DS}`;
const ctx: DecisionContext = {
  nodeUuid: ME,
  mountRoot: '/flocker',
  defaultSize: 1024 * MiB,
  allocationUnit: MiB,
  canResize: true,
};
const nodes: ClusterNode[] = [
  { uuid: ME, instanceId: 'i-me', alive: true },
  { uuid: OTHER, instanceId: 'i-other', alive: true },
  { uuid: DEAD, instanceId: 'i-dead', alive: false },
];

const ROLES: Role[] = ['primary', 'elsewhere', 'deleted'];
const DISCOVERED = Object.keys(TRANSITIONS.primary) as Discovered[];

function dataset(role: Role, over: Partial<DesiredDataset> = {}): DesiredDataset {
  return {
    datasetId: DS,
    primary: role === 'primary' ? ME : OTHER,
    maximumSize: 128 * MiB,
    deleted: role === 'deleted',
    ...over,
  };
}

function volumeFor(d: Discovered): DiscoveredVolume | undefined {
  const base = { blockdeviceId: 'vol-1', datasetId: DS, size: 128 * MiB };
  const here = { ...base, attachedTo: 'i-me', devicePath: '/dev/loop7' };
  switch (d) {
    case 'none':
      return undefined;
    case 'unattached':
      return { ...base, attachedTo: null };
    case 'elsewhereLive':
      return { ...base, attachedTo: 'i-other' };
    case 'elsewhereDead':
      return { ...base, attachedTo: 'i-dead' };
    case 'hereUnknown':
      return { ...base, attachedTo: 'i-me' };
    case 'hereNoFs':
      return { ...here, hasFilesystem: false, mountPoints: [] };
    case 'hereFs':
      return { ...here, hasFilesystem: true, mountPoints: [] };
    case 'mounted':
      return { ...here, hasFilesystem: true, mountPoints: [MOUNT_PATH] };
  }
}

function held(id: string): BlockDeviceSnapshot {
  return {
    snapshotId: id,
    backendId: `b-${id}`,
    datasetId: DS,
    sourceBlockdeviceId: 'vol-1',
    size: 128 * MiB,
    createdAt: '2026-12-04T00:00:00.000Z',
    status: 'ready',
  };
}

interface Case {
  dataset: DesiredDataset;
  volume: DiscoveredVolume | undefined;
  snapshots: DesiredSnapshot[];
  /** What the backend holds; undefined: not listed. */
  backend: BlockDeviceSnapshot[] | undefined;
  nodes?: ClusterNode[];
}

function decide(c: Case): Action[] {
  const desired: DesiredState = { datasets: [c.dataset], nodes: c.nodes ?? nodes, snapshots: c.snapshots };
  const local: LocalState = {
    instanceId: 'i-me',
    volumes: c.volume !== undefined ? [c.volume] : [],
    ...(c.backend !== undefined ? { snapshots: c.backend } : {}),
  };
  return calculateChanges(desired, local, ctx);
}

describe('snapshot decisions, every combination', () => {
  const combos: [Role, Discovered, boolean, boolean, boolean][] = [];
  for (const role of ROLES)
    for (const d of DISCOVERED)
      for (const deleted of [false, true])
        for (const inBackend of [false, true])
          for (const listed of [false, true]) combos.push([role, d, deleted, inBackend, listed]);

  it.each(combos)(
    '%s, volume %s, snapshot deleted=%s, in backend=%s, listed=%s',
    (role, d, deleted, inBackend, listed) => {
      const ds = dataset(role);
      const volume = volumeFor(d);
      const actions = decide({
        dataset: ds,
        volume,
        snapshots: [{ snapshotId: SNAP, datasetId: DS, deleted }],
        backend: listed ? (inBackend ? [held(SNAP)] : []) : undefined,
      });
      const without = decide({ dataset: ds, volume, snapshots: [], backend: undefined });
      // The rules, once more: the volume's own step wins; then take (live, not held, primary here
      // with a file system) or destroy (deleted, held; ME holds it and is the destroyer: OTHER, the
      // primary in the other roles, does not report it, so ME is the lowest holder... unless primary).
      if (without.length > 0) {
        expect(actions).toEqual(without);
        return;
      }
      let expected: Action[] = [];
      if (listed && !deleted && !inBackend && role === 'primary' && (d === 'mounted' || d === 'hereFs')) {
        expected = [
          {
            kind: 'takeSnapshot',
            datasetId: DS,
            blockdeviceId: 'vol-1',
            snapshotId: SNAP,
            ...(d === 'mounted' ? { mountPath: MOUNT_PATH } : {}),
          },
        ];
      }
      if (listed && deleted && inBackend) expected = [{ kind: 'destroySnapshot', datasetId: DS, snapshotId: SNAP }];
      expect(actions).toEqual(expected);
      // Consistency with calculateChanges' own view of the volume.
      expect(discoveredOf(volume, { instanceId: 'i-me', volumes: volume ? [volume] : [] }, new Set(['i-dead']))).toBe(
        d,
      );
    },
  );
});

describe('snapshot decisions, particular rules', () => {
  it('the first pending snapshot of the dataset is taken, others of other datasets are not this dataset’s business', () => {
    const actions = decide({
      dataset: dataset('primary'),
      volume: volumeFor('mounted'),
      snapshots: [
        { snapshotId: SNAP, datasetId: DS, deleted: false },
        { snapshotId: SNAP2, datasetId: DS, deleted: false },
        { snapshotId: LOW, datasetId: OTHER, deleted: false },
      ],
      backend: [held(SNAP)],
    });
    expect(actions).toEqual([
      { kind: 'takeSnapshot', datasetId: DS, blockdeviceId: 'vol-1', snapshotId: SNAP2, mountPath: MOUNT_PATH },
    ]);
  });

  it('a mounted volume that needs to grow grows first; the snapshot comes at the next decision', () => {
    const actions = decide({
      dataset: dataset('primary', { maximumSize: 256 * MiB }),
      volume: volumeFor('mounted'),
      snapshots: [{ snapshotId: SNAP, datasetId: DS, deleted: false }],
      backend: [],
    });
    expect(actions.map((a) => a.kind)).toEqual(['resize']);
  });

  it('destroyer: the primary when it holds the snapshot, else the lowest alive holder deciding about the dataset; this node counts', () => {
    const s: DesiredSnapshot = { snapshotId: SNAP, datasetId: DS, deleted: true };
    /** `ids` hold the snapshot; `holdingDs` hold the dataset (its views have it). */
    const withHolders = (ids: string[], holdingDs: string[] = [], alive = true): ClusterNode[] =>
      [ME, OTHER, LOW, DEAD].map((uuid) => ({
        uuid,
        instanceId: `i-${uuid}`,
        alive: alive && uuid !== DEAD,
        snapshots: ids.includes(uuid) ? [SNAP] : [],
        ...(holdingDs.includes(uuid) ? { datasets: [DS] } : {}),
      }));
    const d = (primary: string): DesiredDataset => ({ datasetId: DS, primary, maximumSize: null, deleted: false });
    expect(snapshotDestroyer(s, d(OTHER), { datasets: [], nodes: withHolders([OTHER]) }, ME)).toBe(OTHER);
    expect(snapshotDestroyer(s, d(OTHER), { datasets: [], nodes: withHolders([]) }, ME)).toBe(ME);
    expect(snapshotDestroyer(s, d(OTHER), { datasets: [], nodes: withHolders([LOW], [LOW]) }, ME)).toBe(LOW);
    // LOW holds the snapshot but not the dataset (in this view for another dataset, or as a witness):
    // it never decides about DS, so it does not count (else nobody would destroy it).
    expect(snapshotDestroyer(s, d(OTHER), { datasets: [], nodes: withHolders([LOW]) }, ME)).toBe(ME);
    expect(snapshotDestroyer(s, d(DEAD), { datasets: [], nodes: withHolders([LOW, DEAD]) }, ME)).toBe(ME);
    expect(snapshotDestroyer(s, undefined, { datasets: [], nodes: withHolders([LOW]) }, ME)).toBe(ME);
    // A dead node does not count, even when it is the primary or holds the dataset.
    expect(snapshotDestroyer(s, d(DEAD), { datasets: [], nodes: withHolders([DEAD], [DEAD]) }, ME)).toBe(ME);
    expect(snapshotDestroyer(s, undefined, { datasets: [], nodes: withHolders([LOW], [LOW]) }, ME)).toBe(LOW);
    // Through the decision: OTHER, the primary, holds it too: ME leaves it to OTHER.
    const actions = decide({
      dataset: dataset('elsewhere'),
      volume: undefined,
      snapshots: [s],
      backend: [held(SNAP)],
      nodes: withHolders([OTHER]),
    });
    expect(actions).toEqual([]);
  });

  it("destroyer: a node holds a dataset by a manifestation or a volume attached to its own instance (desiredStateOf), as the control service's views count", () => {
    const state = (uuid: string, over: object) => ({
      uuid,
      era: 'e',
      host: 'h',
      instance_id: `i-${uuid}`,
      backend: 'fake',
      manifestations: [],
      errors: [],
      alive: true,
      last_seen: '2026-01-01T00:00:00Z',
      ...over,
    });
    const vol = (attached: string | null) => ({
      blockdevice_id: 'v',
      dataset_id: DS,
      size: MiB,
      attached_to: attached,
    });
    const desired = desiredStateOf({
      generation: '1',
      configuration_tag: 't',
      leases: [],
      datasets: [],
      nodes: [
        state(ME, {}),
        state(OTHER, { manifestations: [{ dataset_id: DS, blockdevice_id: 'v', size: MiB, status: 'attached' }] }),
        state(LOW, { volumes: [vol(`i-${LOW}`)] }),
        state(DEAD, { volumes: [vol(`i-${OTHER}`), vol(null)] }),
      ],
    });
    expect(desired.nodes.map((n) => n.datasets)).toEqual([undefined, [DS], [DS], undefined]);
  });

  it('destroyer: with views that agree, exactly one node deciding about the dataset destroys a snapshot any of them holds, none otherwise (every case of 4 nodes)', () => {
    const ids = [ME, OTHER, LOW, DEAD];
    const s: DesiredSnapshot = { snapshotId: SNAP, datasetId: DS, deleted: true };
    let cases = 0;
    let destroyed = 0;
    // Per node 3 bits: alive, its backend holds the snapshot, it holds the dataset; the primary; deleted.
    for (let bits = 0; bits < 1 << (3 * ids.length); bits++)
      for (const primary of ids)
        for (const deleted of [false, true]) {
          const bit = (i: number, k: number): boolean => ((bits >> (3 * i + k)) & 1) === 1;
          const nodes: ClusterNode[] = ids.map((uuid, i) => ({
            uuid,
            instanceId: `i-${uuid}`,
            alive: bit(i, 0),
            snapshots: bit(i, 1) ? [SNAP] : [],
            ...(bit(i, 2) ? { datasets: [DS] } : {}),
          }));
          const alive = (n: string): boolean => nodes.some((x) => x.uuid === n && x.alive);
          const snapHolders = nodes.filter((n) => n.snapshots?.includes(SNAP)).map((n) => n.uuid);
          const dsHolders = nodes.filter((n) => n.datasets !== undefined).map((n) => n.uuid);
          // Who decides about the dataset: the nodes whose views have it (the control service's rule).
          const caretaker = caretakerOf(
            DS,
            { deleted, primary, holders: dsHolders, reporters: [], deletedSnapshots: [snapHolders] },
            alive,
          );
          const deciders = new Set([primary, ...dsHolders].filter(alive));
          if (caretaker !== undefined) deciders.add(caretaker);
          const desired: DesiredState = { datasets: [], nodes };
          const dataset: DesiredDataset = { datasetId: DS, primary, maximumSize: null, deleted };
          const acting = [...deciders].filter((n) => snapHolders.includes(n));
          const chosen = new Set(acting.map((n) => snapshotDestroyer(s, dataset, desired, n)));
          cases++;
          if (acting.length === 0) continue;
          destroyed++;
          expect([...chosen]).toHaveLength(1);
          expect(acting).toContain([...chosen][0]);
        }
    expect(cases).toBe(4096 * 4 * 2);
    expect(destroyed).toBeGreaterThan(0);
  });

  it('a clone is created from its snapshot and never formatted; its mount grows it', () => {
    const clone = dataset('primary', { sourceSnapshotId: SNAP });
    expect(decide({ dataset: clone, volume: undefined, snapshots: [], backend: undefined })).toEqual([
      { kind: 'create', datasetId: DS, size: 128 * MiB, sourceSnapshotId: SNAP },
    ]);
    expect(decide({ dataset: clone, volume: volumeFor('hereNoFs'), snapshots: [], backend: undefined })).toEqual([]);
    expect(decide({ dataset: clone, volume: volumeFor('hereFs'), snapshots: [], backend: undefined })).toEqual([
      {
        kind: 'mount',
        datasetId: DS,
        blockdeviceId: 'vol-1',
        devicePath: '/dev/loop7',
        mountPath: MOUNT_PATH,
        size: 128 * MiB,
      },
    ]);
    // An ordinary dataset still is formatted.
    expect(
      decide({ dataset: dataset('primary'), volume: volumeFor('hereNoFs'), snapshots: [], backend: undefined }),
    ).toMatchObject([{ kind: 'format' }]);
  });
});
