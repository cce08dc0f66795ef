/**
 * Session 15, user U's reproductions (issue 24, local storage):
 * 2. A failover to the standby replica (accept-replica-loss), then the dead old primary A back: its
 *    copy (writes after the replica's snapshot) still mounted at its path. It is let go of (the
 *    storage-drivers README: "the dead node's copy is let go of if it comes back"), its writes kept
 *    aside first (retire keepAside); the new primary never sends its replica to a node holding a live
 *    copy of the dataset; a refusal over two live copies says truly whether this node's copy is mounted.
 * 3. A dataset deleted while its move away runs: the move is stopped at once (stopMove), not waited for.
 */
import {
  calculateLocalChanges,
  chooseReplicaNode,
  mayReceiveFrom,
  type CopyLineage,
  type LocalClusterNode,
  type LocalDesiredDataset,
  type LocalObservation,
} from './localChanges';
import {
  A,
  B,
  C,
  D,
  PATH as PATH_A,
  ctxA,
  ctxBNow as ctxB,
  failedOverToB as failedOver,
} from './localChangesTestSupport';

// failedOver: B primary, its replica R1 (of A's copy) promoted with the opt-in. A back: its copy made there, written after R1.
const aBranched: CopyLineage = { from: null, sameAs: null, snapshots: ['R1'] };
const bPromoted: CopyLineage = { from: 'R1', sameAs: null, snapshots: ['R1'] };
const nodes = (aAlive = true, aCopy = true): LocalClusterNode[] => [
  { uuid: A, host: 'a', alive: aAlive, copies: aCopy ? [D] : [] },
  { uuid: B, host: 'b', alive: true, copies: [D] },
];
const lineages = (a?: CopyLineage, b?: CopyLineage): LocalObservation['lineages'] =>
  new Map([
    [D, new Map([...(a !== undefined ? [[A, a] as const] : []), ...(b !== undefined ? [[B, b] as const] : [])])],
  ]);
const onA = (mountPoints: string[], l?: LocalObservation['lineages']): LocalObservation => ({
  copies: [{ datasetId: D, size: 1000, mountPoints }],
  moving: new Set(),
  retained: new Set([D]),
  ...(l !== undefined ? { lineages: l } : {}),
});

describe('the old primary back after a failover to its replica', () => {
  it('its copy still mounted: unmounted first, then retired with its writes kept aside', () => {
    expect(calculateLocalChanges([failedOver], nodes(), onA([PATH_A], lineages(aBranched, bPromoted)), ctxA)).toEqual([
      { kind: 'unmount', datasetId: D, mountPath: PATH_A },
    ]);
    expect(calculateLocalChanges([failedOver], nodes(), onA([], lineages(aBranched, bPromoted)), ctxA)).toEqual([
      { kind: 'retire', datasetId: D, keepAside: true },
    ]);
  });

  it('an older or equal copy (nothing of it missing on B) is retired without keeping it aside', () => {
    const aOld: CopyLineage = { from: null, sameAs: 'R1', snapshots: ['R1'] };
    expect(calculateLocalChanges([failedOver], nodes(), onA([], lineages(aOld, bPromoted)), ctxA)).toEqual([
      { kind: 'retire', datasetId: D, unchangedSince: 'R1' },
    ]);
  });

  it('the order not known: refused, and the message says the copy stays mounted where it is (not "neither is mounted")', () => {
    const [mounted] = calculateLocalChanges([failedOver], nodes(), onA([PATH_A], lineages(aBranched)), ctxA);
    expect(mounted).toMatchObject({ kind: 'refuse', code: 'TWO_LIVE_COPIES' });
    const text = mounted?.kind === 'refuse' ? mounted.message : '';
    expect(text).toContain(`still mounted at ${PATH_A}`);
    expect(text).not.toMatch(/neither is mounted/);
    const [unmounted] = calculateLocalChanges([failedOver], nodes(), onA([], lineages(aBranched)), ctxA);
    const text2 = unmounted?.kind === 'refuse' ? unmounted.message : '';
    expect(text2).toContain('(not mounted)');
    expect(text2).toContain('neither copy is retired');
  });

  it('the primary (its copy not mounted) refusing over a copy elsewhere says its own copy is not mounted', () => {
    const onB: LocalObservation = { copies: [{ datasetId: D, size: 1000, mountPoints: [] }], moving: new Set() };
    const [action] = calculateLocalChanges([failedOver], nodes(), onB, ctxB);
    expect(action).toMatchObject({ kind: 'refuse', code: 'TWO_LIVE_COPIES' });
    expect(action?.kind === 'refuse' ? action.message : '').toContain("this node's copy stays as it is (not mounted)");
  });

  it('the new primary does not send its replica to a node holding a live copy of the dataset; once let go of, it does', () => {
    const onB: LocalObservation = {
      copies: [{ datasetId: D, size: 1000, mountPoints: [`/flocker/${D}`] }],
      moving: new Set(),
    };
    expect(calculateLocalChanges([failedOver], nodes(), onB, ctxB)).toEqual([]);
    expect(chooseReplicaNode(D, A, nodes(), B)).toBeUndefined();
    expect(calculateLocalChanges([failedOver], nodes(true, false), onB, ctxB)).toEqual([
      { kind: 'replicate', datasetId: D, to: { uuid: A, host: 'a' } },
    ]);
    // A's listener refuses such a round meanwhile (a view B decided on before A's copy showed); a move in is not refused here.
    const whole = {
      datasets: [
        {
          dataset_id: D,
          primary: B,
          deleted: false,
          metadata: { 'clusterhq:flocker:replicas': '1' },
        },
      ],
    } as unknown as Parameters<typeof mayReceiveFrom>[0];
    expect(mayReceiveFrom(whole, A, D, B, false)).toBe(true);
    expect(mayReceiveFrom(whole, A, D, B, true)).toBe(false);
    expect(mayReceiveFrom(whole, B, D, A, true)).toBe(true);
    // Another node free of it: that one.
    const three = [...nodes(), { uuid: C, host: 'c', alive: true, copies: [] }];
    expect(chooseReplicaNode(D, undefined, three, B)?.uuid).toBe(C);
  });
});

describe('a dataset deleted while its move away runs', () => {
  const deleted: LocalDesiredDataset = { datasetId: D, primary: B, maximumSize: 1000, deleted: true };
  it('the move is stopped at once (not waited for), then the copy unmounted and destroyed', () => {
    const moving: LocalObservation = {
      copies: [{ datasetId: D, size: 1000, mountPoints: [PATH_A] }],
      moving: new Set([D]),
    };
    expect(calculateLocalChanges([deleted], nodes(), moving, ctxA)).toEqual([{ kind: 'stopMove', datasetId: D }]);
    expect(calculateLocalChanges([deleted], nodes(), { ...moving, moving: new Set() }, ctxA)).toEqual([
      { kind: 'unmount', datasetId: D, mountPath: PATH_A },
    ]);
  });

  it('nothing live here any more (the mover retired it and is ending by itself): waited for; then what is retained is destroyed', () => {
    const retained: LocalObservation = { copies: [], moving: new Set([D]), retained: new Set([D]) };
    expect(calculateLocalChanges([deleted], nodes(), retained, ctxA)).toEqual([]);
    expect(calculateLocalChanges([deleted], nodes(), { ...retained, moving: new Set() }, ctxA)).toEqual([
      { kind: 'destroy', datasetId: D },
    ]);
  });
});
