/**
 * Lenient copies of the wire schemas, for reading answers (review FR F12, session 19). The schemas are `.strict()`:
 * the control service refuses a request with a member it does not know (a typo is caught). Read with those same
 * schemas, every member a newer control service adds (v1 allows additions) made the client of the release before
 * refuse the whole answer. lenientSchema(s) is s with every strict object, at any depth, dropping the members it
 * does not know instead (zod's strip); everything else (types, refinements, defaults, transforms) is s's own.
 */
import { z } from 'zod';

type Schema = z.core.$ZodType;

const derived = new WeakMap<Schema, Schema>();

/** A present member refused, an absent one accepted: how a union's option keeps a sibling's input out. */
const absent = z.never().optional();

/**
 * `schema`, answering what it answers, but dropping unknown object members at every depth instead of refusing them.
 * Derived once per schema (cached); a schema with no strict object in it is returned as it is.
 */
export function lenientSchema<T extends z.ZodType>(schema: T): z.ZodType<z.output<T>, z.input<T>> {
  // Stripping changes no output type: a strict object's output type has no index signature either.
  return derive(schema) as z.ZodType<z.output<T>, z.input<T>>;
}

/** Schemas whose copy is being built: met again inside themselves (a recursive shape, through a getter). */
const building = new Set<Schema>();

function derive(schema: Schema): Schema {
  const held = derived.get(schema);
  if (held !== undefined) return held;
  // A schema inside itself: its copy, once built (reading its shape again would never end).
  if (building.has(schema)) return z.lazy(() => derived.get(schema) ?? schema);
  building.add(schema);
  try {
    const lenient = build(schema);
    derived.set(schema, lenient);
    return lenient;
  } finally {
    building.delete(schema);
  }
}

/**
 * A copy of a definition with some members replaced. Copied by property descriptors, as zod's own mergeDefs: some
 * members are getters (a default's value yields a fresh copy at each parse; an object's shape is resolved lazily).
 */
function withDef<D extends z.core.$ZodTypeDef>(def: D, changes: Partial<D>): D {
  const copy = Object.create(Object.getPrototypeOf(def) as object | null, Object.getOwnPropertyDescriptors(def)) as D;
  for (const [key, value] of Object.entries(changes))
    Object.defineProperty(copy, key, { value, enumerable: true, configurable: true, writable: true });
  return copy;
}

function build(schema: Schema): Schema {
  const s = schema as z.core.$ZodTypes;
  switch (s._zod.def.type) {
    case 'object':
      return object(s as z.core.$ZodObject, new Set());
    case 'union':
      return union(s as z.core.$ZodUnion);
    case 'array': {
      const a = s as z.core.$ZodArray;
      const element = derive(a._zod.def.element);
      return element === a._zod.def.element ? a : z.core.clone(a, withDef(a._zod.def, { element }));
    }
    case 'record': {
      const r = s as z.core.$ZodRecord;
      const valueType = derive(r._zod.def.valueType);
      return valueType === r._zod.def.valueType ? r : z.core.clone(r, withDef(r._zod.def, { valueType }));
    }
    case 'tuple': {
      const t = s as z.core.$ZodTuple;
      const items = t._zod.def.items.map(derive);
      const rest = t._zod.def.rest === null ? null : derive(t._zod.def.rest);
      const same = rest === t._zod.def.rest && items.every((item, i) => item === t._zod.def.items[i]);
      return same ? t : z.core.clone(t, withDef(t._zod.def, { items, rest }));
    }
    case 'intersection': {
      const x = s as z.core.$ZodIntersection;
      const left = derive(x._zod.def.left);
      const right = derive(x._zod.def.right);
      const same = left === x._zod.def.left && right === x._zod.def.right;
      return same ? x : z.core.clone(x, withDef(x._zod.def, { left, right }));
    }
    case 'pipe': {
      const p = s as z.core.$ZodPipe;
      const from = derive(p._zod.def.in);
      const to = derive(p._zod.def.out);
      const same = from === p._zod.def.in && to === p._zod.def.out;
      return same ? p : z.core.clone(p, withDef(p._zod.def, { in: from, out: to }));
    }
    case 'lazy': {
      const l = s as z.core.$ZodLazy;
      const getter = l._zod.def.getter;
      return z.core.clone(l, withDef(l._zod.def, { getter: () => derive(getter()) }));
    }
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'catch':
    case 'readonly':
    case 'nonoptional':
    case 'success':
    case 'promise': {
      const w = s as z.core.$ZodOptional;
      const innerType = derive(w._zod.def.innerType);
      return innerType === w._zod.def.innerType ? w : z.core.clone(w, withDef(w._zod.def, { innerType }));
    }
    case 'string':
    case 'number':
    case 'bigint':
    case 'boolean':
    case 'date':
    case 'symbol':
    case 'undefined':
    case 'null':
    case 'any':
    case 'unknown':
    case 'never':
    case 'void':
    case 'nan':
    case 'literal':
    case 'enum':
    case 'template_literal':
    case 'file':
    case 'function':
    case 'custom':
    case 'transform':
    case 'map':
    case 'set':
      // Leaves, and what JSON never carries (maps, sets): nothing to drop.
      return schema;
  }
}

/**
 * An object's lenient copy: unknown members dropped (a catch-all other than strict's kept, made lenient), members
 * made lenient, and the members named in `refused` (a union's other options know them, this one does not) refused.
 */
function object(o: z.core.$ZodObject, refused: ReadonlySet<string>): Schema {
  const def = o._zod.def;
  const strict = def.catchall?._zod.def.type === 'never';
  const catchall = def.catchall === undefined || strict ? undefined : derive(def.catchall);
  let changed = strict || catchall !== def.catchall;
  const shape: Record<string, Schema> = {};
  for (const [key, member] of Object.entries(def.shape)) {
    const lenient = derive(member);
    shape[key] = lenient;
    if (lenient !== member) changed = true;
  }
  for (const key of refused) {
    if (key in shape) continue;
    shape[key] = absent;
    changed = true;
  }
  return changed ? z.core.clone(o, withDef(def, { shape, catchall })) : o;
}

/**
 * A union's lenient copy. A union takes the first option that accepts its input, and a lenient option accepts more:
 * a ClusterDelta, its `delta`, `since` and `removed_*` dropped, would be read as the ClusterSnapshot tried first. So
 * each object option refuses the members its sibling options know and it does not.
 */
function union(u: z.core.$ZodUnion): Schema {
  const options = u._zod.def.options;
  const known = options.map((option) => (isObject(option) ? new Set(Object.keys(option._zod.def.shape)) : undefined));
  const lenient = options.map((option, i) => {
    if (!isObject(option)) return derive(option);
    const own = known[i] as Set<string>;
    const refused = new Set<string>();
    known.forEach((keys, j) => {
      if (j !== i) for (const key of keys ?? []) if (!own.has(key)) refused.add(key);
    });
    return object(option, refused);
  });
  const same = lenient.every((option, i) => option === options[i]);
  return same ? u : z.core.clone(u, withDef(u._zod.def, { options: lenient }));
}

function isObject(schema: Schema): schema is z.core.$ZodObject {
  return (schema as z.core.$ZodTypes)._zod.def.type === 'object';
}
