/**
 * FR19-6 (session 19): `flocker backup gc` runs on an operator's host, whose clock may be off the store's by more
 * than the pending marker's TTL (30 min) or the chunks' grace period. Markers and chunks are dated by the store
 * (LastModified), so their ages are judged on the store's clock: a laptop 40 min fast must not take a running backup's
 * marker for a dead one's (and collect while it runs), nor one slow keep a dead backup's marker alive.
 */
import { collectGarbage, pruneBackups } from './catalog';
import { CHUNKS_PREFIX, PENDING_PREFIX } from './layout';
import { MemoryObjectStore } from './testing';

const MIN = 60_000;
const HOUR = 60 * MIN;
const T = Date.parse('2026-12-06T09:00:00.000Z');
const MARKER = `${PENDING_PREFIX}vol-1/20261206T085500000Z-snap-1.json`;
const OLD_CHUNK = `${CHUNKS_PREFIX}aa/${'a'.repeat(64)}`;
const YOUNG_CHUNK = `${CHUNKS_PREFIX}bb/${'b'.repeat(64)}`;

/** A store whose clock reads T; `objects` written `ago` ms before it. */
function storeWith(objects: Record<string, number>): MemoryObjectStore {
  const store = new MemoryObjectStore(() => T);
  for (const [key, ago] of Object.entries(objects))
    store.objects.set(key, { body: Buffer.from('x'), lastModified: new Date(T - ago) });
  return store;
}

/** This host's wall clock `skew` ms off the store's. */
function skewLocalClock(skew: number): void {
  jest.spyOn(Date, 'now').mockReturnValue(T + skew);
}

afterEach(() => jest.restoreAllMocks());

describe("garbage collection judges ages on the store's clock, not this host's", () => {
  it('a host 40 min fast: a marker refreshed 5 min ago (store time) is live, and the collection waits', async () => {
    const store = storeWith({ [MARKER]: 5 * MIN, [OLD_CHUNK]: 48 * HOUR });
    skewLocalClock(40 * MIN);
    expect(await collectGarbage(store)).toMatchObject({ deferred: true, deletedChunks: 0, stalePendingRemoved: 0 });
    expect(store.objects.has(MARKER)).toBe(true);
    expect(store.objects.has(OLD_CHUNK)).toBe(true);
  });

  it('a host 40 min slow: a marker 35 min old (store time) is stale, removed, and the collection runs', async () => {
    const store = storeWith({ [MARKER]: 35 * MIN, [OLD_CHUNK]: 48 * HOUR });
    skewLocalClock(-40 * MIN);
    expect(await collectGarbage(store)).toMatchObject({ deferred: false, deletedChunks: 1, stalePendingRemoved: 1 });
    expect(store.keys(PENDING_PREFIX)).toEqual([]);
  });

  it('a host 2 days fast: a chunk 1 h old (store time) is within the grace period and kept', async () => {
    const store = storeWith({ [OLD_CHUNK]: 72 * HOUR, [YOUNG_CHUNK]: HOUR });
    skewLocalClock(48 * HOUR);
    expect(await collectGarbage(store)).toMatchObject({ deferred: false, deletedChunks: 1, youngChunks: 1 });
    expect(store.keys(CHUNKS_PREFIX)).toEqual([YOUNG_CHUNK]);
  });

  it("a prune's collection (an agent's, after a backup) too", async () => {
    const store = storeWith({ [MARKER]: 5 * MIN, [OLD_CHUNK]: 48 * HOUR });
    skewLocalClock(40 * MIN);
    expect((await pruneBackups(store, 'vol-2', 1)).gc).toMatchObject({ deferred: true, deletedChunks: 0 });
    expect(store.objects.has(MARKER)).toBe(true);
  });
});
