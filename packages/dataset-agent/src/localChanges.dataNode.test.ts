/**
 * The new primary with no live copy here and the data-node marker (issue 24): the control service
 * records, in the same commit as every change of a dataset's primary, a node that may hold its data
 * (@flocker/api METADATA_DATA_NODE_KEY). Node states are kept in memory by the service, so after its
 * restart (or for a dead holder it forgot) the view shows no holder; without the marker the primary
 * would create an empty dataset and the holder, once back, retire its copy. With it the primary
 * refuses (SOURCE_UNREACHABLE naming the node) until a holder shows, or the user opts in to start
 * empty (accept-data-loss); a standby replica here with accept-replica-loss is promoted, as for a dead
 * holder. Every combination of what the decision reads is enumerated against the rule written out,
 * RZ's guard (localChanges.guard.test: never a create over data this pool keeps) included.
 */
import {
  type ClusterSnapshot,
  METADATA_ACCEPT_DATA_LOSS_KEY,
  METADATA_ACCEPT_REPLICA_LOSS_KEY,
  METADATA_DATA_NODE_KEY,
  type NodeState,
} from '@flocker/api';
import {
  calculateLocalChanges,
  dataNodeSettings,
  failureSteps,
  localActions,
  localDesired,
  markedReplicasHere,
  type LocalAction,
  type LocalClusterNode,
  type LocalObservation,
} from './localChanges';
import { decisionKey } from './LocalAgent';

const ME = '11111111-1111-4111-8111-111111111111';
const A = '22222222-2222-4222-8222-222222222222';
const C = '44444444-4444-4444-8444-444444444444';
const M = '55555555-5555-4555-8555-555555555555';
const D = '33333333-3333-4333-8333-333333333333';
const ctx = { nodeUuid: ME, mountRoot: '/flocker', defaultSize: 1000 };
const PATH = `/flocker/${D}`;

type Holder = 'alive' | 'dead';
type Marker = 'none' | 'other' | 'self';

interface Case {
  /** The other nodes shown holding a live copy. */
  holders: Holder[];
  retained: boolean;
  replicaHere: boolean;
  acceptReplicaLoss: boolean;
  marker: Marker;
  acceptDataLoss: boolean;
}

/**
 * The rule: wait for a live holder; a dead one's replica only with its loss accepted; a marker naming
 * another node (not known dead): its replica only with both losses accepted, else wait unless the
 * loss of the data is accepted; never a create over data here.
 */
function expected(c: Case): LocalAction['kind'] | null {
  if (c.holders.includes('alive')) return null;
  if (c.holders.includes('dead')) return c.replicaHere && c.acceptReplicaLoss ? 'promoteReplica' : 'refuse';
  if (c.marker === 'other') {
    if (c.replicaHere && c.acceptReplicaLoss && c.acceptDataLoss) return 'promoteReplica';
    if (!c.acceptDataLoss) return 'refuse';
  }
  return c.retained ? 'refuse' : 'create';
}

function decide(c: Case): LocalAction[] {
  const others = [A, C];
  const nodes: LocalClusterNode[] = [
    { uuid: ME, host: '10.0.0.1', alive: true, copies: [] },
    ...c.holders.map((h, i) => ({
      uuid: others[i] as string,
      host: `10.0.0.${i + 2}`,
      alive: h === 'alive',
      copies: [D],
    })),
  ];
  const here: LocalObservation = {
    copies: [],
    moving: new Set(),
    retained: new Set(c.retained ? [D] : []),
    ...(c.replicaHere ? { replicaHere: new Map([[D, 'replica-000003']]) } : {}),
  };
  return calculateLocalChanges(
    [
      {
        datasetId: D,
        primary: ME,
        maximumSize: 2000,
        deleted: false,
        acceptReplicaLoss: c.acceptReplicaLoss,
        ...(c.marker === 'other' ? { dataNode: M } : c.marker === 'self' ? { dataNode: ME } : {}),
        ...(c.acceptDataLoss ? { acceptDataLoss: true } : {}),
      },
    ],
    nodes,
    here,
    ctx,
  );
}

const HOLDERS: Holder[][] = [[], ['alive'], ['dead'], ['alive', 'dead'], ['dead', 'alive'], ['dead', 'dead']];

describe('the primary with no live copy here, with and without the data-node marker', () => {
  const cases: Case[] = [];
  for (const holders of HOLDERS)
    for (const retained of [false, true])
      // A replica here is retained too (LocalAgent: replicaHere is taken from the retained datasets).
      for (const replicaHere of retained ? [false, true] : [false])
        for (const acceptReplicaLoss of [false, true])
          for (const marker of ['none', 'other', 'self'] as const)
            for (const acceptDataLoss of [false, true])
              cases.push({ holders, retained, replicaHere, acceptReplicaLoss, marker, acceptDataLoss });

  it.each(cases.map((c) => [JSON.stringify(c), c] as const))('%s', (_, c) => {
    const actions = decide(c);
    const kind = expected(c);
    expect(actions.map((a) => a.kind)).toEqual(kind === null ? [] : [kind]);
    const [action] = actions;
    if (action?.kind === 'create')
      expect(action).toEqual({ kind: 'create', datasetId: D, size: 2000, mountPath: PATH });
    if (action?.kind === 'promoteReplica')
      expect(action).toEqual({
        kind: 'promoteReplica',
        datasetId: D,
        snapshot: 'replica-000003',
        size: 2000,
        mountPath: PATH,
      });
    if (action?.kind === 'refuse') {
      expect(action.code).toBe('SOURCE_UNREACHABLE');
      if (c.holders.length > 0) expect(action.message).toContain(A);
      else if (c.marker === 'other' && !c.acceptDataLoss) {
        expect(action.message).toContain(`may be on node ${M}`);
        expect(action.message).toContain(`${METADATA_ACCEPT_DATA_LOSS_KEY}=true`);
        if (c.replicaHere) expect(action.message).toContain(`${METADATA_ACCEPT_REPLICA_LOSS_KEY}=true`);
      } else expect(action.message).toContain('no node this node sees holds its live copy');
    }
  });

  it('covers every combination (6 holder sets x 3 pool states x 2 x 3 markers x 2)', () => {
    expect(cases).toHaveLength(216);
  });

  it('the refusal names the marked node by its address when the view shows it', () => {
    const [action] = calculateLocalChanges(
      [{ datasetId: D, primary: ME, maximumSize: null, deleted: false, dataNode: M }],
      [
        { uuid: ME, host: '10.0.0.1', alive: true, copies: [] },
        { uuid: M, host: '10.0.0.9', alive: false, copies: [], copyCount: 0 },
      ],
      { copies: [], moving: new Set() },
      ctx,
    );
    expect(action).toEqual({
      kind: 'refuse',
      datasetId: D,
      code: 'SOURCE_UNREACHABLE',
      message: `the data of dataset ${D} may be on node ${M} (10.0.0.9), which has not reported it to the control service (restarted? dead?); bring ${M} back, or set metadata ${METADATA_ACCEPT_DATA_LOSS_KEY}=true to start it empty`,
    });
  });

  it('a copy here, another node the primary, or a deleted dataset: the marker changes nothing', () => {
    const nodes: LocalClusterNode[] = [
      { uuid: ME, host: '10.0.0.1', alive: true, copies: [D] },
      { uuid: A, host: '10.0.0.2', alive: true, copies: [] },
    ];
    const here: LocalObservation = {
      copies: [{ datasetId: D, size: 2000, mountPoints: [PATH] }],
      moving: new Set(),
    };
    for (const primary of [ME, A])
      for (const deleted of [false, true]) {
        const d = { datasetId: D, primary, maximumSize: 2000, deleted };
        expect(calculateLocalChanges([{ ...d, dataNode: M }], nodes, here, ctx)).toEqual(
          calculateLocalChanges([d], nodes, here, ctx),
        );
      }
  });
});

describe('the marker as the agent reads it from metadata', () => {
  it.each([
    [{}, {}],
    [{ [METADATA_DATA_NODE_KEY]: M }, { dataNode: M }],
    [{ [METADATA_DATA_NODE_KEY]: ` ${M} ` }, { dataNode: M }],
    [{ [METADATA_DATA_NODE_KEY]: '' }, {}],
    [{ [METADATA_ACCEPT_DATA_LOSS_KEY]: 'true' }, { acceptDataLoss: true }],
    [{ [METADATA_ACCEPT_DATA_LOSS_KEY]: 'yes' }, {}],
    [
      { [METADATA_DATA_NODE_KEY]: M, [METADATA_ACCEPT_DATA_LOSS_KEY]: 'true' },
      { dataNode: M, acceptDataLoss: true },
    ],
  ])('%j -> %j', (metadata, settings) => {
    expect(dataNodeSettings(metadata)).toEqual(settings);
  });
});

describe('from a local view whose holder state is missing (the control service restarted, the holder not reported yet)', () => {
  const state = (uuid: string, host: string, held: string[]): NodeState => ({
    uuid,
    era: 'e',
    host,
    instance_id: uuid,
    backend: 'local-btrfs',
    manifestations: held.map((id) => ({ dataset_id: id, blockdevice_id: id, size: 2000, status: 'attached' as const })),
    errors: [],
    alive: true,
    last_seen: '2026-12-05T16:00:00.000Z',
  });
  /** This node's view, the dataset moved here while A holds its copy: A's state shown or not. */
  const view = (holderShown: boolean, metadata: Record<string, string>): ClusterSnapshot => ({
    generation: 'i.2.1',
    configuration_tag: 'v2',
    datasets: [{ dataset_id: D, primary: ME, maximum_size: 2000, metadata, deleted: false }],
    leases: [],
    nodes: [state(ME, '10.0.0.1', []), ...(holderShown ? [state(A, '10.0.0.2', [D])] : [])],
    peers: [
      { uuid: ME, host: '10.0.0.1', alive: true, copies: 0, replica_of: [] },
      { uuid: A, host: '10.0.0.2', alive: holderShown, copies: holderShown ? 1 : 0, replica_of: [] },
    ],
  });
  const empty: LocalObservation = { copies: [], moving: new Set(), retained: new Set() };
  const marked = { [METADATA_DATA_NODE_KEY]: A };

  it('nothing of it here, the marker naming the holder: refused (was a create: the data lost once A reported)', () => {
    expect(localDesired(view(false, marked))[0]).toMatchObject({ dataNode: A });
    expect(localActions(view(false, marked), empty, ctx)).toEqual([
      {
        kind: 'refuse',
        datasetId: D,
        code: 'SOURCE_UNREACHABLE',
        message: expect.stringContaining(`may be on node ${A} (10.0.0.2)`),
      },
    ]);
    // Once the holder reports: nothing to do here (it pushes the copy), the refusal forgotten.
    expect(localActions(view(true, marked), empty, ctx)).toEqual([]);
    const refusal = { action: 'refuse' as const, retryAt: 0 };
    expect(failureSteps([], new Map([[D, refusal]]), 1, new Set())).toEqual({ due: [], forget: [D] });
  });

  it('without the marker (a new dataset, or nobody holding it as the service knew for sure): a create, as before', () => {
    expect(localActions(view(false, {}), empty, ctx)).toEqual([
      { kind: 'create', datasetId: D, size: 2000, mountPath: PATH },
    ]);
  });

  it('the user accepts the loss: created empty', () => {
    expect(localActions(view(false, { ...marked, [METADATA_ACCEPT_DATA_LOSS_KEY]: 'true' }), empty, ctx)).toEqual([
      { kind: 'create', datasetId: D, size: 2000, mountPath: PATH },
    ]);
  });

  it('a change of the marker or of the opt-in is a change of what the decision depends on', () => {
    const keys = new Set(
      [{}, marked, { [METADATA_DATA_NODE_KEY]: C }, { ...marked, [METADATA_ACCEPT_DATA_LOSS_KEY]: 'true' }].map((m) =>
        decisionKey(view(false, m), ME),
      ),
    );
    expect(keys.size).toBe(4);
  });
});

describe('a replica here whose naming a restarted control service forgot', () => {
  const REPLICAS = 'clusterhq:flocker:replicas';
  const snapshot = (
    datasets: { id: string; primary: string; deleted?: boolean; metadata: Record<string, string> }[],
  ): ClusterSnapshot => ({
    generation: 'i.2.1',
    configuration_tag: 'v2',
    datasets: datasets.map((d) => ({
      dataset_id: d.id,
      primary: d.primary,
      maximum_size: 2000,
      metadata: d.metadata,
      deleted: d.deleted ?? false,
    })),
    leases: [],
    nodes: [],
  });
  const marked = { [METADATA_DATA_NODE_KEY]: A, [REPLICAS]: '1' };

  it('moved here with the marker naming another node, asking for a replica, only received snapshots here: a replica', () => {
    expect(markedReplicasHere(snapshot([{ id: D, primary: ME, metadata: marked }]), ME, new Set([D]))).toEqual([D]);
  });

  it.each([
    [
      'not only received snapshots here (a retired copy, snapshots taken here)',
      { id: D, primary: ME, metadata: marked },
      [],
    ],
    ['another primary', { id: D, primary: A, metadata: marked }, [D]],
    ['deleted', { id: D, primary: ME, deleted: true, metadata: marked }, [D]],
    ['no marker', { id: D, primary: ME, metadata: { [REPLICAS]: '1' } }, [D]],
    ['the marker naming this node', { id: D, primary: ME, metadata: { ...marked, [METADATA_DATA_NODE_KEY]: ME } }, [D]],
    ['no replica asked for', { id: D, primary: ME, metadata: { [METADATA_DATA_NODE_KEY]: A } }, [D]],
  ] as const)('not one: %s', (_, d, receivedOnly) => {
    expect(markedReplicasHere(snapshot([d]), ME, new Set(receivedOnly))).toEqual([]);
  });
});
