/**
 * Review RV 2 (session 16): the look before a move's first promote asked "in use now" only. A writer
 * the namespace scan missed, which wrote after the final snapshot and ended before that look, left
 * its writes in the source's copy only (promoted without them). finalVerdict also asks whether the
 * source changed since the final snapshot. Every combination of the two answers.
 */
import { finalVerdict, type FinalLook } from './plan';

describe('the verdict on a final snapshot right before the first promote', () => {
  const cases: Array<[FinalLook, ReturnType<typeof finalVerdict>]> = [
    // In use again: not final whatever the engine says (it is not asked).
    [{ released: false }, { kind: 'copyOn', why: 'inUse' }],
    [
      { released: false, changedSinceFinal: true },
      { kind: 'copyOn', why: 'inUse' },
    ],
    [
      { released: false, changedSinceFinal: false },
      { kind: 'copyOn', why: 'inUse' },
    ],
    [
      { released: false, changedSinceFinal: null },
      { kind: 'copyOn', why: 'inUse' },
    ],
    // Released, but written since the snapshot (a writer the scan missed, gone now): not final.
    [
      { released: true, changedSinceFinal: true },
      { kind: 'copyOn', why: 'changed' },
    ],
    // Released and unchanged: the snapshot holds every write.
    [
      { released: true, changedSinceFinal: false },
      { kind: 'promote', unchecked: false },
    ],
    // The engine cannot tell (zfs-fuse), or was not asked: the release alone, marked unchecked.
    [
      { released: true, changedSinceFinal: null },
      { kind: 'promote', unchecked: true },
    ],
    [{ released: true }, { kind: 'promote', unchecked: true }],
  ];
  it.each(cases)('%j → %j', (look, verdict) => {
    expect(finalVerdict(look)).toEqual(verdict);
  });

  it('never promotes a snapshot the source changed since, nor one still in use', () => {
    for (const released of [true, false])
      for (const changedSinceFinal of [true, false, null, undefined]) {
        const v = finalVerdict({ released, changedSinceFinal });
        if (!released || changedSinceFinal === true) expect(v.kind).toBe('copyOn');
        else expect(v.kind).toBe('promote');
      }
  });
});
