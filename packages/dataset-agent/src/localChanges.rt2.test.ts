/**
 * Review RT2 (session 15), finding 2 (failed on d6b918d): the data-node marker read where the primary holds
 * an unmounted copy (markedElsewhere, 6183c67) refuses even where the marked node is in the view, alive,
 * holding no live copy of the dataset (it retired its copy: the move completed). The marker is removed
 * (8ce465a markersToSettle) only once the primary reports the dataset mounted: a primary whose promoted copy
 * lost its mount (a reboot) before that, written since (sameAs null), is refused for ever
 * (SOURCE_UNREACHABLE, "has not reported it ... restarted? dead?" about a node that reported), and the
 * marker never goes (no "mounted" report): a deadlock only accept-data-loss ends. The same for any marker a
 * service before 8ce465a left (compatibility.md calls those harmless).
 */
import { calculateLocalChanges, type CopyLineage, type LocalClusterNode } from './localChanges';

const A = '11111111-1111-4111-8111-111111111111';
const B = '22222222-2222-4222-8222-222222222222';
const D = '33333333-3333-4333-8333-333333333333';
const ctxB = { nodeUuid: B, mountRoot: '/flocker', defaultSize: 1000 };

describe('the primary, its promoted copy unmounted (a reboot), the marker naming the old source that reported', () => {
  // A -> B completed: B's copy promoted from A's final snapshot F, mounted, written (sameAs null), A retired
  // its copy and reported so; B rebooted before its "mounted" report settled the marker.
  const d = { datasetId: D, primary: B, maximumSize: 1000, deleted: false, dataNode: A };
  const bLineage: CopyLineage = { from: 'F', sameAs: null, snapshots: ['F'] };
  const here = {
    copies: [{ datasetId: D, size: 1000, mountPoints: [] as string[] }],
    moving: new Set<string>(),
    lineages: new Map([[D, new Map([[B, bLineage]])]]),
  };

  it('A is in the view, alive, listing no live copy of the dataset: B mounts its copy (the only one)', () => {
    const nodes: LocalClusterNode[] = [
      { uuid: A, host: 'a', alive: true, copies: [] },
      { uuid: B, host: 'b', alive: true, copies: [D] },
    ];
    expect(calculateLocalChanges([d], nodes, here, ctxB)).toEqual([
      { kind: 'mount', datasetId: D, mountPath: `/flocker/${D}` },
    ]);
  });

  it('the same with A a peer of the local view (copies counted, not listed: not a holder of the dataset)', () => {
    const nodes: LocalClusterNode[] = [
      { uuid: A, host: 'a', alive: true, copies: [], copyCount: 16 },
      { uuid: B, host: 'b', alive: true, copies: [D] },
    ];
    expect(calculateLocalChanges([d], nodes, here, ctxB)).toEqual([
      { kind: 'mount', datasetId: D, mountPath: `/flocker/${D}` },
    ]);
  });
});
