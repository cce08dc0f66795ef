/**
 * A local-backend node's view (issue 24): over random changes (seeded), the view followed by
 * deltas equals the whole view, a node not woken has an unchanged view, and the view holds at
 * least what @flocker/api localViewOf cuts from the whole snapshot (what LocalAgent decides on),
 * with exactly its peers. A block node's view stays as it was (no peers); no answer carries a
 * report's `retained` (only the index reads it).
 */
import fc from 'fast-check';
import { ClusterSnapshot, localViewOf, type NodeReport } from '@flocker/api';
import { acquireLease, createDataset, deleteDataset, releaseLease, updateDataset } from './configuration';
import { ConfigurationError } from './errors';
import { Views } from './Views';
import { A, B, C, letterReport } from './testing/fixtures';
import { openMemoryState, viewFollowers } from './testing/viewOracle';

/** A block node beside the local ones (a mixed cluster). */
const BLOCK = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd';
const locals = [A, B, C];
const everyone = [...locals, BLOCK];

/** A copy of a dataset not configured (a node's load). */
const fillerId = (node: string, j: number): string =>
  `${node.slice(0, 8)}-ffff-4fff-8fff-${String(j).padStart(12, '0')}`;

const report = (node: string, extra: Partial<NodeReport> = {}): NodeReport =>
  letterReport(node, { backend: node === BLOCK ? 'loopback' : 'local-btrfs', ...extra });

type Op =
  | { kind: 'create'; node: number }
  | { kind: 'move'; pick: number; node: number }
  | { kind: 'delete'; pick: number }
  | { kind: 'lease'; pick: number; node: number }
  | { kind: 'release'; pick: number }
  | {
      kind: 'report';
      node: number;
      holds: number[];
      retained: number[];
      replicas: Array<{ pick: number; node: number }>;
      host: boolean;
      load: number;
    }
  | { kind: 'same'; node: number }
  | { kind: 'die' }
  | { kind: 'poll'; node: number };

const n = fc.nat(3);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('create' as const), node: n }),
  fc.record({ kind: fc.constant('move' as const), pick: fc.nat(), node: n }),
  fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('lease' as const), pick: fc.nat(), node: n }),
  fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
  {
    arbitrary: fc.record({
      kind: fc.constant('report' as const),
      node: n,
      holds: fc.array(fc.nat(), { maxLength: 3 }),
      retained: fc.array(fc.nat(), { maxLength: 2 }),
      replicas: fc.array(fc.record({ pick: fc.nat(), node: n }), { maxLength: 2 }),
      host: fc.boolean(),
      // Copies of datasets not configured: the node's load across the steps of peerCopies.
      load: fc.constantFrom(0, 0, 15, 16, 17, 32),
    }),
    weight: 4,
  },
  fc.record({ kind: fc.constant('same' as const), node: n }),
  fc.constant({ kind: 'die' as const }),
  { arbitrary: fc.record({ kind: fc.constant('poll' as const), node: n }), weight: 2 },
);

describe('nodeViews: local-backend views (issue 24)', () => {
  it('deltas merge to the whole view, an unwoken view is unchanged, and the view holds localViewOf of the whole snapshot', async () => {
    let retainedSeen = 0;
    let namedSeen = 0;
    let primariesSeen = 0;
    let steppedSeen = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 50 }), async (ops) => {
        let t = 1_700_000_000_000;
        const state = await openMemoryState(() => t);
        try {
          for (const node of everyone) await state.report(report(node));
          const views = new Views(state, true);
          const { full, poll } = viewFollowers(state, views, everyone);
          const reports = new Map(everyone.map((node) => [node, report(node)]));
          for (const o of ops) {
            const all = [...state.configuration.datasets.keys()];
            const pick = (i: number): string | undefined => (all.length > 0 ? all[i % all.length] : undefined);
            const node = 'node' in o ? (everyone[o.node] as string) : A;
            try {
              if (o.kind === 'create') await state.mutate((c) => createDataset(c, { primary: node }));
              else if (o.kind === 'move' && pick(o.pick) !== undefined)
                await state.mutate((c, now) => updateDataset(c, pick(o.pick) as string, { primary: node }, now));
              else if (o.kind === 'delete' && pick(o.pick) !== undefined)
                await state.mutate((c, now) => deleteDataset(c, pick(o.pick) as string, now));
              else if (o.kind === 'lease' && pick(o.pick) !== undefined)
                await state.mutate((c, now) =>
                  acquireLease(c, { dataset_id: pick(o.pick) as string, node_uuid: node, expires: null }, now),
                );
              else if (o.kind === 'release' && pick(o.pick) !== undefined)
                await state.mutate((c, now) => releaseLease(c, pick(o.pick) as string, now));
              else if (o.kind === 'report' && all.length > 0) {
                const ids = (xs: number[]): string[] => [...new Set(xs.map((h) => all[h % all.length] as string))];
                const replicas = [
                  ...new Map(
                    o.replicas.map((r) => [all[r.pick % all.length] as string, everyone[r.node] as string]),
                  ).entries(),
                ].map(([dataset_id, node_uuid]) => ({ dataset_id, node_uuid, snapshot: null, taken_at: null }));
                const r = report(node, {
                  ...(o.host ? { host: `moved-${node.slice(0, 1)}` } : {}),
                  manifestations: [...ids(o.holds), ...Array.from({ length: o.load }, (_, j) => fillerId(node, j))].map(
                    (d) => ({
                      dataset_id: d,
                      blockdevice_id: `btrfs:p/${d}`,
                      size: 67108864,
                      status: 'attached' as const,
                    }),
                  ),
                  ...(o.retained.length > 0 ? { retained: ids(o.retained) } : {}),
                  ...(replicas.length > 0 ? { replicas } : {}),
                });
                reports.set(node, r);
                await state.report(r);
              } else if (o.kind === 'same') {
                t += 1;
                await state.report(reports.get(node) as NodeReport);
              } else if (o.kind === 'die') {
                t += 11_000;
                await state.checkLiveness();
              } else if (o.kind === 'poll') poll(node);
            } catch (e) {
              if (!(e instanceof ConfigurationError)) throw e;
            }
            // Each local view holds what the reference cuts from the whole snapshot, with exactly its peers.
            const answered = ClusterSnapshot.parse(JSON.parse(views.snapshot().toString()));
            expect(answered.peers).toBeUndefined();
            // `retained` is in no answer (older agents parse node states strictly): the reference reads it from the reports.
            expect(answered.nodes.some((x) => x.retained !== undefined)).toBe(false);
            const whole = {
              ...answered,
              nodes: answered.nodes.map((x) => {
                const retained = state.reportedNode(x.uuid)?.report.retained;
                return retained !== undefined ? { ...x, retained } : x;
              }),
            };
            for (const local of locals) {
              const want = localViewOf(whole, local);
              const got = full(local);
              const gotDatasets = new Map(got.datasets.map((d) => [d.dataset_id, d]));
              for (const d of want.datasets) expect({ local, d: gotDatasets.get(d.dataset_id) }).toEqual({ local, d });
              const gotNodes = new Map(got.nodes.map(({ last_seen: _s, ...rest }) => [rest.uuid, rest]));
              for (const { last_seen: _s, retained: _r, ...s } of want.nodes)
                expect({ local, s: gotNodes.get(s.uuid) }).toEqual({ local, s });
              const gotLeases = new Map(got.leases.map((l) => [l.dataset_id, l]));
              for (const l of want.leases) expect(gotLeases.get(l.dataset_id)).toEqual(l);
              expect({ local, peers: got.peers }).toEqual({ local, peers: want.peers });
              const own = whole.nodes.find((x) => x.uuid === local);
              retainedSeen += own?.retained?.length ?? 0;
              steppedSeen += want.peers?.filter((p) => p.copies >= 16).length ?? 0;
              namedSeen += want.peers?.find((p) => p.uuid === local)?.replica_of.length ?? 0;
              primariesSeen += want.datasets.filter(
                (d) => d.primary !== local && want.nodes.some((x) => x.uuid === d.primary),
              ).length;
            }
            expect(full(BLOCK).peers).toBeUndefined();
          }
          for (const node of everyone) poll(node);
        } finally {
          await state.close();
        }
      }),
      { numRuns: 100, seed: 24 },
    );
    // The runs exercised what only a local view carries.
    expect(retainedSeen).toBeGreaterThan(0);
    expect(namedSeen).toBeGreaterThan(0);
    expect(primariesSeen).toBeGreaterThan(0);
    expect(steppedSeen).toBeGreaterThan(0);
  }, 120_000);

  it("a local node's new copies wake the other local views only when the count crosses a step (peerCopies)", async () => {
    const state = await openMemoryState();
    try {
      for (const node of everyone) await state.report(report(node));
      const views = new Views(state, true);
      const generation = (node: string): string =>
        ClusterSnapshot.parse(JSON.parse(views.snapshotFor(node))).generation;
      const withCopies = (copies: number): NodeReport =>
        report(A, {
          manifestations: Array.from({ length: copies }, (_, j) => ({
            dataset_id: fillerId(A, j),
            blockdevice_id: `btrfs:p/${fillerId(A, j)}`,
            size: 67108864,
            status: 'attached' as const,
          })),
        });
      const woken: Array<[number, boolean, number | undefined]> = [];
      for (const copies of [1, 15, 16, 17, 31, 32, 15]) {
        const since = generation(B);
        await state.report(withCopies(copies));
        const peer = ClusterSnapshot.parse(JSON.parse(views.snapshotFor(B))).peers?.find((p) => p.uuid === A);
        woken.push([copies, state.nodeViews.changedSince(B, since), peer?.copies]);
      }
      expect(woken).toEqual([
        [1, false, 0],
        [15, false, 0],
        [16, true, 16],
        [17, false, 16],
        [31, false, 16],
        [32, true, 32],
        [15, true, 0],
      ]);
    } finally {
      await state.close();
    }
  });
});
