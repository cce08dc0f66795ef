/**
 * The statistics of the plugin bench's ratios (issue 23): a ratio of two scenarios' medians with a 95% confidence
 * interval from a bootstrap over the bench's rounds, and the paired ratio of the same rounds.
 *
 * Why over rounds: every round runs every scenario once, back to back, so a slow moment of the host slows the
 * round's runs together (their times correlate across scenarios). A round is the unit that repeats independently;
 * resampling whole rounds keeps that correlation, resampling each scenario's runs on its own would not (and gives
 * wider, wrong intervals). Pure functions, seeded: the same samples always give the same interval.
 */

/** A seeded pseudo-random generator (mulberry32) in [0, 1): the same sequence for the same seed. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The q-quantile (0 ≤ q ≤ 1) of xs, interpolated linearly between order statistics; NaN when xs is empty. */
export function percentile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const at = Math.min(1, Math.max(0, q)) * (s.length - 1);
  const lo = Math.floor(at);
  const hi = Math.min(lo + 1, s.length - 1);
  const low = s[lo] ?? NaN;
  return low + ((s[hi] ?? NaN) - low) * (at - lo);
}

export function median(xs: readonly number[]): number {
  return percentile(xs, 0.5);
}

/** The mean of xs after dropping the lowest and highest `trim` fraction (each side, rounded down). */
export function trimmedMean(xs: readonly number[], trim: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const k = Math.floor(s.length * trim);
  const kept = s.slice(k, s.length - k);
  return kept.length === 0 ? NaN : kept.reduce((a, b) => a + b, 0) / kept.length;
}

function sameRounds(a: readonly number[], b: readonly number[]): void {
  if (a.length !== b.length) throw new Error(`paired samples need one of each per round (${a.length} vs ${b.length})`);
}

/** median(a) / median(b): issue 23's ratio. */
export function ratioOfMedians(a: readonly number[], b: readonly number[]): number {
  return median(a) / median(b);
}

/** The median over rounds of a_i / b_i. */
export function medianOfRatios(a: readonly number[], b: readonly number[]): number {
  sameRounds(a, b);
  return median(a.map((x, i) => x / (b[i] ?? NaN)));
}

/**
 * The paired ratio: the geometric mean of the rounds' ratios a_i / b_i, the `trim` fraction of rounds with the
 * lowest and the highest ratio left out (so a single disturbed run moves it little). Each round's drift divides out.
 * It estimates the geometric-mean ratio, not the ratio of medians: the two match only under a multiplicative model,
 * a_i = k * b_i * e_i with log(e_i) symmetric about 0 and alike across rounds (review s29 R1 F5); a right-skewed
 * side (Flocker's tail) moves them apart, so a gap between them is a difference in shape, not noise.
 */
export function pairedRatio(a: readonly number[], b: readonly number[], trim = 0.1): number {
  sameRounds(a, b);
  return Math.exp(
    trimmedMean(
      a.map((x, i) => Math.log(x / (b[i] ?? NaN))),
      trim,
    ),
  );
}

export interface BootstrapOptions {
  /** Resamples (default 2000). */
  resamples?: number;
  /** The generator's seed (default 1): a fixed seed gives the same interval for the same samples. */
  seed?: number;
  /** The interval's coverage (default 0.95). */
  level?: number;
}

/**
 * The percentile bootstrap interval of a statistic of `rounds` rounds: each resample draws `rounds` round indexes
 * with replacement and the statistic is computed from the rounds drawn (`sample`, their indexes). [NaN, NaN] with no
 * rounds.
 */
export function bootstrapRounds(
  rounds: number,
  statistic: (sample: readonly number[]) => number,
  opts: BootstrapOptions = {},
): [number, number] {
  if (rounds === 0) return [NaN, NaN];
  const random = seededRandom(opts.seed ?? 1);
  const level = opts.level ?? 0.95;
  const values: number[] = [];
  const idx = new Array<number>(rounds);
  for (let r = 0; r < (opts.resamples ?? 2000); r++) {
    for (let i = 0; i < rounds; i++) idx[i] = Math.floor(random() * rounds);
    values.push(statistic(idx));
  }
  return [percentile(values, (1 - level) / 2), percentile(values, 1 - (1 - level) / 2)];
}

/** One ratio of two scenarios measured in the same rounds, with its intervals. */
export interface RatioEstimate {
  rounds: number;
  /** median(a) / median(b), and its 95% interval over rounds. */
  ratio: number;
  ci: [number, number];
  /** The paired ratio (pairedRatio, 10% trimmed) and its 95% interval over rounds. */
  paired: number;
  paired_ci: [number, number];
  /** The median over rounds of a_i / b_i (reported; less precise than the paired ratio here). */
  median_of_ratios: number;
}

/** Both ratios of a against b (one sample of each per round, same order) and their bootstrap intervals. */
export function estimateRatio(a: readonly number[], b: readonly number[], opts: BootstrapOptions = {}): RatioEstimate {
  sameRounds(a, b);
  const pick = (xs: readonly number[], idx: readonly number[]) => idx.map((i) => xs[i] ?? NaN);
  return {
    rounds: a.length,
    ratio: ratioOfMedians(a, b),
    ci: bootstrapRounds(a.length, (idx) => ratioOfMedians(pick(a, idx), pick(b, idx)), opts),
    paired: pairedRatio(a, b),
    paired_ci: bootstrapRounds(a.length, (idx) => pairedRatio(pick(a, idx), pick(b, idx)), opts),
    median_of_ratios: medianOfRatios(a, b),
  };
}

/** Where an interval lies against an upper bound: all of it at or under, across it, or all of it over. */
export type Verdict = 'within' | 'straddles' | 'above';

export function ciAgainst(ci: readonly [number, number], target: number): Verdict {
  if (ci[1] <= target) return 'within';
  if (ci[0] > target) return 'above';
  return 'straddles';
}
