/**
 * The history both review files of two live copies start from (localChanges.lineageOrder.test,
 * localChanges.review.test): the dataset D moved B -> A, then A -> B with A killed after B's promote;
 * A's copy from P, B's from F (A's final snapshot), both unmounted, both nodes alive listing D.
 */
import type { CopyLineage, LocalClusterNode, LocalDesiredDataset } from './localChanges';

export const A = '11111111-1111-4111-8111-111111111111';
export const B = '22222222-2222-4222-8222-222222222222';
export const D = '33333333-3333-4333-8333-333333333333';
/** A third node (not holding D). */
export const C = '44444444-4444-4444-8444-444444444444';
/** D's mount path on every node (mountRoot /flocker). */
export const PATH = `/flocker/${D}`;
export const ctxA = { nodeUuid: A, mountRoot: '/flocker', defaultSize: 1000 };
export const ctxB = { nodeUuid: B, mountRoot: '/flocker', defaultSize: 1000 };
/** ctxB at a fixed clock (the failover files' grace periods are measured from it). */
export const ctxBNow = { ...ctxB, now: 100_000 };

/** D failed over to B: its standby replica promoted with accept-replica-loss (localChanges.deadHolder, .failoverReturn). */
export const failedOverToB: LocalDesiredDataset = {
  datasetId: D,
  primary: B,
  maximumSize: 1000,
  deleted: false,
  replicas: 1,
  acceptReplicaLoss: true,
};
export const nodes: LocalClusterNode[] = [
  { uuid: A, host: 'a', alive: true, copies: [D] },
  { uuid: B, host: 'b', alive: true, copies: [D] },
];

// Oldest first, as the engines list them.
export const aCopy: CopyLineage = { from: 'P', sameAs: null, snapshots: ['P', 'F'] };
export const bCopy: CopyLineage = { from: 'F', sameAs: null, snapshots: ['P', 'F'] };
export const lineages = new Map([
  [
    D,
    new Map([
      [A, aCopy],
      [B, bCopy],
    ]),
  ],
]);
export const unmounted = {
  copies: [{ datasetId: D, size: 1000, mountPoints: [] as string[] }],
  moving: new Set<string>(),
  lineages,
};
