/**
 * The accepted-loss marker (RV finding 1, session 16): the control service records, in the commit that removes a
 * consumed one-shot loss opt-in, the nodes whose divergent copy that loss covers (their agent then keeps a branched
 * copy aside instead of refusing), and takes a node off once its report lists no live copy of the dataset. Pure parts
 * (dataNode.ts): optInsToSettle/settledOptIns (record) and lossMarksToSettle/settledLossMarks (remove).
 */
import {
  type DatasetConfiguration,
  METADATA_ACCEPT_REPLICA_LOSS_KEY as REPLICA_LOSS,
  METADATA_ACCEPTED_LOSS_FROM_KEY as LOSS_FROM,
  METADATA_DATA_NODE_KEY as DATA_NODE,
} from '@flocker/api';
import { lossMarksToSettle, optInsToSettle, settledLossMarks, settledOptIns } from './dataNode';
import { A, B, C, D1, D2, configOf as config, mountedReport as report } from './testing/fixtures';

const ds = (id: string, primary: string, extra: Record<string, string> = {}): DatasetConfiguration => ({
  dataset_id: id,
  primary,
  metadata: { name: 'n', ...extra },
  deleted: false,
});
const yes = () => true;
const holding =
  (...n: string[]) =>
  () =>
    new Set(n);
const reportedAre =
  (...n: string[]) =>
  (node: string) =>
    n.includes(node);

describe('recording with the consumed opt-in', () => {
  it('names the data-node marker’s node (a failover’s dead old primary) holding a copy or not heard from', () => {
    const c = config(ds(D1, B, { [REPLICA_LOSS]: 'true', [DATA_NODE]: A }));
    const settled = optInsToSettle(c, report(B, [D1]), yes, holding(A, B), reportedAre(A, B));
    expect(settled).toEqual([{ datasetId: D1, primary: B, lossFrom: [A] }]);
    const after = settledOptIns(c, settled).config.datasets.get(D1);
    expect(after?.metadata).toEqual({ name: 'n', [DATA_NODE]: A, [LOSS_FROM]: A });
    // After a restart of the service: nobody known to hold it, the marker's node not heard from: named.
    expect(optInsToSettle(c, report(B, [D1]), yes, () => undefined, reportedAre(B))).toEqual([
      { datasetId: D1, primary: B, lossFrom: [A] },
    ]);
  });

  it('names nobody where no other node may hold a copy (the marker’s node reported, listing none)', () => {
    const c = config(ds(D1, B, { [REPLICA_LOSS]: 'true', [DATA_NODE]: A }));
    const settled = optInsToSettle(c, report(B, [D1]), yes, holding(B), reportedAre(A, B));
    expect(settled).toEqual([{ datasetId: D1, primary: B }]);
    expect(settledOptIns(c, settled).config.datasets.get(D1)?.metadata).toEqual({ name: 'n', [DATA_NODE]: A });
  });

  it('adds to a marker already there (a second accepted loss), never naming the primary', () => {
    const c = config(ds(D1, B, { [REPLICA_LOSS]: 'true', [DATA_NODE]: A, [LOSS_FROM]: `${C},${B}` }));
    const settled = optInsToSettle(c, report(B, [D1]), yes, holding(A, B), reportedAre(A, B, C));
    expect(settledOptIns(c, settled).config.datasets.get(D1)?.metadata[LOSS_FROM]).toBe(`${A},${C}`);
  });
});

describe('removal once the named node lists no live copy', () => {
  const marked = (primary: string, value: string) => config(ds(D1, primary, { [LOSS_FROM]: value }), ds(D2, primary));

  it('the named node’s report no longer lists it (its copy kept aside): taken off, the key gone when empty', () => {
    const c = marked(B, A);
    const settled = lossMarksToSettle(c, report(A, []), report(A, [D1]), holding(B), reportedAre(A, B));
    expect(settled).toEqual([{ datasetId: D1, marker: A, drop: [A] }]);
    const out = settledLossMarks(c, settled);
    expect(out.result).toEqual([D1]);
    expect(out.config.datasets.get(D1)?.metadata).toEqual({ name: 'n' });
    expect(out.config.version).toBe(c.version + 1);
  });

  it('the primary’s mounted report (every one: a service killed before the commit converges at the next)', () => {
    const c = marked(B, `${A},${C}`);
    // A reported without a live copy; C not heard from since this service started: stays.
    const settled = lossMarksToSettle(c, report(B, [D1]), undefined, holding(B), reportedAre(A, B));
    expect(settled).toEqual([{ datasetId: D1, marker: `${A},${C}`, drop: [A] }]);
    expect(settledLossMarks(c, settled).config.datasets.get(D1)?.metadata[LOSS_FROM]).toBe(C);
  });

  it('stays while the named node holds a live copy, or has not reported since the service started', () => {
    const c = marked(B, A);
    expect(lossMarksToSettle(c, report(B, [D1]), undefined, holding(A, B), reportedAre(A, B))).toEqual([]);
    expect(lossMarksToSettle(c, report(B, [D1]), undefined, holding(B), reportedAre(B))).toEqual([]);
  });

  it('a later change of primary does not remove it (the named node may still come back)', () => {
    const c = marked(C, A);
    expect(lossMarksToSettle(c, report(C, [D1]), undefined, holding(A, C), reportedAre(A, C))).toEqual([]);
  });

  it('the named node made the primary again and mounting it: its copy is the live one, taken off', () => {
    const c = marked(A, A);
    expect(lossMarksToSettle(c, report(A, [D1]), undefined, holding(A, B), reportedAre(A, B))).toEqual([
      { datasetId: D1, marker: A, drop: [A] },
    ]);
    // Primary but not mounting it (its copy and B's still to be ordered): stays.
    expect(lossMarksToSettle(c, report(A, []), report(A, []), holding(A, B), reportedAre(A, B))).toEqual([]);
  });

  it('the removal applies only to the marker as seen; a block node’s report is not looked at', () => {
    const c = marked(B, A);
    const seen = lossMarksToSettle(c, report(B, [D1]), undefined, holding(B), reportedAre(A, B));
    const changed = config(ds(D1, B, { [LOSS_FROM]: `${A},${C}` }));
    expect(settledLossMarks(changed, seen).result).toEqual([]);
    expect(lossMarksToSettle(c, report(B, [D1], 'aws'), undefined, holding(B), reportedAre(A, B))).toEqual([]);
  });
});
