/**
 * Review RL (session 14): with the data-node marker naming A and no holder shown, a replica here
 * with accept-replica-loss was promoted "as for a dead holder". But a node not shown is not known
 * dead: after a control-service restart, A (alive, the primary until this move, holding the newest
 * data) has not reported yet. The standing opt-in (a move off a DEAD primary may promote the
 * replica) then promoted a replica up to one interval old while A was alive; once A reported, A
 * retired its copy (btrfs: deleted) and the writes after the replica's snapshot were gone. Now the
 * promote needs accept-data-loss as well.
 */
import { calculateLocalChanges, type LocalClusterNode } from './localChanges';
import { A, B, D, ctxB as ctx, failedOverToB } from './localChangesTestSupport';

const dataset = { ...failedOverToB, dataNode: A };
const here = {
  copies: [],
  moving: new Set<string>(),
  retained: new Set([D]),
  replicaHere: new Map([[D, 'move-000007']]),
};

describe('the marker names a node not shown holding a copy; a replica here with accept-replica-loss', () => {
  const cases: Array<[string, LocalClusterNode[]]> = [
    [
      'A not in the view at all (its state not reported since the service restarted)',
      [{ uuid: B, host: 'b', alive: true, copies: [] }],
    ],
    [
      'A shown alive, its copies not reported yet',
      [
        { uuid: A, host: 'a', alive: true, copies: [] },
        { uuid: B, host: 'b', alive: true, copies: [] },
      ],
    ],
  ];
  for (const [name, nodes] of cases)
    it(`${name}: the replica is not promoted (A is not known dead)`, () => {
      const kinds = calculateLocalChanges([dataset], nodes, here, ctx).map((x) => x.kind);
      expect(kinds).not.toContain('promoteReplica');
    });
  it('with accept-data-loss as well (the user accepts that A may hold newer writes): the replica is promoted', () => {
    const both = { ...dataset, acceptDataLoss: true };
    const kinds = calculateLocalChanges([both], [{ uuid: B, host: 'b', alive: true, copies: [] }], here, ctx).map(
      (x) => x.kind,
    );
    expect(kinds).toEqual(['promoteReplica']);
  });
});
