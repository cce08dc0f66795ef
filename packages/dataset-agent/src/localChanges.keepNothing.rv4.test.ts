/**
 * Review RV4 finding 4 (session 17): keep_source_snapshots 0 and a kill -9 between the move's retire
 * (the live copy gone) and its destroy: this node's own move snapshots (or ZFS's retired file system)
 * stayed for ever. Now destroyed once nothing here can be wanted; copies kept aside stay.
 */
import { calculateLocalChanges, type LocalClusterNode, type LocalDesiredDataset } from './localChanges';
import { A, B, ctxA, D } from './localChangesTestSupport';

const movedToB: LocalDesiredDataset = { datasetId: D, primary: B, maximumSize: 1000, deleted: false };
const bHolds: LocalClusterNode[] = [
  { uuid: A, host: 'a', alive: true, copies: [] },
  { uuid: B, host: 'b', alive: true, copies: [D] },
];
/** A after the kill: no live copy, its own snapshots of D kept (not received: receivedOnly does not name it). */
const leftover = { copies: [], moving: new Set<string>(), retained: new Set([D]) };
const keep0 = { ...ctxA, keepSourceSnapshots: 0 };

describe('keep_source_snapshots 0: what a move killed between its retire and its destroy left', () => {
  it('destroyed (copies kept aside stay) once B, the primary, is alive with its live copy', () => {
    expect(calculateLocalChanges([movedToB], bHolds, leftover, keep0)).toEqual([
      { kind: 'destroy', datasetId: D, keepAsides: true },
    ]);
  });

  it('kept: keep_source_snapshots 1 or absent (the base of a move back), a move still running here, the primary dead or without its copy, a replica named here', () => {
    expect(calculateLocalChanges([movedToB], bHolds, leftover, ctxA)).toEqual([]);
    expect(calculateLocalChanges([movedToB], bHolds, leftover, { ...ctxA, keepSourceSnapshots: 1 })).toEqual([]);
    expect(calculateLocalChanges([movedToB], bHolds, { ...leftover, moving: new Set([D]) }, keep0)).toEqual([]);
    const bDead = bHolds.map((n) => (n.uuid === B ? { ...n, alive: false } : n));
    expect(calculateLocalChanges([movedToB], bDead, leftover, keep0)).toEqual([]);
    const bEmpty = bHolds.map((n) => (n.uuid === B ? { ...n, copies: [] } : n));
    expect(calculateLocalChanges([movedToB], bEmpty, leftover, keep0)).toEqual([]);
    const named = bHolds.map((n) => (n.uuid === A ? { ...n, replicaOf: [D] } : n));
    expect(calculateLocalChanges([{ ...movedToB, replicas: 1 }], named, leftover, keep0)).toEqual([]);
    expect(
      calculateLocalChanges([movedToB], bHolds, { ...leftover, replicaHere: new Map([[D, 'move-000002']]) }, keep0),
    ).toEqual([]);
  });
});
