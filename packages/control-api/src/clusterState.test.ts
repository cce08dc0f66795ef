import fc from 'fast-check';
import type { NodeReport } from '@flocker/api';
import {
  aliveNodes,
  DatasetStateList,
  datasetStateJson,
  datasetStateOfJson,
  deriveDatasetState,
  nodeByEra,
  nodeStates,
  nodeSummaries,
  type ReportedNode,
} from './clusterState';
import { Slice } from './slices';
import { A, B, C, D1, D2, D3, T0, letterReport as report, stateEntryOf } from './testing/fixtures';

const ids = [D1, D2, D3];
const manifestation = fc.record({
  dataset_id: fc.constantFrom(...ids),
  size: fc.integer({ min: 1, max: 1000 }),
  mounted: fc.boolean(),
  used: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
  // Any text (quotes, escapes, non-ASCII): the states' bytes are written out, not JSON.stringify'd objects.
  path: fc.string({ maxLength: 6, unit: 'binary' }),
});
/** A random node's report, and which of its datasets are hidden as stale "mounted" (ControlState.staleMounts). */
const clusterNode = fc.record({
  uuid: fc.constantFrom(A, B, C),
  manifestations: fc.array(manifestation, { maxLength: 4 }),
  volumes: fc.array(fc.record({ dataset_id: fc.constantFrom(...ids), size: fc.integer({ min: 1, max: 9 }) }), {
    maxLength: 3,
  }),
  hide: fc.subarray(ids),
  // Copies kept aside (issue 24: kept_aside), shown on the datasets' state entries (session 17).
  kept: fc.subarray(ids),
});
/**
 * The configured primary of each dataset (session 17, review K6: two live copies show the primary's): any node of
 * the reports, or none (a dataset not configured, or its primary reporting no copy).
 */
const primaries = fc.record({
  [D1]: fc.option(fc.constantFrom(A, B, C), { nil: undefined }),
  [D2]: fc.option(fc.constantFrom(A, B, C), { nil: undefined }),
  [D3]: fc.option(fc.constantFrom(A, B, C), { nil: undefined }),
});
const primaryOf =
  (p: Readonly<Record<string, string | undefined>>) =>
  (id: string): string | undefined =>
    p[id];
function aliveOf(nodes: ReadonlyArray<typeof clusterNode extends fc.Arbitrary<infer N> ? N : never>) {
  return nodes.map((n) => ({
    hide: n.hide,
    node: {
      lastSeen: T0,
      report: report(n.uuid, {
        manifestations: n.manifestations.map((m, i) =>
          m.mounted
            ? {
                dataset_id: m.dataset_id,
                blockdevice_id: `b${i}`,
                size: m.size,
                status: 'mounted' as const,
                path: `/p${i}${m.path}`,
                ...(m.used !== undefined ? { used_bytes: m.used } : {}),
              }
            : {
                dataset_id: m.dataset_id,
                blockdevice_id: `b${i}`,
                size: m.size,
                status: 'attached' as const,
                // Not shown while attached.
                ...(m.used !== undefined ? { path: `/p${i}`, used_bytes: m.used } : {}),
              },
        ),
        volumes: n.volumes.map((v, i) => ({ ...v, blockdevice_id: `v${i}`, attached_to: null })),
        ...(n.kept.length > 0
          ? { kept_aside: n.kept.map((id, i) => ({ dataset_id: id, path: `/pool/kept/${id}-${i}"\\` })) }
          : {}),
      }),
    } satisfies ReportedNode,
  }));
}

describe('cluster state views', () => {
  const a: ReportedNode = {
    lastSeen: T0,
    report: report(A, {
      manifestations: [
        { dataset_id: D1, blockdevice_id: 'b1', size: 100, status: 'mounted', path: '/flocker/d1' },
        { dataset_id: D2, blockdevice_id: 'b2', size: 200, status: 'attached', device_path: '/dev/loop1' },
      ],
      volumes: [
        { blockdevice_id: 'b1', dataset_id: D1, size: 100, attached_to: 'i-a' },
        { blockdevice_id: 'b3', dataset_id: D3, size: 300, attached_to: null },
      ],
    }),
  };
  const b: ReportedNode = {
    lastSeen: T0 - 31_000,
    report: report(B, {
      manifestations: [{ dataset_id: D3, blockdevice_id: 'b3', size: 300, status: 'mounted', path: '/x' }],
    }),
  };

  it('alive = reported within the timeout', () => {
    expect(aliveNodes([a, b], T0, 30_000).map((n) => n.report.uuid)).toEqual([A]);
    expect(aliveNodes([a, b], T0, 31_000).map((n) => n.report.uuid)).toEqual([A, B]);
  });

  it('derives dataset state: mounted has a path, attached not; a volume manifest nowhere has no primary', () => {
    expect(deriveDatasetState([a])).toEqual([
      { dataset_id: D1, primary: A, maximum_size: 100, path: '/flocker/d1' },
      { dataset_id: D2, primary: A, maximum_size: 200 },
      { dataset_id: D3, maximum_size: 300 },
    ]);
  });

  it("kept_aside: each live node's copies of a dataset on its entry (which node, where), last; none: absent", () => {
    const kept = (id: string, path: string) => ({ dataset_id: id, path });
    const c: ReportedNode = {
      lastSeen: T0,
      report: report(C, { kept_aside: [kept(D1, '/pool/d1-x'), kept(D3, '/pool/d3-x'), kept(D1, '/pool/d1-y')] }),
    };
    const s = deriveDatasetState([a, c]);
    expect(s).toEqual([
      {
        dataset_id: D1,
        primary: A,
        maximum_size: 100,
        path: '/flocker/d1',
        kept_aside: [
          { node_uuid: C, path: '/pool/d1-x' },
          { node_uuid: C, path: '/pool/d1-y' },
        ],
      },
      { dataset_id: D2, primary: A, maximum_size: 200 },
      { dataset_id: D3, maximum_size: 300, kept_aside: [{ node_uuid: C, path: '/pool/d3-x' }] },
    ]);
    // A dataset no live node has gets no entry of its own from a kept copy (a Flocker v1 client reads an entry as
    // "the dataset exists").
    expect(deriveDatasetState([c])).toEqual([]);
    expect(datasetStateOfJson([a, c], D1)).toBe(JSON.stringify([s[0]]));
  });

  it('a manifestation on any alive node wins over a bare volume', () => {
    const s = deriveDatasetState([a, { ...b, lastSeen: T0 }]);
    expect(s.find((d) => d.dataset_id === D3)).toEqual({ dataset_id: D3, primary: B, maximum_size: 300, path: '/x' });
  });

  it("two live copies: the configured primary's, whatever the node order; else the lowest node UUID's (review K6)", () => {
    const copy = (uuid: string, path: string): ReportedNode => ({
      lastSeen: T0,
      report: report(uuid, {
        manifestations: [{ dataset_id: D1, blockdevice_id: `p-${uuid}`, size: 5, status: 'mounted', path }],
      }),
    });
    const onA = copy(A, '/a');
    const onB = copy(B, '/b');
    const onC = copy(C, '/c');
    for (const alive of [
      [onA, onB, onC],
      [onC, onB, onA],
      [onB, onA, onC],
    ]) {
      expect(deriveDatasetState(alive, () => B)).toEqual([{ dataset_id: D1, primary: B, maximum_size: 5, path: '/b' }]);
      expect(datasetStateOfJson(alive, D1, new Map(), () => C)).toContain('"path":"/c"');
      // Unconfigured, or the primary reports no copy: deterministic, not the first reporter's.
      expect(deriveDatasetState(alive)[0]?.primary).toBe(A);
      expect(deriveDatasetState(alive, () => 'dddddddd-dddd-4ddd-8ddd-dddddddddddd')[0]?.primary).toBe(A);
      // The primary's copy hidden (a stale "mounted"): the other copies' rule.
      const hidden = new Map([[onB.report, new Set([D1])]]);
      expect(datasetStateJson(alive, new WeakMap(), hidden, () => B)).toContain('"path":"/a"');
      expect(new DatasetStateList().entryOf(alive, D1, hidden, () => B)).toContain('"path":"/a"');
    }
  });

  it('datasetStateJson is exactly JSON.stringify(deriveDatasetState) (duplicates, bare volumes, used_bytes), reusing fragments per report', () => {
    const c: ReportedNode = {
      lastSeen: T0,
      report: report(B, {
        manifestations: [
          { dataset_id: D1, blockdevice_id: 'b1', size: 100, status: 'mounted', path: '/elsewhere', used_bytes: 7 },
          { dataset_id: D3, blockdevice_id: 'b3', size: 300, status: 'mounted', path: '/x', used_bytes: 4096 },
        ],
      }),
    };
    const fragments = new WeakMap<ReportedNode['report'], readonly string[]>();
    for (const alive of [[a], [c], [a, c], [c, a], [], [{ ...b, lastSeen: T0 }, a]]) {
      expect(datasetStateJson(alive, fragments)).toBe(JSON.stringify(deriveDatasetState(alive)));
    }
    // The second time, a report's fragments are the cached ones (same strings, no new serialisation).
    const first = fragments.get(c.report);
    datasetStateJson([c], fragments);
    expect(fragments.get(c.report)).toBe(first);
    expect(first).toHaveLength(2);
  });

  it('DatasetStateList is byte for byte JSON.stringify(deriveDatasetState) over random clusters, one list across changes (issue 23)', () => {
    // One list across runs, as the service keeps it: reports come and go, some stay (the same objects).
    const list = new DatasetStateList();
    let previous: ReportedNode[] = [];
    fc.assert(
      fc.property(fc.array(clusterNode, { maxLength: 4 }), primaries, (nodes, configured) => {
        const alive = aliveOf(nodes).map(({ node }) => node);
        const of = primaryOf(configured);
        const want = JSON.stringify(deriveDatasetState(alive, of));
        expect(list.body(alive, new Map(), of).toString()).toBe(want);
        // Again (nothing changed), in the other order, and with some of the previous run's reports kept.
        expect(list.body(alive, new Map(), of).toString()).toBe(want);
        const reversed = [...alive].reverse();
        expect(list.body(reversed, new Map(), of).toString()).toBe(JSON.stringify(deriveDatasetState(reversed, of)));
        const mixed = [...previous.slice(0, 2), ...alive.slice(1), ...previous.slice(0, 1)];
        expect(list.body(mixed, new Map(), of).toString()).toBe(JSON.stringify(deriveDatasetState(mixed, of)));
        // Which copy each dataset shows does not depend on the order nodes reported in (one report per node, as a
        // service holds them; two of one node: the first). A bare volume's entry (no copy on a node) is the first
        // report's as before: on a shared backend every node lists the same volume. (kept_aside lists copies in node
        // order, as before.)
        const byId = (json: string): string[] =>
          (JSON.parse(json) as Array<{ dataset_id: string; primary?: string; kept_aside?: unknown }>)
            .filter((d) => d.primary !== undefined)
            .map(({ kept_aside: _kept, ...d }) => JSON.stringify(d))
            .sort();
        if (new Set(alive.map((n) => n.report.uuid)).size === alive.length)
          expect(byId(list.body(reversed, new Map(), of).toString())).toEqual(byId(want));
        previous = alive;
      }),
      { numRuns: 300 },
    );
  });

  it('datasetStateOfJson is byte for byte the whole list’s entry over random clusters, with stale "mounted" hidden (session 11: ?dataset_id=)', () => {
    const list = new DatasetStateList();
    fc.assert(
      fc.property(fc.array(clusterNode, { maxLength: 4 }), primaries, (nodes, configured) => {
        const hidden = new Map<NodeReport, ReadonlySet<string>>();
        const alive = aliveOf(nodes).map(({ hide, node }) => {
          if (hide.length > 0) hidden.set(node.report, new Set(hide));
          return node;
        });
        const of = primaryOf(configured);
        const whole = datasetStateJson(alive, new WeakMap(), hidden, of);
        // Nothing hidden: the reference's bytes.
        if (hidden.size === 0) expect(whole).toBe(JSON.stringify(deriveDatasetState(alive, of)));
        // The list the service serves (DatasetStateList) is the same bytes.
        expect(list.body(alive, hidden, of).toString()).toBe(whole);
        for (const id of [...ids, '44444444-4444-4444-8444-444444444444']) {
          expect(datasetStateOfJson(alive, id, hidden, of)).toBe(stateEntryOf(whole, id));
          // The primary's copy, when it reports one not hidden.
          const primary = of(id);
          const own = alive.some(
            ({ report: r }) =>
              r.uuid === primary &&
              hidden.get(r)?.has(id) !== true &&
              r.manifestations.some((m) => m.dataset_id === id),
          );
          if (own)
            expect((JSON.parse(stateEntryOf(whole, id)) as Array<{ primary: string }>)[0]?.primary).toBe(primary);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('DatasetStateList.entryOf answers as datasetStateOfJson over random clusters, one list across changes and orders (issue 23)', () => {
    // One list across runs, as Views keeps it: reports come and go, the alive list is a new array per generation.
    const list = new DatasetStateList();
    let previous: ReportedNode[] = [];
    fc.assert(
      fc.property(fc.array(clusterNode, { maxLength: 4 }), fc.boolean(), primaries, (nodes, listFirst, configured) => {
        const hidden = new Map<NodeReport, ReadonlySet<string>>();
        const alive = aliveOf(nodes).map(({ hide, node }) => {
          if (hide.length > 0) hidden.set(node.report, new Set(hide));
          return node;
        });
        const of = primaryOf(configured);
        // Sometimes the whole list was built first (it brings the same indexes up to date).
        if (listFirst) list.body(alive, hidden, of);
        const mixed = [...previous.slice(0, 2), ...alive.slice(1), ...previous.slice(0, 1)];
        // The next generation as Views makes it: the same list, a node's report replaced (an equal new object).
        const reported = alive.map((n, i) => (i === 0 ? { ...n, report: { ...n.report } } : n));
        for (const order of [alive, reported, alive, [...alive].reverse(), mixed]) {
          for (const id of [...ids, '44444444-4444-4444-8444-444444444444']) {
            expect(list.entryOf(order, id, hidden, of)).toBe(datasetStateOfJson(order, id, hidden, of));
          }
        }
        previous = alive;
      }),
      { numRuns: 500 },
    );
  });

  it('DatasetStateList.bodySliced is byte for byte body() over random clusters, whatever other reads move its indexes between slices, two sliced builds at once (issue 23)', async () => {
    // One list across runs, as Views keeps it.
    const list = new DatasetStateList();
    await fc.assert(
      fc.asyncProperty(
        fc.array(clusterNode, { maxLength: 4 }),
        fc.array(clusterNode, { maxLength: 4 }),
        primaries,
        fc.array(fc.constantFrom('none', 'entryOf', 'sharedIds', 'body', 'same report again'), { maxLength: 12 }),
        async (nodes, others, configured, between) => {
          const hidden = new Map<NodeReport, ReadonlySet<string>>();
          const alive = aliveOf(nodes).map(({ hide, node }) => {
            if (hide.length > 0) hidden.set(node.report, new Set(hide));
            return node;
          });
          // Another generation: other reports, and one of this one's replaced by an equal new object.
          const other = [
            ...aliveOf(others).map(({ node }) => node),
            ...alive.slice(0, 1).map((n) => ({ ...n, report: { ...n.report } })),
          ];
          const of = primaryOf(configured);
          const want = datasetStateJson(alive, new WeakMap(), hidden, of);
          const wantOther = datasetStateJson(other, new WeakMap(), new Map(), of);
          let pauses = 0;
          // Between two slices, another reader of the same list (Views' one-dataset reads, its synchronous build).
          const pause = async (): Promise<void> => {
            await new Promise<void>((r) => setImmediate(r));
            const what = between[pauses++ % Math.max(1, between.length)] ?? 'none';
            if (what === 'entryOf') list.entryOf(other, D1, new Map(), of);
            else if (what === 'sharedIds') list.sharedIds(other);
            else if (what === 'body') expect(list.body(other, new Map(), of).toString()).toBe(wantOther);
            else if (what === 'same report again') list.entryOf(alive, D2, hidden, of);
          };
          const [got, gotOther] = await Promise.all([
            list.bodySliced(alive, hidden, of, new Slice(pause, 0, 1)),
            list.bodySliced(other, new Map(), of, new Slice(pause, 0, 1)),
          ]);
          expect(got.toString()).toBe(want);
          expect(gotOther.toString()).toBe(wantOther);
          expect(list.body(alive, hidden, of).toString()).toBe(want);
          if (alive.length > 0) expect(pauses).toBeGreaterThan(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('summaries carry the zone, free capacity and agent release a node reports, and nothing when it reports none', () => {
    const zoned: ReportedNode = {
      lastSeen: T0,
      report: report(B, { zone: 'pool-1', available_bytes: 0, version: '1.0.1' }),
    };
    expect(nodeSummaries([a, zoned])).toEqual([
      { uuid: A, host: 'host-a' },
      { uuid: B, host: 'host-b', zone: 'pool-1', available_bytes: 0, version: '1.0.1' },
    ]);
    expect(nodeStates([zoned], T0, 30_000)[0]).toMatchObject({ zone: 'pool-1', available_bytes: 0 });
  });

  it('summaries, node states with alive flags, and era lookup', () => {
    expect(nodeSummaries([a])).toEqual([{ uuid: A, host: 'host-a' }]);
    const states = nodeStates([a, b], T0, 30_000);
    expect(states.map((s) => [s.uuid, s.alive])).toEqual([
      [A, true],
      [B, false],
    ]);
    expect(states[0]?.last_seen).toBe(new Date(T0).toISOString());
    expect(nodeByEra([a, b], `era-${B}`)).toBe(B);
    expect(nodeByEra([a, b], 'nope')).toBeUndefined();
  });
});
