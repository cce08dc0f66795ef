/**
 * Review RV2 (session 16) of the accepted-loss marker: a consumed loss opt-in covers the copy the user was asked
 * about (the data-node marker's node: a failover's old primary, the dead holder SOURCE_UNREACHABLE named), never
 * another node that happens to list a live copy, e.g. a plain move's source whose writer was missed and that refuses
 * TWO_LIVE_COPIES: naming it would keep its acknowledged writes aside without anyone accepting that.
 */
import {
  type DatasetConfiguration,
  METADATA_ACCEPT_REPLICA_LOSS_KEY as REPLICA_LOSS,
  METADATA_ACCEPTED_LOSS_FROM_KEY as LOSS_FROM,
  METADATA_DATA_NODE_KEY as DATA_NODE,
} from '@flocker/api';
import { optInsToSettle, settledOptIns } from './dataNode';
import { A, B, C, D1, configOf as config, mountedReport as report } from './testing/fixtures';

const ds = (primary: string, extra: Record<string, string>): DatasetConfiguration => ({
  dataset_id: D1,
  primary,
  metadata: { name: 'n', ...extra },
  deleted: false,
});
const yes = () => true;

describe('the nodes a consumed opt-in names', () => {
  it('only the data-node marker’s node, not a third node listing a live copy of its own', () => {
    // A: a move A -> C missed a writer on A (A refuses TWO_LIVE_COPIES, its copy live). C died; the user moved to B
    // with --accept-replica-loss (marker C). B mounted: the loss covers C's copy, not A's.
    const c = config(ds(B, { [REPLICA_LOSS]: 'true', [DATA_NODE]: C }));
    const settled = optInsToSettle(
      c,
      report(B, [D1]),
      yes,
      () => new Set([A, B, C]),
      (n) => n === A || n === B,
    );
    expect(settled).toEqual([{ datasetId: D1, primary: B, lossFrom: [C] }]);
    expect(settledOptIns(c, settled).config.datasets.get(D1)?.metadata[LOSS_FROM]).toBe(C);
  });

  it('nobody where there is no data-node marker (no copy the user was asked about)', () => {
    const c = config(ds(B, { [REPLICA_LOSS]: 'true' }));
    const settled = optInsToSettle(
      c,
      report(B, [D1]),
      yes,
      () => new Set([A, B]),
      (n) => n === A || n === B,
    );
    expect(settled).toEqual([{ datasetId: D1, primary: B }]);
  });
});
