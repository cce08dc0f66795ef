/**
 * The data-node marker a move records (issue 24): every combination of what the service knows
 * (the old primary's backend and whether it reported since start, holders and retainers among it
 * and other nodes, the marker the dataset carries and whether its node reported) against the rule
 * written out, the stories of the issue, and the marker as the metadata carries it.
 */
import { type DatasetConfiguration, METADATA_DATA_NODE_KEY, type NodeReport } from '@flocker/api';
import { type DataNodeFacts, dataNodeAfterMove, dataNodeRule, keepDataNode, movedTo } from './dataNode';

const P = '22222222-2222-4222-8222-222222222222';
const B = '66666666-6666-4666-8666-666666666666';
const X = '44444444-4444-4444-8444-444444444444';
const Y = '33333333-3333-4333-8333-333333333333';
const M = '55555555-5555-4555-8555-555555555555';
const D = '11111111-1111-4111-8111-111111111111';

type Backend = 'local' | 'other' | undefined;

interface Case {
  primary: Backend;
  primaryHolds: boolean;
  primaryRetains: boolean;
  /** Other nodes listing a live copy / something retained (X and Y: the least uuid is Y). */
  othersHold: string[];
  othersRetain: string[];
  marker: 'none' | 'oldPrimary' | 'unreported' | 'reported';
}

function facts(c: Case): DataNodeFacts {
  const reported = new Map<string, Backend>([
    [X, 'local'],
    [Y, 'local'],
  ]);
  if (c.primary !== undefined) reported.set(P, c.primary);
  if (c.marker === 'reported') reported.set(M, 'local');
  return {
    oldPrimary: P,
    newPrimary: B,
    marker: c.marker === 'none' ? undefined : c.marker === 'oldPrimary' ? P : M,
    holders: [...c.othersHold, ...(c.primaryHolds ? [P] : [])],
    retainers: [...c.othersRetain, ...(c.primaryRetains ? [P] : [])],
    backend: (n) => reported.get(n),
  };
}

/** The rule written out. */
function expected(c: Case): string | null | undefined {
  if (c.primary === 'other') return undefined;
  if (c.primaryHolds) return P;
  if (c.othersHold.length > 0) return [...c.othersHold].sort()[0];
  if (c.primary === undefined) return P;
  if (c.marker === 'unreported') return M;
  if (c.primaryRetains) return P;
  if (c.othersRetain.length > 0) return [...c.othersRetain].sort()[0];
  return null;
}

const SETS = [[], [X], [Y, X]];

describe('the marker a change of primary records', () => {
  const cases: Case[] = [];
  for (const primary of ['local', 'other', undefined] as const)
    // Only a report since start lists what the old primary holds or retains.
    for (const primaryHolds of primary === undefined ? [false] : [false, true])
      for (const primaryRetains of primary === undefined ? [false] : [false, true])
        for (const othersHold of SETS)
          for (const othersRetain of SETS)
            for (const marker of ['none', 'oldPrimary', 'unreported', 'reported'] as const)
              cases.push({ primary, primaryHolds, primaryRetains, othersHold, othersRetain, marker });

  it.each(cases.map((c) => [JSON.stringify(c), c] as const))('%s', (_, c) => {
    expect(dataNodeAfterMove(facts(c))).toBe(expected(c));
  });

  it('covers every combination ((2 x 2 x 2 + 1) x 3 x 3 x 4)', () => {
    expect(cases).toHaveLength(324);
  });
});

describe('the stories of issue 24', () => {
  const none = { holders: [], retainers: [] };
  it('(a) the service restarted, A not reported yet, a move A -> B: A is recorded', () => {
    expect(
      dataNodeAfterMove({ oldPrimary: P, newPrimary: B, marker: undefined, ...none, backend: () => undefined }),
    ).toBe(P);
  });

  it('(b) A dead (its last report since start lists the copy), the move to B: A is recorded', () => {
    expect(
      dataNodeAfterMove({
        oldPrimary: P,
        newPrimary: B,
        marker: undefined,
        holders: [P],
        retainers: [],
        backend: () => 'local',
      }),
    ).toBe(P);
  });

  it('a new dataset moved before its primary made it (its report lists nothing): no marker, B creates it', () => {
    expect(
      dataNodeAfterMove({ oldPrimary: P, newPrimary: B, marker: undefined, ...none, backend: () => 'local' }),
    ).toBeNull();
  });

  it('a second move before the node the first recorded reported: the first marker stays', () => {
    // A -> P recorded A (= M, not reported); P reported since, listing nothing; P -> B keeps M.
    const backend = (n: string): Backend => (n === P ? 'local' : undefined);
    expect(dataNodeAfterMove({ oldPrimary: P, newPrimary: B, marker: M, ...none, backend })).toBe(M);
  });

  it('a move in flight (the old primary holds, the new one received snapshots): the holder', () => {
    expect(
      dataNodeAfterMove({
        oldPrimary: P,
        newPrimary: B,
        marker: undefined,
        holders: [P],
        retainers: [B],
        backend: () => 'local',
      }),
    ).toBe(P);
  });

  // Review FR: a node that reported retaining something of the dataset has no live copy to push, and named as the
  // marker it said nothing on the node that may hold one; named and the new primary, its agent ignored the marker.
  it('a standby replica’s node, its primary dead and forgotten: the old primary, not the replica node', () => {
    // A restart forgot P (dead, holding the live copy); B reported its replica (retained); the move to B.
    const backend = (n: string): Backend => (n === B ? 'local' : undefined);
    expect(
      dataNodeAfterMove({ oldPrimary: P, newPrimary: B, marker: undefined, holders: [], retainers: [B], backend }),
    ).toBe(P);
  });

  it('a move in flight when the service restarted, moved on: the first marker, not the target that received', () => {
    // M -> P was in flight (M holding, P received snapshots), M not reported since the restart; P -> B.
    const backend = (n: string): Backend => (n === M ? undefined : 'local');
    expect(dataNodeAfterMove({ oldPrimary: P, newPrimary: B, marker: M, holders: [], retainers: [P], backend })).toBe(
      M,
    );
  });

  it('a block backend dataset: left as it is', () => {
    expect(
      dataNodeAfterMove({ oldPrimary: P, newPrimary: B, marker: M, ...none, backend: () => 'other' }),
    ).toBeUndefined();
  });
});

describe('the marker in the dataset', () => {
  const dataset = (metadata: Record<string, string>): DatasetConfiguration => ({
    dataset_id: D,
    primary: P,
    metadata,
    deleted: false,
  });

  it('set, replaced, removed or left, with the primary, the other keys kept', () => {
    expect(movedTo(dataset({ name: 'db' }), B, () => P)).toEqual({
      ...dataset({ name: 'db', [METADATA_DATA_NODE_KEY]: P }),
      primary: B,
    });
    expect(movedTo(dataset({ name: 'db', [METADATA_DATA_NODE_KEY]: M }), B, () => P)).toEqual({
      ...dataset({ name: 'db', [METADATA_DATA_NODE_KEY]: P }),
      primary: B,
    });
    expect(movedTo(dataset({ name: 'db', [METADATA_DATA_NODE_KEY]: M }), B, () => null)).toEqual({
      ...dataset({ name: 'db' }),
      primary: B,
    });
    const kept = dataset({ name: 'db', [METADATA_DATA_NODE_KEY]: M });
    expect(movedTo(kept, B, keepDataNode)).toEqual({ ...kept, primary: B });
    // The same marker, or none to remove: the metadata object is the one it had.
    expect(movedTo(kept, B, () => M).metadata).toBe(kept.metadata);
    const bare = dataset({ name: 'db' });
    expect(movedTo(bare, B, () => null).metadata).toBe(bare.metadata);
  });

  it('no change of primary: nothing changes, the rule not asked', () => {
    const d = dataset({});
    const rule = jest.fn(() => M);
    expect(movedTo(d, P, rule)).toBe(d);
    expect(rule).not.toHaveBeenCalled();
  });
});

describe('the rule as the service knows the nodes', () => {
  const report = (uuid: string, backend: string): { report: NodeReport; lastSeen: number } => ({
    report: { uuid, era: 'e', host: 'h', instance_id: uuid, backend, manifestations: [], errors: [] },
    lastSeen: 0,
  });

  it('reads the old primary, the marker, the holders and retainers of the dataset only', () => {
    const asked: string[] = [];
    const rule = dataNodeRule({
      reportedNode: (n) => (asked.push(n), n === P ? report(P, 'local-btrfs') : undefined),
      holdersOf: (id) => (id === D ? undefined : [X]),
      retainersOf: (id) => (id === D ? new Set([B]) : [X]),
    });
    expect(rule({ dataset_id: D, primary: P, metadata: {}, deleted: false }, B)).toBe(B);
    expect(asked).toEqual([P]);
  });

  it('a block node (reported) leaves it; an unknown or local one with nothing known is recorded or cleared', () => {
    const sources = (backend: string | undefined) => ({
      reportedNode: (n: string) => (n === P && backend !== undefined ? report(P, backend) : undefined),
      holdersOf: () => undefined,
      retainersOf: () => undefined,
    });
    const d: DatasetConfiguration = { dataset_id: D, primary: P, metadata: {}, deleted: false };
    expect(dataNodeRule(sources('loopback'))(d, B)).toBeUndefined();
    expect(dataNodeRule(sources(undefined))(d, B)).toBe(P);
    expect(dataNodeRule(sources('local-zfs'))(d, B)).toBeNull();
  });

  it('the old primary not reported, the new one a block node: left as it is (review FR)', () => {
    const rule = dataNodeRule({
      reportedNode: (n) => (n === B ? report(B, 'loopback') : undefined),
      holdersOf: () => undefined,
      retainersOf: () => undefined,
    });
    expect(rule({ dataset_id: D, primary: P, metadata: {}, deleted: false }, B)).toBeUndefined();
    // A local new primary (or one not reported either): the old primary, as before.
    const local = dataNodeRule({
      reportedNode: (n) => (n === B ? report(B, 'local-zfs') : undefined),
      holdersOf: () => undefined,
      retainersOf: () => undefined,
    });
    expect(local({ dataset_id: D, primary: P, metadata: {}, deleted: false }, B)).toBe(P);
  });
});
