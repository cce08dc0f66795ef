import fc from 'fast-check';
import { ContactTracker, heartbeatMs, nextPhase, selfFenceBoundMs, type ContactFacts, type ContactPhase } from './fencing';

const facts = (f: Partial<ContactFacts> = {}): ContactFacts => ({
  expired: false,
  confirmedSinceFence: false,
  fenceDone: false,
  cleanupDone: false,
  ...f,
});

describe('self-fencing rules', () => {
  it.each<[ContactPhase, Partial<ContactFacts>, ContactPhase]>([
    ['inContact', {}, 'inContact'],
    ['inContact', { expired: true }, 'fencing'],
    ['fencing', { expired: true }, 'fencing'],
    ['fencing', { confirmedSinceFence: true }, 'fencing'], // the pass finishes first
    ['fencing', { fenceDone: true }, 'fenced'],
    ['fenced', { expired: true }, 'fenced'],
    ['fenced', { confirmedSinceFence: true, expired: true }, 'fenced'],
    ['fenced', { confirmedSinceFence: true }, 'recovering'],
    ['recovering', {}, 'recovering'],
    ['recovering', { cleanupDone: true }, 'inContact'],
    ['recovering', { cleanupDone: true, expired: true }, 'fencing'],
  ])('%s with %j -> %s', (phase, f, next) => {
    expect(nextPhase(phase, facts(f))).toBe(next);
  });

  it('never goes from fencing or fenced straight back to acting', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean(), (expired, confirmedSinceFence, fenceDone, cleanupDone) => {
        const f = { expired, confirmedSinceFence, fenceDone, cleanupDone };
        expect(nextPhase('fencing', f)).not.toBe('inContact');
        expect(nextPhase('fenced', f)).not.toBe('inContact');
      }),
    );
  });

  it('bounds the self-fence by half the node timeout; a configured value may only shorten it', () => {
    expect(selfFenceBoundMs(30_000, undefined)).toBe(15_000);
    expect(selfFenceBoundMs(30_000, 5_000)).toBe(5_000);
    expect(selfFenceBoundMs(30_000, 29_000)).toBe(15_000);
    expect(selfFenceBoundMs(undefined, 7_000)).toBe(7_000);
    expect(selfFenceBoundMs(undefined, undefined)).toBeUndefined();
    // The invariant the README states: F < T <= T + G for every node timeout.
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000_000 }), fc.option(fc.integer({ min: 1, max: 10_000_000 }), { nil: undefined }), (t, c) => {
        expect(selfFenceBoundMs(t, c)!).toBeLessThan(t);
      }),
    );
  });

  it('heartbeats three times within the bound, never less often than the resync interval', () => {
    expect(heartbeatMs(15_000, 10_000)).toBe(5_000);
    expect(heartbeatMs(60_000, 10_000)).toBe(10_000);
    expect(heartbeatMs(undefined, 10_000)).toBe(10_000);
  });

  it('tracks the latest confirmation by the time its question was sent', () => {
    const t = new ContactTracker(1000);
    expect(t.deadline(500)).toBe(1500); // from start before any confirmation
    expect(t.mayAct(1100, 500)).toBe(false); // nothing confirmed yet
    t.confirm(1200);
    t.confirm(1100); // an older question answered late does not move it back
    expect(t.lastConfirmed).toBe(1200);
    expect(t.mayAct(1699, 500)).toBe(true);
    expect(t.mayAct(1700, 500)).toBe(false);
    expect(t.step(1700, 500, { fenceDone: false, cleanupDone: false })).toBe('fencing');
    expect(t.fencedSince).toBe(1700);
    t.confirm(1650); // sent before the fence began: not a reason to come back
    expect(t.step(1800, 500, { fenceDone: true, cleanupDone: false })).toBe('fenced');
    expect(t.step(1900, 500, { fenceDone: true, cleanupDone: false })).toBeUndefined();
    t.confirm(1950);
    expect(t.step(1960, 500, { fenceDone: true, cleanupDone: false })).toBe('recovering');
    expect(t.mayAct(1960, 500)).toBe(false); // stale mounts first
    expect(t.step(1970, 500, { fenceDone: true, cleanupDone: true })).toBe('inContact');
    expect(t.mayAct(1970, 500)).toBe(true);
  });

  it('with fencing off (no node timeout known, none configured) acts as before', () => {
    const t = new ContactTracker(0);
    expect(t.mayAct(10_000_000, undefined)).toBe(true);
    expect(t.step(10_000_000, undefined, { fenceDone: false, cleanupDone: false })).toBeUndefined();
  });
});
