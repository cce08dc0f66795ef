/**
 * Session 16 (review U2 finding "HIDDEN DATA"): a local node reports the copies it kept aside
 * (kept_aside: writes the primary's copy lacks). The whole cluster's snapshot and its deltas (what
 * the CLI and API clients read) show them in the node's state; a node's view never does (agents
 * one release behind parse node states strictly, and no decision reads them), nor `retained`.
 */
import { ClusterDelta, ClusterSnapshot, NodeReport } from '@flocker/api';
import { WHOLE_CLUSTER } from './nodeViews';
import { Views } from './Views';
import { A, B, letterReport } from './testing/fixtures';
import { openMemoryState } from './testing/viewOracle';

const X = '0b0e6d4c-6c52-4a43-9d8a-4e3f1c1d2a10';
const KEPT = [{ dataset_id: X, path: `/pool/flocker/diverged/${X}-7f3c` }];

const report = (node: string, extra: Partial<NodeReport> = {}): NodeReport =>
  letterReport(node, { backend: 'local-btrfs', ...extra });

describe('kept_aside in the control service answers', () => {
  it('in the whole snapshot and its deltas, in no node view; retained in neither', async () => {
    const state = await openMemoryState();
    try {
      await state.report(report(B));
      await state.report(report(A));
      const views = new Views(state, true);
      const since = ClusterSnapshot.parse(JSON.parse(views.snapshot().toString())).generation;
      await state.report(report(A, { kept_aside: KEPT, retained: [X] }));

      const whole = ClusterSnapshot.parse(JSON.parse(views.snapshot().toString()));
      const a = whole.nodes.find((n) => n.uuid === A);
      expect(a?.kept_aside).toEqual(KEPT);
      expect(a).not.toHaveProperty('retained');
      const delta = ClusterDelta.parse(JSON.parse(views.deltaFor(WHOLE_CLUSTER, since) as string));
      expect(delta.nodes.find((n) => n.uuid === A)?.kept_aside).toEqual(KEPT);

      for (const node of [A, B]) {
        const view = ClusterSnapshot.parse(JSON.parse(views.snapshotFor(node)));
        for (const n of view.nodes) {
          expect(n).not.toHaveProperty('kept_aside');
          expect(n).not.toHaveProperty('retained');
        }
      }
      // A's own view holds A's state: the field is left out of it, not the state.
      expect(ClusterSnapshot.parse(JSON.parse(views.snapshotFor(A))).nodes.map((n) => n.uuid)).toContain(A);

      // Reported no more: gone from the whole snapshot too.
      await state.report(report(A));
      const after = ClusterSnapshot.parse(JSON.parse(views.snapshot().toString()));
      expect(after.nodes.find((n) => n.uuid === A)).not.toHaveProperty('kept_aside');
    } finally {
      await state.close();
    }
  });

  it("a report's kept_aside is checked at the boundary (strict: a dataset id, a path, nothing else)", () => {
    const accepted = (kept: unknown): boolean => NodeReport.safeParse({ ...report(A), kept_aside: kept }).success;
    expect(accepted(KEPT)).toBe(true);
    expect(accepted([{ dataset_id: 'not-a-uuid', path: '/p' }])).toBe(false);
    expect(accepted([{ dataset_id: X, path: '' }])).toBe(false);
    expect(accepted([{ dataset_id: X, path: '/p', kept_by: 'someone' }])).toBe(false);
  });
});
