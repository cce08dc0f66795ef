/**
 * Review RT (session 15): two live copies ordered by lineage (compareCopies, the rules around it).
 * Cases the table (localChanges.twoLiveCopiesTable.test) does not reach: lineages where both
 * "branched" relations hold at once, as an ordinary history makes them.
 *
 * The history: the dataset lived on B, moved B -> A (A's copy promoted from B's final snapshot P; B
 * keeps P, the base of a move back), then A -> B with A killed after B's promote (the double fault):
 * B's copy is promoted from A's final snapshot F and written since; A holds P and F. The primary
 * moved back to A. A's copy is unchanged since F, but its lineage may not say so (sameAs null: on
 * btrfs any atime update or balance bumps the generation; mounted in some namespace at the read).
 * Then B's copy holds every byte of A's and more: nothing may mount A's copy over it. Without the
 * accept-replica-loss opt-in both refuse (this file); with it A mounts its older copy (reported, review RT session 15).
 */
import { calculateLocalChanges } from './localChanges';
import { A, B, D, ctxA, ctxB, nodes, unmounted } from './localChangesTestSupport';

describe('two live copies: both branched relations hold, no accept-replica-loss (B->A, then A->B with the source killed after the promote)', () => {
  it('A, the primary again, neither mounts its copy nor retires it (the order is not known): refused naming B; B keeps its copy', () => {
    const d = { datasetId: D, primary: A, maximumSize: 1000, deleted: false };
    const [onA] = calculateLocalChanges([d], nodes, unmounted, ctxA);
    expect(onA).toMatchObject({ kind: 'refuse', code: 'TWO_LIVE_COPIES' });
    expect(onA?.kind === 'refuse' && onA.message).toContain(B);
    const onB = calculateLocalChanges([d], nodes, unmounted, ctxB);
    expect(onB.map((x) => x.kind)).not.toContain('retire');
    expect(onB.map((x) => x.kind)).not.toContain('moveOut');
  });
});
