/**
 * Session 17 (U4): GET /v1/state/datasets shows per dataset the copies live nodes kept aside (kept_aside: writes
 * the live copy lacks, and where), so an API client need not read every node's state for them. Additive: the
 * Flocker v1 fields stay as they were (Kubernetes' flocker-go decodes the list with encoding/json, which ignores
 * unknown members), and a kept copy adds no entry for a dataset no live node has.
 */
import { DatasetState, type NodeReport } from '@flocker/api';
import { Views } from './Views';
import { A, B, letterReport } from './testing/fixtures';
import { openMemoryState } from './testing/viewOracle';

const X = '0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a10';
const Y = '1b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a11';
const KEPT_PATH = `/pool/flocker/diverged/${X}-7f3c`;

const report = (node: string, extra: Partial<NodeReport> = {}): NodeReport =>
  letterReport(node, { backend: 'local-btrfs', ...extra });
const mountedX = {
  dataset_id: X,
  blockdevice_id: `btrfs:/pool/${X}`,
  size: 1024 * 1024,
  status: 'mounted' as const,
  path: `/flocker/${X}`,
};

describe('GET /v1/state/datasets: kept_aside', () => {
  it('the live copy on B, a copy A kept aside: the entry says B and where A keeps its copy', async () => {
    const state = await openMemoryState();
    try {
      await state.report(report(B, { manifestations: [mountedX] }));
      await state.report(report(A));
      const views = new Views(state, true);
      const before = DatasetState.array().parse(JSON.parse(views.datasetState().toString()));
      expect(before).toEqual([{ dataset_id: X, primary: B, maximum_size: 1024 * 1024, path: `/flocker/${X}` }]);

      // A kept a copy of X aside, and one of Y, which no live node has.
      await state.report(
        report(A, {
          kept_aside: [
            { dataset_id: X, path: KEPT_PATH },
            { dataset_id: Y, path: '/p' },
          ],
        }),
      );
      const list = DatasetState.array().parse(JSON.parse(views.datasetState().toString()));
      expect(list).toEqual([{ ...before[0], kept_aside: [{ node_uuid: A, path: KEPT_PATH }] }]);
      // The one-dataset read (?dataset_id=) says the same.
      expect(JSON.parse(views.datasetStateOf(X))).toEqual(list);
      expect(JSON.parse(views.datasetStateOf(Y))).toEqual([]);

      // Flocker v1's fields are untouched: a client reading only them sees what it saw before.
      const { kept_aside: _kept, ...v1 } = list[0]!;
      expect(v1).toEqual(before[0]);

      // Reported no more (the dataset deleted): gone from the entry.
      await state.report(report(A));
      expect(JSON.parse(views.datasetState().toString())).toEqual(before);
      expect(JSON.parse(views.datasetStateOf(X))).toEqual(before);
    } finally {
      await state.close();
    }
  });

  it('kept_aside entries are checked: a node uuid and a path, nothing else', () => {
    const entry = { dataset_id: X, kept_aside: [{ node_uuid: A, path: KEPT_PATH }] };
    expect(DatasetState.safeParse(entry).success).toBe(true);
    expect(DatasetState.safeParse({ ...entry, kept_aside: [{ node_uuid: A, path: '' }] }).success).toBe(false);
    expect(DatasetState.safeParse({ ...entry, kept_aside: [{ node_uuid: A, path: '/p', x: 1 }] }).success).toBe(false);
  });
});
