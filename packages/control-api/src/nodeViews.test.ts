import fc from 'fast-check';
import { ClusterDelta, ClusterSnapshot } from '@flocker/api';
import {
  acquireLease,
  createDataset,
  createSnapshot,
  deleteDataset,
  deleteSnapshot,
  releaseLease,
  updateDataset,
} from './configuration';
import { createContainer, moveContainer } from './containers';
import { ConfigurationError } from './errors';
import { after, parseGeneration, WHOLE_CLUSTER } from './nodeViews';
import { caretakerOf, witnessOf } from './orphanViews';
import { Views } from './Views';
import { A, B, C, letterReport as report } from './testing/fixtures';
import { openMemoryState as open, viewFollowers } from './testing/viewOracle';

const nodes = [A, B, C];

describe('nodeViews: generations', () => {
  it('parses its own tokens and orders stamps by either counter', () => {
    expect(parseGeneration('abc.12.7')).toEqual({ instance: 'abc', cv: 12, sg: 7 });
    expect(parseGeneration('nonsense')).toBeUndefined();
    // The last token is remembered (a fan-out checks one token thousands of times), never confused with another.
    expect(parseGeneration('abc.12.7')).toBe(parseGeneration('abc.12.7'));
    expect(parseGeneration('abc.12.8')).toEqual({ instance: 'abc', cv: 12, sg: 8 });
    expect(parseGeneration('nonsense')).toBeUndefined();
    // The two last ones (a watch checks the token it held, then the one it moved to), each still itself.
    const held = parseGeneration('abc.12.9');
    const moved = parseGeneration('abc.13.9');
    for (let i = 0; i < 3; i++) {
      expect(parseGeneration('abc.12.9')).toBe(held);
      expect(parseGeneration('abc.13.9')).toBe(moved);
    }
    expect(held).toEqual({ instance: 'abc', cv: 12, sg: 9 });
    expect(moved).toEqual({ instance: 'abc', cv: 13, sg: 9 });
    expect(parseGeneration('abc.14.9')).toEqual({ instance: 'abc', cv: 14, sg: 9 });
    expect(parseGeneration('abc.12.9')).toEqual(held);
    expect(after({ cv: 3, sg: 1 }, { cv: 2, sg: 5 })).toBe(true);
    expect(after({ cv: 2, sg: 6 }, { cv: 2, sg: 5 })).toBe(true);
    expect(after({ cv: 2, sg: 5 }, { cv: 2, sg: 5 })).toBe(false);
    expect(after({ cv: 1, sg: 5 }, { cv: 2, sg: 5 })).toBe(false);
  });
});

describe('nodeViews: per-node wake-ups and deltas', () => {
  type Op =
    | { kind: 'create'; node: number }
    | { kind: 'move'; pick: number; node: number }
    | { kind: 'delete'; pick: number; withSnapshots: boolean }
    | { kind: 'lease'; pick: number; node: number }
    | { kind: 'release'; pick: number }
    | { kind: 'snapshot'; pick: number }
    | { kind: 'unsnapshot'; pick: number }
    | {
        kind: 'report';
        node: number;
        holds: number[];
        attached: number[];
        loose: number[];
        snaps: number[];
        allSnapshots: boolean;
      }
    | { kind: 'same'; node: number }
    | { kind: 'die' }
    | { kind: 'survivor'; node: number; withVolumes: boolean }
    | { kind: 'poll'; node: number };
  const n = fc.nat(2);
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('create' as const), node: n }),
    fc.record({ kind: fc.constant('move' as const), pick: fc.nat(), node: n }),
    // Weighted up, with 'survivor': deleted datasets whose primary died (orphans) in most runs.
    {
      arbitrary: fc.record({ kind: fc.constant('delete' as const), pick: fc.nat(), withSnapshots: fc.boolean() }),
      weight: 2,
    },
    fc.record({ kind: fc.constant('lease' as const), pick: fc.nat(), node: n }),
    fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
    fc.record({ kind: fc.constant('snapshot' as const), pick: fc.nat() }),
    // A deleted snapshot still in a live node's backend keeps its orphaned dataset's caretaker.
    fc.record({ kind: fc.constant('unsnapshot' as const), pick: fc.nat() }),
    fc.record({
      kind: fc.constant('report' as const),
      node: n,
      holds: fc.array(fc.nat(), { maxLength: 4 }),
      attached: fc.array(fc.nat(), { maxLength: 2 }),
      // Unattached volumes in its backend listing: a deleted one whose primary is dead needs a caretaker.
      loose: fc.array(fc.nat(), { maxLength: 2 }),
      // Snapshots in its backend listing (configured ones, deleted or not): all of them (a shared pool), or some.
      snaps: fc.array(fc.nat(), { maxLength: 2 }),
      allSnapshots: fc.boolean(),
    }),
    fc.record({ kind: fc.constant('same' as const), node: n }),
    fc.constant({ kind: 'die' as const }),
    // Every node dies, then one reports an unattached volume of every dataset (orphans, their caretaker).
    // (or, without volumes, of every snapshot only: orphans cared for for their deleted snapshots alone).
    {
      arbitrary: fc.record({
        kind: fc.constant('survivor' as const),
        node: n,
        withVolumes: fc.oneof({ arbitrary: fc.constant(true), weight: 3 }, fc.constant(false)),
      }),
      weight: 2,
    },
    fc.record({ kind: fc.constant('poll' as const), node: n }),
  );

  it('applying the deltas equals the full view, and a node not woken has an unchanged view, across random changes', async () => {
    let orphansSeen = 0;
    let witnessesSeen = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 60 }), async (ops) => {
        let t = 1_700_000_000_000;
        const state = await open(() => t);
        try {
          for (const node of nodes) await state.report(report(node));
          const views = new Views(state, true);
          // Simulated agents: each holds the merged view as of its last answer; and a whole-cluster follower (a plugin).
          const { poll } = viewFollowers(state, views, [...nodes, WHOLE_CLUSTER]);
          const reports = new Map(nodes.map((node) => [node, report(node)]));
          /** Backend entries of configured snapshots. */
          const backendSnapshots = (ids: readonly string[]) =>
            ids.flatMap((id) => {
              const s = state.configuration.snapshots?.get(id);
              return s === undefined
                ? []
                : [
                    {
                      snapshot_id: id,
                      dataset_id: s.dataset_id,
                      size: 67108864,
                      created_at: s.created_at,
                      status: 'ready' as const,
                      backend_id: id,
                      source_blockdevice_id: `l-${s.dataset_id}`,
                    },
                  ];
            });
          for (const o of ops) {
            const all = [...state.configuration.datasets.keys()];
            const pick = (i: number): string | undefined => (all.length > 0 ? all[i % all.length] : undefined);
            const snaps = [...(state.configuration.snapshots?.keys() ?? [])];
            try {
              if (o.kind === 'create')
                await state.mutate((c) => createDataset(c, { primary: nodes[o.node] as string }));
              else if (o.kind === 'move' && pick(o.pick) !== undefined)
                await state.mutate((c, now) =>
                  updateDataset(c, pick(o.pick) as string, { primary: nodes[o.node] }, now),
                );
              else if (o.kind === 'delete' && pick(o.pick) !== undefined) {
                const id = pick(o.pick) as string;
                await state.mutate((c, now) => deleteDataset(c, id, now));
                // Its snapshots deleted with it (a snapshot may outlive its dataset, or go with it).
                if (o.withSnapshots)
                  for (const [sid, snap] of state.configuration.snapshots ?? [])
                    if (snap.dataset_id === id) await state.mutate((c) => deleteSnapshot(c, sid));
              } else if (o.kind === 'lease' && pick(o.pick) !== undefined)
                await state.mutate((c, now) =>
                  acquireLease(
                    c,
                    { dataset_id: pick(o.pick) as string, node_uuid: nodes[o.node] as string, expires: null },
                    now,
                  ),
                );
              else if (o.kind === 'release' && pick(o.pick) !== undefined)
                await state.mutate((c, now) => releaseLease(c, pick(o.pick) as string, now));
              else if (o.kind === 'snapshot' && pick(o.pick) !== undefined)
                await state.mutate((c, now) => createSnapshot(c, { dataset_id: pick(o.pick) as string }, now));
              else if (o.kind === 'unsnapshot' && snaps.length > 0)
                await state.mutate((c) => deleteSnapshot(c, snaps[o.pick % snaps.length] as string));
              else if (o.kind === 'report' && all.length > 0) {
                const node = nodes[o.node] as string;
                const manifestations = [...new Set(o.holds.map((h) => all[h % all.length] as string))].map((d) => ({
                  dataset_id: d,
                  blockdevice_id: `b-${d}`,
                  size: 67108864,
                  status: 'attached' as const,
                }));
                const volumes = [...new Set(o.attached.map((h) => all[h % all.length] as string))].map((d) => ({
                  blockdevice_id: `v-${d}`,
                  dataset_id: d,
                  size: 67108864,
                  attached_to: `i-${node.slice(0, 1)}`,
                }));
                const loose = [...new Set(o.loose.map((h) => all[h % all.length] as string))].map((d) => ({
                  blockdevice_id: `l-${d}`,
                  dataset_id: d,
                  size: 67108864,
                  attached_to: null,
                }));
                const snapshots = backendSnapshots(
                  o.allSnapshots
                    ? snaps
                    : [...new Set(snaps.length > 0 ? o.snaps.map((i) => snaps[i % snaps.length] as string) : [])],
                );
                const r = report(node, {
                  manifestations,
                  volumes: [...volumes, ...loose],
                  ...(snapshots.length > 0 ? { snapshots } : {}),
                });
                reports.set(node, r);
                await state.report(r);
              } else if (o.kind === 'same') {
                // The same report again, later: nothing changed, nobody is woken.
                const before = state.generation;
                const alive = state.deadSince(nodes[o.node] as string) === undefined;
                t += 1;
                await state.report(reports.get(nodes[o.node] as string) as ReturnType<typeof report>);
                if (alive) expect(state.generation).toBe(before);
              } else if (o.kind === 'die') {
                t += 11_000;
                await state.checkLiveness();
              } else if (o.kind === 'survivor') {
                t += 11_000;
                await state.checkLiveness();
                const node = nodes[o.node] as string;
                const volumes = (o.withVolumes ? all : []).map((d) => ({
                  blockdevice_id: `l-${d}`,
                  dataset_id: d,
                  size: 67108864,
                  attached_to: null,
                }));
                const snapshots = backendSnapshots(snaps);
                const r = report(node, { volumes, ...(snapshots.length > 0 ? { snapshots } : {}) });
                reports.set(node, r);
                await state.report(r);
              } else if (o.kind === 'poll') {
                poll(nodes[o.node] as string);
                poll(WHOLE_CLUSTER);
              }
            } catch (e) {
              // A refused change (a lease held elsewhere, a deleted dataset moved) changes nothing.
              if (!(e instanceof ConfigurationError)) throw e;
            }
            // Every orphan (deleted, primary dead, no live holder, a live node reporting its volume or a deleted
            // snapshot of it) is in
            // exactly the view of its caretaker, as computed from scratch; nothing else is cared for.
            const alive = (u: string): boolean =>
              state.reportedNode(u) !== undefined && state.deadSince(u) === undefined;
            for (const node of nodes) {
              const expected = [...state.configuration.datasets.values()]
                .filter((d) => {
                  const reports = nodes.flatMap((u) => state.reportedNode(u)?.report ?? []);
                  const facts = {
                    deleted: d.deleted,
                    primary: d.primary,
                    holders: reports
                      .filter(
                        (r) =>
                          r.manifestations.some((m) => m.dataset_id === d.dataset_id) ||
                          (r.volumes ?? []).some(
                            (v) => v.dataset_id === d.dataset_id && v.attached_to === r.instance_id,
                          ),
                      )
                      .map((r) => r.uuid),
                    reporters: reports
                      .filter((r) => (r.volumes ?? []).some((v) => v.dataset_id === d.dataset_id))
                      .map((r) => r.uuid),
                    // Per deleted snapshot of it, the nodes reporting it.
                    deletedSnapshots: [...(state.configuration.snapshots?.values() ?? [])]
                      .filter((s) => s.deleted === true && s.dataset_id === d.dataset_id)
                      .map((s) =>
                        reports
                          .filter((r) => (r.snapshots ?? []).some((x) => x.snapshot_id === s.snapshot_id))
                          .map((r) => r.uuid),
                      ),
                  };
                  return caretakerOf(d.dataset_id, facts, alive) === node;
                })
                .map((d) => d.dataset_id)
                .sort();
              expect({ node, cared: [...state.nodeViews.caredBy(node)].sort() }).toEqual({ node, cared: expected });
              orphansSeen += expected.length;
            }
            // Every dataset no live node holds has as witness the first live reporter in rendezvous order.
            for (const d of state.configuration.datasets.values()) {
              const reports = nodes.flatMap((u) => state.reportedNode(u)?.report ?? []);
              const holds = (r: (typeof reports)[number]): boolean =>
                r.manifestations.some((m) => m.dataset_id === d.dataset_id) ||
                (r.volumes ?? []).some((v) => v.dataset_id === d.dataset_id && v.attached_to === r.instance_id);
              const facts = {
                deleted: d.deleted,
                holders: reports.filter(holds).map((r) => r.uuid),
                reporters: reports
                  .filter((r) => (r.volumes ?? []).some((v) => v.dataset_id === d.dataset_id))
                  .map((r) => r.uuid),
              };
              const expected = witnessOf(d.dataset_id, facts, alive);
              expect({ id: d.dataset_id, witness: state.nodeViews.witness(d.dataset_id) }).toEqual({
                id: d.dataset_id,
                witness: expected,
              });
              if (expected !== undefined) witnessesSeen++;
            }
          }
          for (const node of nodes) poll(node);
          poll(WHOLE_CLUSTER);
          // The whole cluster's view is the whole snapshot.
          expect(views.snapshotFor(WHOLE_CLUSTER)).toBe(views.snapshot().toString());
        } finally {
          await state.close();
        }
      }),
      { numRuns: 150 },
    );
    // The runs did make orphans (so their views and deltas were checked).
    expect(orphansSeen).toBeGreaterThan(0);
    expect(witnessesSeen).toBeGreaterThan(0);
  });

  it("a deleted dataset whose primary died is in one live node's view (a reporter of its volume) with the primary's state, and leaves it once the volume is gone", async () => {
    let t = 1_700_000_000_000;
    const state = await open(() => t);
    try {
      const views = new Views(state, true);
      const view = (node: string): ClusterSnapshot => ClusterSnapshot.parse(JSON.parse(views.snapshotFor(node)));
      for (const node of nodes) await state.report(report(node));
      await state.mutate((c) => createDataset(c, { primary: A }));
      const id = [...state.configuration.datasets.keys()][0] as string;
      await state.mutate((c, now) => deleteDataset(c, id, now));
      const loose = { blockdevice_id: 'l-1', dataset_id: id, size: 67108864, attached_to: null };
      await state.report(report(B, { volumes: [loose] }));
      await state.report(report(C, { volumes: [loose] }));
      // A is alive: its own view has it; nobody else's.
      expect(view(B).datasets).toEqual([]);
      expect(view(C).datasets).toEqual([]);
      // A dies (B and C report on): one of B and C is woken and gets it, with A's state (dead).
      const since = state.generation;
      t += 6_000;
      await state.report(report(B, { volumes: [loose] }));
      await state.report(report(C, { volumes: [loose] }));
      t += 6_000;
      await state.checkLiveness();
      const carer = state.nodeViews.caretaker(id);
      expect([B, C]).toContain(carer);
      const other = carer === B ? C : B;
      expect(state.nodeViews.changedSince(carer as string, since)).toBe(true);
      const v = view(carer as string);
      expect(v.datasets.map((d) => d.dataset_id)).toEqual([id]);
      expect(v.nodes.find((n) => n.uuid === A)?.alive).toBe(false);
      expect(view(other).datasets).toEqual([]);
      // The caretaker destroyed it: no node reports the volume, it leaves the view (a delta says so).
      const held = views.snapshotFor(carer as string);
      const at = (JSON.parse(held) as ClusterSnapshot).generation;
      await state.report(report(B));
      await state.report(report(C));
      const delta = ClusterDelta.parse(JSON.parse(views.deltaFor(carer as string, at) as string));
      expect(delta.removed_datasets).toEqual([id]);
      expect(view(carer as string).datasets).toEqual([]);
    } finally {
      await state.close();
    }
  });

  it("a deleted dataset whose primary died stays in its caretaker's view while a deleted snapshot of it is in the pool, after the volume is gone; a snapshot not deleted keeps it in no view", async () => {
    let t = 1_700_000_000_000;
    const state = await open(() => t);
    try {
      const views = new Views(state, true);
      const view = (node: string): ClusterSnapshot => ClusterSnapshot.parse(JSON.parse(views.snapshotFor(node)));
      for (const node of nodes) await state.report(report(node));
      await state.mutate((c) => createDataset(c, { primary: A }));
      const id = [...state.configuration.datasets.keys()][0] as string;
      const taken = await state.mutate((c, now) => createSnapshot(c, { dataset_id: id }, now));
      const kept = await state.mutate((c, now) => createSnapshot(c, { dataset_id: id }, now));
      const backend = (snapshotId: string) => ({
        snapshot_id: snapshotId,
        dataset_id: id,
        size: 67108864,
        created_at: new Date(t).toISOString(),
        status: 'ready' as const,
        backend_id: snapshotId,
        source_blockdevice_id: 'l-1',
      });
      const loose = { blockdevice_id: 'l-1', dataset_id: id, size: 67108864, attached_to: null };
      const pool = {
        volumes: [loose],
        snapshots: [backend(taken.result.snapshot_id), backend(kept.result.snapshot_id)],
      };
      // A dies; the dataset and one of its snapshots are deleted.
      t += 6_000;
      await state.report(report(B, pool));
      await state.report(report(C, pool));
      t += 6_000;
      await state.checkLiveness();
      await state.mutate((c, now) => deleteDataset(c, id, now));
      await state.mutate((c) => deleteSnapshot(c, taken.result.snapshot_id));
      const carer = state.nodeViews.caretaker(id) as string;
      expect([B, C]).toContain(carer);
      // The caretaker destroyed the volume; the deleted snapshot is still in the pool: the dataset stays in its
      // view (the agent destroys a snapshot while deciding about its dataset), with no delta removing it.
      const at = view(carer).generation;
      const left = { snapshots: pool.snapshots };
      await state.report(report(B, left));
      await state.report(report(C, left));
      expect(state.nodeViews.caretaker(id)).toBe(carer);
      expect(view(carer).datasets.map((d) => d.dataset_id)).toEqual([id]);
      const delta = ClusterDelta.parse(JSON.parse(views.deltaFor(carer, at) as string));
      expect(delta.removed_datasets ?? []).toEqual([]);
      // Destroyed too (purged from the configuration): it leaves the view. The snapshot not deleted stays in the
      // pool and keeps no caretaker (a snapshot outlives its dataset).
      const before = view(carer).generation;
      const rest = { snapshots: [backend(kept.result.snapshot_id)] };
      await state.report(report(B, rest));
      await state.report(report(C, rest));
      expect(state.nodeViews.caretaker(id)).toBeUndefined();
      expect(ClusterDelta.parse(JSON.parse(views.deltaFor(carer, before) as string)).removed_datasets).toEqual([id]);
      for (const node of [B, C]) expect(view(node).datasets).toEqual([]);
      expect(state.configuration.snapshots?.has(taken.result.snapshot_id)).toBe(false);
    } finally {
      await state.close();
    }
  });

  it('a dataset no live node holds shows its primary one node reporting a volume of it (a volume in another pool: no second one made)', async () => {
    const t = 1_700_000_000_000;
    const state = await open(() => t);
    try {
      const views = new Views(state, true);
      const view = (node: string): ClusterSnapshot => ClusterSnapshot.parse(JSON.parse(views.snapshotFor(node)));
      for (const node of nodes) await state.report(report(node));
      await state.mutate((c) => createDataset(c, { primary: A }));
      const id = [...state.configuration.datasets.keys()][0] as string;
      const at = view(A).generation;
      // B reports an unattached volume of it (B's pool, which A does not share).
      await state.report(
        report(B, { volumes: [{ blockdevice_id: 'b-1', dataset_id: id, size: 67108864, attached_to: null }] }),
      );
      expect(state.nodeViews.witness(id)).toBe(B);
      expect(state.nodeViews.changedSince(A, at)).toBe(true);
      expect(
        view(A)
          .nodes.map((n) => n.uuid)
          .sort(),
      ).toEqual([A, B].sort());
      const delta = ClusterDelta.parse(JSON.parse(views.deltaFor(A, at) as string));
      expect(delta.nodes.map((n) => n.uuid)).toContain(B);
      // C's view is not touched by it.
      expect(view(C).nodes.map((n) => n.uuid)).toEqual([C]);
      // Once A holds it (a manifestation), no witness: B leaves A's view.
      await state.report(
        report(A, {
          manifestations: [{ dataset_id: id, blockdevice_id: 'a-1', size: 67108864, status: 'attached' as const }],
        }),
      );
      expect(state.nodeViews.witness(id)).toBeUndefined();
      expect(view(A).nodes.map((n) => n.uuid)).toEqual([A]);
    } finally {
      await state.close();
    }
  });

  it("a dataset leased to a node that is not its primary is in that node's view with its lease (its agent counts it), and leaves it with the lease", async () => {
    const t = 1_700_000_000_000;
    const state = await open(() => t);
    try {
      const views = new Views(state, true);
      const view = (node: string): ClusterSnapshot => ClusterSnapshot.parse(JSON.parse(views.snapshotFor(node)));
      for (const node of nodes) await state.report(report(node));
      await state.mutate((c) => createDataset(c, { primary: A }));
      const id = [...state.configuration.datasets.keys()][0] as string;
      const at = view(B).generation;
      await state.mutate((c, now) => acquireLease(c, { dataset_id: id, node_uuid: B, expires: null }, now));
      expect(state.nodeViews.changedSince(B, at)).toBe(true);
      expect(view(B).datasets.map((d) => d.dataset_id)).toEqual([id]);
      expect(view(B).leases.map((l) => l.node_uuid)).toEqual([B]);
      const delta = ClusterDelta.parse(JSON.parse(views.deltaFor(B, at) as string));
      expect(delta.leases.map((l) => l.dataset_id)).toEqual([id]);
      expect(view(C).datasets).toEqual([]);
      const leased = view(B).generation;
      await state.mutate((c, now) => releaseLease(c, id, now));
      expect(view(B).datasets).toEqual([]);
      const gone = ClusterDelta.parse(JSON.parse(views.deltaFor(B, leased) as string));
      expect(gone.removed_datasets).toEqual([id]);
    } finally {
      await state.close();
    }
  });

  it('a change wakes the polls of the nodes whose views it touched, not the others', async () => {
    const t = 1_700_000_000_000;
    const state = await open(() => t);
    try {
      for (const node of nodes) await state.report(report(node));
      const since = state.generation;
      const woken: string[] = [];
      const polls = nodes.map((node) =>
        state.waitForChange(since, 5_000, undefined, node).then(() => woken.push(node)),
      );
      const whole = state.waitForChange(since, 5_000).then(() => woken.push('cluster'));
      await state.mutate((c) => createDataset(c, { primary: A }));
      await whole;
      await polls[0];
      await new Promise((r) => setTimeout(r, 50));
      expect(woken.sort()).toEqual([A, 'cluster'].sort());
      // B starts to hold A's dataset: B's view (the dataset) and A's (B's state) change, C's does not.
      const [d] = [...state.configuration.datasets.keys()];
      const since2 = state.generation;
      woken.length = 0;
      const polls2 = nodes.map((node) =>
        state.waitForChange(since2, 5_000, undefined, node).then(() => woken.push(node)),
      );
      await state.report(
        report(B, {
          manifestations: [{ dataset_id: d as string, blockdevice_id: 'b', size: 67108864, status: 'attached' }],
        }),
      );
      await Promise.all([polls2[0], polls2[1]]);
      await new Promise((r) => setTimeout(r, 50));
      // B's poll from the first generation too: B's view changed since then.
      expect(woken.sort()).toEqual([A, B, B].sort());
      // C's poll from the first generation is still waiting: its view has not changed since then.
      expect(state.nodeViews.changedSince(C, since)).toBe(false);
      expect(state.waiting).toBe(2);
      // A snapshot is in every view: it wakes C too.
      await state.mutate((c, now) => createSnapshot(c, { dataset_id: d as string }, now));
      await Promise.all([polls[2], polls2[2]]);
      expect(state.waiting).toBe(0);
    } finally {
      await state.close();
    }
  });

  it("a container created for a node wakes that node's poll (its container agent), with an empty delta; moved, both nodes'", async () => {
    const state = await open(Date.now);
    try {
      for (const node of nodes) await state.report(report(node));
      const views = new Views(state, true);
      const since = state.generation;
      const woken: string[] = [];
      const polls = nodes.map((node) =>
        state.waitForChange(since, 5_000, undefined, node).then(() => woken.push(node)),
      );
      const container = {
        name: 'web',
        node_uuid: A,
        image: 'nginx',
        ports: [],
        environment: {},
        links: [],
        volumes: [],
      };
      await state.mutate((c) => createContainer(c, { ...container, restart_policy: { name: 'never' } }));
      await polls[0];
      await new Promise((r) => setTimeout(r, 50));
      expect(woken).toEqual([A]);
      expect(ClusterDelta.parse(JSON.parse(views.deltaFor(A, since) as string))).toMatchObject({
        datasets: [],
        nodes: [],
      });
      await state.mutate((c, now) => moveContainer(c, 'web', B, now));
      await polls[1];
      expect(woken).toEqual([A, B]);
      expect(state.nodeViews.changedSince(C, since)).toBe(false);
    } finally {
      await state.close();
    }
  });

  it('a delta for a generation of another process is not given (the client gets the whole view)', async () => {
    const state = await open(Date.now);
    try {
      await state.report(report(A));
      const views = new Views(state, true);
      expect(views.deltaFor(A, 'otherinstance.1.1')).toBeUndefined();
      expect(views.deltaFor(A, 'garbage')).toBeUndefined();
      const empty = ClusterDelta.parse(JSON.parse(views.deltaFor(A, state.generation) as string));
      expect(empty).toMatchObject({ datasets: [], removed_datasets: [], nodes: [], removed_nodes: [] });
      expect(empty.snapshots).toBeUndefined();
    } finally {
      await state.close();
    }
  });
});
