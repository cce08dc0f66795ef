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
      fc.property(fc.array(clusterNode, { maxLength: 4 }), (nodes) => {
        const alive = aliveOf(nodes).map(({ node }) => node);
        const want = JSON.stringify(deriveDatasetState(alive));
        expect(list.body(alive).toString()).toBe(want);
        // Again (nothing changed), in the other order, and with some of the previous run's reports kept.
        expect(list.body(alive).toString()).toBe(want);
        const reversed = [...alive].reverse();
        expect(list.body(reversed).toString()).toBe(JSON.stringify(deriveDatasetState(reversed)));
        const mixed = [...previous.slice(0, 2), ...alive.slice(1), ...previous.slice(0, 1)];
        expect(list.body(mixed).toString()).toBe(JSON.stringify(deriveDatasetState(mixed)));
        previous = alive;
      }),
      { numRuns: 300 },
    );
  });

  it('datasetStateOfJson is byte for byte the whole list’s entry over random clusters, with stale "mounted" hidden (session 11: ?dataset_id=)', () => {
    const list = new DatasetStateList();
    fc.assert(
      fc.property(fc.array(clusterNode, { maxLength: 4 }), (nodes) => {
        const hidden = new Map<NodeReport, ReadonlySet<string>>();
        const alive = aliveOf(nodes).map(({ hide, node }) => {
          if (hide.length > 0) hidden.set(node.report, new Set(hide));
          return node;
        });
        const whole = datasetStateJson(alive, new WeakMap(), hidden);
        // The list the service serves (DatasetStateList) is the same bytes.
        expect(list.body(alive, hidden).toString()).toBe(whole);
        for (const id of [...ids, '44444444-4444-4444-8444-444444444444']) {
          expect(datasetStateOfJson(alive, id, hidden)).toBe(stateEntryOf(whole, id));
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
      fc.property(fc.array(clusterNode, { maxLength: 4 }), fc.boolean(), (nodes, listFirst) => {
        const hidden = new Map<NodeReport, ReadonlySet<string>>();
        const alive = aliveOf(nodes).map(({ hide, node }) => {
          if (hide.length > 0) hidden.set(node.report, new Set(hide));
          return node;
        });
        // Sometimes the whole list was built first (it brings the same indexes up to date).
        if (listFirst) list.body(alive, hidden);
        const mixed = [...previous.slice(0, 2), ...alive.slice(1), ...previous.slice(0, 1)];
        // The next generation as Views makes it: the same list, a node's report replaced (an equal new object).
        const reported = alive.map((n, i) => (i === 0 ? { ...n, report: { ...n.report } } : n));
        for (const order of [alive, reported, alive, [...alive].reverse(), mixed]) {
          for (const id of [...ids, '44444444-4444-4444-8444-444444444444']) {
            expect(list.entryOf(order, id, hidden)).toBe(datasetStateOfJson(order, id, hidden));
          }
        }
        previous = alive;
      }),
      { numRuns: 500 },
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
