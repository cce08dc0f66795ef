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
/** The overlays of a freshly folded map (never written: every write copies its overlay). */
const EMPTY: ReadonlyMap<never, never> = new Map<never, never>();

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
    /**
     * The map `base` was folded from (same entries, same order; without a prior of its own,
     * so old bases are not chained), shared by every map derived from `base`. Lets diff and
     * changedKeys across a fold read overlays only: without it, the write that folded cost
     * every reader of the change a walk through all entries (~1 s at 100,000 datasets, four
     * readers: the write-ahead log, the node-view index, the by-primary index, the schedule
     * index). Keeps the previous base alive until the next fold.
     */
    private readonly prior?: PersistentMap<K, V>,
  ) {
    this.size = size;
  }

  static from<K, V>(map: ReadonlyMap<K, V>): PersistentMap<K, V> {
    if (map instanceof PersistentMap) return map as PersistentMap<K, V>;
    return new PersistentMap<K, V>(new Map(map), new Map(), new Map(), map.size);
  }

  /**
   * Takes `map` as the base without copying it: the caller hands it over and never changes
   * it again (a freshly loaded configuration). Its first writes then share that base, so
   * diffs against the loaded configuration read overlays only.
   */
  static adopt<K, V>(map: Map<K, V>): PersistentMap<K, V> {
    return new PersistentMap<K, V>(map, EMPTY, EMPTY, map.size);
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
    const next = new PersistentMap(this.base, updates, appended, size, this.prior);
    const limit = 32 + Math.sqrt(this.base.size);
    const overlay = updates.size + appended.size;
    if (overlay <= limit) {
      // Over the second half of the overlay's growth, copy the base a share per write, so the fold
      // need not copy it all in one write (100,000 entries: tens of ms, a create's p99.9).
      if (this.base.size >= COPY_AHEAD_MIN && overlay * 2 >= limit)
        copyAhead(this.base, Math.ceil((2 * this.base.size) / limit));
      return next;
    }
    // Map order: an updated key keeps its place, a deleted one leaves, appended ones go last.
    const base = takeCopy(this.base);
    for (const [k, u] of updates) {
      if (u === GONE) base.delete(k);
      else base.set(k, u);
    }
    for (const [k, v] of appended) base.set(k, v);
    return new PersistentMap<K, V>(base, EMPTY, EMPTY, size, new PersistentMap(this.base, updates, appended, size));
  }

  /**
   * `next` (same entries, same order) as a map sharing `prev`'s base, or undefined: next
   * itself, or, across one fold, next's overlays replayed onto the map its base was folded
   * from. O(next's overlays).
   */
  private static onBaseOf<K, V>(prev: PersistentMap<K, V>, next: PersistentMap<K, V>): PersistentMap<K, V> | undefined {
    if (prev.base === next.base) return next;
    const prior = next.prior;
    if (prior === undefined || prior.base !== prev.base) return undefined;
    const folded = new PersistentMap<K, V>(next.base, EMPTY, EMPTY, next.base.size);
    const { deletes, sets } = PersistentMap.diff(folded, next);
    const updates = new Map(prior.updates);
    const appended = new Map(prior.appended);
    let size = prior.size;
    for (const k of deletes) {
      if (appended.delete(k)) size -= 1;
      else if (prior.base.has(k) && updates.get(k) !== GONE) {
        updates.set(k, GONE);
        size -= 1;
      }
    }
    for (const k of sets) {
      const v = next.get(k) as V;
      if (appended.has(k)) appended.set(k, v);
      else if (prior.base.has(k) && updates.get(k) !== GONE) updates.set(k, v);
      else {
        appended.set(k, v);
        size += 1;
      }
    }
    return new PersistentMap(prior.base, updates, appended, size);
  }

  /** Whether diff and changedKeys of these two read only overlays (they share a base, or one fold apart). */
  static related<K, V>(prev: ReadonlyMap<K, V>, next: ReadonlyMap<K, V>): boolean {
    return (
      prev instanceof PersistentMap &&
      next instanceof PersistentMap &&
      PersistentMap.onBaseOf(prev as PersistentMap<K, V>, next as PersistentMap<K, V>) !== undefined
    );
  }

  /**
   * The operations that turn a plain Map holding `prev` (in order) into one holding
   * `next` (in order): delete `deletes`, then set `sets` in the given order. Exact
   * about order, so a replayed log lists entries as the live service did. Cheap when
   * `next` derives from `prev` (shared base, or one fold apart): only the overlays are compared.
   */
  static diff<K, V>(prev: ReadonlyMap<K, V>, next: ReadonlyMap<K, V>): { deletes: K[]; sets: K[] } {
    if (prev === next) return { deletes: [], sets: [] };
    const rebased =
      prev instanceof PersistentMap && next instanceof PersistentMap
        ? PersistentMap.onBaseOf(prev as PersistentMap<K, V>, next as PersistentMap<K, V>)
        : undefined;
    if (rebased !== undefined) {
      return PersistentMap.overlayDiff(prev as PersistentMap<K, V>, rebased);
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
   * diff of two maps on one base: only their overlays (~350 entries each at 100,000) are read. Every create runs it
   * twice (the store's log entry, the node-view index), so it walks with forEach and one array of p's appended keys:
   * the entry arrays, iterator results, spread key lists and Set of a for-of walk were ~80 KB a call, ~40% of what
   * a create allocated at 100,000 datasets (so of how often the service scavenged). Same answer, same order.
   */
  private static overlayDiff<K, V>(p: PersistentMap<K, V>, n: PersistentMap<K, V>): { deletes: K[]; sets: K[] } {
    const deletes: K[] = [];
    const sets: K[] = [];
    // Deleted keys, in the order of p.updates, p.appended, n.updates; a key in two of them (a base key deleted,
    // then re-added) once. The includes() only runs for a key deleted, which a create has none of.
    const gone = (_: unknown, k: K): void => {
      if (p.has(k) && !n.has(k) && !deletes.includes(k)) deletes.push(k);
    };
    p.updates.forEach(gone);
    p.appended.forEach(gone);
    n.updates.forEach(gone);
    // Base keys keep their place unless deleted; changed values are set in place.
    n.updates.forEach((v, k) => {
      if (v !== GONE && p.get(k) !== v) sets.push(k);
    });
    // orderedTail of the appended entries: in step while the keys agree, n's (re)appended from the first that differs.
    const before = p.appended.size === 0 ? [] : Array.from(p.appended.keys());
    let at = 0;
    let diverged = false;
    const tail: K[] = [];
    n.appended.forEach((v, k) => {
      if (!diverged) {
        if (at < before.length && before[at] === k) {
          at += 1;
          if (p.appended.get(k) !== v) sets.push(k);
          return;
        }
        diverged = true;
      }
      tail.push(k);
    });
    for (const k of tail) if (p.has(k)) deletes.push(k);
    return { deletes, sets: tail.length === 0 ? sets : sets.concat(tail) };
  }

  /**
   * The keys whose value differs between `prev` and `next` (set, changed or deleted), in
   * no particular order: what an index needs, without diff's ordering work. Only the
   * overlays are read when both share a base; otherwise both maps once.
   */
  static changedKeys<K, V>(prev: ReadonlyMap<K, V>, next: ReadonlyMap<K, V>): Set<K> {
    const changed = new Set<K>();
    if (prev === next) return changed;
    const rebased =
      prev instanceof PersistentMap && next instanceof PersistentMap
        ? PersistentMap.onBaseOf(prev as PersistentMap<K, V>, next as PersistentMap<K, V>)
        : undefined;
    if (rebased !== undefined) {
      const p = prev as PersistentMap<K, V>;
      const n = rebased;
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

/** Bases at least this big are copied ahead of their fold. */
const COPY_AHEAD_MIN = 1024;

/** A copy of a base in the making (see derive): entries copied so far, and where the copy stands. */
interface CopyAhead {
  readonly copy: Map<unknown, unknown>;
  readonly rest: Iterator<[unknown, unknown]>;
  done: boolean;
}

/** Keyed by the base (never mutated, so an iterator over it stays valid across writes). */
const copies = new WeakMap<ReadonlyMap<unknown, unknown>, CopyAhead>();

function copyAhead(base: ReadonlyMap<unknown, unknown>, entries: number): void {
  let c = copies.get(base);
  if (c === undefined) copies.set(base, (c = { copy: new Map(), rest: base.entries(), done: false }));
  for (let i = 0; i < entries && !c.done; i++) {
    const e = c.rest.next();
    if (e.done === true) c.done = true;
    else c.copy.set(e.value[0], e.value[1]);
  }
}

/**
 * A Map of `base`'s entries, in order, that the caller may change: the copy made ahead
 * (finished now if need be), handed out once; another version folding the same base
 * (a rare branch) copies it afresh.
 */
function takeCopy<K, V>(base: ReadonlyMap<K, V>): Map<K, V> {
  const c = copies.get(base);
  if (c === undefined) return new Map(base);
  copies.delete(base);
  for (let e = c.rest.next(); e.done !== true; e = c.rest.next()) c.copy.set(e.value[0], e.value[1]);
  return c.copy as Map<K, V>;
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
