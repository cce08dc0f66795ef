import { abSummary, parseVariant } from './abVariant';

describe('scale bench --ab', () => {
  it('parses a variant: slice, nice, beat, in any order; an empty spec is the defaults', () => {
    expect(parseVariant('slice=64,nice=10')).toEqual({ label: 'slice=64,nice=10', slice: 64, nice: 10 });
    expect(parseVariant('beat=0')).toEqual({ label: 'beat=0', beat: false });
    expect(parseVariant('nice=-5,beat=1')).toEqual({ label: 'nice=-5,beat=1', nice: -5, beat: true });
    expect(parseVariant('')).toEqual({ label: '' });
  });

  it.each(['slice=0', 'slice=1.5', 'nice=20', 'nice=-21', 'beat=2', 'slice', 'slice=', 'speed=3', 'slice=x'])(
    'refuses %s',
    (spec) => expect(() => parseVariant(spec)).toThrow(/--ab/),
  );

  it('sums the rounds up per variant and counts the pairs where the second was lower', () => {
    const a = { label: 'A' };
    const b = { label: 'B' };
    // Round p99s (the largest of a few): A 30, 5, 40; B 10, 8, 12 — B lower in pairs 1 and 3.
    const text = abSummary(
      [
        [
          [1, 30],
          [1, 5],
          [2, 40, 3],
        ],
        [
          [1, 10],
          [2, 8],
          [1, 12, 2],
        ],
      ],
      [a, b],
      10,
    );
    expect(text).toContain('A: 7 creates');
    expect(text).toContain(
      'A: 7 creates, p50 3 / p99 40 / max 40 ms; per round p99 median 30 ms, over 10 ms median 1 (2 in all)',
    );
    expect(text).toContain(
      'B: 7 creates, p50 2 / p99 12 / max 12 ms; per round p99 median 10 ms, over 10 ms median 1 (2 in all)',
    );
    expect(text).toMatch(/B lower p99 in 2 of 3 pairs$/);
  });
});
