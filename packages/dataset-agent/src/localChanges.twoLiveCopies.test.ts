/**
 * Two live copies after a double fault (issue 24; review RL, session 14): a move A -> B whose
 * source A was killed between B's promote and its own retire, the primary moved back to A before A
 * restarted. A's copy is the older one (B's was promoted from A's final snapshot and B's users
 * wrote since). Before: A mounted its older copy and B retired its newer one (B's writes lost).
 * Now each side compares the copies' lineages (CopyLineage): A retires its older copy (keeping the
 * final snapshot, the base) and B pushes its copy; where the order is not known, both refuse.
 */
import {
  calculateLocalChanges,
  compareCopies,
  copiesToCompare,
  type CopyLineage,
  type LocalClusterNode,
  type LocalObservation,
} from './localChanges';

const A = '11111111-1111-4111-8111-111111111111';
const B = '22222222-2222-4222-8222-222222222222';
const D = '33333333-3333-4333-8333-333333333333';
const dataset = { datasetId: D, primary: A, maximumSize: 1000, deleted: false };
const nodes = (holders: string[], bAlive = true): LocalClusterNode[] => [
  { uuid: A, host: 'a', alive: true, copies: holders.includes(A) ? [D] : [] },
  { uuid: B, host: 'b', alive: bAlive, copies: holders.includes(B) ? [D] : [] },
];
// A's copy made there (created), its final snapshot S1 taken after its last write; B's copy promoted from S1, written since.
const aOld: CopyLineage = { from: null, sameAs: 'S1', snapshots: ['S1'] };
const bNew: CopyLineage = { from: 'S1', sameAs: null, snapshots: ['S1'] };
const lineages = (a?: CopyLineage, b?: CopyLineage): LocalObservation['lineages'] =>
  new Map([
    [D, new Map([...(a !== undefined ? [[A, a] as const] : []), ...(b !== undefined ? [[B, b] as const] : [])])],
  ]);
const onA = (l?: LocalObservation['lineages']): LocalObservation => ({
  copies: [{ datasetId: D, size: 1000, mountPoints: [] }],
  moving: new Set(),
  retained: new Set([D]),
  ...(l !== undefined ? { lineages: l } : {}),
});
const onB = (l?: LocalObservation['lineages'], mountPoints: string[] = []): LocalObservation => ({
  copies: [{ datasetId: D, size: 1000, mountPoints }],
  moving: new Set(),
  ...(l !== undefined ? { lineages: l } : {}),
});
const ctxA = { nodeUuid: A, mountRoot: '/flocker', defaultSize: 1000 };
const ctxB = { nodeUuid: B, mountRoot: '/flocker', defaultSize: 1000 };

describe('two live copies: the source killed after the promote, the primary moved back to it', () => {
  it("A (primary again, its older copy live here, B's copy shown) does not mount its older copy", () => {
    const actions = calculateLocalChanges([dataset], nodes([A, B]), onA(), ctxA);
    expect(actions.map((x) => x.kind)).not.toContain('mount');
  });

  it('B (its copy promoted from A and written since, not the primary any more) does not retire it', () => {
    const actions = calculateLocalChanges([dataset], nodes([A, B]), onB(), ctxB);
    expect(actions.map((x) => x.kind)).not.toContain('retire');
  });

  it("lineages known: A retires its older copy (B's is made from it), B waits, then pushes its copy to A", () => {
    expect(calculateLocalChanges([dataset], nodes([A, B]), onA(lineages(aOld, bNew)), ctxA)).toEqual([
      { kind: 'retire', datasetId: D, unchangedSince: 'S1' },
    ]);
    expect(calculateLocalChanges([dataset], nodes([A, B]), onB(lineages(aOld, bNew)), ctxB)).toEqual([]);
    // A retired (no live copy there any more): the usual move, incremental from S1.
    expect(calculateLocalChanges([dataset], nodes([B]), onB(), ctxB)).toEqual([
      { kind: 'moveOut', datasetId: D, to: { uuid: A, host: 'a' }, size: 1000 },
    ]);
    // And A waits for it (its pool keeps S1: never a new copy).
    expect(
      calculateLocalChanges([dataset], nodes([B]), { copies: [], moving: new Set(), retained: new Set([D]) }, ctxA),
    ).toEqual([]);
  });

  it('B dead: A does not retire its copy for it, nor mount: refused naming B', () => {
    const [action] = calculateLocalChanges([dataset], nodes([A, B], false), onA(lineages(aOld, bNew)), ctxA);
    expect(action).toMatchObject({ kind: 'refuse', code: 'TWO_LIVE_COPIES' });
    expect(action?.kind === 'refuse' && action.message).toContain(B);
  });

  it('the order not known (a lineage missing, both written since they parted): neither mounted nor retired, refused naming the other node', () => {
    const aWritten: CopyLineage = { from: null, sameAs: null, snapshots: ['S1'] };
    for (const l of [undefined, lineages(aOld), lineages(undefined, bNew), lineages(aWritten, bNew)]) {
      const [onAction] = calculateLocalChanges([dataset], nodes([A, B]), onA(l), ctxA);
      expect(onAction).toMatchObject({ kind: 'refuse', code: 'TWO_LIVE_COPIES' });
      expect(onAction?.kind === 'refuse' && onAction.message).toContain(B);
      const [onBAction] = calculateLocalChanges([dataset], nodes([A, B]), onB(l, ['/flocker/' + D]), ctxB);
      expect(onBAction).toMatchObject({ kind: 'refuse', code: 'TWO_LIVE_COPIES' });
      expect(onBAction?.kind === 'refuse' && onBAction.message).toContain(A);
    }
  });

  it('which nodes are asked: only where two live copies are reported and a decision reads them', () => {
    const asked = (obs: LocalObservation, ctx: typeof ctxA, holders: string[], primary = A): string[] =>
      [...copiesToCompare([{ ...dataset, primary }], nodes(holders), obs, ctx).values()].flat().map((n) => n.uuid);
    expect(asked(onA(), ctxA, [A, B])).toEqual([B]);
    expect(asked(onA(), ctxA, [A])).toEqual([]);
    // Mounted here already (serving): not asked again.
    expect(
      asked({ ...onA(), copies: [{ datasetId: D, size: 1000, mountPoints: [`/flocker/${D}`] }] }, ctxA, [A, B]),
    ).toEqual([]);
    expect(asked(onB(), ctxB, [A, B])).toEqual([A]);
    expect(asked(onB(), ctxB, [B])).toEqual([]);
    // Moving it: the mover decides.
    expect(asked({ ...onB(), moving: new Set([D]) }, ctxB, [A, B])).toEqual([]);
  });
});

describe('compareCopies, every case', () => {
  const l = (from: string | null, sameAs: string | null, snapshots: string[]): CopyLineage => ({
    from,
    sameAs,
    snapshots,
  });
  it.each([
    // [mine, theirs, order]
    ['created, unchanged since S1; theirs from S1, written', l(null, 'S1', ['S1']), l('S1', null, ['S1']), 'older'],
    ['the reverse', l('S1', null, ['S1']), l(null, 'S1', ['S1']), 'newer'],
    ['both from S1, unchanged', l('S1', 'S1', ['S1']), l('S1', 'S1', ['S1']), 'same'],
    ['both from S1, theirs written', l('S1', 'S1', ['S1']), l('S1', null, ['S1']), 'older'],
    [
      'from S1, a later snapshot S2 unchanged since; theirs from S1 unchanged',
      l('S1', 'S2', ['S1', 'S2']),
      l('S1', 'S1', ['S1']),
      'newer',
    ],
    [
      'theirs from S2 (a snapshot of ours we changed since)',
      l(null, null, ['S1', 'S2']),
      l('S2', null, ['S2']),
      'branchedFromMine',
    ],
    ['ours from their S2, theirs changed since', l('S2', null, ['S2']), l(null, null, ['S2']), 'branchedFromTheirs'],
    ['unrelated', l(null, 'S1', ['S1']), l(null, 'T1', ['T1']), 'unknown'],
    ['nothing known about either', l(null, null, []), l(null, null, []), 'unknown'],
  ] as const)('%s', (_name, mine, theirs, order) => {
    expect(compareCopies(mine, theirs)).toBe(order);
  });
  it('a lineage missing: unknown', () => {
    expect(compareCopies(undefined, l(null, 'S1', ['S1']))).toBe('unknown');
    expect(compareCopies(l(null, 'S1', ['S1']), undefined)).toBe('unknown');
  });
});
