import fc from 'fast-check';
import { calculateChanges, TRANSITIONS, type Discovered, type Role } from './calculateChanges';
import type { Action, DecisionContext, DesiredDataset, DesiredState, DiscoveredVolume, LocalState } from './LocalState';

const ME = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';
const DEAD = '33333333-3333-4333-8333-333333333333';
const DS = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const MiB = 1024 * 1024;
const ctx: DecisionContext = {
  nodeUuid: ME,
  mountRoot: '/flocker',
  defaultSize: 1024 * MiB,
  allocationUnit: MiB,
  canResize: true,
};
const nodes = [
  { uuid: ME, instanceId: 'i-me', alive: true },
  { uuid: OTHER, instanceId: 'i-other', alive: true },
  { uuid: DEAD, instanceId: 'i-dead', alive: false },
];
const MOUNT_PATH = `/flocker/${DS}`;

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
      return { ...base, attachedTo: 'i-me', devicePath: '/dev/loop7', hasFilesystem: false, mountPoints: [] };
    case 'hereFs':
      return { ...base, attachedTo: 'i-me', devicePath: '/dev/loop7', hasFilesystem: true, mountPoints: [] };
    case 'mounted':
      return { ...base, attachedTo: 'i-me', devicePath: '/dev/loop7', hasFilesystem: true, mountPoints: [MOUNT_PATH] };
  }
}

function decide(d: DesiredDataset, v: DiscoveredVolume | undefined, extra: DiscoveredVolume[] = []): Action[] {
  const local: LocalState = { instanceId: 'i-me', volumes: [...(v ? [v] : []), ...extra] };
  return calculateChanges({ datasets: [d], nodes }, local, ctx);
}

describe('calculateChanges: every row of the transition table', () => {
  // role, discovered, expected action (null = nothing to do)
  const rows: Array<[Role, Discovered, Action | null]> = [
    ['primary', 'none', { kind: 'create', datasetId: DS, size: 128 * MiB }],
    ['primary', 'unattached', { kind: 'attach', datasetId: DS, blockdeviceId: 'vol-1' }],
    ['primary', 'elsewhereLive', null],
    [
      'primary',
      'elsewhereDead',
      { kind: 'forceDetach', datasetId: DS, blockdeviceId: 'vol-1', fromInstance: 'i-dead' },
    ],
    ['primary', 'hereUnknown', null],
    ['primary', 'hereNoFs', { kind: 'format', datasetId: DS, blockdeviceId: 'vol-1', devicePath: '/dev/loop7' }],
    [
      'primary',
      'hereFs',
      {
        kind: 'mount',
        datasetId: DS,
        blockdeviceId: 'vol-1',
        devicePath: '/dev/loop7',
        mountPath: MOUNT_PATH,
        size: 128 * MiB,
      },
    ],
    ['primary', 'mounted', null],
    ['elsewhere', 'none', null],
    ['elsewhere', 'unattached', null],
    ['elsewhere', 'elsewhereLive', null],
    ['elsewhere', 'elsewhereDead', null],
    ['elsewhere', 'hereUnknown', null],
    ['elsewhere', 'hereNoFs', { kind: 'detach', datasetId: DS, blockdeviceId: 'vol-1' }],
    ['elsewhere', 'hereFs', { kind: 'detach', datasetId: DS, blockdeviceId: 'vol-1' }],
    ['elsewhere', 'mounted', { kind: 'unmount', datasetId: DS, blockdeviceId: 'vol-1', mountPath: MOUNT_PATH }],
    ['deleted', 'none', null],
    ['deleted', 'unattached', null], // primary OTHER is alive: it destroys
    ['deleted', 'elsewhereLive', null],
    ['deleted', 'elsewhereDead', null], // not ours to force
    ['deleted', 'hereUnknown', null],
    ['deleted', 'hereNoFs', { kind: 'destroy', datasetId: DS, blockdeviceId: 'vol-1', detachFirst: true }],
    ['deleted', 'hereFs', { kind: 'destroy', datasetId: DS, blockdeviceId: 'vol-1', detachFirst: true }],
    ['deleted', 'mounted', { kind: 'unmount', datasetId: DS, blockdeviceId: 'vol-1', mountPath: MOUNT_PATH }],
  ];

  it('covers the whole table', () => {
    const covered = new Set(rows.map(([r, d]) => `${r}/${d}`));
    for (const role of Object.keys(TRANSITIONS) as Role[]) {
      for (const d of Object.keys(TRANSITIONS[role]) as Discovered[]) expect(covered).toContain(`${role}/${d}`);
    }
  });

  it.each(rows)('%s x %s', (role, discovered, expected) => {
    expect(decide(dataset(role), volumeFor(discovered))).toEqual(expected ? [expected] : []);
  });
});

describe('calculateChanges: details', () => {
  it('destroys an unattached deleted dataset when this node is its primary', () => {
    expect(decide(dataset('deleted', { primary: ME }), volumeFor('unattached'))).toEqual([
      { kind: 'destroy', datasetId: DS, blockdeviceId: 'vol-1', detachFirst: false },
    ]);
  });
  it('destroys an unattached deleted dataset whose primary is not a live node', () => {
    const d = dataset('deleted', { primary: DEAD });
    expect(decide(d, volumeFor('unattached'))).toEqual([
      { kind: 'destroy', datasetId: DS, blockdeviceId: 'vol-1', detachFirst: false },
    ]);
  });
  it('force-detaches a deleted dataset from a dead node when this node is its primary', () => {
    expect(decide(dataset('deleted', { primary: ME }), volumeFor('elsewhereDead'))).toEqual([
      { kind: 'forceDetach', datasetId: DS, blockdeviceId: 'vol-1', fromInstance: 'i-dead' },
    ]);
  });
  it('never force-detaches from an instance a live node reports, even when a dead (ghost) node claims it too', () => {
    const ghost = { uuid: '44444444-4444-4444-8444-444444444444', instanceId: 'i-other', alive: false };
    const local: LocalState = { instanceId: 'i-me', volumes: [volumeFor('elsewhereLive')!] };
    expect(calculateChanges({ datasets: [dataset('primary')], nodes: [...nodes, ghost] }, local, ctx)).toEqual([]);
  });

  it('waits for a volume attached to an instance no node reports', () => {
    const v = { ...volumeFor('unattached')!, attachedTo: 'i-unknown' };
    expect(decide(dataset('primary'), v)).toEqual([]);
  });
  it('uses the default size, rounded to the allocation unit, when maximum_size is null', () => {
    const c = calculateChanges(
      { datasets: [dataset('primary', { maximumSize: null })], nodes },
      { instanceId: 'i-me', volumes: [] },
      { ...ctx, defaultSize: 100 * MiB + 1 },
    );
    expect(c).toEqual([{ kind: 'create', datasetId: DS, size: 101 * MiB }]);
  });
  it('passes the storage profile on create', () => {
    expect(decide(dataset('primary', { profile: 'gold' }), undefined)).toEqual([
      { kind: 'create', datasetId: DS, size: 128 * MiB, profile: 'gold' },
    ]);
  });
  it('formats with the file system the dataset asks for (xfs), ext4 when it asks for none', () => {
    expect(decide(dataset('primary', { filesystem: 'xfs' }), volumeFor('hereNoFs'))).toEqual([
      { kind: 'format', datasetId: DS, blockdeviceId: 'vol-1', devicePath: '/dev/loop7', filesystem: 'xfs' },
    ]);
    expect(decide(dataset('primary'), volumeFor('hereNoFs'))).toEqual([
      { kind: 'format', datasetId: DS, blockdeviceId: 'vol-1', devicePath: '/dev/loop7' },
    ]);
  });
  it('grows a mounted volume when maximum_size grew', () => {
    expect(decide(dataset('primary', { maximumSize: 256 * MiB }), volumeFor('mounted'))).toEqual([
      { kind: 'resize', datasetId: DS, blockdeviceId: 'vol-1', devicePath: '/dev/loop7', size: 256 * MiB },
    ]);
  });
  it('does not resize when the driver cannot', () => {
    const c = calculateChanges(
      { datasets: [dataset('primary', { maximumSize: 256 * MiB })], nodes },
      { instanceId: 'i-me', volumes: [volumeFor('mounted')!] },
      { ...ctx, canResize: false },
    );
    expect(c).toEqual([]);
  });
  it('never shrinks', () => {
    expect(decide(dataset('primary', { maximumSize: 64 * MiB }), volumeFor('mounted'))).toEqual([]);
  });
  it('mounts at its own path a volume mounted only elsewhere on this host', () => {
    const v = { ...volumeFor('mounted')!, mountPoints: ['/mnt/x'] };
    expect(decide(dataset('primary'), v)).toEqual([
      {
        kind: 'mount',
        datasetId: DS,
        blockdeviceId: 'vol-1',
        devicePath: '/dev/loop7',
        mountPath: MOUNT_PATH,
        size: 128 * MiB,
      },
    ]);
  });
  it('unmounts every mount point before detaching', () => {
    const v = { ...volumeFor('mounted')!, mountPoints: [MOUNT_PATH, '/mnt/x'] };
    expect(decide(dataset('elsewhere'), v)).toEqual([
      { kind: 'unmount', datasetId: DS, blockdeviceId: 'vol-1', mountPath: '/flocker/' + DS },
    ]);
  });
  it('ignores an extra volume claiming the same dataset and never creates a second one', () => {
    const extra = { blockdeviceId: 'vol-0', datasetId: DS, size: MiB, attachedTo: null };
    expect(decide(dataset('primary'), volumeFor('mounted'), [extra])).toEqual([]);
  });
  it('unmounts an extra volume mounted over the dataset path before anything else', () => {
    const extra = {
      blockdeviceId: 'vol-9',
      datasetId: DS,
      size: MiB,
      attachedTo: 'i-me',
      devicePath: '/dev/loop9',
      hasFilesystem: true,
      mountPoints: [MOUNT_PATH],
    };
    expect(decide(dataset('primary'), volumeFor('mounted'), [extra])).toEqual([
      { kind: 'unmount', datasetId: DS, blockdeviceId: 'vol-9', mountPath: MOUNT_PATH },
    ]);
  });
  it('leaves alone volumes of datasets not in the configuration', () => {
    const local: LocalState = { instanceId: 'i-me', volumes: [volumeFor('mounted')!] };
    expect(calculateChanges({ datasets: [], nodes }, local, ctx)).toEqual([]);
  });
  it('gives at most one action per dataset, ordered by dataset id', () => {
    const ids = ['cccccccc-cccc-4ccc-8ccc-cccccccccccc', 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'];
    const c = calculateChanges(
      { datasets: ids.map((datasetId) => dataset('primary', { datasetId })), nodes },
      { instanceId: 'i-me', volumes: [] },
      ctx,
    );
    expect(c.map((a) => a.datasetId)).toEqual([...ids].sort());
  });
});

// ---- Property-based: a simulated cluster of two live nodes and a dead one --------------------

interface SimVolume {
  id: string;
  datasetId: string;
  size: number;
  attachedTo: string | null;
  hasFs: boolean;
}
interface SimNode {
  uuid: string;
  instanceId: string;
  alive: boolean;
  mounts: Map<string, Set<string>>;
}
interface Sim {
  volumes: Map<string, SimVolume>;
  nodes: SimNode[];
  datasets: DesiredDataset[];
  nextId: number;
}

const DATASET_IDS = [
  'd0000000-0000-4000-8000-000000000000',
  'd1111111-1111-4111-8111-111111111111',
  'd2222222-2222-4222-8222-222222222222',
];
const SIM_NODES = [
  { uuid: ME, instanceId: 'i-me', alive: true },
  { uuid: OTHER, instanceId: 'i-other', alive: true },
  { uuid: DEAD, instanceId: 'i-dead', alive: false },
];

function observe(sim: Sim, node: SimNode): LocalState {
  return {
    instanceId: node.instanceId,
    volumes: [...sim.volumes.values()].map((v) =>
      v.attachedTo === node.instanceId
        ? {
            blockdeviceId: v.id,
            datasetId: v.datasetId,
            size: v.size,
            attachedTo: v.attachedTo,
            devicePath: `/dev/${v.id}`,
            hasFilesystem: v.hasFs,
            mountPoints: [...(node.mounts.get(v.id) ?? [])],
          }
        : { blockdeviceId: v.id, datasetId: v.datasetId, size: v.size, attachedTo: v.attachedTo },
    ),
  };
}

/** Applies an action the way a real backend + kernel would, asserting the safety rules on the way. */
function apply(sim: Sim, node: SimNode, a: Action): void {
  const desired = sim.datasets.find((d) => d.datasetId === a.datasetId);
  if (a.kind === 'create') {
    expect([...sim.volumes.values()].filter((v) => v.datasetId === a.datasetId)).toHaveLength(0); // never a second volume
    const id = `vol-${sim.nextId++}`;
    sim.volumes.set(id, { id, datasetId: a.datasetId, size: a.size, attachedTo: null, hasFs: false });
    return;
  }
  // The simulated backend has no snapshots (local.snapshots is never listed): snapshotChanges.test.ts covers them.
  if (a.kind === 'destroySnapshot' || a.kind === 'takeSnapshot') throw new Error(`${a.kind} without snapshots`);
  // Nor backups: no simulated dataset has a source_backup (backups.test.ts covers restores).
  if (a.kind === 'restore') throw new Error('restore without a backup');
  const v = sim.volumes.get(a.blockdeviceId);
  if (!v) throw new Error(`${a.kind} on a missing volume`);
  const mounts = node.mounts.get(v.id) ?? new Set<string>();
  switch (a.kind) {
    case 'attach':
      expect(v.attachedTo).toBeNull();
      v.attachedTo = node.instanceId;
      break;
    case 'format':
      expect(v.hasFs).toBe(false);
      expect(v.attachedTo).toBe(node.instanceId);
      v.hasFs = true;
      break;
    case 'mount':
      expect(v.hasFs).toBe(true);
      expect(v.attachedTo).toBe(node.instanceId);
      mounts.add(a.mountPath);
      node.mounts.set(v.id, mounts);
      break;
    case 'unmount':
      mounts.delete(a.mountPath);
      break;
    case 'detach':
      expect(v.attachedTo).toBe(node.instanceId);
      expect(mounts.size).toBe(0);
      v.attachedTo = null;
      break;
    case 'forceDetach': {
      const holder = sim.nodes.find((n) => n.instanceId === v.attachedTo);
      expect(holder?.alive).toBe(false);
      holder?.mounts.delete(v.id);
      v.attachedTo = null;
      break;
    }
    case 'destroy':
      expect(desired?.deleted).toBe(true); // never destroy a volume of a live dataset
      if (a.detachFirst) {
        expect(v.attachedTo).toBe(node.instanceId);
        expect(mounts.size).toBe(0);
      } else expect(v.attachedTo).toBeNull();
      sim.volumes.delete(v.id);
      break;
    case 'resize':
      expect(a.size).toBeGreaterThan(v.size);
      v.size = a.size;
      break;
  }
}

const simArb = fc
  .record({
    datasets: fc.uniqueArray(
      fc.record({
        datasetId: fc.constantFrom(...DATASET_IDS),
        primary: fc.constantFrom(ME, OTHER, DEAD),
        maximumSize: fc.option(fc.constantFrom(64 * MiB, 128 * MiB, 256 * MiB), { nil: null }),
        deleted: fc.boolean(),
      }),
      { selector: (d) => d.datasetId, maxLength: 3 },
    ),
    volumes: fc.array(
      fc.record({
        datasetId: fc.constantFrom(...DATASET_IDS),
        size: fc.constantFrom(64 * MiB, 128 * MiB),
        attachedTo: fc.constantFrom<string | null>(null, 'i-me', 'i-other', 'i-dead'),
        hasFs: fc.boolean(),
        mounted: fc.boolean(),
      }),
      { maxLength: 5 },
    ),
    order: fc.array(fc.constantFrom(0, 1), { minLength: 30, maxLength: 30 }),
  })
  .map(({ datasets, volumes, order }) => {
    const sim: Sim = {
      datasets,
      nodes: SIM_NODES.map((n) => ({ ...n, mounts: new Map<string, Set<string>>() })),
      volumes: new Map(),
      nextId: volumes.length,
    };
    volumes.forEach((v, i) => {
      const id = `vol-${i}`;
      sim.volumes.set(id, { id, datasetId: v.datasetId, size: v.size, attachedTo: v.attachedTo, hasFs: v.hasFs });
      const holder = sim.nodes.find((n) => n.instanceId === v.attachedTo);
      if (holder && v.hasFs && v.mounted) holder.mounts.set(id, new Set([`/flocker/${v.datasetId}`]));
    });
    return { sim, order };
  });

function desiredOf(sim: Sim): DesiredState {
  return { datasets: sim.datasets, nodes: SIM_NODES };
}
const ctxOf = (n: SimNode): DecisionContext => ({ ...ctx, nodeUuid: n.uuid });

/** Runs nodes in the given interleaving until neither has anything to do. */
function converge(sim: Sim, order: number[]): number {
  const live = sim.nodes.filter((n) => n.alive);
  for (let round = 0; round < 40; round++) {
    const node = live[order[round % order.length]!]!;
    for (const a of calculateChanges(desiredOf(sim), observe(sim, node), ctxOf(node))) apply(sim, node, a);
    if (live.every((n) => calculateChanges(desiredOf(sim), observe(sim, n), ctxOf(n)).length === 0)) return round;
  }
  throw new Error('did not converge in 40 rounds');
}

describe('calculateChanges: unreadable volume records (issue 17)', () => {
  const unattached = { blockdeviceId: 'vol-1', datasetId: DS, size: 128 * MiB, attachedTo: null };
  it('never decides for a dataset whose volume record cannot be read: no create, no attach, nothing', () => {
    for (const role of ['primary', 'elsewhere', 'deleted'] as const) {
      const local: LocalState = {
        instanceId: 'i-me',
        volumes: [],
        unreadable: [{ blockdeviceId: 'vol-bad', datasetId: DS }],
      };
      expect(calculateChanges({ datasets: [dataset(role)], nodes }, local, ctx)).toEqual([]);
      expect(calculateChanges({ datasets: [dataset(role)], nodes }, { ...local, volumes: [unattached] }, ctx)).toEqual(
        [],
      );
    }
  });

  it('a record nobody can attribute holds every create, and nothing else', () => {
    const other = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
    const local: LocalState = {
      instanceId: 'i-me',
      volumes: [{ ...unattached, datasetId: other }],
      unreadable: [{ blockdeviceId: 'vol-bad' }],
    };
    const actions = calculateChanges(
      { datasets: [dataset('primary'), dataset('primary', { datasetId: other })], nodes },
      local,
      ctx,
    );
    expect(actions).toEqual([{ kind: 'attach', datasetId: other, blockdeviceId: 'vol-1' }]);
  });
});

describe('calculateChanges: properties', () => {
  it('reaches a fixed point without breaking a safety rule', () => {
    fc.assert(
      fc.property(simArb, ({ sim, order }) => {
        converge(sim, order);
      }),
      { numRuns: 500 },
    );
  });

  it('at the fixed point every live dataset of a live primary is mounted there, and deleted ones are gone', () => {
    fc.assert(
      fc.property(simArb, ({ sim, order }) => {
        const before = new Map(
          DATASET_IDS.map((id) => [id, [...sim.volumes.values()].filter((v) => v.datasetId === id).length]),
        );
        converge(sim, order);
        for (const d of sim.datasets) {
          const vols = [...sim.volumes.values()].filter((v) => v.datasetId === d.datasetId);
          expect(vols.length).toBeLessThanOrEqual(Math.max(1, before.get(d.datasetId)!)); // never a second volume
          const primary = sim.nodes.find((n) => n.uuid === d.primary)!;
          if (d.deleted) {
            // Only a volume held by the dead node, and not ours to force, may remain.
            for (const v of vols)
              expect(v.attachedTo === 'i-dead' && primary.alive && primary.uuid !== ME && primary.uuid !== OTHER).toBe(
                true,
              );
          } else if (primary.alive) {
            const mounted = vols.filter(
              (v) => v.attachedTo === primary.instanceId && primary.mounts.get(v.id)?.has(`/flocker/${d.datasetId}`),
            );
            expect(mounted).toHaveLength(1);
            expect(mounted[0]!.size).toBeGreaterThanOrEqual(d.maximumSize ?? ctx.defaultSize);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('is idempotent on its own output: deciding twice on the same observation gives the same actions', () => {
    fc.assert(
      fc.property(simArb, ({ sim }) => {
        const node = sim.nodes[0]!;
        expect(calculateChanges(desiredOf(sim), observe(sim, node), ctx)).toEqual(
          calculateChanges(desiredOf(sim), observe(sim, node), ctx),
        );
      }),
    );
  });
});
