/**
 * The whole lists' cached bodies (issue 23): each list is built once per version of what it shows and served as it is,
 * with an entity tag. Whatever the sequence of changes, a list served is byte for byte what a fresh build gives now
 * (never a stale body), and one tag always names the same bytes (a 304 never stands for other bytes); the gzipped copy
 * is of the body it is served for; a view served to a node one release behind neither changes nor invalidates them.
 */
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import type { ManifestationState } from '@flocker/api';
import { acquireLease, createDataset, createSnapshot, deleteDataset, updateDataset } from './configuration';
import type { ControlState } from './ControlState';
import { API_VIEWER, Views } from './Views';
import { type Body, ListBody } from './listBodies';
import { A, B, C, letterReport as report } from './testing/fixtures';
import { openMemoryState } from './testing/viewOracle';
import { Slice } from './slices';

const LISTS = ['datasets', 'snapshots', 'snapshotState', 'backups', 'backupState', 'datasetState', 'nodes'] as const;
type List = (typeof LISTS)[number];
const NODES = [A, B, C] as const;
const id = (i: number): string => `${String(i).padStart(8, '0')}-2222-4222-8222-222222222222`;
const bytes = (b: Body): string => (b instanceof ListBody ? b.toString() : b.toString());

/** Every change kind the lists show (and some they do not), and the reads of other views. */
type Op =
  | { kind: 'create'; i: number; node: number }
  | { kind: 'resize'; i: number }
  | { kind: 'move'; i: number; node: number }
  | { kind: 'delete'; i: number }
  | { kind: 'lease'; i: number; node: number }
  | { kind: 'snapshot'; i: number }
  | { kind: 'report'; node: number; mounted: number[]; growing: boolean }
  | { kind: 'same report'; node: number }
  | { kind: 'time'; ms: number }
  | { kind: 'views read'; node: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('create' as const), i: fc.nat(11), node: fc.nat(2) }),
  fc.record({ kind: fc.constant('resize' as const), i: fc.nat(11) }),
  fc.record({ kind: fc.constant('move' as const), i: fc.nat(11), node: fc.nat(2) }),
  fc.record({ kind: fc.constant('delete' as const), i: fc.nat(11) }),
  fc.record({ kind: fc.constant('lease' as const), i: fc.nat(11), node: fc.nat(2) }),
  fc.record({ kind: fc.constant('snapshot' as const), i: fc.nat(11) }),
  fc.record({
    kind: fc.constant('report' as const),
    node: fc.nat(2),
    mounted: fc.uniqueArray(fc.nat(11), { maxLength: 4 }),
    growing: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('same report' as const), node: fc.nat(2) }),
  fc.record({ kind: fc.constant('time' as const), ms: fc.constantFrom(1, 2_000, 11_000) }),
  fc.record({ kind: fc.constant('views read' as const), node: fc.nat(2) }),
);

/** Node C reports no release: one behind, so its views leave out this release's new members (newMembersHidden). */
const VERSIONS: Record<string, string | undefined> = { [A]: '99.0.0', [B]: '99.0.0', [C]: undefined };

async function apply(state: ControlState, views: Views, o: Op, clock: { t: number }): Promise<void> {
  // A change the configuration refuses (an unknown or deleted dataset) changes nothing: still a step.
  const mutate = (f: Parameters<ControlState['mutate']>[0]): Promise<unknown> => state.mutate(f).catch(() => undefined);
  const node = 'node' in o ? (NODES[o.node] as string) : A;
  const versioned = (extra: Parameters<typeof report>[1] = {}): ReturnType<typeof report> => {
    const version = VERSIONS[node];
    return report(node, { ...extra, ...(version !== undefined ? { version } : {}) });
  };
  switch (o.kind) {
    case 'create':
      return void (await mutate((c) => createDataset(c, { primary: node, dataset_id: id(o.i), metadata: { n: 'v' } })));
    case 'resize':
      return void (await mutate((c, t) => updateDataset(c, id(o.i), { maximum_size: 134217728 }, t)));
    case 'move':
      return void (await mutate((c, t) => updateDataset(c, id(o.i), { primary: node }, t)));
    case 'delete':
      return void (await mutate((c, t) => deleteDataset(c, id(o.i), t)));
    case 'lease':
      return void (await mutate((c, t) => acquireLease(c, { dataset_id: id(o.i), node_uuid: node, expires: 60 }, t)));
    case 'snapshot':
      return void (await mutate((c, t) => createSnapshot(c, { dataset_id: id(o.i) }, t)));
    case 'report': {
      const manifestations: ManifestationState[] = o.mounted.map((i) => ({
        dataset_id: id(i),
        blockdevice_id: `b${i}`,
        size: 67108864,
        status: 'mounted',
        path: `/flocker/${i}`,
        ...(o.growing ? { grow_pending: { reason: 'online_resize_refused' as const } } : {}),
      }));
      return void (await state.report(versioned({ manifestations })));
    }
    case 'same report': {
      const last = state.reportedNode(node)?.report;
      return void (await state.report(last ?? versioned()));
    }
    case 'time':
      clock.t += o.ms;
      return state.checkLiveness();
    case 'views read':
      // What agents and plugins read between list reads, one release behind (C) or not; no list may change by it.
      views.snapshotFor(node);
      views.snapshot(true);
      views.snapshot();
      views.snapshotFor(node, API_VIEWER);
      views.deltaFor(node, '0');
      return;
  }
}

const read = (views: Views, list: List): Body => views[list]();

describe('Views: the whole lists cached per version (issue 23)', () => {
  it('whatever the changes, a list served is what a fresh build gives, and one tag always names the same bytes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 25 }), async (ops) => {
        const clock = { t: 1_700_000_000_000 };
        const state = await openMemoryState(() => clock.t);
        try {
          for (const n of NODES)
            await state.report(report(n, VERSIONS[n] !== undefined ? { version: VERSIONS[n] } : {}));
          const views = new Views(state, true);
          /** Every tag seen, and the bytes it named. */
          const named = new Map<string, string>();
          const last = new Map<List, { tag: string; bytes: string }>();
          for (const o of [{ kind: 'time', ms: 1 } as const, ...ops]) {
            await apply(state, views, o, clock);
            const fresh = new Views(state, true);
            for (const list of LISTS) {
              const body = read(views, list);
              const got = bytes(body);
              expect({ list, o, bytes: got }).toEqual({ list, o, bytes: bytes(read(fresh, list)) });
              // Served again unchanged: the same body (a buffer write), not a new build.
              expect(read(views, list)).toBe(body);
              const tag = views.etagOf(body);
              expect(tag).toMatch(/^"[^"]+"$/);
              const before = named.get(tag as string);
              expect({ list, o, same: before ?? got }).toEqual({ list, o, same: got });
              named.set(tag as string, got);
              const prev = last.get(list);
              if (prev !== undefined && prev.bytes !== got) expect(tag).not.toBe(prev.tag);
              last.set(list, { tag: tag as string, bytes: got });
            }
          }
        } finally {
          await state.close();
        }
      }),
      { numRuns: 60 },
    );
  });

  it('each change kind moves the tag of the lists that show it, and a lease or a views read moves none', async () => {
    const clock = { t: 1_700_000_000_000 };
    const state = await openMemoryState(() => clock.t);
    try {
      for (const n of NODES) await state.report(report(n, VERSIONS[n] !== undefined ? { version: VERSIONS[n] } : {}));
      await apply(state, new Views(state), { kind: 'create', i: 1, node: 0 }, clock);
      const views = new Views(state);
      const tags = (): Record<List, string | undefined> =>
        Object.fromEntries(LISTS.map((l) => [l, views.etagOf(read(views, l))])) as Record<List, string | undefined>;
      const moved = async (o: Op): Promise<List[]> => {
        const before = tags();
        await apply(state, views, o, clock);
        const after = tags();
        return LISTS.filter((l) => before[l] !== after[l]);
      };
      expect(await moved({ kind: 'create', i: 2, node: 1 })).toEqual(expect.arrayContaining(['datasets']));
      expect(await moved({ kind: 'resize', i: 2 })).toEqual(expect.arrayContaining(['datasets']));
      expect(await moved({ kind: 'move', i: 2, node: 2 })).toEqual(expect.arrayContaining(['datasets']));
      expect(await moved({ kind: 'snapshot', i: 2 })).toEqual(expect.arrayContaining(['snapshots']));
      expect(await moved({ kind: 'delete', i: 2 })).toEqual(expect.arrayContaining(['datasets']));
      // A lease leaves the datasets as they were: pollers of the datasets list keep their 304.
      expect(await moved({ kind: 'lease', i: 1, node: 0 })).not.toContain('datasets');
      // Configuration writes do not touch what the nodes report.
      for (const o of [{ kind: 'create', i: 3, node: 0 } as const, { kind: 'lease', i: 3, node: 1 } as const])
        expect(await moved(o)).not.toEqual(expect.arrayContaining(['datasetState', 'nodes']));
      expect(await moved({ kind: 'report', node: 0, mounted: [1], growing: false })).toEqual(
        expect.arrayContaining(['datasetState']),
      );
      expect(await moved({ kind: 'same report', node: 0 })).toEqual([]);
      // The views of a node one release behind (C), and the legacy whole snapshot, are built apart from the lists.
      expect(await moved({ kind: 'report', node: 2, mounted: [3], growing: true })).toEqual(
        expect.arrayContaining(['datasetState']),
      );
      expect(await moved({ kind: 'views read', node: 2 })).toEqual([]);
      expect(await moved({ kind: 'views read', node: 0 })).toEqual([]);
      // A node past its timeout leaves the state lists.
      await state.report(report(A, { version: '99.0.0' }));
      await state.report(report(B, { version: '99.0.0' }));
      clock.t += 6_000;
      await state.report(report(A, { version: '99.0.0', manifestations: [] }));
      await state.report(report(B, { version: '99.0.0', manifestations: [] }));
      clock.t += 6_000;
      expect(await moved({ kind: 'time', ms: 1 })).toEqual(expect.arrayContaining(['datasetState', 'nodes']));
    } finally {
      await state.close();
    }
  });

  it('with compression on, the gzipped copy is of the body it is served for, and a new body waits for its own', async () => {
    const state = await openMemoryState();
    try {
      await state.report(report(A));
      await state.report(report(B));
      // Over GZIP_MIN_BYTES (64 KiB): ~700 datasets of ~150 bytes.
      for (let i = 0; i < 700; i++)
        await state.mutate((c) =>
          createDataset(c, { primary: A, dataset_id: id(100 + i), metadata: { name: `v${i}` } }),
        );
      const views = new Views(state, false, true);
      const until = async (body: Body): Promise<Buffer> => {
        const deadline = Date.now() + 30_000;
        for (;;) {
          const gz = views.gzipOf(body);
          if (gz !== undefined) return gz;
          if (Date.now() > deadline) throw new Error('no gzipped copy within 30 s');
          await new Promise((r) => setTimeout(r, 5));
        }
      };
      const first = views.datasets();
      expect(first.length).toBeGreaterThanOrEqual(64 * 1024);
      expect(gunzipSync(await until(first)).equals(first.toBuffer())).toBe(true);
      await state.mutate((c) => createDataset(c, { primary: B, dataset_id: id(99), metadata: { name: 'new' } }));
      const second = views.datasets();
      expect(second).not.toBe(first);
      expect(views.etagOf(second)).not.toBe(views.etagOf(first));
      // Never the old copy for the new body: none until its own is made, then its own bytes.
      const early = views.gzipOf(second);
      if (early !== undefined) expect(gunzipSync(early).equals(second.toBuffer())).toBe(true);
      expect(gunzipSync(await until(second)).equals(second.toBuffer())).toBe(true);
      // A small list is never gzipped.
      const small = views.snapshots();
      await new Promise((r) => setTimeout(r, 50));
      expect(views.gzipOf(small)).toBeUndefined();
    } finally {
      await state.close();
    }
  });
});

describe('Views: the whole lists built across event-loop turns (issue 23: the routes read them so)', () => {
  it('a change between slices of a build: its body is exactly the lists as the build began (its tag names only those bytes), readers that came with it share it, a reader after the change gets the new one', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), fc.nat(3), async (ops, at) => {
        const clock = { t: 1_700_000_000_000 };
        const state = await openMemoryState(() => clock.t);
        try {
          for (const n of NODES)
            await state.report(report(n, VERSIONS[n] !== undefined ? { version: VERSIONS[n] } : {}));
          for (let i = 0; i < 6; i++) await apply(state, new Views(state), { kind: 'create', i, node: i % 3 }, clock);
          await apply(state, new Views(state), { kind: 'report', node: 0, mounted: [0, 3], growing: false }, clock);
          /** What the pause does at its `at`-th call (or after the build, if it pauses fewer times). */
          let midBuild: (() => Promise<void>) | undefined;
          let pauses = 0;
          const pause = async (): Promise<void> => {
            // A turn first: the change comes after the readers who came with the build.
            await new Promise<void>((r) => setImmediate(r));
            if (pauses++ === at && midBuild !== undefined) {
              const run = midBuild;
              midBuild = undefined;
              await run();
            }
          };
          let duringBuilds = 0;
          for (const o of ops) {
            pauses = 0;
            // A first read after a start (nothing cached); a slice ends after every step: the most turns it can take.
            const views = new Views(state, true, false, () => new Slice(pause, 0, 1));
            const named = new Map<string, string>();
            const tagged = (body: Body, got: string): void => {
              const tag = views.etagOf(body) as string;
              expect(tag).toMatch(/^"[^"]+"$/);
              expect(named.get(tag) ?? got).toBe(got);
              named.set(tag, got);
            };
            // What a fresh synchronous build gives as the reads begin, and after the change.
            const fresh = (): { states: string; datasets: string; tag: string } => {
              const v = new Views(state, true);
              return { states: bytes(v.datasetState()), datasets: bytes(v.datasets()), tag: state.configurationTag };
            };
            const before = fresh();
            let after: ReturnType<typeof fresh> | undefined;
            let late: Promise<[ListBody, { body: ListBody; tag: string }]> | undefined;
            midBuild = async () => {
              await apply(state, views, o, clock);
              after = fresh();
              late = Promise.all([views.datasetStateSliced(), views.datasetsSliced()]);
            };
            const states = [views.datasetStateSliced(), views.datasetStateSliced()];
            const lists = [views.datasetsSliced(), views.datasetsSliced()];
            const [s1, s2] = (await Promise.all(states)) as [ListBody, ListBody];
            const [d1, d2] = (await Promise.all(lists)) as [
              { body: ListBody; tag: string },
              { body: ListBody; tag: string },
            ];
            // The change came while the first builds were under way (at their at-th pause), or (a list with fewer
            // steps, as with every node gone) after them.
            if (midBuild === undefined) duringBuilds++;
            else await midBuild();
            const [s3, d3] = await (late as NonNullable<typeof late>);
            const now = after as NonNullable<typeof after>;
            // Readers that came together share one body.
            expect(s2).toBe(s1);
            expect(d2.body).toBe(d1.body);
            expect({ o, states: bytes(s1) }).toEqual({ o, states: before.states });
            expect({ o, datasets: bytes(d1.body), tag: d1.tag }).toEqual({
              o,
              datasets: before.datasets,
              tag: before.tag,
            });
            expect({ o, states: bytes(s3), datasets: bytes(d3.body), tag: d3.tag }).toEqual({
              o,
              states: now.states,
              datasets: now.datasets,
              tag: now.tag,
            });
            for (const [body, got] of [
              [s1, before.states],
              [d1.body, before.datasets],
              [s3, now.states],
              [d3.body, now.datasets],
            ] as const)
              tagged(body, got);
          }
          expect(duringBuilds).toBeGreaterThan(0);
        } finally {
          await state.close();
        }
      }),
      {
        numRuns: 40,
        examples: [
          [
            [
              { kind: 'time', ms: 11000 },
              { kind: 'lease', i: 0, node: 0 },
            ],
            0,
          ],
        ],
      },
    );
  });

  it('readers of an unchanged list get the cached body; concurrent first readers share one build (its slices counted)', async () => {
    const state = await openMemoryState();
    try {
      for (const n of NODES) await state.report(report(n));
      for (let i = 0; i < 8; i++)
        await state.mutate((c) =>
          createDataset(c, { primary: NODES[i % 3] as string, dataset_id: id(i), metadata: {} }),
        );
      let pauses = 0;
      const pause = (): Promise<void> => {
        pauses++;
        return new Promise<void>((r) => setImmediate(r));
      };
      const one = new Views(state, true, false, () => new Slice(pause, 0, 1));
      await one.datasetStateSliced();
      await one.datasetsSliced();
      const alone = pauses;
      expect(alone).toBeGreaterThan(4);
      pauses = 0;
      const many = new Views(state, true, false, () => new Slice(pause, 0, 1));
      const states = await Promise.all(Array.from({ length: 5 }, () => many.datasetStateSliced()));
      const lists = await Promise.all(Array.from({ length: 5 }, () => many.datasetsSliced()));
      expect(pauses).toBe(alone);
      for (const s of states) expect(s).toBe(states[0]);
      for (const d of lists) expect(d.body).toBe(lists[0]?.body);
      // Unchanged since: the same bodies, no slice.
      expect(await many.datasetStateSliced()).toBe(states[0]);
      expect((await many.datasetsSliced()).body).toBe(lists[0]?.body);
      expect(many.datasetState()).toBe(states[0]);
      expect(pauses).toBe(alone);
    } finally {
      await state.close();
    }
  });
});
