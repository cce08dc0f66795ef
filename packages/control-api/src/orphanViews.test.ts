import { letterReport } from './testing/fixtures';
import { CaretakerIndex, type CaretakerMove, caretakerAmong, caretakerOf, fnv1a, witnessOf } from './orphanViews';

/** The caretaker moves only (not the witnesses'). */
const care = (moves: CaretakerMove[]): CaretakerMove[] => moves.filter((m) => m.witness !== true);

/** A volume of dataset `d` in the shared pool, attached nowhere. */
const volume = (d: string) => ({ blockdevice_id: `v-${d}`, dataset_id: d, size: 1, attached_to: null });

/** A ready snapshot `id` of `dataset`'s volume. */
const snapshot = (id: string, dataset: string) => ({
  snapshot_id: id,
  dataset_id: dataset,
  size: 1,
  created_at: '2026-01-01T00:00:00.000Z',
  status: 'ready' as const,
  backend_id: id,
  source_blockdevice_id: `v-${dataset}`,
});

const nodes = Array.from({ length: 50 }, (_, i) => `n${String(i).padStart(2, '0')}`);

describe('orphanViews: caretakerOf', () => {
  const alive = (n: string): boolean => !n.startsWith('dead');
  const facts = { deleted: true, primary: 'dead-p', holders: [] as string[], reporters: ['a', 'b', 'dead-r'] };

  it('only a deleted dataset whose primary is not alive, held by no live node, with a live node reporting its volume', () => {
    expect(caretakerOf('d', facts, alive)).toBe(caretakerAmong('d', ['a', 'b']));
    expect(caretakerOf('d', { ...facts, deleted: false }, alive)).toBeUndefined();
    expect(caretakerOf('d', { ...facts, primary: 'p' }, alive)).toBeUndefined();
    expect(caretakerOf('d', { ...facts, holders: ['c'] }, alive)).toBeUndefined();
    expect(caretakerOf('d', { ...facts, holders: ['dead-h'] }, alive)).toBeDefined();
    expect(caretakerOf('d', { ...facts, reporters: ['dead-r'] }, alive)).toBeUndefined();
    expect(caretakerOf('d', undefined, alive)).toBeUndefined();
  });

  it('a live node reporting a deleted snapshot of it counts as a reporter: the same caretaker with the volume or without', () => {
    const snapFacts = { ...facts, deletedSnapshots: [['a', 'dead-r'], ['b']] };
    expect(caretakerOf('d', { ...snapFacts, reporters: [] }, alive)).toBe(caretakerAmong('d', ['a', 'b']));
    expect(caretakerOf('d', snapFacts, alive)).toBe(caretakerOf('d', facts, alive));
    expect(caretakerOf('d', { ...snapFacts, reporters: [], deletedSnapshots: [['dead-r']] }, alive)).toBeUndefined();
    // Not deleted, or deleted with its primary alive: only for a snapshot the primary does not hold (below).
    expect(caretakerOf('d', { ...snapFacts, deleted: false, primary: 'p' }, alive)).toBeDefined();
    expect(
      caretakerOf(
        'd',
        {
          ...snapFacts,
          primary: 'p',
          deletedSnapshots: [
            ['p', 'a'],
            ['p', 'b'],
          ],
        },
        alive,
      ),
    ).toBeUndefined();
  });

  it('(a) a deleted snapshot of a live dataset whose primary is dead: a live node holding it, unless a live holder of the dataset does', () => {
    const live = { deleted: false, primary: 'dead-p', holders: [] as string[], reporters: ['a'] };
    expect(caretakerOf('d', { ...live, deletedSnapshots: [['dead-p', 'a', 'b']] }, alive)).toBe(
      caretakerAmong('d', ['a', 'b']),
    );
    // The volume's reporters do not count: only the snapshot's.
    expect(caretakerOf('d', { ...live, deletedSnapshots: [['b']] }, alive)).toBe('b');
    expect(caretakerOf('d', { ...live, holders: ['h'], deletedSnapshots: [['h', 'a']] }, alive)).toBeUndefined();
    expect(caretakerOf('d', { ...live, holders: ['dead-h'], deletedSnapshots: [['dead-h', 'a']] }, alive)).toBe('a');
    expect(caretakerOf('d', { ...live, deletedSnapshots: [['dead-p']] }, alive)).toBeUndefined();
    expect(caretakerOf('d', live, alive)).toBeUndefined();
  });

  it("(b) a deleted snapshot its live primary's backend does not hold (another pool): a live node whose backend does", () => {
    const live = { deleted: false, primary: 'p', holders: [] as string[], reporters: ['p'] };
    expect(caretakerOf('d', { ...live, deletedSnapshots: [['a', 'b']] }, alive)).toBe(caretakerAmong('d', ['a', 'b']));
    // Deleted, its primary alive: the same.
    expect(caretakerOf('d', { ...live, deleted: true, deletedSnapshots: [['a', 'b']] }, alive)).toBe(
      caretakerAmong('d', ['a', 'b']),
    );
    // One stranded, one the primary holds: the stranded one's reporters only.
    expect(caretakerOf('d', { ...live, deletedSnapshots: [['p', 'a'], ['b']] }, alive)).toBe('b');
    expect(caretakerOf('d', { ...live, deletedSnapshots: [['p', 'a', 'b']] }, alive)).toBeUndefined();
  });

  it('rendezvous: deterministic, order-free, spread, and moves only when the caretaker goes', () => {
    expect(fnv1a('')).toBe(0x811c9dc5);
    const counts = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      const id = `dataset-${i}`;
      const c = caretakerAmong(id, nodes) as string;
      expect(caretakerAmong(id, [...nodes].reverse())).toBe(c);
      counts.set(c, (counts.get(c) ?? 0) + 1);
      // Another node going: the caretaker stays unless it was the one.
      const gone = nodes[i % nodes.length] as string;
      const after = caretakerAmong(
        id,
        nodes.filter((n) => n !== gone),
      );
      if (gone !== c) expect(after).toBe(c);
    }
    // 2,000 orphans over 50 nodes: every node some, none more than 3x the mean.
    expect(counts.size).toBe(50);
    expect(Math.max(...counts.values())).toBeLessThan(120);
    expect(caretakerAmong('d', [])).toBeUndefined();
  });
});

describe('orphanViews: witnessOf', () => {
  const alive = (n: string): boolean => !n.startsWith('dead');
  it('a dataset not deleted that no live node holds: the first live reporter in rendezvous order', () => {
    const facts = { deleted: false, holders: ['dead-h'], reporters: ['a', 'b', 'dead-r'] };
    expect(witnessOf('d', facts, alive)).toBe(caretakerAmong('d', ['a', 'b']));
    expect(witnessOf('d', { ...facts, deleted: true }, alive)).toBeUndefined();
    expect(witnessOf('d', { ...facts, holders: ['h'] }, alive)).toBeUndefined();
    expect(witnessOf('d', { ...facts, reporters: [] }, alive)).toBeUndefined();
  });
});

describe('orphanViews: CaretakerIndex', () => {
  describe('stranded deleted snapshots: a caretaker where no live node seeing the dataset holds one', () => {
    const report = (uuid: string, snapshots: string[], dataset = 'd1') =>
      letterReport(uuid, { volumes: [], snapshots: snapshots.map((id) => snapshot(id, dataset)) });
    const setUp = (primary: string, live: Set<string>, held = new Map<string, string[]>()) => {
      const config = new Map([['d1', { deleted: false, primary }]]);
      const index = new CaretakerIndex({
        dataset: (id) => config.get(id),
        holders: (id) => held.get(id) ?? [],
        alive: (n) => live.has(n),
      });
      return { config, index };
    };
    const deleting = (index: CaretakerIndex, ids: string[]) =>
      care(
        index.snapshotsChanged(
          new Map(ids.map((id) => [id, { dataset_id: 'd1' }])),
          new Map(ids.map((id) => [id, { dataset_id: 'd1', deleted: true as const }])),
        ),
      );

    it('(a) a live dataset whose primary is dead: one of the live nodes holding the deleted snapshot, until it is gone', () => {
      const live = new Set(['p', 'a', 'b']);
      const { index } = setUp('p', live);
      index.nodeChanged('p', report('p', ['s1']), []);
      index.nodeChanged('a', report('a', ['s1']), []);
      index.nodeChanged('b', report('b', ['s1']), []);
      // The primary alive and holding it: it destroys s1, no caretaker.
      expect(deleting(index, ['s1'])).toEqual([]);
      // The primary dies (the dataset stays, not deleted): s1 is in no live view but a reporter's.
      live.delete('p');
      const carer = caretakerAmong('d1', ['a', 'b']) as string;
      expect(care(index.nodeChanged('p', undefined, []))).toEqual([{ datasetId: 'd1', from: undefined, to: carer }]);
      expect([...index.caredBy(carer)]).toEqual(['d1']);
      // Destroyed (its pool shared: nobody reports it any more): nobody.
      index.nodeChanged(carer === 'a' ? 'b' : 'a', report(carer === 'a' ? 'b' : 'a', []), []);
      expect(care(index.nodeChanged(carer, report(carer, []), []))).toEqual([
        { datasetId: 'd1', from: carer, to: undefined },
      ]);
      // The primary comes back: nothing to do either way.
      live.add('p');
      expect(care(index.nodeChanged('p', report('p', []), []))).toEqual([]);
    });

    it('(a) a live node holding the dataset and its deleted snapshot sees it: no caretaker', () => {
      const live = new Set(['a', 'b', 'h']);
      const { index } = setUp('p', live, new Map([['d1', ['h']]]));
      index.nodeChanged('h', report('h', ['s1']), ['d1']);
      index.nodeChanged('a', report('a', ['s1']), []);
      expect(deleting(index, ['s1'])).toEqual([]);
      expect(index.caretaker('d1')).toBeUndefined();
    });

    it("(b) a deleted snapshot the live primary's backend does not hold (another pool): one of the nodes whose backend does", () => {
      const live = new Set(['p', 'a', 'b']);
      const { config, index } = setUp('p', live);
      index.nodeChanged('p', report('p', ['s2']), []);
      index.nodeChanged('a', report('a', ['s1']), []);
      index.nodeChanged('b', report('b', ['s1']), []);
      const carer = caretakerAmong('d1', ['a', 'b']) as string;
      // s2 in the primary's pool is its own to destroy; s1 only in a's and b's pool: a caretaker.
      expect(deleting(index, ['s1', 's2'])).toEqual([{ datasetId: 'd1', from: undefined, to: carer }]);
      // The dataset deleted meanwhile, the primary alive: still the caretaker for s1.
      config.set('d1', { deleted: true, primary: 'p' });
      expect(care(index.datasetsChanged(['d1'], () => ({ primary: 'p' })))).toEqual([]);
      // Moved to a node of that pool (a): a sees it and holds s1; s2 is now stranded in p's pool: p takes care.
      config.set('d1', { deleted: false, primary: 'a' });
      expect(care(index.datasetsChanged(['d1'], () => ({ primary: 'p' })))).toEqual([
        { datasetId: 'd1', from: carer, to: 'p' },
      ]);
      // s2 destroyed there: nobody.
      expect(care(index.nodeChanged('p', report('p', []), []))).toEqual([
        { datasetId: 'd1', from: 'p', to: undefined },
      ]);
    });
  });
  it('follows reports, liveness and configuration changes, reporting each move once', () => {
    const config = new Map<string, { deleted: boolean; primary: string }>([['d1', { deleted: false, primary: 'p' }]]);
    const live = new Set(['p', 'a', 'b']);
    const held = new Map<string, string[]>();
    const index = new CaretakerIndex({
      dataset: (id) => config.get(id),
      holders: (id) => held.get(id) ?? [],
      alive: (n) => live.has(n),
    });
    const report = (uuid: string, ids: string[]) => letterReport(uuid, { volumes: ids.map(volume) });
    // d1 not deleted, held by nobody: a witness (the first of a and b in rendezvous order), no caretaker.
    expect(care(index.nodeChanged('a', report('a', ['d1']), []))).toEqual([]);
    expect(care(index.nodeChanged('b', report('b', ['d1']), []))).toEqual([]);
    const witness = caretakerAmong('d1', ['a', 'b']) as string;
    expect(index.witness('d1')).toBe(witness);
    expect([...index.witnessedBy(witness)]).toEqual(['d1']);
    // Held by a live node: no witness.
    held.set('d1', ['p']);
    expect(index.nodeChanged('p', undefined, ['d1'])).toEqual([
      { datasetId: 'd1', from: witness, to: undefined, witness: true },
    ]);
    held.delete('d1');
    // Deleted: the primary is alive, it destroys.
    config.set('d1', { deleted: true, primary: 'p' });
    expect(care(index.datasetsChanged(['d1'], () => ({ primary: 'p' })))).toEqual([]);
    expect(index.witness('d1')).toBeUndefined();
    // The primary dies: one of the reporters takes care of it.
    live.delete('p');
    const first = caretakerAmong('d1', ['a', 'b']) as string;
    expect(care(index.nodeChanged('p', undefined, []))).toEqual([{ datasetId: 'd1', from: undefined, to: first }]);
    expect([...index.caredBy(first)]).toEqual(['d1']);
    expect(index.caretakersOfPrimary('p')).toEqual([first]);
    // The caretaker dies: the other reporter.
    const second = first === 'a' ? 'b' : 'a';
    live.delete(first);
    expect(care(index.nodeChanged(first, undefined, []))).toEqual([{ datasetId: 'd1', from: first, to: second }]);
    // The volume destroyed (no node reports it): nobody.
    expect(care(index.nodeChanged(second, report(second, []), []))).toEqual([
      { datasetId: 'd1', from: second, to: undefined },
    ]);
    expect(index.caredBy(second).size).toBe(0);
    // Reported again, then the dataset leaves the configuration.
    index.nodeChanged(second, report(second, ['d1']), []);
    config.delete('d1');
    expect(care(index.datasetsChanged(['d1'], () => ({ primary: 'p' })))).toEqual([
      { datasetId: 'd1', from: second, to: undefined },
    ]);
    expect(index.caretakersOfPrimary('p')).toEqual([]);
  });

  it('a deleted dataset whose primary is dead keeps its caretaker while a live node reports a deleted snapshot of it, after its volume is gone; a snapshot not deleted keeps none', () => {
    const config = new Map<string, { deleted: boolean; primary: string }>([['d1', { deleted: true, primary: 'p' }]]);
    const live = new Set(['a', 'b']);
    const index = new CaretakerIndex({
      dataset: (id) => config.get(id),
      holders: () => [],
      alive: (n) => live.has(n),
    });
    const report = (uuid: string, volumes: string[], snapshots: string[]) =>
      letterReport(uuid, { volumes: volumes.map(volume), snapshots: snapshots.map((id) => snapshot(id, 'd1')) });
    let snapshots = new Map<string, { dataset_id: string; deleted?: true }>([
      ['s1', { dataset_id: 'd1' }],
      ['s2', { dataset_id: 'd1' }],
    ]);
    index.knowDeleted('d1', 'p');
    index.knowSnapshots(snapshots);
    const carer = caretakerAmong('d1', ['a', 'b']) as string;
    const other = carer === 'a' ? 'b' : 'a';
    // The volume and both snapshots in the shared pool: a caretaker for the volume.
    index.nodeChanged('a', report('a', ['d1'], ['s1', 's2']), []);
    index.nodeChanged('b', report('b', ['d1'], ['s1', 's2']), []);
    expect(index.caretaker('d1')).toBe(carer);
    // The volume destroyed; the snapshots are not deleted (a snapshot outlives its dataset): nothing to do.
    index.nodeChanged('a', report('a', [], ['s1', 's2']), []);
    index.nodeChanged('b', report('b', [], ['s1', 's2']), []);
    expect(index.caretaker('d1')).toBeUndefined();
    // s1 deleted in the configuration: still in the pool, so the caretaker comes back to destroy it.
    const before = snapshots;
    snapshots = new Map([...snapshots, ['s1', { dataset_id: 'd1', deleted: true }]]);
    expect(care(index.snapshotsChanged(before, snapshots))).toEqual([{ datasetId: 'd1', from: undefined, to: carer }]);
    expect([...index.caredBy(carer)]).toEqual(['d1']);
    // The caretaker dies: the other node reporting s1 takes over.
    live.delete(carer);
    expect(care(index.nodeChanged(carer, undefined, []))).toEqual([{ datasetId: 'd1', from: carer, to: other }]);
    // s1 destroyed (s2 kept, not deleted): nobody.
    expect(care(index.nodeChanged(other, report(other, [], ['s2']), []))).toEqual([
      { datasetId: 'd1', from: other, to: undefined },
    ]);
    // s2 deleted while reported: a caretaker; purged from the configuration (no backend holds it): none.
    const kept = snapshots;
    snapshots = new Map([...snapshots, ['s2', { dataset_id: 'd1', deleted: true }]]);
    expect(care(index.snapshotsChanged(kept, snapshots))).toEqual([{ datasetId: 'd1', from: undefined, to: other }]);
    const purging = snapshots;
    snapshots = new Map([['s1', { dataset_id: 'd1', deleted: true }]]);
    expect(care(index.snapshotsChanged(purging, snapshots))).toEqual([{ datasetId: 'd1', from: other, to: undefined }]);
    expect(index.snapshotsChanged(snapshots, snapshots)).toEqual([]);
  });
});
