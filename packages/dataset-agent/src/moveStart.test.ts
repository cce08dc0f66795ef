import type { ClusterSnapshot, DatasetConfiguration, NodeState } from '@flocker/api';
import type { DesiredDataset } from './LocalState';
import type { Action } from './LocalState';
import {
  assumeReleased,
  attachOnRelease,
  configChangeNeedsLook,
  deleteStarts,
  moveStarts,
  releaseNeedsLook,
  unmountOnView,
  type ConfigChangeContext,
  type MoveTrigger,
  type SeenVolume,
} from './moveStart';

const ME = 'node-me';
const OTHER = 'node-other';
const HERE = 'instance-here';
const THERE = 'instance-there';

function dataset(primary: string, deleted = false): DesiredDataset {
  return { datasetId: 'd', primary, maximumSize: null, deleted };
}

/** Where the one volume of dataset d was last seen: here, there, nowhere (null), or no volume at all. */
type Seen = 'here' | 'there' | 'free' | 'none';

function seenVolumes(seen: Seen): SeenVolume[] {
  return seen === 'none' ? [] : [{ attachedTo: seen === 'here' ? HERE : seen === 'there' ? THERE : null }];
}

function pick(d: DesiredDataset, seen: Seen, trigger: MoveTrigger, heldElsewhere = false): boolean {
  const volumes = seenVolumes(seen);
  return moveStarts([d], trigger, {
    nodeUuid: ME,
    instanceId: HERE,
    volumesOf: () => volumes,
    heldElsewhere: () => heldElsewhere,
  }).includes('d');
}

describe('moveStarts: which datasets a move starts a worker for before the full look', () => {
  /**
   * Every case: primary (this node, another, deleted), where the volume was last seen, and
   * the trigger (config / released). "x": a worker starts at once; "-": the full look decides.
   */
  const EXPECTED = `
                      here  there  free  none
  mine/config         -     -      x     -
  mine/released       -     x      x     -
  mine/config/held    -     -      -     -
  mine/released/held  -     x      x     -
  other/config        x     -      -     -
  other/released      -     -      -     -
  other/config/held   x     -      -     -
  other/released/held -     -      -     -
  deleted/config      -     -      -     -
  deleted/released    -     -      -     -
  `;
  const rows = EXPECTED.trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/));
  const header = rows[0] as Seen[];
  for (const row of rows.slice(1)) {
    // held: another live node reports the dataset as its own.
    const [who, trigger, held] = (row[0] ?? '').split('/') as ['mine' | 'other' | 'deleted', MoveTrigger, string?];
    header.forEach((seen, i) => {
      const want = row[i + 1] === 'x';
      const heldText = held !== undefined ? ', held by another node' : '';
      it(`${who}, last seen ${seen}${heldText}, on ${trigger}: ${want ? 'starts at once' : 'waits'}`, () => {
        const d = who === 'mine' ? dataset(ME) : who === 'other' ? dataset(OTHER) : dataset(ME, true);
        expect(pick(d, seen, trigger, held !== undefined)).toBe(want);
      });
    });
  }

  it('moving away: any of several volumes attached here is enough', () => {
    const volumes: SeenVolume[] = [{ attachedTo: null }, { attachedTo: HERE }];
    expect(
      moveStarts([dataset(OTHER)], 'config', { nodeUuid: ME, instanceId: HERE, volumesOf: () => volumes }),
    ).toEqual(['d']);
  });

  it('picks each dataset on its own', () => {
    const seen: Record<string, SeenVolume[]> = {
      away: [{ attachedTo: HERE }],
      idle: [{ attachedTo: HERE }],
      arriving: [{ attachedTo: null }],
    };
    const ds: DesiredDataset[] = [
      { ...dataset(OTHER), datasetId: 'away' },
      { ...dataset(ME), datasetId: 'idle' },
      { ...dataset(ME), datasetId: 'arriving' },
    ];
    expect(moveStarts(ds, 'config', { nodeUuid: ME, instanceId: HERE, volumesOf: (id) => seen[id] ?? [] })).toEqual([
      'away',
      'arriving',
    ]);
  });
});

describe('unmountOnView: the one step a move away takes on the view, without a look', () => {
  const OWN = '/mnt/d';
  const unmount = (mountPath: string, datasetId = 'd'): Action => ({
    kind: 'unmount',
    datasetId,
    blockdeviceId: 'b',
    mountPath,
  });
  const cases: Array<[string, DesiredDataset, Action | undefined, boolean]> = [
    ['moved away, unmount of its own path', dataset(OTHER), unmount(OWN), true],
    ['moved away, unmount of another path (a mount elsewhere)', dataset(OTHER), unmount('/elsewhere'), false],
    ['moved away, unmount of another dataset', dataset(OTHER), unmount(OWN, 'e'), false],
    ['moved away, detach', dataset(OTHER), { kind: 'detach', datasetId: 'd', blockdeviceId: 'b' }, false],
    ['moved away, nothing to do', dataset(OTHER), undefined, false],
    ['deleted, unmount of its own path', dataset(OTHER, true), unmount(OWN), false],
    ['primary here, unmount of its own path (a stacked mount)', dataset(ME), unmount(OWN), false],
  ];
  for (const [name, d, action, want] of cases)
    it(`${name}: ${want ? 'on the view' : 'after a look'}`, () => {
      expect(unmountOnView(d, action, ME, OWN)).toBe(want);
    });
});

describe('assumeReleased and attachOnRelease: the attach of a move here on a pool change, without a look', () => {
  it('assumeReleased: the one volume, not attached here, as attached to no one; else undefined', () => {
    expect(assumeReleased([{ attachedTo: THERE, size: 1 }], HERE)).toEqual([{ attachedTo: null, size: 1 }]);
    expect(assumeReleased([{ attachedTo: null }], HERE)).toEqual([{ attachedTo: null }]);
    expect(assumeReleased([{ attachedTo: HERE }], HERE)).toBeUndefined();
    expect(assumeReleased([], HERE)).toBeUndefined();
    expect(assumeReleased([{ attachedTo: THERE }, { attachedTo: null }], HERE)).toBeUndefined();
  });

  const attach = (datasetId = 'd', blockdeviceId = 'b'): Action => ({ kind: 'attach', datasetId, blockdeviceId });
  const forceDetach: Action = { kind: 'forceDetach', datasetId: 'd', blockdeviceId: 'b', fromInstance: THERE };
  const cases: Array<[string, DesiredDataset, Action | undefined, Action | undefined, boolean]> = [
    ['held by a live node (wait), attach once released', dataset(ME), undefined, attach(), true],
    ['seen free already: the same attach', dataset(ME), attach(), attach(), true],
    ['held by a dead node (force detach first)', dataset(ME), forceDetach, attach(), false],
    ['seen free, another attach assumed', dataset(ME), attach('d', 'c'), attach(), false],
    ['another dataset’s attach', dataset(ME), undefined, attach('e'), false],
    ['nothing to do even once released', dataset(ME), undefined, undefined, false],
    [
      'a step other than the attach',
      dataset(ME),
      undefined,
      { kind: 'detach', datasetId: 'd', blockdeviceId: 'b' },
      false,
    ],
    ['primary elsewhere', dataset(OTHER), undefined, attach(), false],
    ['deleted', dataset(ME, true), undefined, attach(), false],
  ];
  for (const [name, d, seen, assumed, want] of cases)
    it(`attachOnRelease, ${name}: ${want ? 'on the view' : 'after a look'}`, () => {
      expect(attachOnRelease(d, seen, assumed, ME)).toBe(want);
    });
});

describe('configChangeNeedsLook: a new configuration that needs no full look', () => {
  const D = 'd';
  const config = (primary: string, extra: Partial<DatasetConfiguration> = {}): DatasetConfiguration => ({
    dataset_id: D,
    primary,
    maximum_size: null,
    metadata: {},
    deleted: false,
    ...extra,
  });
  const node = (uuid: string, instance: string, alive = true): NodeState => ({
    uuid,
    era: 'e',
    host: '10.0.0.1',
    instance_id: instance,
    backend: 'loopback',
    manifestations: [],
    errors: [],
    alive,
    last_seen: '2020-01-01T00:00:00Z',
  });
  const snap = (datasets: DatasetConfiguration[], nodes: NodeState[] = [node(ME, HERE), node(OTHER, THERE)]) =>
    ({
      generation: 'g',
      configuration_tag: 't',
      datasets,
      leases: [],
      nodes,
    }) satisfies ClusterSnapshot;
  const ctx = (seen: Seen, started: boolean, held = false): ConfigChangeContext => ({
    nodeUuid: ME,
    instanceId: HERE,
    volumesOf: () => seenVolumes(seen),
    heldElsewhere: () => held,
    started: new Set(started ? [D] : []),
  });

  /**
   * The one dataset d before and after the change (mine: primary here, other: primary elsewhere, absent:
   * not in this node's view), its volume as last seen, whether this change started its worker. "L": the
   * full look is needed; "-": in hand. The same cases with another node reporting d as its own follow.
   */
  const EXPECTED = `
                              here  there  free  none
  other>mine/started          -     -      -     -
  other>mine                  L     -      L     L
  absent>mine/started         -     -      -     -
  absent>mine                 L     -      L     L
  mine>other/started          -     -      -     -
  mine>other                  L     L      L     L
  other>absent                L     -      -     -
  mine>absent                 L     L      L     L
  other>mine/held             L     -      -     L
  absent>mine/held            L     -      -     L
  `;
  const rows = EXPECTED.trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/));
  const header = rows[0] as Seen[];
  type Where = 'mine' | 'other' | 'absent';
  const datasetsOf = (w: Where): DatasetConfiguration[] => (w === 'absent' ? [] : [config(w === 'mine' ? ME : OTHER)]);
  for (const row of rows.slice(1)) {
    const [change, flag] = (row[0] ?? '').split('/');
    const [from, to] = (change ?? '').split('>') as [Where, Where];
    header.forEach((seen, i) => {
      const want = row[i + 1] === 'L';
      it(`${from} -> ${to}${flag !== undefined ? ` (${flag})` : ''}, last seen ${seen}: ${want ? 'look' : 'in hand'}`, () => {
        const c = ctx(seen, flag === 'started', flag === 'held');
        expect(configChangeNeedsLook(snap(datasetsOf(from)), snap(datasetsOf(to)), c)).toBe(want);
      });
    });
  }

  it('the same configuration needs no look (only the order of keys or nodes told apart)', () => {
    expect(configChangeNeedsLook(snap([config(ME)]), snap([config(ME)]), ctx('here', false))).toBe(false);
    const reordered = { metadata: {}, deleted: false, dataset_id: D, primary: OTHER, maximum_size: null };
    expect(configChangeNeedsLook(snap([config(ME)]), snap([reordered]), ctx('here', true))).toBe(true);
  });

  it('a field besides the primary, a deletion with another change, or configured snapshots need the look even when started', () => {
    const started = ctx('here', true);
    expect(configChangeNeedsLook(snap([config(ME)]), snap([config(OTHER, { maximum_size: 1 })]), started)).toBe(true);
    expect(configChangeNeedsLook(snap([config(ME)]), snap([config(ME, { metadata: { a: 'b' } })]), started)).toBe(true);
    expect(configChangeNeedsLook(snap([config(ME)]), snap([config(OTHER, { deleted: true })]), started)).toBe(true);
    expect(configChangeNeedsLook(snap([config(OTHER, { deleted: true })]), snap([]), ctx('free', false))).toBe(true);
    const snapshot = { snapshot_id: 's', dataset_id: D, metadata: {}, deleted: false };
    const withSnapshot = (s: ClusterSnapshot): ClusterSnapshot => ({ ...s, snapshots: [snapshot] }) as ClusterSnapshot;
    expect(configChangeNeedsLook(withSnapshot(snap([config(ME)])), withSnapshot(snap([config(OTHER)])), started)).toBe(
      true,
    );
    expect(configChangeNeedsLook(snap([config(ME)]), withSnapshot(snap([config(ME)])), started)).toBe(true);
  });

  it('a dataset deleted and nothing else changed, its worker started by the change, is in hand (session 12)', () => {
    const deleted = config(ME, { deleted: true });
    expect(configChangeNeedsLook(snap([config(ME)]), snap([deleted]), ctx('here', true))).toBe(false);
    // Not started, deleted before already, or appearing deleted: the look.
    expect(configChangeNeedsLook(snap([config(ME)]), snap([deleted]), ctx('here', false))).toBe(true);
    expect(
      configChangeNeedsLook(
        snap([config(OTHER, { deleted: true, metadata: { a: 'b' } })]),
        snap([deleted]),
        ctx('here', true),
      ),
    ).toBe(true);
    expect(configChangeNeedsLook(snap([]), snap([deleted]), ctx('here', true))).toBe(true);
    // Deleted with another field changed: the look.
    expect(
      configChangeNeedsLook(
        snap([config(ME)]),
        snap([config(ME, { deleted: true, maximum_size: 1 })]),
        ctx('here', true),
      ),
    ).toBe(true);
    // With configured snapshots: the look (its backups).
    const snapshot = { snapshot_id: 's', dataset_id: D, metadata: {}, deleted: false };
    const withSnapshot = (s: ClusterSnapshot): ClusterSnapshot => ({ ...s, snapshots: [snapshot] }) as ClusterSnapshot;
    expect(
      configChangeNeedsLook(withSnapshot(snap([config(ME)])), withSnapshot(snap([deleted])), ctx('here', true)),
    ).toBe(true);
  });

  it('deleteStarts: a dataset this change deleted, nothing else changed, last seen attached here, no snapshots', () => {
    const snapshot = { snapshot_id: 's', dataset_id: D, metadata: {}, deleted: false };
    const withSnapshot = (s: ClusterSnapshot): ClusterSnapshot => ({ ...s, snapshots: [snapshot] }) as ClusterSnapshot;
    const starts = (before: DatasetConfiguration[], after: DatasetConfiguration[], seen: Seen, snapshots = false) =>
      deleteStarts(snap(before), snapshots ? withSnapshot(snap(after)) : snap(after), {
        nodeUuid: ME,
        instanceId: HERE,
        volumesOf: () => seenVolumes(seen),
      });
    const deleted = (primary: string) => config(primary, { deleted: true });
    expect(starts([config(ME)], [deleted(ME)], 'here')).toEqual([D]);
    // Held here whoever its primary is (a move away not done yet): this node unmounts and destroys it.
    expect(starts([config(OTHER)], [deleted(OTHER)], 'here')).toEqual([D]);
    for (const seen of ['there', 'free', 'none'] as const)
      expect(starts([config(ME)], [deleted(ME)], seen)).toEqual([]);
    expect(starts([deleted(ME)], [deleted(ME)], 'here')).toEqual([]);
    expect(starts([], [deleted(ME)], 'here')).toEqual([]);
    expect(starts([config(ME)], [config(ME)], 'here')).toEqual([]);
    expect(starts([config(ME)], [config(OTHER, { deleted: true })], 'here')).toEqual([]);
    expect(starts([config(ME)], [deleted(ME)], 'here', true)).toEqual([]);
  });

  it("a node's liveness or instance changing, or this node leaving the view, needs the look", () => {
    const c = ctx('there', false);
    const before = snap([config(OTHER)]);
    expect(configChangeNeedsLook(before, snap([config(ME)], [node(ME, HERE), node(OTHER, THERE, false)]), c)).toBe(
      true,
    );
    expect(configChangeNeedsLook(before, snap([config(ME)], [node(ME, HERE), node(OTHER, 'i-new')]), c)).toBe(true);
    expect(configChangeNeedsLook(before, snap([config(OTHER)], [node(OTHER, THERE)]), c)).toBe(true);
    // Entering or leaving the view with its dataset changes nothing by itself.
    expect(configChangeNeedsLook(snap([config(OTHER)], [node(ME, HERE)]), snap([config(ME)]), c)).toBe(false);
    expect(configChangeNeedsLook(snap([config(OTHER)]), snap([], [node(ME, HERE)]), ctx('free', false))).toBe(false);
  });

  it('waiting for a node that is dead (its instance) is not in hand: the look force-detaches', () => {
    const nodes = [node(ME, HERE), node(OTHER, THERE, false)];
    expect(configChangeNeedsLook(snap([config(OTHER)], nodes), snap([config(ME)], nodes), ctx('there', false))).toBe(
      true,
    );
  });

  it('each dataset on its own: one not in hand is enough for the look', () => {
    const e = { ...config(OTHER), dataset_id: 'e' };
    const c: ConfigChangeContext = { ...ctx('here', true), volumesOf: (id) => seenVolumes(id === D ? 'here' : 'free') };
    // d moves away (started); e appears with its primary elsewhere, nothing of it here: in hand only if not new.
    expect(configChangeNeedsLook(snap([config(ME), e]), snap([config(OTHER), e]), c)).toBe(false);
    expect(configChangeNeedsLook(snap([config(ME)]), snap([config(OTHER), e]), c)).toBe(true);
  });
});

describe('releaseNeedsLook: a sign of a release that needs no full look once its workers are done', () => {
  // waiting | started | with configured snapshots | look?
  const table: Array<[string[], string[], string[], boolean]> = [
    [['a'], ['a'], [], false],
    [['a', 'b'], ['a', 'b'], [], false],
    [['a'], ['a', 'c'], [], false], // started more than it waited for (a dataset last seen free): each its own worker
    [['a', 'b'], ['a'], [], true], // b not started: no room, in backoff, or running on an older look
    [['a'], [], [], true],
    [['a'], ['a'], ['a'], true], // its backups follow the full look
    [['a'], ['a'], ['b'], false], // another dataset's snapshots change nothing here
    [[], [], [], true], // nothing waited for: not a release this node knows of
    [[], ['a'], [], true],
  ];
  it.each(table)('waiting %j, started %j, snapshots of %j: look %s', (waiting, started, snaps, want) => {
    expect(releaseNeedsLook(waiting, new Set(started), new Set(snaps))).toBe(want);
  });
});
