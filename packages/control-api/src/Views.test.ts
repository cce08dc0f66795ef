import fc from 'fast-check';
import { ClusterSnapshot } from '@flocker/api';
import { aliveNodes, deriveDatasetState, nodeStates, nodeSummaries } from './clusterState';
import { acquireLease, createDataset, deleteDataset, listLeases, updateDataset } from './configuration';
import type { ControlState } from './ControlState';
import { Views } from './Views';
import { A, B, C, letterReport as report } from './testing/fixtures';
import { openMemoryState, sortedView } from './testing/viewOracle';

const id = (i: number): string => `${String(i).padStart(8, '0')}-1111-4111-8111-111111111111`;

/** A cluster with datasets on three nodes, one held by a non-primary node, and leases. */
async function cluster(now: () => number): Promise<ControlState> {
  const state = await openMemoryState(now);
  await state.report(report(A));
  await state.report(report(B));
  await state.report(report(C));
  for (let i = 0; i < 9; i++)
    await state.mutate((c) =>
      createDataset(c, { primary: [A, B, C][i % 3] as string, dataset_id: id(i), metadata: { name: `v${i}` } }),
    );
  // B still holds dataset 0 (primary A): a move in progress.
  await state.report(
    report(B, { manifestations: [{ dataset_id: id(0), blockdevice_id: 'b0', size: 67108864, status: 'attached' }] }),
  );
  await state.report(
    report(A, {
      manifestations: [{ dataset_id: id(3), blockdevice_id: 'b3', size: 67108864, status: 'mounted', path: '/p' }],
      volumes: [{ blockdevice_id: 'b9', dataset_id: id(9), size: 67108864, attached_to: null }],
    }),
  );
  for (const i of [6, 0, 3])
    await state.mutate((c, t) =>
      acquireLease(c, { dataset_id: id(i), node_uuid: A, expires: i === 6 ? 100 : null }, t),
    );
  return state;
}

describe('Views: cached bodies equal what the pure functions give', () => {
  let t = 1_700_000_000_000;
  const now = (): number => t;
  let state: ControlState;
  beforeEach(async () => {
    state = await cluster(now);
  });
  afterEach(() => state.close());

  it('whole-cluster snapshot, datasets, state and nodes', () => {
    const views = new Views(state, true);
    const expected: ClusterSnapshot = {
      generation: state.generation,
      configuration_tag: state.configurationTag,
      datasets: [...state.configuration.datasets.values()],
      leases: listLeases(state.configuration, t),
      nodes: nodeStates(state.reportedNodes(), t, state.nodeTimeoutMs),
      node_timeout_seconds: 10,
      lease_grace_seconds: 5,
    };
    expect(JSON.parse(views.snapshot().toString())).toEqual(expected);
    expect(ClusterSnapshot.parse(JSON.parse(views.snapshot().toString()))).toEqual(expected);
    expect(JSON.parse(views.datasets().toString())).toEqual([...state.configuration.datasets.values()]);
    const alive = aliveNodes(state.reportedNodes(), t, state.nodeTimeoutMs);
    expect(JSON.parse(views.datasetState().toString())).toEqual(deriveDatasetState(alive));
    expect(JSON.parse(views.nodes().toString())).toEqual(nodeSummaries(alive));
  });

  it('per-node snapshots: own and held datasets, their leases in configuration order, the holders', () => {
    const views = new Views(state, true);
    const forA = ClusterSnapshot.parse(JSON.parse(views.snapshotFor(A)));
    expect(forA.datasets.map((d) => d.dataset_id)).toEqual([id(0), id(3), id(6)]);
    expect(forA.leases.map((l) => l.dataset_id)).toEqual([id(6), id(0), id(3)]);
    expect(forA.leases[0]?.expires).toBe(100);
    expect(forA.nodes.map((n) => n.uuid)).toEqual([A, B]);
    expect(forA).toMatchObject({ node_timeout_seconds: 10, lease_grace_seconds: 5 });
    const forB = ClusterSnapshot.parse(JSON.parse(views.snapshotFor(B)));
    expect(forB.datasets.map((d) => d.dataset_id)).toEqual([id(1), id(4), id(7), id(0)]);
    expect(forB.leases.map((l) => l.dataset_id)).toEqual([id(0)]);
    expect(forB.nodes).toEqual(
      nodeStates(
        [state.reportedNode(B)].flatMap((n) => n ?? []),
        t,
        state.nodeTimeoutMs,
      ),
    );
    const unknown = ClusterSnapshot.parse(JSON.parse(views.snapshotFor('dddddddd-dddd-4ddd-8ddd-dddddddddddd')));
    expect(unknown).toMatchObject({ datasets: [], leases: [], nodes: [] });
  });

  it('bodies are shared between requests and rebuilt on change; lease times follow the clock', async () => {
    const views = new Views(state, true);
    const d1 = views.datasets();
    const s1 = views.datasetState();
    expect(views.datasets()).toBe(d1);
    await state.mutate((c) => createDataset(c, { primary: A }));
    expect(views.datasets()).not.toBe(d1);
    // A configuration change leaves the reported state's body alone.
    expect(views.datasetState()).toBe(s1);
    t += 5_000;
    const leases = ClusterSnapshot.parse(JSON.parse(views.snapshot().toString())).leases;
    expect(leases.find((l) => l.dataset_id === id(6))?.expires).toBe(95);
    t += 6_000;
    // Past the node timeout, the liveness check marks every node dead and bumps the state generation.
    await state.checkLiveness();
    expect(JSON.parse(views.nodes().toString())).toEqual([]);
    const dead = ClusterSnapshot.parse(JSON.parse(views.snapshotFor(A))).nodes;
    expect(dead.every((n) => !n.alive)).toBe(true);
    // dead_since = the last report plus the node timeout, in both views.
    for (const n of dead) expect(n.dead_since).toBe(new Date(Date.parse(n.last_seen) + 10_000).toISOString());
    const all = ClusterSnapshot.parse(JSON.parse(views.snapshot().toString())).nodes;
    expect(all).toHaveLength(3);
    for (const n of all) expect(n.dead_since).toBe(new Date(Date.parse(n.last_seen) + 10_000).toISOString());
  });
});

describe('Views: per-node indexes kept up to date incrementally', () => {
  type Op =
    | { kind: 'create'; node: number }
    | { kind: 'move'; pick: number; node: number }
    | { kind: 'delete'; pick: number }
    | { kind: 'report'; node: number; holds: number[] };
  const nodes = [A, B, C];
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('create' as const), node: fc.nat(2) }),
    fc.record({ kind: fc.constant('move' as const), pick: fc.nat(), node: fc.nat(2) }),
    fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }),
    fc.record({ kind: fc.constant('report' as const), node: fc.nat(2), holds: fc.array(fc.nat(), { maxLength: 4 }) }),
  );
  /** Order-insensitive: the incremental index may list a moved dataset last. */
  const normal = (json: string): ClusterSnapshot => sortedView(ClusterSnapshot.parse(JSON.parse(json)));

  it('answers exactly what an index built from scratch answers, after each of a random sequence of changes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 80 }), async (ops) => {
        const state = await openMemoryState();
        try {
          for (const n of nodes) await state.report(report(n));
          const kept = new Views(state);
          const ids = (): string[] => [...state.configuration.datasets.keys()];
          for (const o of ops) {
            const all = ids();
            const target =
              all.length > 0 && o.kind !== 'create' && o.kind !== 'report'
                ? (all[o.pick % all.length] as string)
                : undefined;
            try {
              if (o.kind === 'create')
                await state.mutate((c) => createDataset(c, { primary: nodes[o.node] as string }));
              else if (o.kind === 'move' && target !== undefined)
                await state.mutate((c, t) => updateDataset(c, target, { primary: nodes[o.node] }, t));
              else if (o.kind === 'delete' && target !== undefined)
                await state.mutate((c, t) => deleteDataset(c, target, t));
              else if (o.kind === 'report' && all.length > 0) {
                const manifestations = [...new Set(o.holds.map((h) => all[h % all.length] as string))].map((d) => ({
                  dataset_id: d,
                  blockdevice_id: `b-${d}`,
                  size: 67108864,
                  status: 'attached' as const,
                }));
                await state.report(report(nodes[o.node] as string, { manifestations }));
              }
            } catch {
              // A refused change (a deleted dataset moved again) changes nothing; the views must still agree.
            }
            const fresh = new Views(state);
            for (const n of nodes) expect(normal(kept.snapshotFor(n))).toEqual(normal(fresh.snapshotFor(n)));
          }
        } finally {
          await state.close();
        }
      }),
      { numRuns: 60 },
    );
  });
});
