import fc from 'fast-check';
import { PersistentMap } from './PersistentMap';

type Op = { kind: 'set'; key: number; value: number } | { kind: 'delete'; key: number };

const ops = fc.array(
  fc.oneof(
    fc.record({
      kind: fc.constant('set' as const),
      key: fc.integer({ min: 0, max: 60 }),
      value: fc.integer({ min: 0, max: 3 }),
    }),
    fc.record({ kind: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 60 }) }),
  ),
  { maxLength: 400 },
);

const longOps = fc.array(
  fc.oneof(
    fc.record({
      kind: fc.constant('set' as const),
      key: fc.integer({ min: 0, max: 60 }),
      value: fc.integer({ min: 0, max: 3 }),
    }),
    fc.record({ kind: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 60 }) }),
  ),
  { minLength: 300, maxLength: 600 },
);

// Values are boxed so "changed" means a new object, as with the configuration's immutable values.
const boxes = new Map<number, { v: number }>();
const box = (v: number): { v: number } => {
  let b = boxes.get(v);
  if (b === undefined) boxes.set(v, (b = { v }));
  return b;
};

describe('PersistentMap', () => {
  it('behaves exactly like a Map (values, order, size) and leaves older versions untouched', () => {
    fc.assert(
      fc.property(ops, (steps: Op[]) => {
        const model = new Map<number, { v: number }>();
        let pm = PersistentMap.from(new Map<number, { v: number }>());
        const history: Array<[PersistentMap<number, { v: number }>, Array<[number, { v: number }]>]> = [];
        for (const s of steps) {
          if (s.kind === 'set') {
            model.set(s.key, box(s.value));
            pm = pm.set(s.key, box(s.value));
          } else {
            model.delete(s.key);
            pm = pm.delete(s.key);
          }
          expect(pm.size).toBe(model.size);
          expect(pm.get(s.key)).toBe(model.get(s.key));
          expect(pm.has(s.key)).toBe(model.has(s.key));
          history.push([pm, [...model.entries()]]);
        }
        expect([...pm.entries()]).toEqual([...model.entries()]);
        expect([...pm.keys()]).toEqual([...model.keys()]);
        expect([...pm.values()]).toEqual([...model.values()]);
        for (const [old, entries] of history) expect([...old]).toEqual(entries);
      }),
    );
  });

  it('diff gives deletes and ordered sets that replay any change onto a plain Map exactly', () => {
    fc.assert(
      fc.property(ops, fc.integer({ min: 1, max: 50 }), (steps: Op[], every: number) => {
        let pm = PersistentMap.from(new Map<number, { v: number }>());
        let prev = pm;
        const replica = new Map<number, { v: number }>();
        steps.forEach((s, i) => {
          pm = s.kind === 'set' ? pm.set(s.key, box(s.value)) : pm.delete(s.key);
          // Diff over batches of several changes, as a group commit does.
          if (i % every === 0 || i === steps.length - 1) {
            const { deletes, sets } = PersistentMap.diff(prev, pm);
            for (const k of deletes) replica.delete(k);
            for (const k of sets) replica.set(k, pm.get(k) as { v: number });
            expect([...replica.entries()]).toEqual([...pm.entries()]);
            prev = pm;
          }
        });
      }),
    );
  });

  it('changedKeys names exactly the keys whose value differs, across batches and base folds', () => {
    fc.assert(
      fc.property(ops, fc.integer({ min: 1, max: 50 }), (steps: Op[], every: number) => {
        let pm = PersistentMap.from(new Map<number, { v: number }>());
        let prev = pm;
        steps.forEach((s, i) => {
          pm = s.kind === 'set' ? pm.set(s.key, box(s.value)) : pm.delete(s.key);
          if (i % every === 0 || i === steps.length - 1) {
            const expected = new Set<number>();
            for (const k of new Set([...prev.keys(), ...pm.keys()]))
              if (prev.get(k) !== pm.get(k) || prev.has(k) !== pm.has(k)) expected.add(k);
            expect([...PersistentMap.changedKeys(prev, pm)].sort((a, b) => a - b)).toEqual(
              [...expected].sort((a, b) => a - b),
            );
            prev = pm;
          }
        });
      }),
    );
  });

  it('diff against an unrelated plain Map also reproduces order', () => {
    const prev = new Map([
      [1, box(1)],
      [2, box(2)],
      [3, box(3)],
    ]);
    const next = PersistentMap.from(prev).delete(2).set(4, box(1)).set(2, box(2)).set(1, box(3));
    const replica = new Map(prev);
    const { deletes, sets } = PersistentMap.diff(new Map(prev), next);
    for (const k of deletes) replica.delete(k);
    for (const k of sets) replica.set(k, next.get(k) as { v: number });
    expect([...replica.entries()]).toEqual([...next.entries()]);
  });

  it('diff and changedKeys across a fold read only overlays, and stay exact', () => {
    // 2,000 entries fold every ~77 writes; batches of 1 to 120 writes cross zero, one or two folds.
    let pm = PersistentMap.from(new Map(Array.from({ length: 2_000 }, (_, i): [number, { v: number }] => [i, box(i)])));
    const replica = new Map(pm);
    let prev = pm;
    let crossed = 0;
    fc.assert(
      fc.property(longOps, fc.integer({ min: 1, max: 120 }), (steps: Op[], batch: number) => {
        for (const [i, s] of steps.entries()) {
          const key = (s.key * 97 + (i % 97)) % 3_000;
          pm = s.kind === 'set' ? pm.set(key, box(s.value + i)) : pm.delete(key);
          if (i % batch !== 0 && i !== steps.length - 1) continue;
          const foldedOnce = (prev as unknown as { base: unknown }).base !== (pm as unknown as { base: unknown }).base;
          const related = PersistentMap.related(prev, pm);
          if (foldedOnce && related) crossed += 1;
          // One fold apart is always related; unrelated only when the batch crossed two folds.
          if (!related) expect(batch).toBeGreaterThan(70);
          const changed = PersistentMap.changedKeys(prev, pm);
          const { deletes, sets } = PersistentMap.diff(prev, pm);
          for (const k of deletes) replica.delete(k);
          for (const k of sets) replica.set(k, pm.get(k) as { v: number });
          expect(new Set([...deletes, ...sets].filter((k) => prev.get(k) !== pm.get(k)))).toEqual(changed);
          prev = pm;
        }
        expect([...replica.entries()]).toEqual([...pm.entries()]);
      }),
      { numRuns: 30 },
    );
    expect(crossed).toBeGreaterThan(0);
  });

  it('a base copied ahead of its fold serves one fold; a branch folding the same base copies it afresh', () => {
    // 5,000 entries: the base is copied a share per write over the second half of the overlay's growth.
    const start = PersistentMap.from(
      new Map(Array.from({ length: 5000 }, (_, i): [number, { v: number }] => [i, box(i)])),
    );
    const branches = [0, 1, 2].map((b) => {
      let pm = start;
      const model = new Map(start);
      for (let i = 0; i < 300; i++) {
        const key = b === 1 ? i * 7 : 6000 + b * 1000 + i; // updates in place, or appends
        if (i % 11 === 10) {
          pm = pm.delete(key - 1);
          model.delete(key - 1);
        } else {
          pm = pm.set(key, box(b * 1000 + i));
          model.set(key, box(b * 1000 + i));
        }
      }
      return { pm, model };
    });
    for (const { pm, model } of branches) {
      expect(pm.size).toBe(model.size);
      expect([...pm.entries()]).toEqual([...model.entries()]);
    }
    expect([...start.entries()]).toEqual(Array.from({ length: 5000 }, (_, i) => [i, box(i)]));
  });
});
