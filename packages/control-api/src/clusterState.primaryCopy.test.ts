/**
 * Two live copies of one dataset (review K6, session 17): a local move between its promote and the source's retire,
 * a TWO_LIVE_COPIES refusal, a block volume still reported on its old node while the new one has it. The state list
 * and the one-dataset read show the configured primary's copy, whatever the order nodes first reported in; a
 * client polling for "primary == node and a path" (flocker-go, `flocker volumes move --wait`) sees the copy the move
 * is about, and a move (a configuration write, no new state generation) changes the answer at once.
 */
import type { NodeReport } from '@flocker/api';
import { createDataset, updateDataset } from './configuration';
import type { ControlState } from './ControlState';
import { A, B, C, D1, T0, letterReport as report, stateEntryOf as entryOf } from './testing/fixtures';
import { openMemoryState } from './testing/viewOracle';
import { Views } from './Views';

const copyOn = (node: string, mounted = true): NodeReport =>
  report(node, {
    manifestations: [
      mounted
        ? { dataset_id: D1, blockdevice_id: `pool-${node}`, size: 100, status: 'mounted', path: `/pool-${node}/d1` }
        : { dataset_id: D1, blockdevice_id: `pool-${node}`, size: 100, status: 'attached' },
    ],
  });

async function withState(body: (state: ControlState, views: Views) => Promise<void>): Promise<void> {
  const state = await openMemoryState(() => T0);
  try {
    await body(state, new Views(state, true));
  } finally {
    await state.close();
  }
}

function shown(views: Views): { primary?: string; path?: string } | undefined {
  const whole = views.datasetState().toString();
  expect(views.datasetStateOf(D1)).toBe(entryOf(whole, D1));
  return (JSON.parse(whole) as Array<{ dataset_id: string; primary?: string; path?: string }>).find(
    (d) => d.dataset_id === D1,
  );
}

describe('a dataset two live nodes report a copy of', () => {
  it("shows the configured primary's copy, whichever node reported first", async () => {
    for (const order of [
      [A, B],
      [B, A],
    ]) {
      await withState(async (state, views) => {
        for (const node of order) await state.report(copyOn(node));
        await state.mutate((c, at) => createDataset(c, { dataset_id: D1, primary: B }, undefined, undefined, at));
        expect(shown(views)).toMatchObject({ primary: B, path: `/pool-${B}/d1` });
      });
    }
  });

  it('a move (a configuration write only) switches the copy shown at once, the list and the one-dataset read', async () => {
    await withState(async (state, views) => {
      await state.report(copyOn(A));
      await state.report(copyOn(B, false));
      await state.mutate((c, at) => createDataset(c, { dataset_id: D1, primary: A }, undefined, undefined, at));
      expect(shown(views)).toMatchObject({ primary: A, path: `/pool-${A}/d1` });
      const before = views.datasetState();
      // The move's promote: B is primary, its copy not mounted yet. A waiter for B must not see A's path as B's.
      await state.mutate((c, at) => updateDataset(c, D1, { primary: B }, at));
      expect(views.datasetState()).not.toBe(before);
      expect(views.etagOf(views.datasetState())).not.toBe(views.etagOf(before));
      const now = shown(views);
      expect(now?.primary).toBe(B);
      expect(now?.path).toBeUndefined();
    });
  });

  it("neither copy the primary's: the same node's copy whatever the order (the lowest node UUID)", async () => {
    for (const order of [
      [B, A],
      [A, B],
    ]) {
      await withState(async (state, views) => {
        await state.report(report(C));
        await state.mutate((c, at) => createDataset(c, { dataset_id: D1, primary: C }, undefined, undefined, at));
        for (const node of order) await state.report(copyOn(node));
        expect(shown(views)).toMatchObject({ primary: A });
      });
    }
  });
});
