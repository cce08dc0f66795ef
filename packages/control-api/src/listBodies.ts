/**
 * Whole-list bodies patched per change (issue 23): the JSON array of a map of immutable values
 * (the configured datasets) kept as segments of ~SEGMENT_SIZE entries, each one's bytes joined
 * once. A change re-joins only the segments it touched, and the block of ~BLOCK_BYTES holding
 * it (BlockJoiner); the body is the blocks, written one after another (ListBody). A full re-join
 * stringified nothing but still joined and encoded 100,000 fragments (~130 ms on a loaded host
 * at 100,000 datasets, per change), and copying the segments together cost 12-80 ms more.
 */
import { jsonOf } from './json';
import { PersistentMap } from './PersistentMap';
import { Slice } from './slices';

export const SEGMENT_SIZE = 512;

/** How often a sliced build starts over after other reads moved what it was building, before it ends in one turn. */
export const MAX_RESTARTS = 3;

const OPEN = Buffer.from('[');
const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']');
const EMPTY_LIST = Buffer.from('[]');

interface Segment<V> {
  /** In the list's order (a Map's: an updated key keeps its place). */
  readonly entries: Map<string, V>;
  /** The entries' JSON joined with commas; undefined when an entry changed since. */
  bytes: Buffer | undefined;
}

/**
 * A response body kept as the byte chunks it is made of, written to the socket one after another
 * (issue 23): a whole list is ~18 MB at 100,000 datasets, and copying it together per change cost
 * a fresh 18 MB allocation (page faults, GC pressure) and 15-80 ms of memcpy on a loaded host.
 * Immutable; a new instance is a new body (Views tags bodies by identity).
 */
export class ListBody {
  readonly length: number;

  constructor(readonly chunks: readonly Buffer[]) {
    let n = 0;
    for (const c of chunks) n += c.length;
    this.length = n;
  }

  /** The bytes in one Buffer (a copy: tests, the gzipped copy, schema checks). */
  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }

  toString(): string {
    return this.toBuffer().toString();
  }
}

/** What a cached body may be: one Buffer, or a ListBody's chunks. */
export type Body = Buffer | ListBody;

/** About how many bytes one block of a list holds (BlockJoiner): few writes per read, a small copy per change. */
export const BLOCK_BYTES = 256 * 1024;

/**
 * A number in [0, 1) from an item's bytes (FNV-1a of its first 64 and last 16 bytes, and its
 * length; a list's items start with a UUID): where blocks end does not move when other items
 * change, and the same items make the same blocks.
 */
function markOf(item: Buffer): number {
  let h = 0x811c9dc5 ^ item.length;
  const head = Math.min(item.length, 64);
  for (let i = 0; i < head; i++) h = Math.imul(h ^ (item[i] as number), 0x01000193);
  for (let i = Math.max(head, item.length - 16); i < item.length; i++)
    h = Math.imul(h ^ (item[i] as number), 0x01000193);
  return (h >>> 0) / 0x100000000;
}

/**
 * `[a,b,…]` from items (byte chunks, none empty) as a ListBody of blocks of ~BLOCK_BYTES, each
 * block some consecutive items joined with commas. A block whose items are the same Buffers as a
 * block of the previous call is that block again: a change that replaces one item (a node's
 * report, a segment of datasets) copies one block, not the list. Where a block ends depends only
 * on the items at that place (an item ends its block with a chance proportional to its size, by
 * a hash of its bytes), so an item added or removed moves no boundary elsewhere.
 */
export class BlockJoiner {
  /** The blocks of the last call, by their first item. */
  private blocks = new Map<Buffer, { items: readonly Buffer[]; bytes: Buffer }>();

  constructor(private readonly blockBytes = BLOCK_BYTES) {}

  of(items: readonly Buffer[]): ListBody {
    return drive(this.steps(items));
  }

  /** of() in steps (one per block made: the first build copies every block, 18 MB at 100,000 datasets). */
  *steps(items: readonly Buffer[]): Generator<void, ListBody, void> {
    if (items.length === 0) return new ListBody([EMPTY_LIST]);
    const next = new Map<Buffer, { items: readonly Buffer[]; bytes: Buffer }>();
    const chunks: Buffer[] = [OPEN];
    let start = 0;
    let size = 0;
    for (let i = 0; i < items.length; i++) {
      const item = items[i] as Buffer;
      size += item.length + 1;
      const last = i === items.length - 1;
      // Ends the block: by its mark (stable), or at 8x the size (bounds a block whatever the marks).
      if (!last && markOf(item) * this.blockBytes >= item.length && size < 8 * this.blockBytes) continue;
      const block = this.block(items, start, i + 1);
      yield;
      next.set(items[start] as Buffer, block);
      if (chunks.length > 1) chunks.push(COMMA);
      chunks.push(block.bytes);
      start = i + 1;
      size = 0;
    }
    chunks.push(CLOSE);
    this.blocks = next;
    return new ListBody(chunks);
  }

  private block(items: readonly Buffer[], from: number, to: number): { items: readonly Buffer[]; bytes: Buffer } {
    const first = items[from] as Buffer;
    const old = this.blocks.get(first);
    if (old !== undefined && old.items.length === to - from) {
      let same = true;
      for (let k = 0; k < old.items.length && same; k++) same = old.items[k] === items[from + k];
      if (same) return old;
    }
    const own = items.slice(from, to);
    const parts: Buffer[] = [];
    for (let k = 0; k < own.length; k++) {
      if (k > 0) parts.push(COMMA);
      parts.push(own[k] as Buffer);
    }
    return { items: own, bytes: to - from === 1 ? first : Buffer.concat(parts) };
  }
}

/** `[a,b,…]` from byte chunks, none of them empty, in one Buffer. */
export function joinChunks(chunks: readonly Buffer[]): Buffer {
  if (chunks.length === 0) return EMPTY_LIST;
  const parts: Buffer[] = [OPEN];
  for (let i = 0; i < chunks.length; i++) {
    if (i > 0) parts.push(COMMA);
    parts.push(chunks[i] as Buffer);
  }
  parts.push(CLOSE);
  return Buffer.concat(parts);
}

/**
 * The JSON array of a map's values in the map's order, byte for byte what `[${values.map(jsonOf).join(',')}]`
 * gives, brought up to date from the map's changes (PersistentMap.diff: exact about order, cheap between related
 * versions). A map of another lineage, or a change touching a quarter of the entries, is joined afresh.
 */
export class JoinedList<V extends object> {
  private source: ReadonlyMap<string, V> | undefined;
  private segments: Segment<V>[] = [];
  private where = new Map<string, Segment<V>>();
  private readonly blocks = new BlockJoiner();
  /** The body of `source`; undefined until made (a sliced build may have moved `source` and not made it yet). */
  private body: ListBody | undefined = new ListBody([EMPTY_LIST]);

  constructor(private readonly segmentSize = SEGMENT_SIZE) {}

  of(next: ReadonlyMap<string, V>): ListBody {
    return drive(this.steps(next));
  }

  /**
   * of(next) across event-loop turns (issue 23: the first read after a start stringifies and joins 100,000 datasets,
   * 0.3-2 s in one turn), the same bytes. `next` is an immutable value (a configuration's datasets). Another of()
   * meanwhile is correct: segments are replaced at once, each segment's bytes are its entries' whatever made them,
   * and should the list have moved to another map this one starts over.
   */
  ofSliced(next: ReadonlyMap<string, V>, slice: Slice = new Slice()): Promise<ListBody> {
    return driveSliced(this.steps(next), slice);
  }

  private *steps(next: ReadonlyMap<string, V>): Generator<void, ListBody, void> {
    for (let restarts = 0; ; restarts++) {
      // Moved away again and again by other reads between slices: the rest in this turn (bounded).
      if (restarts > MAX_RESTARTS) return drive(this.steps(next));
      if (this.source !== next) {
        const prev = this.source;
        const diff =
          prev !== undefined && PersistentMap.related(prev, next) ? PersistentMap.diff(prev, next) : undefined;
        if (diff === undefined || (diff.deletes.length + diff.sets.length) * 4 > next.size) yield* this.reset(next);
        else this.patch(next, diff);
        this.source = next;
        this.body = undefined;
      }
      if (this.body !== undefined) return this.body;
      const segments = this.segments;
      const chunks: Buffer[] = [];
      let moved = false;
      for (const segment of segments) {
        if (segment.bytes === undefined) {
          segment.bytes = Buffer.from(Array.from(segment.entries.values(), jsonOf).join(','));
          yield;
          // Another of() moved the list to another map meanwhile: this one again, from there.
          moved = this.segments !== segments;
          if (moved) break;
        }
        chunks.push(segment.bytes);
      }
      if (moved) continue;
      // The chunks are next's whatever happens meanwhile; kept only if the list is still next's.
      const body = yield* this.blocks.steps(chunks);
      if (this.source === next && this.segments === segments) this.body = body;
      return body;
    }
  }

  /** A plain Map's operations, over the segments in order: delete, then set (in place, or at the end). */
  private patch(next: ReadonlyMap<string, V>, diff: { deletes: readonly string[]; sets: readonly string[] }): void {
    for (const id of diff.deletes) {
      const segment = this.where.get(id);
      if (segment === undefined) continue;
      segment.entries.delete(id);
      segment.bytes = undefined;
      this.where.delete(id);
    }
    for (const id of diff.sets) {
      const value = next.get(id) as V;
      let segment = this.where.get(id);
      if (segment === undefined) {
        segment = this.segments[this.segments.length - 1];
        if (segment === undefined || segment.entries.size >= this.segmentSize) {
          segment = { entries: new Map(), bytes: undefined };
          this.segments.push(segment);
        }
        this.where.set(id, segment);
      }
      segment.entries.set(id, value);
      segment.bytes = undefined;
    }
    // Segments emptied by deletes are dropped; many part-empty ones make a fresh start.
    this.segments = this.segments.filter((s) => s.entries.size > 0);
    if (this.segments.length > 2 * Math.ceil(next.size / this.segmentSize) + 4) drive(this.reset(next));
  }

  /** The segments of `next` made afresh, in steps (one per segment), put in place at once at the end. */
  private *reset(next: ReadonlyMap<string, V>): Generator<void, void, void> {
    const segments: Segment<V>[] = [];
    const where = new Map<string, Segment<V>>();
    let segment: Segment<V> | undefined;
    for (const [id, value] of next) {
      if (segment === undefined || segment.entries.size >= this.segmentSize) {
        if (segment !== undefined) yield;
        segment = { entries: new Map(), bytes: undefined };
        segments.push(segment);
      }
      segment.entries.set(id, value);
      where.set(id, segment);
    }
    this.segments = segments;
    this.where = where;
  }
}

/** Runs steps to their end in this turn. */
export function drive<T>(steps: Generator<void, T, void>): T {
  let step = steps.next();
  while (step.done !== true) step = steps.next();
  return step.value;
}

/** Runs steps across event-loop turns: a slice of them, the loop turns, the next slice. */
export async function driveSliced<T>(steps: Generator<void, T, void>, slice: Slice): Promise<T> {
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
    if (slice.due()) await slice.next();
  }
}
