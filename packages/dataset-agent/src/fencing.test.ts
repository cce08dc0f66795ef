import fc from 'fast-check';
import {
  ContactTracker,
  fenceReason,
  heartbeatMs,
  replicaFailoverMs,
  lastChanceMs,
  nextPhase,
  selfFenceBoundMs,
  type ContactFacts,
  type ContactPhase,
} from './fencing';

const facts = (f: Partial<ContactFacts> = {}): ContactFacts => ({
  expired: false,
  deadSeen: false,
  lastChanceFailed: false,
  confirmedSinceFence: false,
  fenceDone: false,
  cleanupDone: false,
  ...f,
});

describe('self-fencing rules', () => {
  it.each<[ContactPhase, Partial<ContactFacts>, ContactPhase]>([
    ['inContact', {}, 'inContact'],
    ['inContact', { expired: true }, 'checking'], // one last report first
    ['inContact', { deadSeen: true }, 'fencing'], // declared dead: no last chance
    ['checking', { expired: true }, 'checking'],
    ['checking', {}, 'inContact'], // the last report confirmed contact
    ['checking', { expired: true, lastChanceFailed: true }, 'fencing'],
    ['checking', { deadSeen: true }, 'fencing'],
    ['fencing', { expired: true }, 'fencing'],
    ['fencing', { confirmedSinceFence: true }, 'fencing'], // the pass finishes first
    ['fencing', { fenceDone: true }, 'fenced'],
    ['fenced', { expired: true }, 'fenced'],
    ['fenced', { confirmedSinceFence: true, expired: true }, 'fenced'],
    ['fenced', { confirmedSinceFence: true, deadSeen: true }, 'fenced'],
    ['fenced', { confirmedSinceFence: true }, 'recovering'],
    ['recovering', {}, 'recovering'],
    ['recovering', { cleanupDone: true }, 'inContact'],
    ['recovering', { cleanupDone: true, expired: true }, 'fencing'],
    ['recovering', { deadSeen: true }, 'fencing'],
  ])('%s with %j -> %s', (phase, f, next) => {
    expect(nextPhase(phase, facts(f))).toBe(next);
  });

  it('never goes from fencing or fenced straight back to acting, and never acts while declared dead', () => {
    const phases: ContactPhase[] = ['inContact', 'checking', 'fencing', 'fenced', 'recovering'];
    fc.assert(
      fc.property(
        fc.constantFrom(...phases),
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        (phase, expired, deadSeen, lastChanceFailed, confirmedSinceFence, fenceDone, cleanupDone) => {
          const next = nextPhase(phase, {
            expired,
            deadSeen,
            lastChanceFailed,
            confirmedSinceFence,
            fenceDone,
            cleanupDone,
          });
          if (phase === 'fencing' || phase === 'fenced') expect(next).not.toBe('inContact');
          if (deadSeen) expect(next).not.toBe('inContact');
        },
      ),
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
      fc.property(
        fc.integer({ min: 1, max: 10_000_000 }),
        fc.option(fc.integer({ min: 1, max: 10_000_000 }), { nil: undefined }),
        (t, c) => {
          expect(selfFenceBoundMs(t, c)!).toBeLessThan(t);
        },
      ),
    );
  });

  it('gives the last-chance report a third of the room between the bound and the node timeout', () => {
    expect(lastChanceMs(15_000, 30_000)).toBe(5_000);
    expect(lastChanceMs(1_500, 3_000)).toBe(500);
    expect(lastChanceMs(6_000, undefined)).toBe(2_000);
    // Fencing still starts before the node timeout: F + lastChance < T.
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 10_000_000 }), (t) =>
        expect(selfFenceBoundMs(t, undefined)! + lastChanceMs(t / 2, t)).toBeLessThan(t),
      ),
    );
  });

  it('heartbeats three times within the bound, never less often than the resync interval', () => {
    expect(heartbeatMs(15_000, 10_000)).toBe(5_000);
    expect(heartbeatMs(60_000, 10_000)).toBe(10_000);
    expect(heartbeatMs(undefined, 10_000)).toBe(10_000);
  });

  it('a request moves on from a silent replica within one heartbeat period of the bound', () => {
    // Node timeout 10 s: bound 5 s, heartbeat 1.67 s; the heartbeat reaches the next replica by 3.33 s < 5 s.
    expect(replicaFailoverMs(5_000)).toBe(1_666);
    expect(replicaFailoverMs(15_000)).toBe(5_000);
    expect(replicaFailoverMs(1)).toBe(10);
    expect(replicaFailoverMs(undefined)).toBeUndefined();
  });

  it('contact is the older of "the control service heard us" and "our configuration is current"', () => {
    const t = new ContactTracker(1000);
    const done = { fenceDone: false, cleanupDone: false, lastChanceFailed: false };
    expect(t.deadline(500)).toBe(1500); // from start before any confirmation
    expect(t.mayAct(1100, 500)).toBe(false); // nothing confirmed yet
    t.configConfirmed(1200);
    expect(t.lastConfirmed).toBeUndefined(); // no report accepted yet
    t.reportAccepted(1150, 1160);
    t.configConfirmed(1100); // an older question answered late does not move it back
    expect(t.lastConfirmed).toBe(1150);
    // Long-poll answers alone (reports refused) never keep a node in contact.
    t.configConfirmed(1600);
    expect(t.lastConfirmed).toBe(1150);
    expect(t.mayAct(1649, 500)).toBe(true);
    expect(t.mayAct(1650, 500)).toBe(false);
    expect(t.step(1650, 500, done)).toBe('checking');
    expect(t.step(1660, 500, { ...done, lastChanceFailed: true })).toBe('fencing');
    expect(t.fencedSince).toBe(1660);
    t.reportAccepted(1655, 1700); // sent before the fence began: not a reason to come back
    expect(t.step(1700, 500, { ...done, fenceDone: true })).toBe('fenced');
    expect(t.step(1800, 500, { ...done, fenceDone: true })).toBeUndefined();
    t.reportAccepted(1900, 1910);
    t.configConfirmed(1950);
    expect(t.step(1960, 500, { ...done, fenceDone: true })).toBe('recovering');
    expect(t.mayAct(1960, 500)).toBe(false); // stale mounts first
    expect(t.step(1970, 500, { ...done, fenceDone: true, cleanupDone: true })).toBe('inContact');
    expect(t.mayAct(1970, 500)).toBe(true);
  });

  it('a snapshot showing this node dead fences at once, unless it was asked before a report that revived it', () => {
    const t = new ContactTracker(0);
    const done = { fenceDone: false, cleanupDone: false, lastChanceFailed: false };
    t.reportAccepted(100, 110);
    t.configConfirmed(100);
    t.seenDead(105); // asked before the report's answer: may predate it
    expect(t.deadSeen).toBe(false);
    t.seenDead(120);
    expect(t.deadSeen).toBe(true);
    expect(t.mayAct(121, 10_000)).toBe(false);
    expect(t.step(121, 10_000, done)).toBe('fencing');
    t.reportAccepted(130, 140); // the control service hears us again
    expect(t.deadSeen).toBe(false);
  });

  it('with fencing off (no node timeout known, none configured) acts as before', () => {
    const t = new ContactTracker(0);
    expect(t.mayAct(10_000_000, undefined)).toBe(true);
    expect(
      t.step(10_000_000, undefined, { fenceDone: false, cleanupDone: false, lastChanceFailed: false }),
    ).toBeUndefined();
  });
});

describe('fenceReason', () => {
  it('cut off: how long without confirmed contact, and the bound', () => {
    expect(fenceReason({ deadSeen: false, lastConfirmedAgoMs: 3012.4, startedAgoMs: 90_000, boundMs: 3000 })).toBe(
      'no confirmed configuration from the control service for 3012 ms (self-fence bound 3000 ms)',
    );
    expect(fenceReason({ deadSeen: false, lastConfirmedAgoMs: undefined, startedAgoMs: 3001, boundMs: 3000 })).toBe(
      'no configuration confirmed by the control service since this agent started 3001 ms ago (self-fence bound 3000 ms)',
    );
  });

  it('declared dead: said so, never a fence "for 0 ms" (a host coming back after a power-off)', () => {
    expect(fenceReason({ deadSeen: true, lastConfirmedAgoMs: undefined, startedAgoMs: 812, boundMs: 3000 })).toBe(
      'the control service had declared this node dead when this agent started 812 ms ago (a host coming back), before its first confirmed contact',
    );
    expect(fenceReason({ deadSeen: true, lastConfirmedAgoMs: 1200, startedAgoMs: 90_000, boundMs: 3000 })).toBe(
      'the control service has declared this node dead (contact last confirmed 1200 ms ago)',
    );
  });
});
