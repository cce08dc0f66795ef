/**
 * GET /v1/state/datasets?dataset_id= (waiters poll it) after a start: its first call learns every report into the
 * state indexes across event-loop turns (issue 23), shared by the pollers that come meanwhile and by a first read of
 * the whole list. Whatever changes between slices, an answer is exactly the synchronous one in the turn it is given.
 */
import fc from 'fast-check';
import type { ManifestationState } from '@flocker/api';
import { createDataset, updateDataset } from './configuration';
import type { ControlState } from './ControlState';
import { Views } from './Views';
import { A, B, C, letterReport as report } from './testing/fixtures';
import { openMemoryState } from './testing/viewOracle';
import { Slice } from './slices';

const NODES = [A, B, C] as const;
const id = (i: number): string => `${String(i).padStart(8, '0')}-2222-4222-8222-222222222222`;
const IDS = Array.from({ length: 8 }, (_, i) => id(i));

/** The changes an entry shows: a node's report (mounts, two copies of one dataset), a move, a node timing out. */
type Op =
  | { kind: 'report'; node: number; mounted: number[] }
  | { kind: 'same report'; node: number }
  | { kind: 'move'; i: number; node: number }
  | { kind: 'time'; ms: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('report' as const),
    node: fc.nat(2),
    mounted: fc.uniqueArray(fc.nat(7), { maxLength: 4 }),
  }),
  fc.record({ kind: fc.constant('same report' as const), node: fc.nat(2) }),
  fc.record({ kind: fc.constant('move' as const), i: fc.nat(7), node: fc.nat(2) }),
  fc.record({ kind: fc.constant('time' as const), ms: fc.constantFrom(1, 2_000, 11_000) }),
);

async function apply(state: ControlState, o: Op, clock: { t: number }): Promise<void> {
  const node = 'node' in o ? (NODES[o.node] as string) : A;
  switch (o.kind) {
    case 'report': {
      const manifestations: ManifestationState[] = o.mounted.map((i) => ({
        dataset_id: id(i),
        blockdevice_id: `b${i}`,
        size: 67108864,
        status: 'mounted',
        path: `/flocker/${i}`,
      }));
      return void (await state.report(report(node, { manifestations })));
    }
    case 'same report':
      return void (await state.report(state.reportedNode(node)?.report ?? report(node)));
    case 'move':
      return void (await state
        .mutate((c, t) => updateDataset(c, id(o.i), { primary: node }, t))
        .catch(() => undefined));
    case 'time':
      clock.t += o.ms;
      return state.checkLiveness();
  }
}

/** Three nodes, eight datasets, two of them mounted on two nodes at once (the configured primary's copy shown). */
async function cluster(clock: { t: number }): Promise<ControlState> {
  const state = await openMemoryState(() => clock.t);
  for (let i = 0; i < NODES.length; i++) await apply(state, { kind: 'report', node: i, mounted: [i, 3, i + 4] }, clock);
  for (let i = 0; i < 8; i++)
    await state.mutate((c) => createDataset(c, { primary: NODES[i % 3] as string, dataset_id: id(i), metadata: {} }));
  return state;
}

describe('Views.datasetStateOfSliced: the one-dataset read learns the reports across turns (issue 23)', () => {
  it('a change between slices of the first learn: every answer is the synchronous one of the turn it is given', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 3 }), fc.nat(4), fc.boolean(), async (ops, at, withList) => {
        const clock = { t: 1_700_000_000_000 };
        const state = await cluster(clock);
        try {
          let pauses = 0;
          const pause = async (): Promise<void> => {
            await new Promise<void>((r) => setImmediate(r));
            if (pauses++ === at) for (const o of ops) await apply(state, o, clock);
          };
          // A first read after a start (nothing learnt); a slice ends after every step: the most turns it can take.
          const views = new Views(state, true, false, () => new Slice(pause, 0, 1));
          const answered = IDS.map(async (i) => {
            const got = await views.datasetStateOfSliced(i);
            // In the turn it is given: a fresh synchronous read of the state as it is now.
            expect({ i, got }).toEqual({ i, got: new Views(state, true).datasetStateOf(i) });
            return got;
          });
          const list = withList ? views.datasetStateSliced() : undefined;
          await Promise.all(answered);
          await list;
          expect(pauses).toBeGreaterThan(0);
          for (const i of IDS)
            expect(await views.datasetStateOfSliced(i)).toBe(new Views(state, true).datasetStateOf(i));
        } finally {
          await state.close();
        }
      }),
      { numRuns: 60 },
    );
  });

  it('concurrent first calls share one learn (its slices counted); then no slice at all', async () => {
    const clock = { t: 1_700_000_000_000 };
    const state = await cluster(clock);
    try {
      let pauses = 0;
      const pause = (): Promise<void> => {
        pauses++;
        return new Promise<void>((r) => setImmediate(r));
      };
      // The walks that paused (one Slice each): several walks at once would restart each other.
      const walks = new Set<number>();
      let made = 0;
      const counted = (): Slice => {
        const n = made++;
        return new Slice(() => (walks.add(n), pause()), 0, 1);
      };
      const one = new Views(state, true, false, () => new Slice(pause, 0, 1));
      await one.datasetStateOfSliced(id(0));
      const alone = pauses;
      // One pause per report learnt.
      expect(alone).toBe(NODES.length);
      pauses = 0;
      const many = new Views(state, true, false, counted);
      const got = await Promise.all(IDS.map((i) => many.datasetStateOfSliced(i)));
      expect(pauses).toBe(alone);
      expect(walks.size).toBe(1);
      expect(got).toEqual(IDS.map((i) => new Views(state, true).datasetStateOf(i)));
      // Learnt: later reads, and a report replaced in place, take no slice.
      await many.datasetStateOfSliced(id(1));
      await apply(state, { kind: 'report', node: 1, mounted: [1] }, clock);
      expect(await many.datasetStateOfSliced(id(1))).toBe(new Views(state, true).datasetStateOf(id(1)));
      expect(pauses).toBe(alone);
      // A first read of the whole list with its learn under way shares it: only the body's own slices are added.
      pauses = 0;
      const list = new Views(state, true, false, () => new Slice(pause, 0, 1));
      await list.datasetStateSliced();
      const listAlone = pauses;
      pauses = 0;
      const both = new Views(state, true, false, () => new Slice(pause, 0, 1));
      await Promise.all([both.datasetStateOfSliced(id(2)), both.datasetStateSliced()]);
      expect(pauses).toBe(listAlone);
    } finally {
      await state.close();
    }
  });
});
