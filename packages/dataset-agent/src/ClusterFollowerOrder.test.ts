import { compareGenerations, replacesHeld, stampOf } from './ClusterFollowerOrder';

describe('stampOf', () => {
  it('parses the control service generations, nothing else', () => {
    expect(stampOf('a1b2c3.12.40')).toEqual({ epoch: 'a1b2c3', cv: 12, sg: 40 });
    for (const g of ['g', '1', 'x.1', 'x.1.2.3', 'x.-1.2', 'x.1.a', '.1.2', `x.${'9'.repeat(20)}.1`])
      expect(stampOf(g)).toBeUndefined();
  });
});

describe('compareGenerations', () => {
  it('orders generations of one epoch by both counters', () => {
    expect(compareGenerations('e.1.1', 'e.1.1')).toBe(0);
    expect(compareGenerations('e.1.1', 'e.1.2')).toBe(-1);
    expect(compareGenerations('e.1.2', 'e.2.2')).toBe(-1);
    expect(compareGenerations('e.2.5', 'e.1.5')).toBe(1);
    expect(compareGenerations('e.3.9', 'e.2.4')).toBe(1);
    // Numbers, not strings: 10 > 9.
    expect(compareGenerations('e.10.1', 'e.9.1')).toBe(1);
  });

  it('does not order another epoch (a restart, another replica), crossed counters, or other tokens', () => {
    expect(compareGenerations('e.5.5', 'f.1.1')).toBeUndefined();
    expect(compareGenerations('e.2.1', 'e.1.2')).toBeUndefined();
    expect(compareGenerations('1', '2')).toBeUndefined();
    expect(compareGenerations('x', 'e.1.1')).toBeUndefined();
    expect(compareGenerations('same', 'same')).toBe(0);
  });
});

describe('replacesHeld', () => {
  const held = { generation: 'e.4.7', askedAt: 1_000 };
  it('takes any view when none is held', () => {
    expect(replacesHeld(null, { generation: 'e.1.1', askedAt: 0 })).toBe(true);
  });

  it('never steps back within an epoch, whenever the older view was asked for (a late line, a slow refetch)', () => {
    expect(replacesHeld(held, { generation: 'e.4.6', askedAt: 2_000 })).toBe(false);
    expect(replacesHeld(held, { generation: 'e.3.7', askedAt: 2_000 })).toBe(false);
    expect(replacesHeld(held, { generation: 'e.3.2', askedAt: 1_000 })).toBe(false);
  });

  it('takes a newer view of the epoch even if asked for earlier (a refetch answered after a line)', () => {
    expect(replacesHeld(held, { generation: 'e.4.8', askedAt: 500 })).toBe(true);
    expect(replacesHeld(held, { generation: 'e.5.7', askedAt: 2_000 })).toBe(true);
  });

  it('takes the same generation again (contact: nothing changed)', () => {
    expect(replacesHeld(held, { generation: 'e.4.7', askedAt: 2_000 })).toBe(true);
    expect(replacesHeld(held, { generation: 'e.4.7', askedAt: 500 })).toBe(true);
  });

  it('across epochs (a restarted service, another replica): the question asked later wins', () => {
    expect(replacesHeld(held, { generation: 'f.1.1', askedAt: 2_000 })).toBe(true);
    expect(replacesHeld(held, { generation: 'f.1.1', askedAt: 1_000 })).toBe(true);
    expect(replacesHeld(held, { generation: 'f.9.9', askedAt: 999 })).toBe(false);
    // Opaque tokens (an older service): as before, by when asked.
    expect(replacesHeld({ generation: '2', askedAt: 10 }, { generation: '1', askedAt: 11 })).toBe(true);
    expect(replacesHeld({ generation: '2', askedAt: 10 }, { generation: '3', askedAt: 9 })).toBe(false);
  });
});
