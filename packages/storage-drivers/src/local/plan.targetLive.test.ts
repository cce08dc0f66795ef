/**
 * Review RL (session 14): the move's plan with a live copy on the target (see nextMoveStep and
 * moveOverLiveCopy.test.ts for the real-engine sequence that lost the target's writes).
 */
import { nextMoveStep, type MoveFacts } from './plan';
import { facts, s } from './planTestSupport';

describe('planning a move onto a target that holds a live copy', () => {
  it('a live copy there that this run did not ask for: no step touches it, whatever else the facts say', () => {
    const cases: Partial<MoveFacts>[] = [
      {},
      { source: [s(1)] },
      { source: [s(1)], target: [s(1)], rounds: [100] },
      // Released, after an earlier run's final snapshot was promoted there: the case that lost B's writes.
      { source: [s(1), s(2)], target: [s(1), s(2)], released: true },
      { source: [s(1), s(2), s(3)], target: [s(1), s(2)], released: true, finalSnapshot: s(3).name },
      { source: [s(1)], target: [], released: true },
    ];
    for (const c of cases) {
      expect(nextMoveStep(facts({ ...c, targetLive: true }))).toEqual({ kind: 'targetHoldsCopy' });
      expect(nextMoveStep(facts({ ...c, targetLive: true, promoteAsked: false }))).toEqual({ kind: 'targetHoldsCopy' });
      // Without one there, the plan is as before.
      expect(nextMoveStep(facts({ ...c, targetLive: false }))).toEqual(nextMoveStep(facts(c)));
      expect(nextMoveStep(facts(c)).kind).not.toBe('targetHoldsCopy');
    }
  });

  it("this run's own promote (its answer lost): promoted again (idempotent), then done", () => {
    const f = { source: [s(1), s(2)], target: [s(1), s(2)], released: true, finalSnapshot: s(2).name };
    expect(nextMoveStep(facts({ ...f, targetLive: true, promoteAsked: true }))).toEqual({
      kind: 'promote',
      name: s(2).name,
    });
    expect(nextMoveStep(facts({ ...f, targetLive: true, promoteAsked: true, targetPromoted: true }))).toEqual({
      kind: 'done',
      name: s(2).name,
    });
  });
});
