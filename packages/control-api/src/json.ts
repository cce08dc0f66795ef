/**
 * JSON of immutable values, computed once per value: datasets and leases are never
 * mutated (a change makes a new object), so the store's snapshots and the API's
 * bodies can join cached fragments instead of re-serializing 10,000 objects.
 */
const cache = new WeakMap<object, string>();

export function jsonOf(value: object): string {
  let s = cache.get(value);
  if (s === undefined) {
    s = JSON.stringify(value);
    cache.set(value, s);
  }
  return s;
}
