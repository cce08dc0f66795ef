import {
  calculateLocalChanges,
  REPLICA_ROUND_FOLLOW_MAX_MS,
  REPLICA_ROUND_IDLE_MS,
  replicaRoundRecheckMs,
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

  it('moved to B (alive), the round’s progress not known: stopped, then the move (no move while it runs)', () => {
    expect(calculateLocalChanges(desired(B, false), nodes(), observe(copies.mounted, true), ctx)).toEqual([
      { kind: 'stopReplica', datasetId: D },
    ]);
    expect(calculateLocalChanges(desired(B, false), nodes(), observe(copies.mounted, false), ctx)).toMatchObject([
      { kind: 'moveOut', datasetId: D, to: { uuid: B } },
    ]);
  });

  /**
   * Review B10: the round to B is the move's first send (the move sends from the newest snapshot
   * both hold): kept on while it moves bytes, then the move. Review F10: only while it moves (a
   * stalled receive must not block the move for good), and for a bounded time after the change.
   */
  describe('moved to B, the round’s receiver (clock: the agent’s, injected)', () => {
    const t0 = 5_000_000;
    const withRound = (round: { movedAt: number; primaryGoneAt?: number }): LocalObservation => ({
      ...observe(copies.mounted, true),
      replicaRounds: new Map([[D, round]]),
    });
    const at = (clockNow: number): typeof ctx & { clockNow: number } => ({ ...ctx, clockNow });

    it('moving (bytes within the idle bound): runs on, nothing else; the move once it has ended', () => {
      expect(
        calculateLocalChanges(
          desired(B, false),
          nodes(),
          withRound({ movedAt: t0, primaryGoneAt: t0 }),
          at(t0 + 1_000),
        ),
      ).toEqual([]);
      expect(
        calculateLocalChanges(
          desired(B, false),
          nodes(),
          withRound({ movedAt: t0 + 600_000, primaryGoneAt: t0 }),
          at(t0 + 600_000 + REPLICA_ROUND_IDLE_MS - 1),
        ),
      ).toEqual([]);
      expect(calculateLocalChanges(desired(B, false), nodes(), observe(copies.mounted, false), at(t0))).toMatchObject([
        { kind: 'moveOut', datasetId: D, to: { uuid: B } },
      ]);
    });

    it('stalled (nothing moved for the idle bound): stopped, so the move can start', () => {
      expect(
        calculateLocalChanges(
          desired(B, false),
          nodes(),
          withRound({ movedAt: t0, primaryGoneAt: t0 }),
          at(t0 + REPLICA_ROUND_IDLE_MS),
        ),
      ).toEqual([{ kind: 'stopReplica', datasetId: D }]);
    });

    it('still moving past the follow bound after the primary change: stopped', () => {
      const gone = t0;
      const now = gone + REPLICA_ROUND_FOLLOW_MAX_MS;
      expect(
        calculateLocalChanges(
          desired(B, false),
          nodes(),
          withRound({ movedAt: now - 10, primaryGoneAt: gone }),
          at(now),
        ),
      ).toEqual([{ kind: 'stopReplica', datasetId: D }]);
    });

    it('B dead, B holding a live copy, or the round to another node (C): stopped though moving', () => {
      const C = '44444444-4444-4444-8444-444444444444';
      const moving = withRound({ movedAt: t0, primaryGoneAt: t0 });
      const dead = nodes().map((n) => (n.uuid === B ? { ...n, alive: false } : n));
      expect(calculateLocalChanges(desired(B, false), dead, moving, at(t0))).toEqual([
        { kind: 'stopReplica', datasetId: D },
      ]);
      expect(calculateLocalChanges(desired(B, false), nodes([D]), moving, at(t0))).toEqual([
        { kind: 'stopReplica', datasetId: D },
      ]);
      const toC = { ...moving, replicaRecords: new Map([[D, { node: C, takenAt: 0 }]]) };
      expect(calculateLocalChanges(desired(B, false), nodes(), toC, at(t0))).toEqual([
        { kind: 'stopReplica', datasetId: D },
      ]);
    });

    it('deleted meanwhile: stopped though moving', () => {
      expect(
        calculateLocalChanges(desired(B, true), nodes(), withRound({ movedAt: t0, primaryGoneAt: t0 }), at(t0)),
      ).toEqual([{ kind: 'stopReplica', datasetId: D }]);
    });

    it('replicaRoundRecheckMs: the agent looks again when the idle or the follow bound passes', () => {
      expect(replicaRoundRecheckMs(withRound({ movedAt: t0 }), at(t0))).toBeUndefined();
      expect(replicaRoundRecheckMs(withRound({ movedAt: t0, primaryGoneAt: t0 }), at(t0 + 1_000))).toBe(
        REPLICA_ROUND_IDLE_MS - 1_000,
      );
      const late = t0 + REPLICA_ROUND_FOLLOW_MAX_MS - 5;
      expect(replicaRoundRecheckMs(withRound({ movedAt: late, primaryGoneAt: t0 }), at(late))).toBe(5);
      expect(replicaRoundRecheckMs(withRound({ movedAt: t0, primaryGoneAt: t0 }), at(t0 + 99_999_999))).toBe(0);
    });
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
