/**
 * The whole cluster's deltas (issue 23, WHOLE_CLUSTER) merged by a follower list what it appends in the order the
 * service's whole snapshot lists it: the Docker plugin resolves a volume name to the first live dataset bearing it
 * (findVolume), so two datasets sharing a name (two hosts' concurrent creates after the name's id was taken by a
 * deleted volume; any API client) must resolve to the same one whether a plugin merged deltas or took the snapshot.
 * nodeViews.test's property test compares sorted views (normalView): order is checked here.
 */
import { applyClusterDelta, type ClusterSnapshot } from '@flocker/api';
import { createDataset, updateDataset } from './configuration';
import { WHOLE_CLUSTER } from './nodeViews';
import { Views } from './Views';
import { A, B, C, letterReport as report } from './testing/fixtures';
import { openMemoryState as open, parseDelta as delta, wholeView as whole } from './testing/viewOracle';

const firstNamed = (s: ClusterSnapshot, name: string): string | undefined =>
  s.datasets.find((d) => !d.deleted && d.metadata.name === name)?.dataset_id;

describe('nodeViews: the whole cluster delta, in the order of the whole snapshot', () => {
  it('a delta covering several changes (a follower lagging, or back from a cut watch): merged = the snapshot, order included', async () => {
    const state = await open(Date.now);
    try {
      await state.report(report(A));
      const views = new Views(state, true);
      const held = whole(views);
      const older = (await state.mutate((c) => createDataset(c, { primary: A, metadata: { name: 'pg' } }))).result;
      const newer = (await state.mutate((c) => createDataset(c, { primary: A, metadata: { name: 'pg' } }))).result;
      await state.report(report(B));
      await state.report(report(C));
      // The older dataset and node change last: the change log's latest entries put them after the newer ones.
      await state.mutate((c, now) => updateDataset(c, older.dataset_id, { primary: B }, now));
      await state.report(report(B, { host: 'host-b2' }));
      const merged = applyClusterDelta(held, delta(views.deltaFor(WHOLE_CLUSTER, held.generation)));
      const now = whole(views);
      expect(merged?.datasets.map((d) => d.dataset_id)).toEqual(now.datasets.map((d) => d.dataset_id));
      expect(merged?.nodes.map((n) => n.uuid)).toEqual(now.nodes.map((n) => n.uuid));
      expect(firstNamed(now, 'pg')).toBe(older.dataset_id);
      expect(firstNamed(merged as ClusterSnapshot, 'pg')).toBe(older.dataset_id);
      expect(newer.dataset_id).not.toBe(older.dataset_id);
    } finally {
      await state.close();
    }
  });
});
