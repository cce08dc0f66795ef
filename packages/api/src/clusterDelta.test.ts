import fc from 'fast-check';
import { applyClusterDelta, ClusterAnswer, type ClusterDelta, isClusterDelta } from './clusterDelta';
import type { ClusterSnapshot } from './schemas';

const id = (i: number): string => `${String(i).padStart(8, '0')}-1111-4111-8111-111111111111`;
const N = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const dataset = (i: number, size = 1): ClusterSnapshot['datasets'][number] => ({
  dataset_id: id(i),
  primary: N,
  metadata: {},
  deleted: false,
  maximum_size: size * 67108864,
});
const lease = (i: number): ClusterSnapshot['leases'][number] => ({ dataset_id: id(i), node_uuid: N, expires: null });
const base: ClusterSnapshot = {
  generation: 'x.1.1',
  configuration_tag: 'v1',
  datasets: [dataset(0), dataset(1), dataset(2)],
  snapshots: [{ snapshot_id: id(9), dataset_id: id(0), metadata: {}, created_at: '2026-01-01T00:00:00.000Z' }],
  leases: [lease(0), lease(1)],
  nodes: [],
  node_timeout_seconds: 30,
  lease_grace_seconds: 5,
};
const empty: ClusterDelta = {
  delta: true,
  since: 'x.1.1',
  generation: 'x.2.1',
  configuration_tag: 'v2',
  datasets: [],
  removed_datasets: [],
  leases: [],
  removed_leases: [],
  nodes: [],
  removed_nodes: [],
};

describe('applyClusterDelta', () => {
  it('merges as a Map of the entries would (in place, new ones appended, a removed one set again appended), in one pass', () => {
    const reference = <T>(prev: readonly T[], key: (v: T) => string, set: readonly T[], removed: string[]): T[] => {
      const byKey = new Map<string, T>();
      for (const v of prev) byKey.set(key(v), v);
      for (const k of removed) byKey.delete(k);
      for (const v of set) byKey.set(key(v), v);
      return [...byKey.values()];
    };
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.nat(20)),
        fc.array(fc.record({ i: fc.nat(25), size: fc.integer({ min: 1, max: 3 }) }), { maxLength: 6 }),
        fc.array(fc.nat(25), { maxLength: 6 }),
        (have, set, removed) => {
          const prev = { ...base, datasets: have.map((i) => dataset(i)), leases: [] };
          const delta = {
            ...empty,
            datasets: set.map((x) => dataset(x.i, x.size)),
            removed_datasets: removed.map(id),
          };
          const merged = applyClusterDelta(prev, delta) as ClusterSnapshot;
          expect(merged.datasets).toEqual(
            reference(prev.datasets, (d) => d.dataset_id, delta.datasets, delta.removed_datasets),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('replaces changed entries in place, appends new ones, drops removed ones (a removed dataset takes its lease)', () => {
    const merged = applyClusterDelta(base, {
      ...empty,
      datasets: [dataset(1, 2), dataset(3)],
      removed_datasets: [id(0)],
      leases: [lease(3)],
      removed_leases: [id(1)],
    });
    expect(merged?.datasets).toEqual([dataset(1, 2), dataset(2), dataset(3)]);
    expect(merged?.leases).toEqual([lease(3)]);
    expect(merged).toMatchObject({ generation: 'x.2.1', configuration_tag: 'v2', node_timeout_seconds: 30 });
    // Snapshots absent from the delta: unchanged.
    expect(merged?.snapshots).toEqual(base.snapshots);
  });

  it("a delta of snapshots only keeps every entry in order, in arrays of its own (not the previous view's)", () => {
    const snapshots = [
      ...(base.snapshots ?? []),
      { ...(base.snapshots?.[0] as NonNullable<ClusterSnapshot['snapshots']>[number]), snapshot_id: id(8) },
    ];
    const merged = applyClusterDelta(base, { ...empty, snapshots }) as ClusterSnapshot;
    expect(merged.datasets).toEqual(base.datasets);
    expect(merged.leases).toEqual(base.leases);
    expect(merged.snapshots).toEqual(snapshots);
    expect(merged.datasets).not.toBe(base.datasets);
    expect(merged.leases).not.toBe(base.leases);
    expect(merged.nodes).not.toBe(base.nodes);
  });

  it('an empty snapshot list removes them (absent, as in a full answer)', () => {
    expect(applyClusterDelta(base, { ...empty, snapshots: [] })).not.toHaveProperty('snapshots');
  });

  it('refuses a delta for another generation (the caller asks for the whole view)', () => {
    expect(applyClusterDelta(base, { ...empty, since: 'x.0.9' })).toBeUndefined();
  });

  it("keeps a local view's peers (issue 24): changed ones replaced, removed ones dropped; none in other views", () => {
    const peer = (i: number, copies = 0): NonNullable<ClusterSnapshot['peers']>[number] => ({
      uuid: id(i),
      host: `10.0.0.${i}`,
      alive: true,
      copies,
      replica_of: [],
    });
    const local = { ...base, peers: [peer(0), peer(1)] };
    expect(applyClusterDelta(local, empty)?.peers).toEqual([peer(0), peer(1)]);
    expect(applyClusterDelta(local, { ...empty, peers: [peer(1, 3), peer(2)], removed_peers: [id(0)] })?.peers).toEqual(
      [peer(1, 3), peer(2)],
    );
    expect(applyClusterDelta(base, empty)).not.toHaveProperty('peers');
  });

  it('tells a delta from a full snapshot on the wire', () => {
    expect(isClusterDelta(ClusterAnswer.parse(empty))).toBe(true);
    expect(isClusterDelta(ClusterAnswer.parse({ ...base, snapshots: [] }))).toBe(false);
  });
});
