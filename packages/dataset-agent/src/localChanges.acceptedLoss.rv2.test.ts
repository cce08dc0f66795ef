/**
 * Review RV2 (session 16): while the one-shot accept-replica-loss is set, it covers the copy the user was asked about
 * (the data-node marker's node: the failover's old primary), not a third node's branch, e.g. a plain move's source
 * written after its final snapshot (refusing TWO_LIVE_COPIES): those writes nobody gave up stay refused, not kept aside.
 */
import {
  calculateLocalChanges,
  type CopyLineage,
  type LocalDesiredDataset,
  type LocalObservation,
} from './localChanges';
import { A, B, C, ctxA, ctxB, D, nodes } from './localChangesTestSupport';

const onB = (extra: Partial<LocalDesiredDataset>): LocalDesiredDataset[] => [
  { datasetId: D, primary: B, maximumSize: 1000, deleted: false, acceptReplicaLoss: true, ...extra },
];
/** A written after R; B's copy made from R. */
const observed: LocalObservation = {
  copies: [{ datasetId: D, size: 1000, mountPoints: [] }],
  moving: new Set(),
  lineages: new Map([
    [
      D,
      new Map<string, CopyLineage>([
        [A, { from: null, sameAs: null, snapshots: ['R'] }],
        [B, { from: 'R', sameAs: null, snapshots: ['R'] }],
      ]),
    ],
  ]),
};
const refused = [expect.objectContaining({ kind: 'refuse', code: 'TWO_LIVE_COPIES' })];

describe('accept-replica-loss covers the data-node marker’s node only', () => {
  it('A, not the node the failover left (marker C): refuses; the marker naming A: kept aside', () => {
    expect(calculateLocalChanges(onB({ dataNode: C }), nodes, observed, ctxA)).toEqual(refused);
    expect(calculateLocalChanges(onB({ dataNode: A }), nodes, observed, ctxA)).toEqual([
      { kind: 'retire', datasetId: D, keepAside: true },
    ]);
  });

  it('the primary B does not mount over A’s branch for a loss given for C; for A it does', () => {
    expect(calculateLocalChanges(onB({ dataNode: C }), nodes, observed, ctxB)).toEqual(refused);
    expect(calculateLocalChanges(onB({ dataNode: A }), nodes, observed, ctxB)).toEqual([
      expect.objectContaining({ kind: 'mount', datasetId: D }),
    ]);
  });
});
