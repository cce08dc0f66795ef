import {
  calculateLocalChanges,
  chooseReplicaNode,
  failureSteps,
  replicaSettings,
  replicaStep,
  type LocalAction,
  type LocalClusterNode,
  type LocalDesiredDataset,
  type LocalObservation,
} from './localChanges';

const ME = '11111111-1111-4111-8111-111111111111';
const B = '22222222-2222-4222-8222-222222222222';
const D = '33333333-3333-4333-8333-333333333333';
const ctx = { nodeUuid: ME, mountRoot: '/flocker', defaultSize: 1000 };
const PATH = `/flocker/${D}`;

const node = (uuid: string, alive: boolean, copies: string[] = []): LocalClusterNode => ({
  uuid,
  host: uuid === B ? '10.0.0.2' : '10.0.0.1',
  alive,
  copies,
});
const here = (copies: LocalObservation['copies'] = [], moving: string[] = []): LocalObservation => ({
  copies,
  moving: new Set(moving),
});
const dataset = (primary: string, extra: { deleted?: boolean; maximumSize?: number | null } = {}) => [
  {
    datasetId: D,
    primary,
    maximumSize: extra.maximumSize === undefined ? 2000 : extra.maximumSize,
    deleted: extra.deleted ?? false,
  },
];

describe('decisions of an agent with a local backend', () => {
  it('a new dataset for this node: created here, then mounted, then nothing', () => {
    const nodes = [node(ME, true), node(B, true)];
    expect(calculateLocalChanges(dataset(ME), nodes, here(), ctx)).toEqual([
      { kind: 'create', datasetId: D, size: 2000, mountPath: PATH },
    ]);
    expect(
      calculateLocalChanges(dataset(ME), nodes, here([{ datasetId: D, size: 2000, mountPoints: [] }]), ctx),
    ).toEqual([{ kind: 'mount', datasetId: D, mountPath: PATH }]);
    expect(
      calculateLocalChanges(dataset(ME), nodes, here([{ datasetId: D, size: 2000, mountPoints: [PATH] }]), ctx),
    ).toEqual([]);
  });

  it('grows the limit when the configured size grows (never shrinks it)', () => {
    const nodes = [node(ME, true)];
    const copy = { datasetId: D, size: 1000, mountPoints: [PATH] };
    expect(calculateLocalChanges(dataset(ME), nodes, here([copy]), ctx)).toEqual([
      { kind: 'resize', datasetId: D, size: 2000 },
    ]);
    expect(calculateLocalChanges(dataset(ME, { maximumSize: 500 }), nodes, here([copy]), ctx)).toEqual([]);
  });

  it('moved here while another live node holds the copy: wait for it (never a blank one)', () => {
    expect(calculateLocalChanges(dataset(ME), [node(ME, true), node(B, true, [D])], here(), ctx)).toEqual([]);
  });

  it('moved here while the only copy is on a dead node: refused, naming the node', () => {
    const [action] = calculateLocalChanges(dataset(ME), [node(ME, true), node(B, false, [D])], here(), ctx);
    expect(action).toMatchObject({ kind: 'refuse', code: 'SOURCE_UNREACHABLE' });
    expect(action?.kind === 'refuse' && action.message).toContain(B);
  });

  it('moved away: push the copy to the new primary, then unmount the host path while it moves', () => {
    const nodes = [node(ME, true, [D]), node(B, true)];
    const copy = { datasetId: D, size: 2000, mountPoints: [PATH] };
    expect(calculateLocalChanges(dataset(B), nodes, here([copy]), ctx)).toEqual([
      { kind: 'moveOut', datasetId: D, to: { uuid: B, host: '10.0.0.2' }, size: 2000 },
    ]);
    expect(calculateLocalChanges(dataset(B), nodes, here([copy], [D]), ctx)).toEqual([
      { kind: 'unmount', datasetId: D, mountPath: PATH },
    ]);
    expect(calculateLocalChanges(dataset(B), nodes, here([{ ...copy, mountPoints: [] }], [D]), ctx)).toEqual([]);
  });

  it('the new primary holds its copy already (a mover killed after the promote): ours is let go of, not sent again', () => {
    const nodes = [node(ME, true, [D]), node(B, true, [D])];
    const copy = { datasetId: D, size: 2000, mountPoints: [PATH] };
    // B's copy is made from this node's final snapshot S1, this one unchanged since (localChanges.twoLiveCopies.test).
    const lineages = new Map([
      [
        D,
        new Map([
          [ME, { from: null, sameAs: 'S1', snapshots: ['S1'] }],
          [B, { from: 'S1', sameAs: null, snapshots: ['S1'] }],
        ]),
      ],
    ]);
    const known = (c: LocalObservation['copies']): LocalObservation => ({ ...here(c), lineages });
    expect(calculateLocalChanges(dataset(B), nodes, known([copy]), ctx)).toEqual([
      { kind: 'unmount', datasetId: D, mountPath: PATH },
    ]);
    expect(calculateLocalChanges(dataset(B), nodes, known([{ ...copy, mountPoints: [] }]), ctx)).toEqual([
      { kind: 'retire', datasetId: D, unchangedSince: 'S1' },
    ]);
    // The new primary dead (not asked: its lineage unknown): nothing touched, refused.
    expect(
      calculateLocalChanges(
        dataset(B),
        [node(ME, true, [D]), node(B, false, [D])],
        here([{ ...copy, mountPoints: [] }]),
        ctx,
      ),
    ).toEqual([expect.objectContaining({ kind: 'refuse', code: 'TWO_LIVE_COPIES' })]);
  });

  it('moved back here while the move away runs: taken back', () => {
    const copy = { datasetId: D, size: 2000, mountPoints: [] };
    expect(calculateLocalChanges(dataset(ME), [node(ME, true, [D]), node(B, true)], here([copy], [D]), ctx)).toEqual([
      { kind: 'cancelMove', datasetId: D },
    ]);
  });

  it('moved to a dead node: the copy stays here, nothing sent', () => {
    const copy = { datasetId: D, size: 2000, mountPoints: [PATH] };
    expect(calculateLocalChanges(dataset(B), [node(ME, true, [D]), node(B, false)], here([copy]), ctx)).toEqual([]);
  });

  it('deleted: unmounted, then destroyed; a move of it running is stopped first', () => {
    const nodes = [node(ME, true, [D])];
    const mounted = { datasetId: D, size: 2000, mountPoints: [PATH] };
    expect(calculateLocalChanges(dataset(ME, { deleted: true }), nodes, here([mounted]), ctx)).toEqual([
      { kind: 'unmount', datasetId: D, mountPath: PATH },
    ]);
    expect(
      calculateLocalChanges(dataset(ME, { deleted: true }), nodes, here([{ ...mounted, mountPoints: [] }]), ctx),
    ).toEqual([{ kind: 'destroy', datasetId: D }]);
    // A move of it running: stopped at once (the target refuses a deleted dataset's data; the mover would only retry).
    expect(calculateLocalChanges(dataset(ME, { deleted: true }), nodes, here([mounted], [D]), ctx)).toEqual([
      { kind: 'stopMove', datasetId: D },
    ]);
    expect(calculateLocalChanges(dataset(ME, { deleted: true }), nodes, here(), ctx)).toEqual([]);
    // What a move away left here (its final snapshot) goes with the dataset.
    expect(
      calculateLocalChanges(dataset(B, { deleted: true }), nodes, { ...here(), retained: new Set([D]) }, ctx),
    ).toEqual([{ kind: 'destroy', datasetId: D }]);
  });

  it('the default size for a dataset without maximum_size', () => {
    expect(calculateLocalChanges(dataset(ME, { maximumSize: null }), [node(ME, true)], here(), ctx)).toEqual([
      { kind: 'create', datasetId: D, size: 1000, mountPath: PATH },
    ]);
  });
});

describe('standby replicas (replicas: 1)', () => {
  const C = '44444444-4444-4444-8444-444444444444';
  const E = '55555555-5555-4555-8555-555555555555';
  const replicated = (primary: string, extra: Partial<LocalDesiredDataset> = {}): LocalDesiredDataset[] => [
    { datasetId: D, primary, maximumSize: 2000, deleted: false, replicas: 1, ...extra },
  ];
  const mounted = { datasetId: D, size: 2000, mountPoints: [PATH] };
  const at = { ...ctx, now: 100_000 };
  /** n datasets' copies (a load). */
  const many = (n: number): string[] => Array.from({ length: n }, (_, i) => `x${i}`);
  const cNode = (alive: boolean, copies: string[] = [], replicaOf: string[] = []): LocalClusterNode => ({
    uuid: C,
    host: '10.0.0.3',
    alive,
    copies,
    replicaOf,
  });

  it('the primary sends its first replica snapshot at once, to the least-loaded other live node', () => {
    // Copies count in steps of 16 (@flocker/api peerCopies): 17 is more than 1.
    const nodes = [node(ME, true, [D]), node(B, true, many(17)), cNode(true, ['z'])];
    expect(calculateLocalChanges(replicated(ME), nodes, here([mounted]), at)).toEqual([
      { kind: 'replicate', datasetId: D, to: { uuid: C, host: '10.0.0.3' } },
    ]);
    // Not without replicas: 1, nor while a replica snapshot is on its way, nor before the copy is mounted.
    expect(calculateLocalChanges(dataset(ME), nodes, here([mounted]), at)).toEqual([]);
    expect(calculateLocalChanges(replicated(ME), nodes, { ...here([mounted]), replicating: new Set([D]) }, at)).toEqual(
      [],
    );
    expect(calculateLocalChanges(replicated(ME), nodes, here([{ ...mounted, mountPoints: [] }]), at)).toEqual([
      { kind: 'mount', datasetId: D, mountPath: PATH },
    ]);
    // No other live node: no replica (nothing to do).
    expect(calculateLocalChanges(replicated(ME), [node(ME, true, [D]), node(B, false)], here([mounted]), at)).toEqual(
      [],
    );
  });

  it("then every interval (the dataset's, else the agent's, else 30 s), to the recorded node while it is alive", () => {
    const nodes = [node(ME, true, [D]), node(B, true, ['x', 'y']), cNode(true)];
    const recorded = (takenAt: number, replicaNode = B): LocalObservation => ({
      ...here([mounted]),
      replicaRecords: new Map([[D, { node: replicaNode, takenAt }]]),
    });
    // B is busier than C, but recorded: it stays.
    expect(calculateLocalChanges(replicated(ME), nodes, recorded(100_000 - 29_999), at)).toEqual([]);
    expect(calculateLocalChanges(replicated(ME), nodes, recorded(100_000 - 30_000), at)).toEqual([
      { kind: 'replicate', datasetId: D, to: { uuid: B, host: '10.0.0.2' } },
    ]);
    expect(
      calculateLocalChanges(replicated(ME, { replicaIntervalMs: 5_000 }), nodes, recorded(100_000 - 5_000), at),
    ).toHaveLength(1);
    expect(
      calculateLocalChanges(replicated(ME), nodes, recorded(100_000 - 10_000), { ...at, replicaIntervalMs: 10_000 }),
    ).toHaveLength(1);
    // The recorded node died: a new one (C) at once, whatever the time.
    expect(
      calculateLocalChanges(
        replicated(ME),
        [node(ME, true, [D]), node(B, false), cNode(true)],
        recorded(100_000 - 1_000),
        at,
      ),
    ).toEqual([{ kind: 'replicate', datasetId: D, to: { uuid: C, host: '10.0.0.3' } }]);
  });

  it('the replica node is chosen deterministically: fewest copies and replicas, then the lowest uuid; never itself', () => {
    const e = (alive: boolean, copies: string[] = []): LocalClusterNode => ({ uuid: E, host: 'e', alive, copies });
    expect(chooseReplicaNode(D, undefined, [node(ME, true), e(true), cNode(true)], ME)?.uuid).toBe(C);
    expect(chooseReplicaNode(D, undefined, [node(ME, true), e(true), cNode(true, [], ['a', 'b'])], ME)?.uuid).toBe(E);
    // The dataset's own replica does not count against the node that holds it.
    expect(chooseReplicaNode(D, undefined, [node(ME, true), e(true, ['a']), cNode(true, [], [D])], ME)?.uuid).toBe(C);
    expect(chooseReplicaNode(D, ME, [node(ME, true)], ME)).toBeUndefined();
    expect(chooseReplicaNode(D, E, [node(ME, true), e(true, ['a', 'b']), cNode(true)], ME)?.uuid).toBe(E);
    // Copies count in steps of 16 (a peer's entry shows no more): 15 copies weigh as 0, 16 as 16; replicas count one by one.
    expect(chooseReplicaNode(D, undefined, [node(ME, true), e(true), cNode(true, many(15))], ME)?.uuid).toBe(C);
    expect(chooseReplicaNode(D, undefined, [node(ME, true), e(true), cNode(true, many(16))], ME)?.uuid).toBe(E);
    expect(chooseReplicaNode(D, undefined, [node(ME, true), e(true, many(15)), cNode(true, [], ['a'])], ME)?.uuid).toBe(
      E,
    );
    expect(
      chooseReplicaNode(D, undefined, [node(ME, true), { ...e(true), copyCount: 16 }, cNode(true, many(31))], ME)?.uuid,
    ).toBe(C);
  });

  it('a move off a live primary to any node stops a replica snapshot being sent, and starts once it has ended', () => {
    const nodes = [node(ME, true, [D]), node(B, true)];
    expect(calculateLocalChanges(dataset(B), nodes, { ...here([mounted]), replicating: new Set([D]) }, ctx)).toEqual([
      { kind: 'stopReplica', datasetId: D },
    ]);
    expect(calculateLocalChanges(dataset(B), nodes, here([mounted]), ctx)).toMatchObject([{ kind: 'moveOut' }]);
  });

  it('the primary is dead: the replica node promotes its newest snapshot only with the opt-in', () => {
    const nodes = [node(ME, true), node(B, false, [D])];
    const withReplica: LocalObservation = { ...here(), replicaHere: new Map([[D, 'move-000007']]) };
    const [refused] = calculateLocalChanges(replicated(ME), nodes, withReplica, ctx);
    expect(refused).toMatchObject({ kind: 'refuse', code: 'SOURCE_UNREACHABLE' });
    expect(refused?.kind === 'refuse' && refused.message).toContain('clusterhq:flocker:accept-replica-loss=true');
    expect(refused?.kind === 'refuse' && refused.message).toContain('move-000007');
    expect(calculateLocalChanges(replicated(ME, { acceptReplicaLoss: true }), nodes, withReplica, ctx)).toEqual([
      { kind: 'promoteReplica', datasetId: D, snapshot: 'move-000007', size: 2000, mountPath: PATH },
    ]);
    // The opt-in without a replica here: refused still (never a blank copy).
    expect(calculateLocalChanges(replicated(ME, { acceptReplicaLoss: true }), nodes, here(), ctx)).toEqual([
      expect.objectContaining({ kind: 'refuse', code: 'SOURCE_UNREACHABLE' }),
    ]);
    // The primary alive: its move sends the last delta (the replica is the base); nothing promoted here.
    expect(
      calculateLocalChanges(
        replicated(ME, { acceptReplicaLoss: true }),
        [node(ME, true), node(B, true, [D])],
        withReplica,
        ctx,
      ),
    ).toEqual([]);
  });

  it('the old primary back after a failover: its stale copy is let go of (the replica is the live one now)', () => {
    const nodes = [node(ME, true, [D]), node(B, true, [D])];
    // B promoted this node's replica snapshot S2; this copy was written after it (the loss the user accepted).
    const lineages = new Map([
      [
        D,
        new Map([
          [ME, { from: null, sameAs: null, snapshots: ['S2'] }],
          [B, { from: 'S2', sameAs: null, snapshots: ['S2'] }],
        ]),
      ],
    ]);
    const stale = { ...here([{ ...mounted, mountPoints: [] }]), lineages };
    // Its writes after the replica's snapshot kept aside first (keepAside), out of the live path.
    expect(calculateLocalChanges(replicated(B, { acceptReplicaLoss: true }), nodes, stale, ctx)).toEqual([
      { kind: 'retire', datasetId: D, keepAside: true },
    ]);
    // The opt-in gone since (one-shot: the control service removes it once the failover completed, before this
    // node is back) and the accepted-loss marker it left naming this node: the same, kept aside first.
    expect(calculateLocalChanges(replicated(B, { acceptedLossFrom: [ME] }), nodes, stale, ctx)).toEqual([
      { kind: 'retire', datasetId: D, keepAside: true },
    ]);
    // Neither (a marker naming another node only): two copies written since they parted, neither retired (RV
    // finding 1: the same lineage is what a move's source written after its final snapshot leaves).
    for (const d of [replicated(B), replicated(B, { acceptedLossFrom: [B] })])
      expect(calculateLocalChanges(d, nodes, stale, ctx)).toEqual([
        expect.objectContaining({ kind: 'refuse', code: 'TWO_LIVE_COPIES' }),
      ]);
  });

  it('a leftover replica here (received snapshots only) is destroyed once no one needs it, never while it may be the only copy', () => {
    const leftover: LocalObservation = { ...here(), receivedOnly: new Set([D]) };
    const primaryB = (alive = true) => node(B, alive, [D]);
    // The primary keeps its replica on another node (C) now: ours goes.
    expect(
      calculateLocalChanges(replicated(B), [node(ME, true), primaryB(), cNode(true, [], [D])], leftover, ctx),
    ).toEqual([{ kind: 'destroy', datasetId: D, keepAsides: true }]);
    // The dataset asks for no replica any more (or a move to here was taken back): goes.
    expect(calculateLocalChanges(dataset(B), [node(ME, true), primaryB()], leftover, ctx)).toEqual([
      { kind: 'destroy', datasetId: D, keepAsides: true },
    ]);
    // Deleted: goes (with what else the pool keeps of it).
    expect(
      calculateLocalChanges(
        dataset(B, { deleted: true }),
        [node(ME, true), primaryB()],
        { ...leftover, retained: new Set([D]) },
        ctx,
      ),
    ).toEqual([{ kind: 'destroy', datasetId: D }]);
    // Kept: named here; named nowhere yet (the primary's first round, before its report); the primary dead
    // or without its live copy (ours may be all there is); snapshots taken here (an old source's retention).
    const meNamed = { ...node(ME, true), replicaOf: [D] };
    expect(calculateLocalChanges(replicated(B), [meNamed, primaryB()], leftover, ctx)).toEqual([]);
    expect(calculateLocalChanges(replicated(B), [node(ME, true), primaryB(), cNode(true)], leftover, ctx)).toEqual([]);
    expect(calculateLocalChanges(dataset(B), [node(ME, true), primaryB(false)], leftover, ctx)).toEqual([]);
    expect(calculateLocalChanges(dataset(B), [node(ME, true), node(B, true)], leftover, ctx)).toEqual([]);
    expect(
      calculateLocalChanges(dataset(B), [node(ME, true), primaryB()], { ...here(), retained: new Set([D]) }, ctx),
    ).toEqual([]);
    // Nor while this node moves a copy of it.
    expect(
      calculateLocalChanges(dataset(B), [node(ME, true), primaryB()], { ...leftover, moving: new Set([D]) }, ctx),
    ).toEqual([]);
  });

  it('settings from the metadata; anything else is no replica and no opt-in', () => {
    expect(replicaSettings({})).toEqual({ replicas: 0, acceptReplicaLoss: false });
    expect(
      replicaSettings({
        'clusterhq:flocker:replicas': '1',
        'clusterhq:flocker:replica-interval': '5',
        'clusterhq:flocker:accept-replica-loss': 'true',
      }),
    ).toEqual({ replicas: 1, replicaIntervalMs: 5000, acceptReplicaLoss: true });
    expect(
      replicaSettings({
        'clusterhq:flocker:replicas': '2',
        'clusterhq:flocker:replica-interval': 'soon',
        'clusterhq:flocker:accept-replica-loss': 'yes',
      }),
    ).toEqual({ replicas: 0, acceptReplicaLoss: false });
  });

  it('a replica round: a new snapshot after every name either side has, from the newest shared by identity', () => {
    expect(replicaStep([], [])).toEqual({ name: 'move-000001', parent: null });
    const s = (name: string, identity: string) => ({ name, identity });
    expect(replicaStep([s('move-000002', 'a'), s('move-000003', 'b')], [s('move-000002', 'a')])).toEqual({
      name: 'move-000004',
      parent: 'move-000002',
    });
    // Same name, other identity (a different lineage): no base, sent whole.
    expect(replicaStep([s('move-000002', 'a')], [s('move-000005', 'z')])).toEqual({
      name: 'move-000006',
      parent: null,
    });
  });
});

describe('failures across turns (failureSteps)', () => {
  const E = '44444444-4444-4444-8444-444444444444';
  const refuse = { kind: 'refuse', datasetId: D, code: 'SOURCE_UNREACHABLE', message: 'dead' } as const;
  const create = { kind: 'create', datasetId: D, size: 1, mountPath: PATH } as const;
  const none = new Set<string>();
  const failed = (action: LocalAction['kind'], retryAt: number) => new Map([[D, { action, retryAt }]]);

  it('a refusal is due at once, also in the back-off of an earlier failure (whose error it replaces)', () => {
    // Issue 24's flake: a BACKEND_ERROR in its back-off hid the refusal of a move off a dead node.
    expect(failureSteps([refuse], failed('retire', 5000), 1000, none)).toEqual({ due: [refuse], forget: [D] });
    // Its own earlier record: still due (the agent leaves an unchanged refusal as it is).
    expect(failureSteps([refuse], failed('refuse', 5000), 1000, none)).toEqual({ due: [refuse], forget: [] });
  });

  it('the same action waits out its back-off; another action of the dataset goes at once', () => {
    expect(failureSteps([create], failed('create', 5000), 1000, none)).toEqual({ due: [], forget: [] });
    expect(failureSteps([create], failed('create', 5000), 5000, none)).toEqual({ due: [create], forget: [] });
    const mount: LocalAction = { kind: 'mount', datasetId: D, mountPath: PATH };
    expect(failureSteps([mount], failed('create', 5000), 1000, none)).toEqual({ due: [mount], forget: [D] });
    // After a refusal: the opt-in's promote at once.
    const promote: LocalAction = { kind: 'promoteReplica', datasetId: D, snapshot: 's', size: 1, mountPath: PATH };
    expect(failureSteps([promote], failed('refuse', 0), 1000, none)).toEqual({ due: [promote], forget: [D] });
  });

  it('a dataset that needs nothing here any more (moved away, deleted, forgotten) loses its failure, unless a move or replica send of it runs', () => {
    expect(failureSteps([], failed('retire', 5000), 1000, none)).toEqual({ due: [], forget: [D] });
    expect(failureSteps([], failed('moveOut', 5000), 1000, new Set([D]))).toEqual({ due: [], forget: [] });
    // Another dataset's action leaves it alone.
    const other: LocalAction = { kind: 'destroy', datasetId: E };
    expect(failureSteps([other], failed('destroy', 5000), 1000, none)).toEqual({ due: [other], forget: [D] });
  });

  it('every failed kind x decided kind (or none) x running x in back-off', () => {
    const to = { uuid: B, host: '10.0.0.2' };
    const one: { [K in LocalAction['kind']]: Extract<LocalAction, { kind: K }> } = {
      create,
      mount: { kind: 'mount', datasetId: D, mountPath: PATH },
      resize: { kind: 'resize', datasetId: D, size: 2 },
      unmount: { kind: 'unmount', datasetId: D, mountPath: PATH },
      destroy: { kind: 'destroy', datasetId: D },
      cancelMove: { kind: 'cancelMove', datasetId: D },
      stopMove: { kind: 'stopMove', datasetId: D },
      stopReplica: { kind: 'stopReplica', datasetId: D },
      retire: { kind: 'retire', datasetId: D },
      moveOut: { kind: 'moveOut', datasetId: D, to, size: 1 },
      replicate: { kind: 'replicate', datasetId: D, to },
      promoteReplica: { kind: 'promoteReplica', datasetId: D, snapshot: 's', size: 1, mountPath: PATH },
      refuse,
    };
    const kinds = Object.keys(one) as LocalAction['kind'][];
    for (const failedKind of kinds)
      for (const decided of [...kinds, undefined])
        for (const running of [false, true])
          for (const inBackoff of [false, true]) {
            const actions = decided === undefined ? [] : [one[decided]];
            const got = failureSteps(
              actions,
              failed(failedKind, inBackoff ? 2000 : 1000),
              1000,
              new Set(running ? [D] : []),
            );
            const stale = decided !== failedKind && !running;
            const label = `${failedKind} -> ${decided ?? 'nothing'}${running ? ', running' : ''}${inBackoff ? ', in back-off' : ''}`;
            expect([label, got.forget]).toEqual([label, stale ? [D] : []]);
            const due = decided !== undefined && (decided === 'refuse' || stale || !inBackoff);
            expect([label, got.due.length]).toEqual([label, due ? 1 : 0]);
          }
  });
});
