/**
 * An immutable Map whose set/delete return a new map sharing almost everything with
 * the old one. Copying a 10,000-entry Map on every write cost milliseconds and
 * hundreds of MB of large-object garbage; here a write copies only a small overlay
 * of recent changes, folded into a fresh base every ~√n writes.
 * Iteration order is exactly a Map's: insertion order, updates keep their place,
 * a deleted then re-added key moves to the end.
 */
const GONE: unique symbol = Symbol('deleted');
type Gone = typeof GONE;

export class PersistentMap<K, V> implements ReadonlyMap<K, V> {
  readonly size: number;

  private constructor(
    /** Never mutated once built; shared by every map derived from it. */
    private readonly base: ReadonlyMap<K, V>,
    /** New values (or GONE) of keys in `base`, which keep their position. */
    private readonly updates: ReadonlyMap<K, V | Gone>,
    /** Keys not in `base` (or deleted from it and re-added), in insertion order. */
    private readonly appended: ReadonlyMap<K, V>,
    size: number,
  ) {
    this.size = size;
  }

  static from<K, V>(map: ReadonlyMap<K, V>): PersistentMap<K, V> {
    if (map instanceof PersistentMap) return map as PersistentMap<K, V>;
    return new PersistentMap<K, V>(new Map(map), new Map(), new Map(), map.size);
  }

  get(key: K): V | undefined {
    const a = this.appended.get(key);
    if (a !== undefined || this.appended.has(key)) return a;
    const u = this.updates.get(key);
    if (u === GONE) return undefined;
    if (u !== undefined || this.updates.has(key)) return u;
    return this.base.get(key);
  }

  has(key: K): boolean {
    if (this.appended.has(key)) return true;
    const u = this.updates.get(key);
    if (u === GONE) return false;
    return u !== undefined || this.updates.has(key) || this.base.has(key);
  }

  set(key: K, value: V): PersistentMap<K, V> {
    if (this.appended.has(key)) {
      if (this.appended.get(key) === value) return this;
      return this.derive(this.updates, copyWith(this.appended, key, value), this.size);
    }
    const u = this.updates.get(key);
    if (this.base.has(key) && u !== GONE) {
      if ((u === undefined && !this.updates.has(key) ? this.base.get(key) : u) === value) return this;
      return this.derive(copyWith(this.updates, key, value), this.appended, this.size);
    }
    return this.derive(this.updates, copyWith(this.appended, key, value), this.size + 1);
  }

  delete(key: K): PersistentMap<K, V> {
    if (this.appended.has(key)) {
      const appended = new Map(this.appended);
      appended.delete(key);
      return this.derive(this.updates, appended, this.size - 1);
    }
    if (!this.has(key)) return this;
    return this.derive(copyWith(this.updates, key, GONE), this.appended, this.size - 1);
  }

  private derive(updates: ReadonlyMap<K, V | Gone>, appended: ReadonlyMap<K, V>, size: number): PersistentMap<K, V> {
    const next = new PersistentMap(this.base, updates, appended, size);
    if (updates.size + appended.size <= 32 + Math.sqrt(this.base.size)) return next;
    return new PersistentMap<K, V>(new Map(next.iterate()), new Map(), new Map(), size);
  }

  /**
   * The operations that turn a plain Map holding `prev` (in order) into one holding
   * `next` (in order): delete `deletes`, then set `sets` in the given order. Exact
   * about order, so a replayed log lists entries as the live service did. Cheap when
   * `next` derives from `prev` (shared base): only the overlays are compared.
   */
  static diff<K, V>(prev: ReadonlyMap<K, V>, next: ReadonlyMap<K, V>): { deletes: K[]; sets: K[] } {
    if (prev === next) return { deletes: [], sets: [] };
    if (prev instanceof PersistentMap && next instanceof PersistentMap && prev.base === next.base) {
      const p = prev as PersistentMap<K, V>;
      const n = next as PersistentMap<K, V>;
      const deletes: K[] = [];
      const sets: K[] = [];
      for (const k of new Set([...p.updates.keys(), ...p.appended.keys(), ...n.updates.keys()]))
        if (p.has(k) && !n.has(k)) deletes.push(k);
      // Base keys keep their place unless deleted; changed values are set in place.
      for (const [k, v] of n.updates) if (v !== GONE && p.get(k) !== v) sets.push(k);
      const tail = orderedTail(p.appended.entries(), n.appended.entries(), sets);
      for (const k of tail) if (p.has(k)) deletes.push(k);
      return { deletes, sets: sets.concat(tail) };
    }
    const deletes: K[] = [];
    for (const k of prev.keys()) if (!next.has(k)) deletes.push(k);
    const sets: K[] = [];
    const kept = (function* () {
      for (const e of prev.entries()) if (next.has(e[0])) yield e;
    })();
    const tail = orderedTail(kept, next.entries(), sets);
    for (const k of tail) if (prev.has(k)) deletes.push(k);
    return { deletes, sets: sets.concat(tail) };
  }

  /**
   * The keys whose value differs between `prev` and `next` (set, changed or deleted), in
   * no particular order: what an index needs, without diff's ordering work. Only the
   * overlays are read when both share a base; otherwise both maps once.
   */
  static changedKeys<K, V>(prev: ReadonlyMap<K, V>, next: ReadonlyMap<K, V>): Set<K> {
    const changed = new Set<K>();
    if (prev === next) return changed;
    if (prev instanceof PersistentMap && next instanceof PersistentMap && prev.base === next.base) {
      const p = prev as PersistentMap<K, V>;
      const n = next as PersistentMap<K, V>;
      for (const overlay of [p.updates, p.appended, n.updates, n.appended])
        for (const k of overlay.keys())
          if (!changed.has(k) && (p.get(k) !== n.get(k) || p.has(k) !== n.has(k))) changed.add(k);
      return changed;
    }
    for (const [k, v] of next.entries()) if (prev.get(k) !== v || !prev.has(k)) changed.add(k);
    for (const k of prev.keys()) if (!next.has(k)) changed.add(k);
    return changed;
  }

  private *iterate(): Generator<[K, V], undefined, unknown> {
    for (const [k, v] of this.base) {
      const u = this.updates.get(k);
      if (u === GONE) continue;
      if (u !== undefined || this.updates.has(k)) yield [k, u as V];
      else yield [k, v];
    }
    for (const e of this.appended) yield e;
    return undefined;
  }

  entries(): MapIterator<[K, V]> {
    return this.iterate();
  }

  *keys(): MapIterator<K> {
    for (const [k] of this.iterate()) yield k;
    return undefined;
  }

  *values(): MapIterator<V> {
    for (const [, v] of this.iterate()) yield v;
    return undefined;
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.iterate();
  }

  forEach(fn: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.iterate()) fn.call(thisArg, v, k, this);
  }
}

/**
 * Walks both sequences while their keys agree (pushing changed values onto `inPlace`)
 * and returns the rest of `next`'s keys: from the first disagreement on, `next`'s
 * entries must be (re)appended in order.
 */
function orderedTail<K, V>(prev: Iterator<[K, V]>, next: Iterator<[K, V]>, inPlace: K[]): K[] {
  const tail: K[] = [];
  let diverged = false;
  for (let n = next.next(); n.done !== true; n = next.next()) {
    const [k, v] = n.value;
    if (!diverged) {
      const p = prev.next();
      if (p.done !== true && p.value[0] === k) {
        if (p.value[1] !== v) inPlace.push(k);
        continue;
      }
      diverged = true;
    }
    tail.push(k);
  }
  return tail;
}

function copyWith<K, V>(map: ReadonlyMap<K, V>, key: K, value: V): Map<K, V> {
  const m = new Map(map);
  m.set(key, value);
  return m;
}

/** `map` with `key` set to `value`, sharing structure with `map`. */
export function setEntry<K, V>(map: ReadonlyMap<K, V>, key: K, value: V): ReadonlyMap<K, V> {
  return PersistentMap.from(map).set(key, value);
}

/** `map` without `key`, sharing structure with `map`. */
export function deleteEntry<K, V>(map: ReadonlyMap<K, V>, key: K): ReadonlyMap<K, V> {
  return PersistentMap.from(map).delete(key);
}
