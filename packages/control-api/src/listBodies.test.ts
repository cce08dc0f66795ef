import fc from 'fast-check';
import { jsonOf } from './json';
import { BlockJoiner, JoinedList, joinChunks, ListBody } from './listBodies';
import { PersistentMap } from './PersistentMap';
import { Slice } from './slices';

interface Item {
  id: string;
  n: number;
}

const fresh = (map: ReadonlyMap<string, Item>): string => `[${Array.from(map.values(), jsonOf).join(',')}]`;

type Op = { kind: 'set'; key: number; n: number } | { kind: 'delete'; key: number } | { kind: 'read' };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), key: fc.integer({ min: 0, max: 60 }), n: fc.integer() }),
  fc.record({ kind: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 60 }) }),
  fc.constant({ kind: 'read' as const }),
);

describe('JoinedList (issue 23: whole lists patched per change)', () => {
  it('joinChunks makes a JSON array of non-empty chunks', () => {
    expect(joinChunks([]).toString()).toBe('[]');
    expect(joinChunks([Buffer.from('1'), Buffer.from('2,3')]).toString()).toBe('[1,2,3]');
  });

  it('is byte for byte the fresh join, in the map order, whatever the writes between reads (sets, updates, deletes, re-adds, folds)', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), fc.integer({ min: 1, max: 8 }), (ops, segmentSize) => {
        const list = new JoinedList<Item>(segmentSize);
        let map: PersistentMap<string, Item> = PersistentMap.from(new Map());
        expect(list.of(map).toString()).toBe('[]');
        for (const o of ops) {
          if (o.kind === 'set') map = map.set(`k${o.key}`, { id: `k${o.key}`, n: o.n });
          else if (o.kind === 'delete') map = map.delete(`k${o.key}`);
          else expect(list.of(map).toString()).toBe(fresh(map));
        }
        expect(list.of(map).toString()).toBe(fresh(map));
        expect(JSON.parse(list.of(map).toString())).toEqual([...map.values()]);
      }),
      { numRuns: 300 },
    );
  });

  it('ofSliced is byte for byte the fresh join, whatever other of() calls (and another sliced build) do between its slices (issue 23)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { maxLength: 200 }),
        fc.array(op, { maxLength: 60 }),
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.constantFrom('none', 'other', 'same', 'previous'), { maxLength: 10 }),
        async (ops, otherOps, segmentSize, between) => {
          const list = new JoinedList<Item>(segmentSize);
          let map: PersistentMap<string, Item> = PersistentMap.from(new Map());
          const previous = map;
          for (const o of ops) {
            if (o.kind === 'set') map = map.set(`k${o.key}`, { id: `k${o.key}`, n: o.n });
            else if (o.kind === 'delete') map = map.delete(`k${o.key}`);
            else list.of(map);
          }
          let other = map;
          for (const o of otherOps) {
            if (o.kind === 'set') other = other.set(`k${o.key}`, { id: `k${o.key}`, n: o.n });
            else if (o.kind === 'delete') other = other.delete(`k${o.key}`);
          }
          let pauses = 0;
          const pause = async (): Promise<void> => {
            await new Promise<void>((r) => setImmediate(r));
            const what = between[pauses++ % Math.max(1, between.length)] ?? 'none';
            if (what === 'other') expect(list.of(other).toString()).toBe(fresh(other));
            else if (what === 'same') expect(list.of(map).toString()).toBe(fresh(map));
            else if (what === 'previous') expect(list.of(previous).toString()).toBe('[]');
          };
          const [got, gotOther] = await Promise.all([
            list.ofSliced(map, new Slice(pause, 0, 1)),
            list.ofSliced(other, new Slice(pause, 0, 1)),
          ]);
          expect(got.toString()).toBe(fresh(map));
          expect(gotOther.toString()).toBe(fresh(other));
          expect(list.of(map).toString()).toBe(fresh(map));
          expect(list.of(other).toString()).toBe(fresh(other));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('an unchanged map gives the same Buffer; a map of another lineage is joined afresh', () => {
    const list = new JoinedList<Item>(2);
    const map = PersistentMap.from(new Map([['a', { id: 'a', n: 1 }]]));
    const body = list.of(map);
    expect(list.of(map)).toBe(body);
    const other = new Map([
      ['b', { id: 'b', n: 2 }],
      ['a', { id: 'a', n: 1 }],
    ]);
    expect(list.of(other).toString()).toBe(fresh(other));
    expect(list.of(map).toString()).toBe(fresh(map));
  });

  it('a write re-joins only the segment it touched', () => {
    const items = Array.from({ length: 100 }, (_, i): [string, Item] => [`k${i}`, { id: `k${i}`, n: i }]);
    let map = PersistentMap.from(new Map(items));
    const list = new JoinedList<Item>(10);
    list.of(map);
    map = map.set('k55', { id: 'k55', n: -1 });
    const joins = jest.spyOn(Array.prototype, 'join');
    expect(list.of(map).toString()).toBe(fresh(map));
    // The fresh join above is one; the patch is another (one segment of 10).
    const patchJoins = joins.mock.calls.length - 1;
    joins.mockRestore();
    expect(patchJoins).toBe(1);
  });
});

describe('BlockJoiner (issue 23: a list written as blocks, copied per change only where it changed)', () => {
  const items = fc.array(
    fc.string({ minLength: 1, maxLength: 40 }).map((t) => Buffer.from(t)),
    { maxLength: 300 },
  );

  it('is byte for byte [items joined with commas], whatever the block size, across calls', () => {
    fc.assert(
      fc.property(fc.array(items, { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 400 }), (calls, size) => {
        const joiner = new BlockJoiner(size);
        for (const list of calls) {
          const body = joiner.of(list);
          const want = `[${list.map((b) => b.toString()).join(',')}]`;
          expect(body.toString()).toBe(want);
          expect(body.length).toBe(Buffer.byteLength(want));
          expect(body.chunks.every((c) => c.length > 0)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('one item replaced, added or removed: the other blocks are the same Buffers (at most two made anew)', () => {
    const list = Array.from({ length: 2000 }, (_, i) => Buffer.from(`{"n":${i},"pad":"${'x'.repeat(80)}"}`));
    const joiner = new BlockJoiner(8 * 1024);
    const before = joiner.of(list);
    expect(before.chunks.length).toBeGreaterThan(20);
    const made = (body: ListBody, was: ListBody): number => {
      const old = new Set(was.chunks);
      return body.chunks.filter((c) => !old.has(c)).length;
    };
    const replaced = [...list];
    replaced[1000] = Buffer.from('{"n":"changed"}');
    const afterReplace = joiner.of(replaced);
    expect(afterReplace.toString()).toBe(`[${replaced.join(',')}]`);
    expect(made(afterReplace, before)).toBeLessThanOrEqual(2);
    const removed = replaced.filter((_, i) => i !== 500);
    const afterRemove = joiner.of(removed);
    expect(made(afterRemove, afterReplace)).toBeLessThanOrEqual(2);
    const added = [...removed.slice(0, 10), Buffer.from('{"n":"new"}'), ...removed.slice(10)];
    const afterAdd = joiner.of(added);
    expect(afterAdd.toString()).toBe(`[${added.join(',')}]`);
    expect(made(afterAdd, afterRemove)).toBeLessThanOrEqual(2);
    // Unchanged items: the same blocks, a new body.
    const again = joiner.of(added);
    expect(again).not.toBe(afterAdd);
    expect(made(again, afterAdd)).toBe(0);
  });
});
