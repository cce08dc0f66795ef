import {
  calculateLocalChanges,
  type LocalClusterNode,
  type LocalDesiredDataset,
  type LocalObservation,
} from './localChanges';

/**
 * A replica round running for a dataset deleted, or no longer this node's (s26 REPLSTOP-F): the
 * round is stopped (its send cut off) and nothing else is done for the dataset until it has ended;
 * the destroy or the move follows.
 */
const ME = '11111111-1111-4111-8111-111111111111';
const B = '22222222-2222-4222-8222-222222222222';
const D = '33333333-3333-4333-8333-333333333333';
const ctx = { nodeUuid: ME, mountRoot: '/flocker', defaultSize: 1000, now: 100_000 };
const PATH = `/flocker/${D}`;
const nodes = (bCopies: string[] = []): LocalClusterNode[] => [
  { uuid: ME, host: '10.0.0.1', alive: true, copies: [D] },
  { uuid: B, host: '10.0.0.2', alive: true, copies: bCopies },
];
const desired = (primary: string, deleted: boolean): LocalDesiredDataset[] => [
  { datasetId: D, primary, maximumSize: 2000, deleted, replicas: 1 },
];

describe('stopReplica: a replica round of a dataset deleted or no longer this node’s', () => {
  const copies = {
    mounted: [{ datasetId: D, size: 2000, mountPoints: [PATH] }],
    unmounted: [{ datasetId: D, size: 2000, mountPoints: [] }],
    inContainer: [{ datasetId: D, size: 2000, mountPoints: [PATH, '/var/lib/c/x'] }],
  };
  const observe = (c: LocalObservation['copies'], replicating: boolean): LocalObservation => ({
    copies: c,
    moving: new Set(),
    replicaRecords: new Map([[D, { node: B, takenAt: 0 }]]),
    ...(replicating ? { replicating: new Set([D]) } : {}),
  });

  it.each(Object.entries(copies))(
    'deleted, the copy %s: stopped while the round runs, then unmounted/destroyed',
    (_, c) => {
      expect(calculateLocalChanges(desired(ME, true), nodes(), observe(c, true), ctx)).toEqual([
        { kind: 'stopReplica', datasetId: D },
      ]);
      const [after] = calculateLocalChanges(desired(ME, true), nodes(), observe(c, false), ctx);
      expect(after?.kind).toBe(c[0]!.mountPoints.length > 0 ? 'unmount' : 'destroy');
    },
  );

  it('moved to B (alive): stopped, then the move (no move while it runs)', () => {
    expect(calculateLocalChanges(desired(B, false), nodes(), observe(copies.mounted, true), ctx)).toEqual([
      { kind: 'stopReplica', datasetId: D },
    ]);
    expect(calculateLocalChanges(desired(B, false), nodes(), observe(copies.mounted, false), ctx)).toMatchObject([
      { kind: 'moveOut', datasetId: D, to: { uuid: B } },
    ]);
  });

  it('moved to a dead node, or to B holding a live copy too: stopped the same (the round touches the snapshots compared)', () => {
    const dead = nodes().map((n) => (n.uuid === B ? { ...n, alive: false } : n));
    expect(calculateLocalChanges(desired(B, false), dead, observe(copies.mounted, true), ctx)).toEqual([
      { kind: 'stopReplica', datasetId: D },
    ]);
    expect(calculateLocalChanges(desired(B, false), nodes([D]), observe(copies.mounted, true), ctx)).toEqual([
      { kind: 'stopReplica', datasetId: D },
    ]);
  });

  it('still this node’s and wanted: never stopped (the round runs on; no new one while it does)', () => {
    for (const c of Object.values(copies))
      expect(
        calculateLocalChanges(desired(ME, false), nodes(), observe(c, true), ctx).filter(
          (a) => a.kind === 'stopReplica' || a.kind === 'replicate',
        ),
      ).toEqual([]);
  });

  it('no round running: never a stopReplica, whatever the dataset', () => {
    for (const primary of [ME, B])
      for (const deleted of [false, true])
        for (const c of Object.values(copies))
          expect(
            calculateLocalChanges(desired(primary, deleted), nodes(), observe(c, false), ctx).some(
              (a) => a.kind === 'stopReplica',
            ),
          ).toBe(false);
  });
});
