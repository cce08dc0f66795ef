import fc from 'fast-check';
import { Backoff, backoffDelay } from './backoff';

describe('backoffDelay', () => {
  it('without jitter: initial, 2x initial, … capped at max', () => {
    const policy = { initialMs: 500, maxMs: 30_000, jitter: false };
    expect([0, 1, 2, 3, 4, 5, 6, 7, 19, 1000].map((a) => backoffDelay(a, policy))).toEqual([
      500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000,
    ]);
  });

  it('with jitter: within [ceiling/2, ceiling] of the capped exponential, for any attempt and random value', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 100 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, r) => {
          const ceiling = Math.min(20_000, 250 * 2 ** Math.min(attempt, 30));
          const d = backoffDelay(attempt, { initialMs: 250, maxMs: 20_000, jitter: true }, () => r);
          return d >= Math.floor(ceiling / 2) && d <= ceiling;
        },
      ),
    );
  });

  it('with jitter never retries at once: the lowest draw is half the ceiling', () => {
    const policy = { initialMs: 100, maxMs: 1000, jitter: true };
    expect([0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, policy, () => 0))).toEqual([50, 100, 200, 400, 500, 500]);
    expect([0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, policy, () => 0.999))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
  });
});

describe('Backoff', () => {
  it('grows with each failure and starts over after reset()', () => {
    const b = new Backoff({ initialMs: 10, maxMs: 50, jitter: false });
    expect([b.next(), b.next(), b.next(), b.next()]).toEqual([10, 20, 40, 50]);
    expect(b.attempts).toBe(4);
    b.reset();
    expect(b.attempts).toBe(0);
    expect(b.next()).toBe(10);
  });
});
