import { DESTROY_MAX_DEFER_MS, DESTROY_SETTLE_MS, destroyDelay } from './deferredDestroys';

const base = {
  now: 10_000,
  wantedSince: 10_000,
  lastActivity: 10_000,
  queueIdle: true,
  spaceWanted: false,
  settleMs: 400,
  maxDeferMs: 3_000,
};

describe('destroyDelay', () => {
  it('waits the settle after the decision and after the last activity', () => {
    expect(destroyDelay(base)).toBe(400);
    expect(destroyDelay({ ...base, now: 10_300 })).toBe(100);
    expect(destroyDelay({ ...base, now: 10_400 })).toBe(0);
    expect(destroyDelay({ ...base, now: 10_300, lastActivity: 10_250 })).toBe(350);
    // Activity before the decision counts from the decision.
    expect(destroyDelay({ ...base, lastActivity: 5_000 })).toBe(400);
  });

  it('is bounded by maxDeferMs from the decision under continuous activity', () => {
    expect(destroyDelay({ ...base, now: 12_900, lastActivity: 12_900 })).toBe(100);
    expect(destroyDelay({ ...base, now: 13_000, lastActivity: 13_000 })).toBe(0);
    expect(destroyDelay({ ...base, now: 14_000, lastActivity: 14_000 })).toBe(0);
  });

  it('yields to queued or running work until the bound', () => {
    expect(destroyDelay({ ...base, now: 11_000, queueIdle: false })).toBe(2_000);
    expect(destroyDelay({ ...base, now: 13_000, queueIdle: false })).toBe(0);
  });

  it('is zero at once when space is wanted', () => {
    expect(destroyDelay({ ...base, spaceWanted: true })).toBe(0);
    expect(destroyDelay({ ...base, spaceWanted: true, queueIdle: false })).toBe(0);
  });

  it('never negative; defaults are short and bounded', () => {
    expect(destroyDelay({ ...base, now: 20_000 })).toBe(0);
    expect(DESTROY_SETTLE_MS).toBeGreaterThanOrEqual(300);
    expect(DESTROY_SETTLE_MS).toBeLessThanOrEqual(500);
    expect(DESTROY_MAX_DEFER_MS).toBeGreaterThan(DESTROY_SETTLE_MS);
  });
});
