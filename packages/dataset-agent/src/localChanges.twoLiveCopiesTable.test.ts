/**
 * Two live copies (issue 24, a double fault), every case of the decision: this node the primary
 * (its copy mounted or not) or not (the primary holding a copy too), the other node alive or dead,
 * every order of the two copies (compareCopies, a lineage missing too), accept-replica-loss set or
 * not. The rule written out once here, checked against the decision for all of them.
 */
import {
  calculateLocalChanges,
  compareCopies,
  type CopyLineage,
  type CopyOrder,
  type LocalAction,
  type LocalClusterNode,
  type LocalObservation,
} from './localChanges';

const ME = '11111111-1111-4111-8111-111111111111';
const O = '22222222-2222-4222-8222-222222222222';
const D = '33333333-3333-4333-8333-333333333333';
const ctx = { nodeUuid: ME, mountRoot: '/flocker', defaultSize: 1000 };
const PATH = `/flocker/${D}`;

const l = (from: string | null, sameAs: string | null, snapshots: string[]): CopyLineage => ({
  from,
  sameAs,
  snapshots,
});
/** Lineages (this node's, the other's) that make each order; undefined: not known. */
const PAIRS: ReadonlyArray<readonly [string, CopyLineage | undefined, CopyLineage | undefined, CopyOrder]> = [
  ['older', l(null, 'S1', ['S1']), l('S1', null, ['S1']), 'older'],
  ['newer', l('S1', null, ['S1']), l(null, 'S1', ['S1']), 'newer'],
  ['same', l('S1', 'S1', ['S1']), l('S1', 'S1', ['S1']), 'same'],
  ['branchedFromTheirs', l('S2', null, ['S2']), l(null, null, ['S2']), 'branchedFromTheirs'],
  ['branchedFromMine', l(null, null, ['S2']), l('S2', null, ['S2']), 'branchedFromMine'],
  ['unknown: unrelated', l(null, 'S1', ['S1']), l(null, 'T1', ['T1']), 'unknown'],
  ['unknown: this lineage missing', undefined, l('S1', null, ['S1']), 'unknown'],
  ['unknown: the other lineage missing', l(null, 'S1', ['S1']), undefined, 'unknown'],
];

type Expected = 'mount' | 'retire' | 'unmount' | 'nothing' | 'refuse';

function rule(o: {
  primaryHere: boolean;
  mounted: boolean;
  otherAlive: boolean;
  order: CopyOrder;
  acceptReplicaLoss: boolean;
}): Expected {
  if (o.primaryHere) {
    // Mounted (serving): not looked at again. Else mounted only over an older or equal copy (or a replica
    // promoted here over the old primary's copy, the loss accepted: the opt-in, or once it is consumed the
    // accepted-loss marker naming that node, localChanges.acceptedLoss.test); an older copy here retired for an
    // alive node's.
    if (o.mounted) return 'nothing';
    if (o.order === 'newer' || o.order === 'same' || (o.order === 'branchedFromTheirs' && o.acceptReplicaLoss))
      return 'mount';
    if (o.order === 'older' && o.otherAlive) return 'retire';
    return 'refuse';
  }
  // Not the primary, the primary holding a copy: let go of an older or equal copy (or the one the primary's
  // promoted replica branched from, the loss accepted: kept aside first); keep a newer one (pushed once the
  // primary retired its own).
  if (o.order === 'older' || o.order === 'same' || (o.order === 'branchedFromMine' && o.acceptReplicaLoss))
    return o.mounted ? 'unmount' : 'retire';
  if (o.order === 'newer') return 'nothing';
  return 'refuse';
}

function kindOf(actions: LocalAction[]): Expected {
  const [a] = actions;
  if (a === undefined) return 'nothing';
  if (a.kind === 'refuse') {
    expect(a.code).toBe('TWO_LIVE_COPIES');
    expect(a.message).toContain(O);
    return 'refuse';
  }
  if (a.kind === 'mount' || a.kind === 'retire' || a.kind === 'unmount') return a.kind;
  throw new Error(`unexpected ${a.kind}`);
}

describe('two live copies: every case of the decision', () => {
  const cases: Array<[string, Expected, Expected]> = [];
  for (const primaryHere of [true, false])
    for (const mounted of [false, true])
      for (const otherAlive of [true, false])
        for (const acceptReplicaLoss of [false, true])
          for (const [name, mine, theirs, order] of PAIRS) {
            expect(compareCopies(mine, theirs)).toBe(order);
            const nodes: LocalClusterNode[] = [
              { uuid: ME, host: 'me', alive: true, copies: [D] },
              { uuid: O, host: 'other', alive: otherAlive, copies: [D] },
            ];
            const lineages = new Map<string, CopyLineage>();
            if (mine !== undefined) lineages.set(ME, mine);
            if (theirs !== undefined) lineages.set(O, theirs);
            const here: LocalObservation = {
              copies: [{ datasetId: D, size: 1000, mountPoints: mounted ? [PATH] : [] }],
              moving: new Set(),
              lineages: new Map([[D, lineages]]),
            };
            const dataset = {
              datasetId: D,
              primary: primaryHere ? ME : O,
              maximumSize: 1000,
              deleted: false,
              acceptReplicaLoss,
            };
            const got = kindOf(calculateLocalChanges([dataset], nodes, here, ctx));
            const want = rule({ primaryHere, mounted, otherAlive, order, acceptReplicaLoss });
            cases.push([
              `${primaryHere ? 'primary here' : 'primary there'}, ${mounted ? 'mounted' : 'not mounted'}, other ${otherAlive ? 'alive' : 'dead'}, ${acceptReplicaLoss ? 'loss accepted' : 'no opt-in'}, ${name}`,
              got,
              want,
            ]);
          }
  it.each(cases)('%s: %s', (_name, got, want) => {
    expect(got).toBe(want);
  });
  it('covers every outcome', () => {
    expect(cases).toHaveLength(2 * 2 * 2 * 2 * PAIRS.length);
    expect(new Set(cases.map(([, , want]) => want))).toEqual(
      new Set(['mount', 'retire', 'unmount', 'nothing', 'refuse']),
    );
  });
});
