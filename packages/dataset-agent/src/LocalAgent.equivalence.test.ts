/**
 * LocalAgent's decisions from its node's local view (issue 24) equal those from the whole cluster
 * (the DatasetAgent.deltas.test idea for the local backend): over random worlds changed step by
 * step (seeded), the actions (localActions), the replicas named on the node (what it looks for in
 * its pool), which transfers its listener takes (mayReceiveFrom), which replica records it keeps
 * (keepsReplica) and whether a change is worth a turn (decisionKey) are the same from the whole
 * snapshot and from @flocker/api localViewOf of it — also with more in the view than that (the
 * control service may show orphans, witnesses). The control service's views are proved to hold
 * localViewOf (control-api nodeViews.local.test): together, the agent on its view acts as on the
 * whole cluster. A view without the local part (a block node's) is shown to decide otherwise.
 * Other nodes' loads cross the steps their peer entries show copies in (@flocker/api peerCopies):
 * the replica choice counts copies in the same steps from a whole snapshot.
 */
import {
  type ClusterSnapshot,
  isLocalBackend,
  localViewOf,
  METADATA_ACCEPT_REPLICA_LOSS_KEY,
  METADATA_REPLICA_INTERVAL_KEY,
  METADATA_REPLICAS_KEY,
  type NodeState,
} from '@flocker/api';
import { decisionKey } from './LocalAgent';
import {
  keepsReplica,
  localActions,
  localMountPath,
  mayReceiveFrom,
  replicasNamedOn,
  type LocalAction,
  type LocalObservation,
} from './localChanges';
import { seededRandom as random } from './testing/random';

const uuid = (c: string, i: number): string =>
  `${c.repeat(8)}-${c.repeat(4)}-4${c.repeat(3)}-8${c.repeat(3)}-${String(i).padStart(12, '0')}`;
const ME = uuid('a', 0);
/** Local nodes (ME first) and one block node (never a replica's node). */
const NODES = [ME, uuid('b', 1), uuid('c', 2), uuid('d', 3), uuid('e', 4)];
const BLOCK = NODES[4] as string;
const DATASETS = Array.from({ length: 3 }, (_, i) => uuid('f', i + 10));
/** A copy of a dataset not configured (a node's load). */
const fillerId = (node: number, j: number): string => uuid('9', 100 * (node + 1) + j);
const ctx = { nodeUuid: ME, mountRoot: '/flocker', defaultSize: 1 << 26, replicaIntervalMs: 30_000 };

/** A dataset's configuration in a world (primary: an index into NODES). */
interface DatasetSpec {
  primary: number;
  deleted: boolean;
  size: number | null;
  replicas: boolean;
  loss: boolean;
  interval: number | null;
}

/** One world: the whole snapshot and what this node observes (its pool and its running work). */
interface World {
  datasets: Map<string, DatasetSpec>;
  alive: boolean[];
  hostMoved: boolean[];
  holds: Set<string>[];
  /** Copies of datasets not configured, per node: loads across the steps a peer's copies are shown in (peerCopies). */
  load: number[];
  namings: Map<string, number>[];
  leases: Map<string, number>;
  retained: Set<string>;
  receivedOnly: Set<string>;
  moving: Set<string>;
  replicating: Set<string>;
  records: Map<string, { node: number; takenAt: number | null }>;
  mounted: Set<string>;
  smaller: Set<string>;
  now: number;
}

type Step =
  | ({ kind: 'dataset'; d: number } & DatasetSpec)
  | { kind: 'forget'; d: number }
  | { kind: 'hold'; node: number; d: number; on: boolean }
  | { kind: 'load'; node: number; copies: number }
  | { kind: 'name'; reporter: number; d: number; node: number | null }
  | { kind: 'alive'; node: number; on: boolean }
  | { kind: 'host'; node: number }
  | { kind: 'lease'; d: number; node: number | null }
  | {
      kind: 'here';
      d: number;
      what: 'retained' | 'receivedOnly' | 'moving' | 'replicating' | 'mounted' | 'smaller';
      on: boolean;
    }
  | { kind: 'record'; d: number; node: number | null; takenAt: number | null }
  | { kind: 'time'; ms: number };

const HERE = ['retained', 'receivedOnly', 'moving', 'replicating', 'mounted', 'smaller'] as const;

/** One random step, uniform over its fields (weighted towards datasets, copies and this node's pool). */
function randomStep(r: () => number): Step {
  const int = (n: number): number => Math.floor(r() * n);
  const bool = (): boolean => r() < 0.5;
  const node = (): number => int(NODES.length);
  const maybe = <T>(v: () => T): T | null => (r() < 0.25 ? null : v());
  const d = int(DATASETS.length);
  const pick = int(24);
  if (pick < 5)
    return {
      kind: 'dataset',
      d,
      // Mostly local primaries, this node often.
      primary: r() < 0.4 ? 0 : int(NODES.length),
      deleted: r() < 0.25,
      size: maybe(() => (bool() ? 1 << 26 : 1 << 27)),
      replicas: bool(),
      loss: bool(),
      interval: maybe(() => (bool() ? 1 : 60)),
    };
  if (pick < 6) return { kind: 'forget', d };
  if (pick < 10) return { kind: 'hold', node: r() < 0.5 ? 0 : node(), d, on: r() < 0.7 };
  if (pick < 13) return { kind: 'name', reporter: node(), d, node: maybe(() => (r() < 0.5 ? 0 : node())) };
  if (pick < 14) return { kind: 'alive', node: node(), on: r() < 0.5 };
  if (pick < 15) return { kind: 'host', node: node() };
  if (pick < 16) return { kind: 'lease', d, node: maybe(node) };
  if (pick < 21) return { kind: 'here', d, what: HERE[int(HERE.length)] as (typeof HERE)[number], on: r() < 0.6 };
  if (pick < 23) return { kind: 'record', d, node: maybe(node), takenAt: maybe(() => int(100_000)) };
  return { kind: 'time', ms: int(60_000) };
}

/** Another node's load now and then, around the steps of peerCopies (its own generator: the steps above stay as they were). */
function randomLoad(r: () => number): Step | null {
  if (r() >= 0.25) return null;
  return {
    kind: 'load',
    node: 1 + Math.floor(r() * (NODES.length - 1)),
    copies: [0, 15, 16, 17, 31, 32][Math.floor(r() * 6)] ?? 0,
  };
}

function emptyWorld(): World {
  return {
    datasets: new Map(),
    alive: NODES.map(() => true),
    hostMoved: NODES.map(() => false),
    holds: NODES.map(() => new Set()),
    load: NODES.map(() => 0),
    namings: NODES.map(() => new Map()),
    leases: new Map(),
    retained: new Set(),
    receivedOnly: new Set(),
    moving: new Set(),
    replicating: new Set(),
    records: new Map(),
    mounted: new Set(),
    smaller: new Set(),
    now: 100_000,
  };
}

function apply(w: World, s: Step): void {
  const id = DATASETS[
    s.kind === 'alive' || s.kind === 'host' || s.kind === 'time' || s.kind === 'load' ? 0 : s.d
  ] as string;
  switch (s.kind) {
    case 'dataset':
      w.datasets.set(id, {
        primary: s.primary,
        deleted: s.deleted,
        size: s.size,
        replicas: s.replicas,
        loss: s.loss,
        interval: s.interval,
      });
      return;
    case 'forget':
      w.datasets.delete(id);
      return;
    case 'hold':
      if (s.on) w.holds[s.node]?.add(id);
      else w.holds[s.node]?.delete(id);
      return;
    case 'load':
      w.load[s.node] = s.copies;
      return;
    case 'name':
      if (s.node === null) w.namings[s.reporter]?.delete(id);
      else w.namings[s.reporter]?.set(id, s.node);
      return;
    case 'alive':
      // This node is alive: it is the one deciding.
      if (s.node !== 0) w.alive[s.node] = s.on;
      return;
    case 'host':
      w.hostMoved[s.node] = !w.hostMoved[s.node];
      return;
    case 'lease':
      if (s.node === null) w.leases.delete(id);
      else w.leases.set(id, s.node);
      return;
    case 'here':
      if (s.on) w[s.what].add(id);
      else w[s.what].delete(id);
      return;
    case 'record':
      if (s.node === null) w.records.delete(id);
      else w.records.set(id, { node: s.node, takenAt: s.takenAt });
      return;
    case 'time':
      w.now += s.ms;
      return;
  }
}

/** The whole snapshot of a world; this node's report is caught up with its pool (copies, retained). */
function wholeOf(w: World): ClusterSnapshot {
  const nodes: NodeState[] = NODES.map((uuid, i) => {
    const namings = [...(w.namings[i] ?? [])];
    return {
      uuid,
      era: `era-${i}`,
      host: `10.0.0.${i}${w.hostMoved[i] === true ? '0' : ''}`,
      instance_id: uuid,
      backend: uuid === BLOCK ? 'loopback' : 'local-btrfs',
      manifestations: [...(w.holds[i] ?? []), ...Array.from({ length: w.load[i] ?? 0 }, (_, j) => fillerId(i, j))].map(
        (dataset_id) => ({
          dataset_id,
          blockdevice_id: `btrfs:p/${dataset_id}`,
          size: 1 << 26,
          status: 'mounted' as const,
        }),
      ),
      ...(namings.length > 0
        ? {
            replicas: namings.map(([dataset_id, n]) => ({
              dataset_id,
              node_uuid: NODES[n] as string,
              snapshot: 'move-000001',
              taken_at: '2026-12-05T00:00:00.000Z',
            })),
          }
        : {}),
      ...(i === 0 && retainedOnly(w).length > 0 ? { retained: retainedOnly(w) } : {}),
      errors: [],
      alive: w.alive[i] === true,
      last_seen: '2026-12-05T00:00:00.000Z',
    };
  });
  return {
    generation: 'g',
    configuration_tag: 't',
    datasets: [...w.datasets].map(([dataset_id, x]) => ({
      dataset_id,
      primary: NODES[x.primary] as string,
      deleted: x.deleted,
      ...(x.size !== null ? { maximum_size: x.size } : {}),
      metadata: {
        ...(x.replicas ? { [METADATA_REPLICAS_KEY]: '1' } : {}),
        ...(x.loss ? { [METADATA_ACCEPT_REPLICA_LOSS_KEY]: 'true' } : {}),
        ...(x.interval !== null ? { [METADATA_REPLICA_INTERVAL_KEY]: String(x.interval) } : {}),
      },
    })),
    leases: [...w.leases].map(([dataset_id, n]) => ({ dataset_id, node_uuid: NODES[n] as string, expires: null })),
    nodes,
  };
}

/** What the pool retains without a live copy (as the agent reports it). */
function retainedOnly(w: World): string[] {
  return [...w.retained].filter((id) => !(w.holds[0]?.has(id) ?? false)).sort();
}

/** What this node observes, with the replicas named on it read from `snapshot` (as LocalAgent.turn does). */
function observation(w: World, snapshot: ClusterSnapshot): LocalObservation {
  const live = w.holds[0] ?? new Set<string>();
  const replicaHere = new Map<string, string>();
  for (const id of replicasNamedOn(snapshot, ME))
    if (w.retained.has(id) && !live.has(id)) replicaHere.set(id, `r-${id}`);
  return {
    copies: [...live].map((datasetId) => ({
      datasetId,
      size: w.smaller.has(datasetId) ? 1 : 1 << 26,
      mountPoints: w.mounted.has(datasetId) ? [localMountPath(datasetId, ctx)] : [],
    })),
    moving: w.moving,
    retained: w.retained,
    replicaRecords: new Map(
      [...w.records].map(([id, r]) => [id, { node: NODES[r.node] as string, takenAt: r.takenAt }]),
    ),
    replicating: w.replicating,
    replicaHere,
    receivedOnly: new Set([...w.receivedOnly].filter((id) => w.retained.has(id) && !live.has(id))),
    // Two live copies: this node's is always the older one (the others' made from its snapshot, written since).
    lineages: new Map(
      DATASETS.map((id) => [
        id,
        new Map(
          NODES.map((n) => [
            n,
            n === ME
              ? { from: null, sameAs: `s-${id}`, snapshots: [`s-${id}`] }
              : { from: `s-${id}`, sameAs: null, snapshots: [`s-${id}`] },
          ]),
        ),
      ]),
    ),
  };
}

/**
 * The transfers the listener takes: a move to this node, or a replica round from a primary that
 * names this node its replica's (it reports the naming before its first send: LocalAgent.startReplica);
 * a replica round from a primary that has not named it yet is refused from the view (retried).
 */
function receives(snapshot: ClusterSnapshot, whole: ClusterSnapshot): string[] {
  const named = new Set(replicasNamedOn(whole, ME));
  return DATASETS.flatMap((id) =>
    NODES.filter(
      (peer) =>
        mayReceiveFrom(snapshot, ME, id, peer) &&
        (named.has(id) || whole.datasets.some((x) => x.dataset_id === id && x.primary === ME)),
    ).map((peer) => `${id} ${peer}`),
  );
}

/** Everything the agent reads of a snapshot, as one comparable value. */
function decisions(w: World, snapshot: ClusterSnapshot, whole: ClusterSnapshot = snapshot): unknown {
  return {
    actions: localActions(snapshot, observation(w, snapshot), { ...ctx, now: w.now }),
    named: replicasNamedOn(snapshot, ME),
    receives: receives(snapshot, whole),
    keeps: DATASETS.filter((id) => keepsReplica(snapshot, ME, id)),
  };
}

/** The view with more of the whole in it (the service's orphans and witnesses): decisions must not change. */
function wider(view: ClusterSnapshot, whole: ClusterSnapshot, extra: number): ClusterSnapshot {
  const datasets = whole.datasets.filter((x, i) => view.datasets.includes(x) || ((extra >> i) & 1) === 1);
  const nodes = whole.nodes.filter(
    (x, i) => view.nodes.some((n) => n.uuid === x.uuid) || ((extra >> (i + 8)) & 1) === 1,
  );
  return { ...view, datasets, nodes };
}

/** A block node's view of it (no retained, replicas named, primaries, peers): what the local part adds. */
function narrow(whole: ClusterSnapshot): ClusterSnapshot {
  const own = whole.nodes.find((n) => n.uuid === ME);
  const ids = new Set([
    ...whole.datasets.filter((x) => x.primary === ME).map((x) => x.dataset_id),
    ...(own?.manifestations.map((m) => m.dataset_id) ?? []),
  ]);
  const datasets = whole.datasets.filter((x) => ids.has(x.dataset_id));
  const holders = new Set([
    ME,
    ...whole.nodes.filter((n) => n.manifestations.some((m) => ids.has(m.dataset_id))).map((n) => n.uuid),
  ]);
  return { ...whole, datasets, nodes: whole.nodes.filter((n) => holders.has(n.uuid)) };
}

describe('LocalAgent: decisions from the local view equal those from the whole cluster', () => {
  it('the same actions, replicas named here, transfers taken, records kept and turns, over random steps (seeded)', () => {
    const kinds = new Map<string, number>();
    let narrowDiffers = 0;
    let unchangedKeys = 0;
    let steps = 0;
    let loadedReplicas = 0;
    for (let run = 0; run < 300; run++) {
      const r = random(24_000 + run);
      const loads = random(90_000 + run);
      const w = emptyWorld();
      let prevView: ClusterSnapshot | undefined;
      for (let i = 0; i < 40; i++) {
        apply(w, randomStep(r));
        const load = randomLoad(loads);
        if (load !== null) apply(w, load);
        steps++;
        const whole = wholeOf(w);
        const view = localViewOf(whole, ME);
        const expected = decisions(w, whole);
        const same = JSON.stringify(expected);
        // Compared as JSON (fast), with the difference shown when there is one.
        const fromView = decisions(w, view, whole);
        if (JSON.stringify(fromView) !== same) expect(fromView).toEqual(expected);
        const fromWider = decisions(w, wider(view, whole, Math.floor(r() * (1 << 16))), whole);
        if (JSON.stringify(fromWider) !== same) expect(fromWider).toEqual(expected);
        // Never a transfer the whole snapshot would refuse.
        for (const id of DATASETS)
          for (const peer of NODES)
            if (mayReceiveFrom(view, ME, id, peer) && !mayReceiveFrom(whole, ME, id, peer))
              expect({ id, peer, whole: false }).toEqual({ id, peer, whole: true });
        // A view whose decisionKey did not change decides as the one before (no turn missed); whole
        // snapshots wake more turns (changes to datasets and nodes outside the view).
        if (prevView !== undefined && decisionKey(view, ME) === decisionKey(prevView, ME)) {
          const before = decisions(w, prevView, whole);
          if (JSON.stringify(before) !== same) expect(before).toEqual(expected);
          unchangedKeys++;
        }
        prevView = view;
        for (const a of (expected as { actions: LocalAction[] }).actions) {
          kinds.set(a.kind, (kinds.get(a.kind) ?? 0) + 1);
          // A replica's node chosen while some candidate's copies were past a step.
          if (a.kind === 'replicate' && (view.peers ?? []).some((p) => p.uuid !== ME && p.copies >= 16))
            loadedReplicas++;
        }
        if (JSON.stringify(decisions(w, narrow(whole), whole)) !== same) narrowDiffers++;
      }
    }
    // Every kind of action came up (the runs reached moves, replicas, promotions, clean-ups).
    for (const kind of [
      'create',
      'mount',
      'resize',
      'unmount',
      'destroy',
      'cancelMove',
      'retire',
      'moveOut',
      'replicate',
      'promoteReplica',
      'refuse',
    ])
      expect({ kind, seen: (kinds.get(kind) ?? 0) > 0 }).toEqual({ kind, seen: true });
    // And the local part of the view matters: without it the decisions differ in many steps.
    expect(narrowDiffers).toBeGreaterThan(steps / 20);
    expect(unchangedKeys).toBeGreaterThan(steps / 20);
    expect(loadedReplicas).toBeGreaterThan(30);
  }, 120_000);

  it('block nodes are never a replica node (they run no transfer listener)', () => {
    const w = emptyWorld();
    apply(w, {
      kind: 'dataset',
      d: 0,
      primary: 0,
      deleted: false,
      size: null,
      replicas: true,
      loss: false,
      interval: null,
    });
    apply(w, { kind: 'hold', node: 0, d: 0, on: true });
    apply(w, { kind: 'here', d: 0, what: 'mounted', on: true });
    apply(w, { kind: 'here', d: 0, what: 'smaller', on: false });
    // Every local node but this one is dead: only the block node is alive.
    for (const n of [1, 2, 3]) apply(w, { kind: 'alive', node: n, on: false });
    const whole = wholeOf(w);
    expect(whole.nodes.filter((n) => !isLocalBackend(n.backend) && n.alive)).toHaveLength(1);
    expect(localActions(whole, observation(w, whole), { ...ctx, now: w.now })).toEqual([]);
    apply(w, { kind: 'alive', node: 2, on: true });
    const again = wholeOf(w);
    expect(localActions(again, observation(w, again), { ...ctx, now: w.now })).toEqual([
      { kind: 'replicate', datasetId: DATASETS[0], to: { uuid: NODES[2], host: '10.0.0.2' } },
    ]);
  });
});
