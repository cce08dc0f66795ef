/**
 * Review RT (session 15): two live copies ordered by lineage (compareCopies, the rules around it);
 * RT's reproductions, failing before the fix (4 of 5), with cases added by T3.
 * Cases the table (localChanges.twoLiveCopiesTable.test) does not reach: lineages where both
 * "branched" relations hold at once, as an ordinary history makes them.
 *
 * The history: the dataset lived on B, moved B -> A (A's copy promoted from B's final snapshot P; B
 * keeps P, the base of a move back), then A -> B with A killed after B's promote (the double fault):
 * B's copy is promoted from A's final snapshot F and written since; A holds P and F. The primary
 * moved back to A. A's copy is unchanged since F, but its lineage may not say so (sameAs null: on
 * btrfs any atime update or balance bumps the generation; mounted in some namespace at the read).
 * Then B's copy holds every byte of A's and more: nothing may mount A's copy over it.
 */
import {
  calculateLocalChanges,
  compareCopies,
  copiesToCompare,
  type CopyLineage,
  type LocalClusterNode,
} from './localChanges';
import { A, B, D, aCopy, bCopy, ctxA, ctxB, nodes, unmounted } from './localChangesTestSupport';

describe('two live copies: both branched relations hold (B->A, then A->B with the source killed after the promote)', () => {
  it("B's copy is made from a snapshot of A's copy taken after A's own origin: not 'A branched from B'", () => {
    // F comes after P in A's snapshots: B's copy descends from a later state of A's copy than the one
    // A's copy came from. Calling it branchedFromTheirs lets the accept-replica-loss opt-in mount A's.
    expect(compareCopies(aCopy, bCopy)).not.toBe('branchedFromTheirs');
    expect(compareCopies(bCopy, aCopy)).not.toBe('branchedFromMine');
  });

  for (const acceptReplicaLoss of [false, true])
    it(`A, the primary again (accept-replica-loss ${acceptReplicaLoss ? 'set' : 'not set'}), does not mount its older copy over B's`, () => {
      const d = { datasetId: D, primary: A, maximumSize: 1000, deleted: false, acceptReplicaLoss };
      const actions = calculateLocalChanges([d], nodes, unmounted, ctxA);
      expect(actions.map((x) => x.kind)).not.toContain('mount');
      // B, not the primary, keeps its newer copy either way.
      const onB = calculateLocalChanges([d], nodes, unmounted, ctxB);
      expect(onB.map((x) => x.kind)).not.toContain('retire');
    });
});

describe('compareCopies is one order seen from both sides', () => {
  // Every lineage over two snapshots P (older) and F (newer) and an unrelated X: what one side says
  // of the pair, the other says the inverse. Two nodes answering "I am the branch" (or "I am newer")
  // of the same pair means one of them acts on a wrong order.
  const INVERSE: Record<string, string> = {
    older: 'newer',
    newer: 'older',
    same: 'same',
    branchedFromTheirs: 'branchedFromMine',
    branchedFromMine: 'branchedFromTheirs',
    unknown: 'unknown',
  };
  const ids = [null, 'P', 'F', 'X'];
  // Every ordered list of distinct snapshots among P, F and X (pools may list them in any order): 16.
  const sets: string[][] = [[]];
  for (let k = 0; k < 3; k++)
    for (const s of [...sets])
      for (const x of ['P', 'F', 'X']) if (!s.includes(x) && s.length === k) sets.push([...s, x]);
  const all: CopyLineage[] = [];
  for (const from of ids) for (const sameAs of ids) for (const snapshots of sets) all.push({ from, sameAs, snapshots });
  it('covers 256 lineages', () => expect(all.length).toBe(256));
  it(`holds for all ${all.length * all.length} pairs`, () => {
    const broken: string[] = [];
    for (const x of all)
      for (const y of all) {
        const xy = compareCopies(x, y);
        const yx = compareCopies(y, x);
        if (INVERSE[xy] !== yx) broken.push(`${JSON.stringify(x)} vs ${JSON.stringify(y)}: ${xy} / ${yx}`);
      }
    expect(broken.slice(0, 5)).toEqual([]);
  });

  it('siblings made from one snapshot, both written: unknown from both sides', () => {
    const x = { from: 'P', sameAs: null, snapshots: ['P'] };
    expect(compareCopies(x, { ...x })).toBe('unknown');
  });

  it('the lists disagreeing on the order: unknown', () => {
    expect(
      compareCopies(
        { from: 'P', sameAs: null, snapshots: ['P', 'F'] },
        { from: 'F', sameAs: null, snapshots: ['F', 'P'] },
      ),
    ).toBe('unknown');
  });

  it('the same history the other way round (A -> B, then B -> A with B killed): A branched from B', () => {
    // A's copy is made from F, a snapshot of B's copy taken after B's own origin P: with the opt-in,
    // A (the primary) mounts and B keeps its copy aside (the failover rule).
    expect(
      compareCopies(
        { from: 'F', sameAs: null, snapshots: ['P', 'F'] },
        { from: 'P', sameAs: null, snapshots: ['P', 'F'] },
      ),
    ).toBe('branchedFromTheirs');
  });
});

describe('the data-node marker where the primary holds an older copy and the marked node is not in the view', () => {
  // The double fault again (A -> B, A killed after B's promote, B writes, the primary moved back to A:
  // the service records B as the data node). Then the control service restarts (node states are kept
  // in memory) and B is down or slow when A's agent comes back: A's view shows no other holder. A's
  // copy is the one its move away left (unchanged since its final snapshot F, taken here; made from P).
  // The marker exists for exactly this (a holder the view does not show), but the decision reads it
  // only where the primary holds no copy: A mounts its older copy, B's acknowledged writes hidden,
  // and B, back, finds A's copy mounted and written (refused, never reconciled).
  it('A does not mount its copy while the marker names B, which the view does not show', () => {
    const d = { datasetId: D, primary: A, maximumSize: 1000, deleted: false, dataNode: B };
    const onlyA: LocalClusterNode[] = [{ uuid: A, host: 'a', alive: true, copies: [D] }];
    const here = {
      copies: [{ datasetId: D, size: 1000, mountPoints: [] as string[] }],
      moving: new Set<string>(),
      retained: new Set([D]),
      lineages: new Map([[D, new Map([[A, { from: 'P', sameAs: 'F', snapshots: ['P', 'F'] }]])]]),
    };
    expect(calculateLocalChanges([d], onlyA, here, ctxA).map((x) => x.kind)).not.toContain('mount');
  });

  const onlyA: LocalClusterNode[] = [{ uuid: A, host: 'a', alive: true, copies: [D] }];
  const hereWith = (lineage: CopyLineage | undefined) => ({
    copies: [{ datasetId: D, size: 1000, mountPoints: [] as string[] }],
    moving: new Set<string>(),
    lineages: new Map([[D, new Map(lineage !== undefined ? [[A, lineage]] : [])]]),
  });
  const marked = { datasetId: D, primary: A, maximumSize: 1000, deleted: false, dataNode: B };

  it('refused naming B (SOURCE_UNREACHABLE) where the copy is a snapshot taken here, unchanged since (a move source), or its lineage is not known', () => {
    for (const lineage of [
      { from: 'P', sameAs: 'F', snapshots: ['P', 'F'] },
      { from: null, sameAs: 'F', snapshots: ['F'] },
      undefined,
    ]) {
      const actions = calculateLocalChanges([marked], onlyA, hereWith(lineage), ctxA);
      expect(actions).toEqual([expect.objectContaining({ kind: 'refuse', code: 'SOURCE_UNREACHABLE' })]);
      expect(actions[0]).toEqual(expect.objectContaining({ message: expect.stringContaining(`node ${B}`) }));
    }
  });

  it("refused where the copy shows no snapshot it is unchanged since (sameAs null) and B is not shown: an atime update or a balance nulls a move source's sameAs without a write (review RT2 finding 5); mounted once B is alive in the view", () => {
    for (const lineage of [
      { from: 'P', sameAs: null, snapshots: ['P', 'F'] },
      { from: null, sameAs: null, snapshots: [] },
    ]) {
      expect(calculateLocalChanges([marked], onlyA, hereWith(lineage), ctxA)).toEqual([
        expect.objectContaining({ kind: 'refuse', code: 'SOURCE_UNREACHABLE' }),
      ]);
      expect(
        calculateLocalChanges(
          [marked],
          [...onlyA, { uuid: B, host: 'b', alive: true, copies: [] }],
          hereWith(lineage),
          ctxA,
        ),
      ).toEqual([{ kind: 'mount', datasetId: D, mountPath: `/flocker/${D}` }]);
    }
  });

  it('refused where B is in the view but dead (its last report may be old), mounted where B is alive listing no copy', () => {
    const source = hereWith({ from: 'P', sameAs: 'F', snapshots: ['P', 'F'] });
    const withB = (alive: boolean): LocalClusterNode[] => [...onlyA, { uuid: B, host: 'b', alive, copies: [] }];
    expect(calculateLocalChanges([marked], withB(false), source, ctxA)).toEqual([
      expect.objectContaining({ kind: 'refuse', code: 'SOURCE_UNREACHABLE' }),
    ]);
    expect(calculateLocalChanges([marked], withB(true), source, ctxA)).toEqual([
      { kind: 'mount', datasetId: D, mountPath: `/flocker/${D}` },
    ]);
  });

  it('mounted where the copy is still what a move here promoted (sameAs === from), or with accept-data-loss, or with no marker', () => {
    expect(
      calculateLocalChanges([marked], onlyA, hereWith({ from: 'F', sameAs: 'F', snapshots: ['P', 'F'] }), ctxA),
    ).toEqual([{ kind: 'mount', datasetId: D, mountPath: `/flocker/${D}` }]);
    expect(
      calculateLocalChanges(
        [{ ...marked, acceptDataLoss: true }],
        onlyA,
        hereWith({ from: 'P', sameAs: 'F', snapshots: ['P', 'F'] }),
        ctxA,
      ),
    ).toEqual([{ kind: 'mount', datasetId: D, mountPath: `/flocker/${D}` }]);
    const { dataNode: _m, ...unmarked } = marked;
    expect(
      calculateLocalChanges([unmarked], onlyA, hereWith({ from: 'P', sameAs: 'F', snapshots: ['P', 'F'] }), ctxA),
    ).toEqual([{ kind: 'mount', datasetId: D, mountPath: `/flocker/${D}` }]);
  });

  it("copiesToCompare reads this node's own lineage there (an empty list), not with accept-data-loss nor once mounted", () => {
    const bare = { copies: [{ datasetId: D, size: 1000, mountPoints: [] as string[] }], moving: new Set<string>() };
    expect([...copiesToCompare([marked], onlyA, bare, ctxA)]).toEqual([[D, []]]);
    expect(copiesToCompare([{ ...marked, acceptDataLoss: true }], onlyA, bare, ctxA).size).toBe(0);
    expect(copiesToCompare([{ ...marked, dataNode: A }], onlyA, bare, ctxA).size).toBe(0);
    const mounted = { ...bare, copies: [{ datasetId: D, size: 1000, mountPoints: [`/flocker/${D}`] }] };
    expect(copiesToCompare([marked], onlyA, mounted, ctxA).size).toBe(0);
  });
});
