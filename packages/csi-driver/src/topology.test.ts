import { status } from '@grpc/grpc-js';
import { CsiError } from './mapping';
import {
  availableCapacity,
  choosePlacement,
  inTopology,
  nodeTopology,
  TOPOLOGY_ZONE_KEY,
  topologyConflict,
  UNBOUNDED_CAPACITY,
  volumeTopology,
  zoneSegment,
  type PlacementNode,
} from './topology';

const K = TOPOLOGY_ZONE_KEY;
const z = (zone: string) => ({ [K]: zone });
const GiB = 1024 ** 3;

function codeOf(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof CsiError) return e.code;
    throw e;
  }
  return undefined;
}

describe('zoneSegment: a zone as a CSI topology value', () => {
  it.each(['us-east-1a', 'nova', '3f9a0c4e-1b2d-4c5e-8f70-9a1b2c3d4e5f', 'a', 'A.b_c-9', 'x'.repeat(63)])(
    '%s is kept',
    (zone) => expect(zoneSegment(zone)).toBe(zone),
  );

  it.each(['', '-a', 'a-', 'az 1', 'zone/1', 'x'.repeat(64), 'zône'])('%p becomes a stable valid value', (zone) => {
    const v = zoneSegment(zone);
    expect(v).toMatch(/^z-[0-9a-f]{40}$/);
    expect(zoneSegment(zone)).toBe(v);
    expect(v).not.toBe(zoneSegment(`${zone}!`));
  });
});

describe('nodeTopology, volumeTopology, inTopology', () => {
  it('a node with a zone is in {key: zone}; one without has no topology', () => {
    expect(nodeTopology('p1')).toEqual({ [K]: 'p1' });
    expect(nodeTopology(undefined)).toBeUndefined();
    expect(volumeTopology('p1')).toEqual([{ segments: { [K]: 'p1' } }]);
    expect(volumeTopology(undefined)).toEqual([]);
  });

  it.each([
    ['the same zone', { [K]: 'p1' }, z('p1'), true],
    ['another zone', { [K]: 'p1' }, z('p2'), false],
    ['the key in another case', { [K]: 'p1' }, { [K.toUpperCase()]: 'p1' }, true],
    ['the value in another case', { [K]: 'p1' }, z('P1'), false],
    ['an empty request', { [K]: 'p1' }, {}, true],
    ['an empty request, no topology', undefined, {}, true],
    ['no topology', undefined, z('p1'), false],
    ['a key the node lacks', { [K]: 'p1' }, { ...z('p1'), 'kubernetes.io/hostname': 'n1' }, false],
  ])('%s', (_name, node, requested, expected) => {
    expect(inTopology(node, requested)).toBe(expected);
  });
});

describe('choosePlacement (CreateVolume accessibility_requirements)', () => {
  const a1: PlacementNode = { uuid: 'a', zone: 'z1', volumes: 3 };
  const b1: PlacementNode = { uuid: 'b', zone: 'z1', volumes: 1 };
  const c2: PlacementNode = { uuid: 'c', zone: 'z2', volumes: 0 };
  const d0: PlacementNode = { uuid: 'd', volumes: 0 };
  const nodes = [a1, b1, c2];
  const place = (live: PlacementNode[], requisite: Record<string, string>[], preferred: Record<string, string>[]) =>
    choosePlacement(live, { requisite, preferred }).uuid;

  it('no requirement: the live node with the fewest volumes (ties by uuid)', () => {
    expect(choosePlacement(nodes, undefined).uuid).toBe('c');
    expect(choosePlacement([a1, { ...b1, volumes: 3 }], undefined).uuid).toBe('a');
    expect(place(nodes, [], [])).toBe('c');
  });

  it('requisite only: the fewest volumes among the nodes in any requisite zone', () => {
    expect(place(nodes, [z('z1')], [])).toBe('b');
    expect(place(nodes, [z('z1'), z('z2')], [])).toBe('c');
  });

  it('preferred first to last, within the requisite', () => {
    expect(place(nodes, [z('z1'), z('z2')], [z('z1'), z('z2')])).toBe('b');
    expect(place(nodes, [z('z1'), z('z2')], [z('z9'), z('z2')])).toBe('c');
    expect(place(nodes, [z('z1'), z('z2')], [z('z9')])).toBe('c'); // no preferred zone live: any requisite
    // A preferred topology outside the requisite (the CO must not send it) is not taken.
    expect(place(nodes, [z('z1')], [z('z2')])).toBe('b');
  });

  it('preferred only: a preferred zone, else any live node', () => {
    expect(place(nodes, [], [z('z1')])).toBe('b');
    expect(place(nodes, [], [z('z9')])).toBe('c');
    expect(place([a1, d0], [], [z('z1')])).toBe('a');
  });

  it('a requisite no live node lies in: RESOURCE_EXHAUSTED, naming the zones there are', () => {
    expect(codeOf(() => place(nodes, [z('z9')], []))).toBe(status.RESOURCE_EXHAUSTED);
    expect(codeOf(() => place(nodes, [z('z9')], [z('z9')]))).toBe(status.RESOURCE_EXHAUSTED);
    expect(codeOf(() => place([d0], [z('z1')], []))).toBe(status.RESOURCE_EXHAUSTED); // no zone reported
    expect(() => place(nodes, [z('z9')], [])).toThrow(/z1, z2/);
    // An empty requisite segment map matches every node, a node without zone too.
    expect(place([d0], [{}], [])).toBe('d');
  });

  it('no live node: UNAVAILABLE (the CO retries)', () => {
    expect(codeOf(() => choosePlacement([], undefined))).toBe(status.UNAVAILABLE);
    expect(codeOf(() => place([], [z('z1')], []))).toBe(status.UNAVAILABLE);
  });
});

describe('topologyConflict (CreateVolume of an existing name)', () => {
  it.each([
    ['no requirement', 'z1', undefined, false],
    ['no requisite', 'z1', { requisite: [], preferred: [z('z2')] }, false],
    ['zone in the requisite', 'z1', { requisite: [z('z2'), z('z1')], preferred: [] }, false],
    ['zone not known', undefined, { requisite: [z('z2')], preferred: [] }, false],
    ['zone outside the requisite', 'z1', { requisite: [z('z2')], preferred: [] }, true],
  ])('%s', (_name, zone, req, conflict) => {
    expect(topologyConflict(zone, req) !== undefined).toBe(conflict);
  });
});

describe('availableCapacity (GetCapacity)', () => {
  it('the smallest figure among the live nodes (all, or those in the topology)', () => {
    const live = [
      { zone: 'z1', availableBytes: 5 * GiB },
      { zone: 'z1', availableBytes: 3 * GiB },
      { zone: 'z2', availableBytes: 9 * GiB },
    ];
    expect(availableCapacity(live, undefined)).toBe(3 * GiB);
    expect(availableCapacity(live, z('z1'))).toBe(3 * GiB);
    expect(availableCapacity(live, z('z2'))).toBe(9 * GiB);
    expect(availableCapacity(live, {})).toBe(3 * GiB);
  });

  it('a backend without a free-bytes figure counts its largest volume, or nothing bounds it', () => {
    expect(availableCapacity([{ zone: 'z1', maxVolumeSize: 16 * GiB }], undefined)).toBe(16 * GiB);
    expect(availableCapacity([{ zone: 'z1' }], undefined)).toBe(UNBOUNDED_CAPACITY);
    expect(availableCapacity([{ zone: 'z1' }, { zone: 'z1', availableBytes: 0 }], undefined)).toBe(0);
    expect(availableCapacity([{ availableBytes: 2 * GiB, maxVolumeSize: 16 * GiB }], undefined)).toBe(2 * GiB);
  });

  it('no live node in the topology (or none at all): 0', () => {
    expect(availableCapacity([], undefined)).toBe(0);
    expect(availableCapacity([{ zone: 'z1', availableBytes: GiB }], z('z2'))).toBe(0);
    expect(availableCapacity([{ availableBytes: GiB }], z('z1'))).toBe(0);
  });
});
