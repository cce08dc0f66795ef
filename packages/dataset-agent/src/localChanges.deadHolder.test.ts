/**
 * Session 16 (s15 follow-up, review RT2 note 5): after a failover with accept-replica-loss (B's
 * replica promoted, A dead), B's host reboots while A is still dead. B, the primary, holds its copy
 * unmounted; A's last report still lists its copy, whose lineage cannot be read (A does not answer):
 * the order is not known, TWO_LIVE_COPIES. Safe, but the refusal named no way out for a node that
 * is not coming back. It now says exactly: bring A back (the copies are then ordered by lineage),
 * or, A gone for good, set metadata clusterhq:flocker:accept-data-loss=true (`flocker` and the web UI
 * add `flocker volumes move <volume> <B> --accept-data-loss`), which mounts B's copy, losing from
 * the volume the writes A's copy has that B's lacks. And that opt-in does it (the other holder dead only).
 */
import { METADATA_ACCEPT_DATA_LOSS_KEY } from '@flocker/api';
import {
  calculateLocalChanges,
  type CopyLineage,
  type LocalClusterNode,
  type LocalDesiredDataset,
  type LocalObservation,
} from './localChanges';
import { A, B, D, PATH, ctxBNow as ctxB, failedOverToB as failedOver } from './localChangesTestSupport';

// B's copy: the replica R1 promoted, written since. A's lineage is not known (A dead: not asked, no answer).
const bPromoted: CopyLineage = { from: 'R1', sameAs: null, snapshots: ['R1'] };
const nodes = (aAlive: boolean): LocalClusterNode[] => [
  { uuid: A, host: 'a', alive: aAlive, copies: [D] },
  { uuid: B, host: 'b', alive: true, copies: [D] },
];
const rebootedB: LocalObservation = {
  copies: [{ datasetId: D, size: 1000, mountPoints: [] }],
  moving: new Set(),
  lineages: new Map([[D, new Map([[B, bPromoted]])]]),
};

function refusal(d: LocalDesiredDataset, aAlive: boolean): string {
  const [action] = calculateLocalChanges([d], nodes(aAlive), rebootedB, ctxB);
  expect(action).toMatchObject({ kind: 'refuse', code: 'TWO_LIVE_COPIES' });
  return action?.kind === 'refuse' ? action.message : '';
}

describe('two live copies, the other holder dead (its lineage cannot be read)', () => {
  it('refused, and the refusal names the way out exactly: the CLI flag, the metadata, what is lost', () => {
    const text = refusal(failedOver, false);
    expect(text).toContain(`node ${A} (a), which is dead`);
    expect(text).toContain("this node's copy stays as it is (not mounted)");
    expect(text).toContain(`Bring ${A} back`);
    // In the API's words, as the other refusals: `flocker` and the web UI add the command after it
    // (@flocker/web-ui refusalWithCommands: "(flocker volumes move <volume> <primary's host> --accept-data-loss)").
    expect(text).toContain(
      `if ${A} is gone for good, set metadata ${METADATA_ACCEPT_DATA_LOSS_KEY}=true to mount this node's copy`,
    );
    expect(text).toContain(`the writes on ${A}'s copy that this node's copy lacks`);
    // Where they go: not retired by this; that node keeps them once it reports.
    expect(text).toContain(`${A}'s copy is not retired`);
  });

  it('with accept-data-loss: this node mounts its copy', () => {
    expect(calculateLocalChanges([{ ...failedOver, acceptDataLoss: true }], nodes(false), rebootedB, ctxB)).toEqual([
      { kind: 'mount', datasetId: D, mountPath: PATH },
    ]);
  });

  it('the other holder alive (one release behind, or not answering): still refused with accept-data-loss, and no dead-node way out named', () => {
    const text = refusal({ ...failedOver, acceptDataLoss: true }, true);
    expect(text).not.toContain(METADATA_ACCEPT_DATA_LOSS_KEY);
    expect(text).not.toContain('is dead');
    expect(refusal(failedOver, true)).not.toContain(METADATA_ACCEPT_DATA_LOSS_KEY);
  });

  it('the old primary back, once it answers: its copy is ordered by lineage (B mounts; A keeps its writes aside)', () => {
    const aBranched: CopyLineage = { from: null, sameAs: null, snapshots: ['R1'] };
    const both: LocalObservation = {
      ...rebootedB,
      lineages: new Map([
        [
          D,
          new Map([
            [A, aBranched],
            [B, bPromoted],
          ]),
        ],
      ]),
    };
    expect(calculateLocalChanges([failedOver], nodes(true), both, ctxB)).toEqual([
      { kind: 'mount', datasetId: D, mountPath: PATH },
    ]);
  });
});
