/**
 * A report's settle of a data-node marker (dataNode.ts markersToSettle) reads the dataset's entry of
 * /v1/state/datasets (mountedOnPrimary). Its first read after a start learnt every alive report into the state
 * indexes in the report's own event-loop turn (10,000 reports: ~180 ms in which every heartbeat and lease waited).
 * Now the reports are learnt across turns first (Views.datasetStatesLearnt, as GET ?dataset_id= does), and the
 * settle is the one a synchronous settle in its turn computes: the marker goes, or stays when a change during the
 * learn keeps it.
 */
import { type DatasetConfiguration, METADATA_DATA_NODE_KEY, type NodeReport } from '@flocker/api';
import { createDataset } from './configuration';
import type { ControlState } from './ControlState';
import { routes } from './routes';
import type { CheckedContext } from './routeSpec';
import { Slice } from './slices';
import { A, B, T0 } from './testing/fixtures';
import { localBtrfsReport } from './testing/httpService';
import { openMemoryState } from './testing/viewOracle';
import { Views } from './Views';

const D = '11111111-1111-4111-8111-111111111111';
/** Other nodes' reports, each with a dataset mounted: what a first read after a start learns. */
const OTHERS = 40;
// The first four characters differ: the test reports' instance ids are made of them.
const other = (i: number): string => `${String(i).padStart(4, '0')}cccc-cccc-4ccc-8ccc-cccccccccccc`;
const otherDataset = (i: number): string => `${String(i).padStart(8, '0')}-2222-4222-8222-222222222222`;

const route = routes.find((r) => r.method === 'put' && r.path === '/v1/agent/nodes/:uuid');

/** PUT /v1/agent/nodes/:uuid through the route's handler, with `views`. */
async function putReport(state: ControlState, views: Views, report: NodeReport): Promise<void> {
  if (route === undefined) throw new Error('no report route');
  const ctx: CheckedContext = {
    params: { uuid: report.uuid },
    query: {},
    body: report,
    ifMatches: undefined,
    signal: new AbortController().signal,
  };
  await route.handle(state, ctx, views);
}

/**
 * A moved A -> B (the marker names A), A's copy retired, B's agent acted on the move; OTHERS nodes reporting. The
 * views are given once all that is reported: a service just started, nothing learnt.
 */
async function movedCluster(): Promise<{ state: ControlState; version: number }> {
  const state = await openMemoryState(() => T0);
  const seed = new Views(state);
  for (const node of [A, B]) await putReport(state, seed, localBtrfsReport(node, []));
  for (let i = 0; i < OTHERS; i++) {
    await putReport(state, seed, localBtrfsReport(other(i), []));
    await state.mutate((c) => createDataset(c, { primary: other(i), dataset_id: otherDataset(i), metadata: {} }));
    await putReport(state, seed, localBtrfsReport(other(i), [otherDataset(i)]));
  }
  await state.mutate((c) =>
    createDataset(c, { primary: B, dataset_id: D, metadata: { name: 'db', [METADATA_DATA_NODE_KEY]: A } }),
  );
  const version = state.configuration.version;
  await putReport(state, seed, localBtrfsReport(A, [], [], version));
  return { state, version };
}

const metadataOf = (state: ControlState): DatasetConfiguration['metadata'] | undefined =>
  state.configuration.datasets.get(D)?.metadata;

/** Views whose sliced work pauses after every step; `during` runs at the `at`th pause. Counts the pauses. */
function slicedViews(state: ControlState, at = -1, during: () => Promise<void> = async () => {}) {
  const counted = { pauses: 0 };
  const pause = async (): Promise<void> => {
    await new Promise<void>((r) => setImmediate(r));
    if (counted.pauses++ === at) await during();
  };
  return { views: new Views(state, true, false, () => new Slice(pause, 0, 1)), counted };
}

describe('a report settling a marker after a start learns the dataset states across turns (issue 23)', () => {
  it('B reports it mounted: the reports learnt one per turn, the marker gone as a synchronous settle does', async () => {
    const { state, version } = await movedCluster();
    const sync = await movedCluster();
    try {
      const { views, counted } = slicedViews(state);
      await putReport(state, views, localBtrfsReport(B, [D], [], version));
      // Every alive report (the others, A, B) learnt in a turn of its own: no turn learnt the list.
      expect(counted.pauses).toBeGreaterThanOrEqual(OTHERS + 2);
      expect(metadataOf(state)).toEqual({ name: 'db' });
      // The same settle with the indexes learnt beforehand (synchronously): the same outcome.
      const learnt = new Views(sync.state);
      learnt.datasetStateOf(D);
      await putReport(sync.state, learnt, localBtrfsReport(B, [D], [], sync.version));
      expect(metadataOf(sync.state)).toEqual(metadataOf(state));
      // Learnt: the next report's settle takes no slice.
      const before = counted.pauses;
      await state.mutate((c) =>
        createDataset(c, { primary: B, dataset_id: otherDataset(OTHERS), metadata: { [METADATA_DATA_NODE_KEY]: A } }),
      );
      await putReport(state, views, localBtrfsReport(B, [D, otherDataset(OTHERS)], [], state.configuration.version));
      expect(counted.pauses).toBe(before);
      expect(state.configuration.datasets.get(otherDataset(OTHERS))?.metadata).toEqual({});
    } finally {
      await state.close();
      await sync.state.close();
    }
  });

  it('A reports a live copy again during the learn: the marker kept (the settle of the turn it is computed in)', async () => {
    const { state, version } = await movedCluster();
    try {
      const { views, counted } = slicedViews(state, 3, () =>
        putReport(state, new Views(state), localBtrfsReport(A, [], [D], version)),
      );
      await putReport(state, views, localBtrfsReport(B, [D], [], version));
      expect(counted.pauses).toBeGreaterThan(3);
      expect(metadataOf(state)).toEqual({ name: 'db', [METADATA_DATA_NODE_KEY]: A });
      // A retires its copy: settled at its report.
      await putReport(state, views, localBtrfsReport(A, [], [], version));
      expect(metadataOf(state)).toEqual({ name: 'db' });
    } finally {
      await state.close();
    }
  });

  it('a report that settles nothing reads no dataset state: no learn at all', async () => {
    const { state, version } = await movedCluster();
    try {
      const { views, counted } = slicedViews(state);
      // B's "mounted" lists another dataset only: D is not looked at.
      await putReport(state, views, localBtrfsReport(B, [], [], version));
      expect(counted.pauses).toBe(0);
      expect(metadataOf(state)).toEqual({ name: 'db', [METADATA_DATA_NODE_KEY]: A });
    } finally {
      await state.close();
    }
  });
});
