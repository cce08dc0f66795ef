/**
 * What PersistentMap.diff allocates between a map and its one-write successor (issue 23). Every create diffs the
 * datasets twice (the store's log entry, the node-view index) at ~350 overlay entries per map at 100,000 datasets:
 * the entry arrays, spread key lists and Set of the old walk were ~85 KB per diff, ~40% of what a create allocated,
 * which set how often the control service scavenged (a scavenge of 4-36 ms in a create is its tail).
 */
import { PersistentMap } from './PersistentMap';
import { allocatedUnder } from './testing/allocation';

describe('PersistentMap.diff allocation', () => {
  it('diffs a map and its one-write successor without a walk that allocates per overlay entry', async () => {
    // A 100,000-entry base with 250 entries appended and 50 updated since its fold (its overlay folds past 348).
    let map = PersistentMap.from(
      new Map<string, { i: number }>(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, { i }])),
    );
    for (let i = 0; i < 250; i++) map = map.set(`new${i}`, { i });
    for (let i = 0; i < 50; i++) map = map.set(`k${i * 7}`, { i: -i });
    const pairs = Array.from({ length: 200 }, (_, i) => [map, map.set(`next${i}`, { i })] as const);
    // Warm up (optimized code), then measure.
    for (const [a, b] of pairs) PersistentMap.diff(a, b);
    let sets = 0;
    const bytes = await allocatedUnder('diff', () => {
      for (const [a, b] of pairs) sets += PersistentMap.diff(a, b).sets.length;
    });
    expect(sets).toBe(200);
    // ~8 bytes a key for the one array of prev's appended keys, and the answer: not the ~85 KB of entry arrays.
    expect(bytes / pairs.length).toBeLessThan(8 * 1024);
  });

  it('still says exactly what changed, deletes and re-adds included', () => {
    let a = PersistentMap.from(new Map(Array.from({ length: 2_000 }, (_, i) => [i, i] as const)));
    for (let i = 0; i < 40; i++) a = a.set(10_000 + i, i);
    let b = a.delete(5).delete(10_003).set(7, -7).set(20_000, 1).delete(9).set(9, 9).set(10_001, -1);
    b = b.set(5, 5);
    const d = PersistentMap.diff(a, b);
    const replay = new Map(a);
    for (const k of d.deletes) replay.delete(k);
    for (const k of d.sets) replay.set(k, b.get(k) as number);
    expect([...replay]).toEqual([...b]);
    expect(new Set(d.deletes).size).toBe(d.deletes.length);
  });
});
