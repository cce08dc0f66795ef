/**
 * Review RV4 finding 3 (session 17): something the move cannot see keeps changing the released source
 * after each final snapshot (a hidden writer, a balance, atime updates): the move copies on, the volume
 * unavailable meanwhile. From SOURCE_CHANGING_ROUNDS "changed" verdicts in a row it says so
 * (SOURCE_WRITTEN_UNSEEN, onSourceChanging) and copies on; the warning ends when the move proceeds.
 */
import { moveTestDataset } from './moveCallTestSupport';
import { memoryEngine, recordingTarget } from './moverTestSupport';
import { changedStreak, finalVerdict, SOURCE_CHANGING_ROUNDS } from './plan';

type Warning = { code: string; message: string } | null;

describe('a move whose released source keeps changing says so', () => {
  it('changedStreak: "changed" verdicts count up; in use again or a promote ends the streak', () => {
    const changed = finalVerdict({ released: true, changedSinceFinal: true });
    expect(changedStreak(0, changed)).toBe(1);
    expect(changedStreak(2, changed)).toBe(3);
    expect(changedStreak(5, finalVerdict({ released: false }))).toBe(0);
    expect(changedStreak(5, finalVerdict({ released: true, changedSinceFinal: false }))).toBe(0);
    expect(changedStreak(5, finalVerdict({ released: true, changedSinceFinal: null }))).toBe(0);
    expect(SOURCE_CHANGING_ROUNDS).toBe(3);
  });

  it('reported from the third "changed" round on, the move copying on; cleared at the promote', async () => {
    const engine = memoryEngine();
    let calls = 0;
    // Changed after each of the first 4 final snapshots, then unchanged; the retire's check passes.
    engine.changedSince = () => Promise.resolve(++calls <= 4);
    const warnings: Warning[] = [];
    const promotedAfter: number[] = [];
    const b = recordingTarget();
    const promote = b.promote.bind(b);
    b.promote = (id, name, size, mount) => {
      promotedAfter.push(warnings.length);
      return promote(id, name, size, mount);
    };
    const result = await moveTestDataset({
      engine,
      target: b,
      released: () => Promise.resolve(true),
      onSourceChanging: (w) => warnings.push(w),
    });
    expect(warnings.map((w) => w?.code ?? null)).toEqual(['SOURCE_WRITTEN_UNSEEN', 'SOURCE_WRITTEN_UNSEEN', null]);
    expect(warnings[0]?.message).toMatch(/changed after each of the last 3 final snapshots/);
    expect(warnings[0]?.message).toMatch(/copies on/);
    // Cleared before the promote is asked for.
    expect(promotedAfter).toEqual([3]);
    expect(result.finalSnapshot).toBe('move-000005');
  });

  it('two "changed" rounds, then in use again: nothing reported; in use again after the report: cleared', async () => {
    for (const [changedRounds, expected] of [
      [2, []],
      [3, ['SOURCE_WRITTEN_UNSEEN', null]],
    ] as const) {
      const engine = memoryEngine();
      let calls = 0;
      engine.changedSince = () => Promise.resolve(++calls <= changedRounds);
      let looks = 0;
      const warnings: Warning[] = [];
      await moveTestDataset({
        engine,
        target: recordingTarget(),
        releasePollMs: 1,
        catchUpMs: 1,
        // Released for the "changed" rounds (2 looks a round: the first and the one beside the final
        // send), then in use once, then released for good.
        released: () => Promise.resolve(++looks !== 2 * changedRounds + 1),
        onSourceChanging: (w) => warnings.push(w),
      });
      expect(warnings.map((w) => w?.code ?? null)).toEqual(expected);
    }
  });
});
