/**
 * The one rule for "a name, a full id or a unique id prefix" that volumes and snapshots are given by (review TN F1,
 * R2-1, R2-2). Pure, so each case is unit-tested. A reference more than one item answers to is refused (exit 2) with
 * what picks each: picking one would let `destroy` delete the item the user did not mean.
 */
import { CliError, EXIT } from './errors';

export interface RefKind<T> {
  /** "volume", "snapshot": in the refusals. */
  readonly noun: string;
  readonly idOf: (x: T) => string;
  /** Its name; '' when it has none. */
  readonly nameOf: (x: T) => string;
  /** Whether `ref` is looked up as a name at all (volumes: only by the volume-name rule). */
  readonly byName: (ref: string) => boolean;
  /** The refusal's stable code. */
  readonly code: string;
}

/** At most a few ids in a refusal: enough to pick from, short enough to read. */
export function idList(ids: readonly string[]): string {
  return ids.length <= 5 ? ids.join(', ') : `${ids.slice(0, 5).join(', ')} and ${ids.length - 5} more`;
}

/**
 * The shortest prefix (8 characters or more) of `x`'s id that no other item's id starts with and no item bears as its
 * name: what picks `x` when its full id is also another item's name.
 */
export function uniqueIdPrefix<T>(kind: RefKind<T>, all: readonly T[], x: T): string {
  const id = kind.idOf(x);
  const others = all.filter((o) => kind.idOf(o) !== id);
  for (let n = 8; n < id.length; n += 1) {
    const p = id.slice(0, n);
    if (!others.some((o) => kind.idOf(o).startsWith(p) || kind.nameOf(o) === p)) return p;
  }
  return id;
}

/**
 * The item of `live`, else of `fallback` (volumes still being deleted), that `ref` names; undefined when none.
 * Both pools count together for ids and id prefixes: a full id in either pool that an item of either bears as its
 * name, or a reference that is one item's name and another's id prefix, is refused. Only a name borne by a live item
 * and by one in `fallback` picks the live one (a name is free again once its volume is deleted). `all` (every item,
 * deleted ones too) is what the prefix named in a refusal must not match.
 */
export function resolveRef<T>(
  kind: RefKind<T>,
  all: readonly T[],
  live: readonly T[],
  fallback: readonly T[],
  ref: string,
): T | undefined {
  const id = ref.toLowerCase();
  const byName = kind.byName(ref);
  const pool = [...live, ...fallback];
  const exact = pool.find((x) => kind.idOf(x) === id);
  const namedIn = (xs: readonly T[]) => (byName ? xs.filter((x) => kind.nameOf(x) === ref) : []);
  const namedLive = namedIn(live);
  const named = namedLive.length > 0 ? namedLive : namedIn(fallback);
  const plural = `${kind.noun}s`;
  if (exact) {
    const others = named.filter((x) => x !== exact);
    if (others.length === 0) return exact;
    throw new CliError(
      EXIT.USAGE,
      `"${ref}" matches ${others.length + 1} ${plural}: it is the id of one and the name of ` +
        `${others.length === 1 ? 'another' : `${others.length} others`}. Give "${uniqueIdPrefix(kind, all, exact)}" ` +
        `for the ${kind.noun} with that id, or the id of the ${kind.noun} named "${ref}" ` +
        `(${idList(others.map(kind.idOf))})`,
      kind.code,
    );
  }
  const byPrefix = ref.length >= 4 ? pool.filter((x) => kind.idOf(x).startsWith(id)) : [];
  const ids = [...new Set([...named, ...byPrefix].map(kind.idOf))];
  if (ids.length > 1)
    throw new CliError(
      EXIT.USAGE,
      `"${ref}" matches ${ids.length} ${plural} (ids ${idList(ids)}): ` +
        (named.length > 0 ? 'give the id' : 'give more of the id'),
      kind.code,
    );
  return named[0] ?? byPrefix[0];
}
