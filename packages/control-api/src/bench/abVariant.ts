/**
 * The scale bench's --ab (issue 23): two variants of the service's heartbeat and of the simulated
 * agents' priority, timed in alternating rounds on the same service, agents and load. Pure: what a
 * variant is, and what the rounds say.
 */
import { stats } from './harness';

/** What --ab switches between rounds: the service's heartbeat slice (bench/watchVariant) and the agents' nice value. */
export interface Variant {
  label: string;
  slice?: number;
  nice?: number;
  /** false: no heartbeat ticks in this variant's rounds (bench/watchVariant). */
  beat?: boolean;
}

/** "slice=64,nice=10" or "beat=0" → a Variant (any key may be left out). */
export function parseVariant(spec: string): Variant {
  const v: Variant = { label: spec };
  for (const part of spec.split(',').filter((x) => x !== '')) {
    const [key, value] = part.split('=');
    const n = value === undefined || value === '' ? NaN : Number(value);
    if (!Number.isInteger(n)) throw new Error(`--ab: "${part}" in "${spec}" is not key=integer`);
    if (key === 'slice' && n > 0) v.slice = n;
    else if (key === 'nice' && n >= -20 && n <= 19) v.nice = n;
    else if (key === 'beat' && (n === 0 || n === 1)) v.beat = n === 1;
    else throw new Error(`--ab: "${part}" in "${spec}" (slice=N > 0, nice=-20..19, beat=0|1)`);
  }
  return v;
}

/** One round's create latencies (ms). */
export type AbRound = number[];

function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[Math.floor(s.length / 2)] as number);
}

/**
 * Per variant: the pooled p50 / p99 / max, the median of its rounds' p99s and of their counts over
 * `targetMs`; and in how many pairs (round i of each) the second variant's p99 was lower.
 */
export function abSummary(rounds: [AbRound[], AbRound[]], variants: [Variant, Variant], targetMs: number): string {
  const p99s = rounds.map((rs) => rs.map((r) => stats(r).p99_ms));
  const over = rounds.map((rs) => rs.map((r) => r.filter((x) => x >= targetMs).length));
  const pairs = Math.min(rounds[0].length, rounds[1].length);
  let lower = 0;
  for (let i = 0; i < pairs; i++) if ((p99s[1]?.[i] ?? NaN) < (p99s[0]?.[i] ?? NaN)) lower++;
  const parts = variants.map((variant, v) => {
    const all = stats(rounds[v]?.flat() ?? []);
    const o = over[v] ?? [];
    return (
      `${variant.label}: ${all.n} creates, p50 ${all.p50_ms} / p99 ${all.p99_ms} / max ${all.max_ms} ms; ` +
      `per round p99 median ${median(p99s[v] ?? [])} ms, over ${targetMs} ms median ${median(o)} ` +
      `(${o.reduce((a, b) => a + b, 0)} in all)`
    );
  });
  return `${parts.join('; ')}; ${variants[1].label} lower p99 in ${lower} of ${pairs} pairs`;
}
