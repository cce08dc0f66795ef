import {
  bootstrapRounds,
  ciAgainst,
  estimateRatio,
  median,
  medianOfRatios,
  pairedRatio,
  percentile,
  ratioOfMedians,
  seededRandom,
  trimmedMean,
} from './stats';

/** Rounds as the bench sees them: a drift shared by the round's runs, and each run's own noise (log-normal). */
function rounds(n: number, factor: number, seed: number, drift = 0.1, noise = 0.07): { a: number[]; b: number[] } {
  const random = seededRandom(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < n; i++) {
    const d = 330 * Math.exp(drift * normal());
    a.push(factor * d * Math.exp(noise * normal()));
    b.push(d * Math.exp(noise * normal()));
  }
  return { a, b };
}

describe('bench statistics: quantiles and ratios', () => {
  it('draws the same sequence in [0, 1) for the same seed, another for another seed', () => {
    const one = seededRandom(42);
    const first = Array.from({ length: 1000 }, () => one());
    const again = seededRandom(42);
    expect(Array.from({ length: 1000 }, () => again())).toEqual(first);
    expect(first.every((x) => x >= 0 && x < 1)).toBe(true);
    const other = seededRandom(43);
    expect(Array.from({ length: 1000 }, () => other())).not.toEqual(first);
  });

  it('interpolates quantiles between order statistics, whatever the order given', () => {
    expect(percentile([4, 1, 3, 2], 0)).toBe(1);
    expect(percentile([4, 1, 3, 2], 1)).toBe(4);
    expect(percentile([4, 1, 3, 2], 0.5)).toBe(2.5);
    expect(percentile([4, 1, 3, 2], 0.25)).toBe(1.75);
    expect(median([5, 1, 3])).toBe(3);
    expect(percentile([], 0.5)).toBeNaN();
  });

  it('trims the same share from each end before the mean', () => {
    expect(trimmedMean([1, 2, 3, 4, 5, 6, 7, 8, 9, 1000], 0.1)).toBe(5.5);
    expect(trimmedMean([1, 2, 3], 0)).toBe(2);
    expect(trimmedMean([], 0.1)).toBeNaN();
  });

  it('gives the ratio of medians, the median of the rounds’ ratios and the trimmed paired ratio', () => {
    const b = [300, 320, 340, 360, 380, 400, 420, 440, 460, 480];
    const a = b.map((x) => x * 1.05);
    expect(ratioOfMedians(a, b)).toBeCloseTo(1.05, 12);
    expect(medianOfRatios(a, b)).toBeCloseTo(1.05, 12);
    expect(pairedRatio(a, b)).toBeCloseTo(1.05, 12);
    // One disturbed round (its Flocker run three times as slow) is trimmed out of the paired ratio.
    const disturbed = [...a.slice(0, 9), (b[9] ?? 0) * 3];
    expect(pairedRatio(disturbed, b)).toBeCloseTo(1.05, 12);
    // The paired ratio is a geometric mean: ratios 2 and 0.5 average to 1.
    expect(pairedRatio([2, 1], [1, 2], 0)).toBeCloseTo(1, 12);
  });

  it('refuses paired statistics of samples from different rounds', () => {
    expect(() => pairedRatio([1, 2], [1])).toThrow(/one of each per round/);
    expect(() => medianOfRatios([1], [1, 2])).toThrow(/one of each per round/);
    expect(() => estimateRatio([1, 2, 3], [1, 2])).toThrow(/one of each per round/);
  });
});

describe('bench statistics: bootstrap intervals over rounds', () => {
  it('is deterministic for a seed and holds the estimate', () => {
    const { a, b } = rounds(40, 1.05, 7);
    const one = estimateRatio(a, b);
    expect(estimateRatio(a, b)).toEqual(one);
    expect(estimateRatio(a, b, { seed: 2 })).not.toEqual(one);
    expect(one.rounds).toBe(40);
    expect(one.ci[0]).toBeLessThanOrEqual(one.ratio);
    expect(one.ci[1]).toBeGreaterThanOrEqual(one.ratio);
    expect(one.paired_ci[0]).toBeLessThanOrEqual(one.paired);
    expect(one.paired_ci[1]).toBeGreaterThanOrEqual(one.paired);
    expect(bootstrapRounds(0, () => 1)).toEqual([NaN, NaN]);
  });

  it('narrows about as 1/√rounds: 4 times the rounds, half the width', () => {
    const width = (n: number) => {
      const widths = [1, 2, 3].map((seed) => {
        const { a, b } = rounds(n, 1.05, seed);
        const e = estimateRatio(a, b, { resamples: 400 });
        return e.ci[1] - e.ci[0];
      });
      return median(widths);
    };
    const ratio = width(160) / width(40);
    expect(ratio).toBeGreaterThan(0.35);
    expect(ratio).toBeLessThan(0.65);
  });

  it('covers the true ratio in about 95% of runs, and the paired interval is the narrower when rounds drift', () => {
    let covered = 0;
    let pairedCovered = 0;
    let narrower = 0;
    const runs = 60;
    for (let seed = 1; seed <= runs; seed++) {
      const { a, b } = rounds(40, 1.05, 1000 + seed);
      const e = estimateRatio(a, b, { resamples: 400, seed });
      if (e.ci[0] <= 1.05 && 1.05 <= e.ci[1]) covered++;
      if (e.paired_ci[0] <= 1.05 && 1.05 <= e.paired_ci[1]) pairedCovered++;
      if (e.paired_ci[1] - e.paired_ci[0] < e.ci[1] - e.ci[0]) narrower++;
    }
    // Seeded, so the counts are fixed; the bounds say what they show (95% of 60 is 57).
    expect(covered).toBeGreaterThanOrEqual(52);
    expect(pairedCovered).toBeGreaterThanOrEqual(52);
    expect(narrower).toBeGreaterThanOrEqual(50);
  });

  it('places an interval against an upper target', () => {
    expect(ciAgainst([0.98, 1.04], 1.05)).toBe('within');
    expect(ciAgainst([0.98, 1.05], 1.05)).toBe('within');
    expect(ciAgainst([1.01, 1.09], 1.05)).toBe('straddles');
    expect(ciAgainst([1.06, 1.09], 1.05)).toBe('above');
  });
});
