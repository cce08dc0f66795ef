import { MINIMUM_DATASET_SIZE, type ClusterSnapshot, type NodeReport } from '@flocker/api';
import { ManualClock } from '@flocker/runtime/testing';
import {
  SourceChangedAfterPromoteError,
  StorageError,
  TransferServer,
  type CopyLineage,
  type LocalDataset,
  type LocalEngine,
  type LocalSnapshot,
  type SendStream,
} from '@flocker/storage-drivers';
import { makeTestCluster, type TestCluster } from '@flocker/storage-drivers/testing';
import { Readable } from 'node:stream';
import winston from 'winston';
import { decisionKey, LocalAgent, localManifestation } from './LocalAgent';
import { chooseReplicaNode, localClusterNodes, viewKind } from './localChanges';

/** Polls until `ok` holds (5 s at most). */
async function until(ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error('condition not met within 5 s');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const ME = '11111111-1111-4111-8111-111111111111';
const B = '22222222-2222-4222-8222-222222222222';
const D = '33333333-3333-4333-8333-333333333333';

function snapshot(generation: string, myManifestations: string[], bAlive = true): ClusterSnapshot {
  const node = (uuid: string, alive: boolean, datasets: string[]): ClusterSnapshot['nodes'][number] => ({
    uuid,
    era: 'e',
    host: uuid === ME ? '10.0.0.1' : '10.0.0.2',
    instance_id: uuid,
    backend: 'local-btrfs',
    manifestations: datasets.map((d) => ({
      dataset_id: d,
      blockdevice_id: `btrfs:/p/${d}`,
      size: 1,
      status: 'mounted',
    })),
    errors: [],
    alive,
    last_seen: '2026-12-04T12:00:00Z',
  });
  return {
    generation,
    configuration_tag: 't',
    datasets: [{ dataset_id: D, primary: ME, maximum_size: 1000, deleted: false, metadata: {} }],
    leases: [],
    nodes: [node(ME, true, myManifestations), node(B, bAlive, [])],
  };
}

describe('LocalAgent: when a snapshot is worth a turn', () => {
  it('not for its own report (which moves the generation), but for the configuration or another node', () => {
    const base = decisionKey(snapshot('1', []), ME);
    expect(decisionKey(snapshot('2', [D]), ME)).toBe(base);
    expect(decisionKey(snapshot('3', [], false), ME)).not.toBe(base);
    const moved = snapshot('4', []);
    expect(decisionKey({ ...moved, datasets: [{ ...moved.datasets[0]!, primary: B }] }, ME)).not.toBe(base);
  });

  it("for a replica setting (the opt-in to a replica's loss window) and a replica node, not for the replica's age", () => {
    const base = snapshot('1', []);
    const key = decisionKey(base, ME);
    const optIn = { ...base.datasets[0]!, metadata: { 'clusterhq:flocker:accept-replica-loss': 'true' } };
    expect(decisionKey({ ...base, datasets: [optIn] }, ME)).not.toBe(key);
    // Another metadata key changes nothing the agent decides on.
    expect(decisionKey({ ...base, datasets: [{ ...base.datasets[0]!, metadata: { name: 'x' } }] }, ME)).toBe(key);
    const replica = (snapshotName: string, takenAt: string): ClusterSnapshot => ({
      ...base,
      nodes: [
        base.nodes[0]!,
        { ...base.nodes[1]!, replicas: [{ dataset_id: D, node_uuid: ME, snapshot: snapshotName, taken_at: takenAt }] },
      ],
    });
    expect(decisionKey(replica('move-000001', '2026-12-04T12:00:00Z'), ME)).not.toBe(key);
    expect(decisionKey(replica('move-000002', '2026-12-04T12:00:30Z'), ME)).toBe(
      decisionKey(replica('move-000001', '2026-12-04T12:00:00Z'), ME),
    );
  });
});

describe('LocalAgent: localManifestation', () => {
  const MiB = 1024 * 1024;
  const copy = (usedBytes: number, mountPoints: string[]) => ({
    datasetId: D,
    size: 256 * MiB,
    usedBytes,
    mountPoints,
  });

  it("reports a mounted copy's used bytes as the engine counts them, coarsened to about 1/64", () => {
    expect(localManifestation(copy(3 * MiB + 5, ['/flocker/x']), '/flocker/x', 'btrfs', '/p')).toEqual({
      dataset_id: D,
      blockdevice_id: `btrfs:/p/${D}`,
      size: 256 * MiB,
      status: 'mounted',
      path: '/flocker/x',
      used_bytes: 3 * MiB,
    });
    // 100 MiB and 100.5 MiB fall in the same 1-MiB step; 130 MiB and 131 MiB in the same 2-MiB step.
    const used = (bytes: number) => localManifestation(copy(bytes, ['/m']), '/m', 'btrfs', '/p').used_bytes;
    expect(used(100 * MiB + MiB / 2)).toBe(100 * MiB);
    expect(used(131 * MiB)).toBe(used(130 * MiB));
  });

  it('reports no used bytes for a copy not mounted at its path (a move target, a retired copy)', () => {
    const m = localManifestation(copy(10 * MiB, ['/elsewhere']), '/m', 'zfs', 'tank');
    expect(m).toEqual({ dataset_id: D, blockdevice_id: `zfs:tank/${D}`, size: 256 * MiB, status: 'attached' });
  });
});

describe('LocalAgent: how it takes what its follower adopted (issue 24)', () => {
  const peer = (uuid: string, copies: number) => ({
    uuid,
    host: `h-${uuid.slice(0, 1)}`,
    alive: true,
    copies,
    replica_of: [],
  });

  it('a local view (peers), a narrow view before the service knows the node as local, an older service, a whole snapshot', () => {
    const s = snapshot('1', []);
    expect(viewKind({ ...s, peers: [] }, ME, true)).toBe('local');
    // Its own state is local-btrfs and still no peers: a service without local views (follow whole snapshots).
    expect(viewKind(s, ME, true)).toBe('older');
    // Not reported yet (or reported as another backend): the service cannot know.
    expect(viewKind({ ...s, nodes: [s.nodes[1]!] }, ME, true)).toBe('narrow');
    expect(viewKind(s, ME, false)).toBe('whole');
  });

  it('peers without a state in the view count their copies for the replica choice; states list them', () => {
    const C = '44444444-4444-4444-8444-444444444444';
    // Peers show copies in steps of 16 (@flocker/api peerCopies).
    const s = { ...snapshot('1', [D]), peers: [peer(ME, 0), peer(B, 48), peer(C, 32)] };
    const nodes = localClusterNodes({ ...s, nodes: s.nodes.filter((n) => n.uuid !== B) });
    expect(nodes.map((n) => [n.uuid, n.copies.length, n.copyCount])).toEqual([
      [ME, 1, undefined],
      [B, 0, 48],
      [C, 0, 32],
    ]);
    // The least loaded other live node: C (32 copies) before B (48).
    expect(chooseReplicaNode(D, undefined, nodes, ME)?.uuid).toBe(C);
  });
});

/** A pool in memory: what the agent's turns read and do, with a create that fails on demand. */
class MemoryPool implements LocalEngine {
  readonly engine = 'btrfs' as const;
  readonly pool = '/pool';
  readonly live = new Map<string, { size: number; mounts: string[] }>();
  retained: string[] = [];
  readonly snapshots = new Map<string, LocalSnapshot[]>();
  failCreate: Error | undefined;
  /** The next retire fails with it (a container still holding the copy, or a kill before it). */
  failRetire: Error | undefined;
  failKeepAside: Error | undefined;
  readonly calls: string[] = [];
  /** What lineage() tells of a live copy; none: not known (an engine that does not tell, an agent one release behind). */
  readonly lineages = new Map<string, CopyLineage>();
  /** The pool's free bytes (LocalEngine.availableBytes); absent: an engine without a figure. */
  availableBytes?: () => Promise<number>;

  /** Listings that waited on a gate a test held (holdListing). */
  held = 0;
  private listingGate: Promise<void> | undefined;
  private listingHolds = 0;

  /** The next `count` listings wait until the returned release is called. */
  holdListing(count: number): () => void {
    let release = () => {};
    this.listingGate = new Promise<void>((r) => (release = r));
    this.listingHolds = count;
    return release;
  }

  async prepare(): Promise<void> {}
  async listDatasets(): Promise<LocalDataset[]> {
    if (this.listingGate !== undefined && this.listingHolds > 0) {
      this.listingHolds--;
      this.held++;
      await this.listingGate;
    }
    return [...this.live].map(([datasetId, d]) => ({ datasetId, size: d.size, usedBytes: 0 }));
  }
  async listRetained(): Promise<string[]> {
    return [...this.retained];
  }
  async createDataset(datasetId: string, size: number): Promise<LocalDataset> {
    this.calls.push(`create ${datasetId}`);
    if (this.failCreate !== undefined) throw this.failCreate;
    this.live.set(datasetId, { size, mounts: [] });
    return { datasetId, size, usedBytes: 0 };
  }
  async resizeDataset(): Promise<void> {}
  /** The options of each destroyDataset, in order. */
  readonly destroys: { datasetId: string; keepAsides: boolean }[] = [];
  async destroyDataset(datasetId: string, o?: { keepAsides?: boolean }): Promise<void> {
    this.destroys.push({ datasetId, keepAsides: o?.keepAsides === true });
    this.live.delete(datasetId);
    this.retained = this.retained.filter((id) => id !== datasetId);
    if (o?.keepAsides !== true)
      this.kept.splice(0, this.kept.length, ...this.kept.filter((k) => k.datasetId !== datasetId));
  }
  async retire(datasetId: string, o?: { readonly unchangedSince?: string }): Promise<void> {
    this.calls.push(
      `retire ${datasetId}${o?.unchangedSince !== undefined ? ` unchanged since ${o.unchangedSince}` : ''}`,
    );
    const failure = this.failRetire;
    this.failRetire = undefined;
    if (failure !== undefined) throw failure;
    this.live.delete(datasetId);
  }
  async keepAside(datasetId: string): Promise<string> {
    this.calls.push(`keepAside ${datasetId}`);
    const failure = this.failKeepAside;
    this.failKeepAside = undefined;
    if (failure !== undefined) throw failure;
    const path = `/pool/flocker/diverged/${datasetId}-x`;
    if (!this.kept.some((k) => k.path === path)) this.kept.push({ datasetId, path });
    return path;
  }
  /** The copies kept aside (keepAside adds one), as listKeptAside lists them. */
  readonly kept: { datasetId: string; path: string }[] = [];
  async listKeptAside(): Promise<{ datasetId: string; path: string }[]> {
    return [...this.kept];
  }
  async lineage(datasetId: string): Promise<CopyLineage | null> {
    return this.live.has(datasetId) ? (this.lineages.get(datasetId) ?? null) : null;
  }
  async mountPoints(datasetId: string): Promise<string[]> {
    return [...(this.live.get(datasetId)?.mounts ?? [])];
  }
  async inUse(datasetId: string): Promise<boolean> {
    return (this.live.get(datasetId)?.mounts.length ?? 0) > 0;
  }
  async mount(datasetId: string, mountPath: string): Promise<void> {
    this.calls.push(`mount ${datasetId}`);
    this.live.get(datasetId)?.mounts.push(mountPath);
  }
  async unmount(mountPath: string): Promise<void> {
    for (const d of this.live.values()) d.mounts = d.mounts.filter((m) => m !== mountPath);
  }
  async createSnapshot(): Promise<LocalSnapshot> {
    throw new Error('not in these tests');
  }
  async listSnapshots(datasetId: string): Promise<LocalSnapshot[]> {
    return [...(this.snapshots.get(datasetId) ?? [])];
  }
  async destroySnapshot(datasetId: string, name: string): Promise<void> {
    this.calls.push(`destroySnapshot ${datasetId} ${name}`);
    this.snapshots.set(
      datasetId,
      (this.snapshots.get(datasetId) ?? []).filter((x) => x.name !== name),
    );
  }
  send(): SendStream {
    throw new Error('not in these tests');
  }
  async receive(): Promise<LocalSnapshot> {
    throw new Error('not in these tests');
  }
  async promote(datasetId: string, name: string, size: number): Promise<LocalDataset> {
    this.calls.push(`promote ${datasetId} ${name}`);
    this.live.set(datasetId, { size, mounts: [] });
    return { datasetId, size, usedBytes: 0 };
  }
}

/** A control service that hands out the snapshot a test sets (whole snapshots) and keeps the reports. */
class SetControl {
  readonly reports: NodeReport[] = [];
  private current: ClusterSnapshot | undefined;
  private wake: (() => void) | undefined;

  set(snapshot: ClusterSnapshot): void {
    this.current = snapshot;
    this.wake?.();
  }
  async reportNodeState(report: NodeReport): Promise<void> {
    this.reports.push(report);
  }
  async waitForCluster(since?: string, timeoutMs = 0): Promise<ClusterSnapshot> {
    if (this.current === undefined || this.current.generation === since)
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, Math.max(timeoutMs, 10));
      });
    if (this.current === undefined) throw new Error('no snapshot yet');
    return this.current;
  }
}

describe('LocalAgent: the errors it reports for a dataset (issue 24)', () => {
  let pki: TestCluster;
  let credentials: ReturnType<TestCluster['node']>;
  beforeAll(() => {
    pki = makeTestCluster();
    credentials = pki.node(ME);
  });
  afterAll(() => pki.destroy());

  let generation = 0;
  /** The cluster: D's configuration, B alive or dead with or without a copy of D (and naming a replica of D here). */
  const cluster = (o: {
    primary: string;
    deleted?: boolean;
    bAlive?: boolean;
    /** B's address (default 10.0.0.2: nothing answers there). */
    bHost?: string;
    bHolds?: boolean;
    metadata?: Record<string, string>;
    replicaHere?: boolean;
  }): ClusterSnapshot => {
    const s = snapshot(String(++generation), [], o.bAlive ?? true);
    const b = s.nodes[1]!;
    return {
      ...s,
      datasets: [{ ...s.datasets[0]!, primary: o.primary, deleted: o.deleted ?? false, metadata: o.metadata ?? {} }],
      nodes: [
        s.nodes[0]!,
        {
          ...b,
          ...(o.bHost !== undefined ? { host: o.bHost } : {}),
          manifestations:
            o.bHolds === true
              ? [{ dataset_id: D, blockdevice_id: `btrfs:/p/${D}`, size: 1000, status: 'mounted' }]
              : [],
          ...(o.replicaHere === true
            ? {
                replicas: [{ dataset_id: D, node_uuid: ME, snapshot: 'move-000002', taken_at: '2026-12-04T12:00:00Z' }],
              }
            : {}),
        },
      ],
    };
  };

  /**
   * A LocalAgent on a pool in memory, following whole snapshots a test sets, on a manual clock.
   * `step`: a change (a snapshot set, the clock moved), then the errors of the last report once the
   * turns it started are over (a report after it, then none for 100 ms).
   */
  const run = async (
    body: (t: {
      pool: MemoryPool;
      control: SetControl;
      clock: ManualClock;
      step: (change: ClusterSnapshot | (() => Promise<void>)) => Promise<NodeReport['errors']>;
    }) => Promise<void>,
    /** The transfer port (every node's; default any free one). */
    transferPort = 0,
    keepSourceSnapshots?: number,
  ): Promise<void> => {
    const pool = new MemoryPool();
    const control = new SetControl();
    const clock = new ManualClock();
    const agent = new LocalAgent({
      nodeUuid: ME,
      era: 'e',
      host: '127.0.0.1',
      engine: pool,
      control,
      mountRoot: '/flocker',
      defaultSize: 1000,
      // Turns come from the snapshots and the clock's retry timers, not a resync.
      resyncIntervalMs: 3_600_000,
      pollWaitMs: 20,
      // A failure's back-off is a minute of the manual clock: a retry only when a test moves it.
      backoffInitialMs: 60_000,
      backoffMaxMs: 60_000,
      logger: winston.createLogger({ silent: true }),
      credentials,
      transferPort,
      listenHost: '127.0.0.1',
      clock,
      ...(keepSourceSnapshots !== undefined ? { keepSourceSnapshots } : {}),
    });
    const step = async (change: ClusterSnapshot | (() => Promise<void>)): Promise<NodeReport['errors']> => {
      const mark = control.reports.length;
      if (typeof change === 'function') await change();
      else control.set(change);
      const deadline = Date.now() + 5000;
      let seen = mark;
      let quietSince = Date.now();
      for (;;) {
        await new Promise((r) => setTimeout(r, 5));
        if (control.reports.length !== seen) {
          seen = control.reports.length;
          quietSince = Date.now();
        } else if (seen > mark && Date.now() - quietSince >= 100) return control.reports[seen - 1]!.errors;
        if (Date.now() > deadline) throw new Error('no turn reported within 5 s');
      }
    };
    await agent.start();
    try {
      await body({ pool, control, clock, step });
    } finally {
      await agent.stop();
    }
  };
  const backendError = () => new StorageError('BACKEND_ERROR', 'creating /pool/flocker/datasets/x failed');
  /** D's copy here mounted at its path, its snapshots taken in memory: what a replica round sends from. */
  const replicaSource = (pool: MemoryPool): void => {
    pool.live.set(D, { size: 1000, mounts: [`/flocker/${D}`] });
    const engine: LocalEngine = pool;
    engine.createSnapshot = async (datasetId, name) => {
      const s = { datasetId, name, identity: `id-${name}`, received: false };
      pool.snapshots.set(datasetId, [...(pool.snapshots.get(datasetId) ?? []), s]);
      return s;
    };
  };

  it("reports the pool's free bytes (available_bytes, rounded down to the smallest volume), looked at most every 10 s; a failed look: no figure", async () => {
    await run(async ({ pool, control, clock, step }) => {
      let free = 3 * MINIMUM_DATASET_SIZE + 5;
      let looks = 0;
      pool.availableBytes = async () => {
        looks += 1;
        if (free < 0) throw new Error('statfs failed');
        return free;
      };
      // Each step a configuration the decision looks at (a replica interval), so a turn runs.
      const turn = (n: number) =>
        step(cluster({ primary: ME, metadata: { 'clusterhq:flocker:replica-interval': String(n) } }));
      await turn(5);
      expect(control.reports.at(-1)?.available_bytes).toBe(3 * MINIMUM_DATASET_SIZE);
      const before = looks;
      free = MINIMUM_DATASET_SIZE;
      await turn(6);
      expect(looks).toBe(before);
      expect(control.reports.at(-1)?.available_bytes).toBe(3 * MINIMUM_DATASET_SIZE);
      await clock.advance(10_000);
      await turn(7);
      expect(control.reports.at(-1)?.available_bytes).toBe(MINIMUM_DATASET_SIZE);
      free = -1;
      await clock.advance(10_000);
      await turn(8);
      expect(control.reports.at(-1)).not.toHaveProperty('available_bytes');
    });
  });

  it('a refusal (the only copy is on a dead node) replaces an earlier failure still in its back-off, at once, and stays as it is', async () => {
    await run(async ({ pool, clock, step }) => {
      pool.failCreate = backendError();
      expect(await step(cluster({ primary: ME }))).toMatchObject([
        { dataset_id: D, action: 'create', code: 'BACKEND_ERROR', attempts: 1 },
      ]);
      // Issue 24's flake: the dataset's only copy now on a dead node, while the create's back-off runs.
      const refused = await step(cluster({ primary: ME, bAlive: false, bHolds: true }));
      expect(refused).toMatchObject([{ dataset_id: D, action: 'refuse', code: 'SOURCE_UNREACHABLE', attempts: 1 }]);
      expect(refused[0]?.message).toContain(B);
      // Looked at again (the create's retry timer, a change of the configuration): the same record; nothing retried.
      expect(await step(() => clock.advance(120_000))).toEqual(refused);
      const replicated = { 'clusterhq:flocker:replicas': '1' };
      expect(await step(cluster({ primary: ME, bAlive: false, bHolds: true, metadata: replicated }))).toEqual(refused);
      expect(pool.calls).toEqual([`create ${D}`]);
    });
  });

  it('a failure of an action the decision no longer has goes from the report: the dataset moved away, deleted, forgotten', async () => {
    await run(async ({ pool, step }) => {
      pool.failCreate = backendError();
      const failedCreate = async (): Promise<void> => {
        expect(await step(cluster({ primary: ME }))).toMatchObject([{ action: 'create', code: 'BACKEND_ERROR' }]);
      };
      await failedCreate();
      // Moved to B (alive, holding a copy): nothing to do here; no error (the clock never moved: its back-off runs).
      expect(await step(cluster({ primary: B, bHolds: true }))).toEqual([]);
      await failedCreate();
      expect(await step(cluster({ primary: ME, deleted: true }))).toEqual([]);
      await failedCreate();
      expect(await step({ ...cluster({ primary: ME }), datasets: [] })).toEqual([]);
    });
  });

  it('a move out decided on a configuration that changed during the turn holds reports at that version while it runs (session 10 review)', async () => {
    await run(async ({ pool, control, step }) => {
      pool.live.set(D, { size: 1000, mounts: [`/flocker/${D}`] });
      const versioned = (n: number, primary: string): ClusterSnapshot => ({
        ...cluster({ primary }),
        configuration_tag: `v${n}`,
      });
      await step(versioned(1, ME));
      // The turn of the move to B (version 2) is in its listing when the move back (version 3) arrives.
      const listing = pool.holdListing(1);
      const mark = control.reports.length;
      control.set(versioned(2, B));
      await until(() => pool.held === 1);
      control.set(versioned(3, ME));
      await new Promise((r) => setTimeout(r, 100));
      // The move out (decided on 2) stays in its first listing until released; the turns go on meanwhile.
      const moving = pool.holdListing(1);
      listing();
      await until(() => pool.held === 2);
      await new Promise((r) => setTimeout(r, 200));
      // Turns go on meanwhile: two reports at least (awaited: under load 200 ms may hold fewer).
      await until(() => control.reports.length - mark > 1);
      const during = control.reports.slice(mark).map((r) => r.configuration_version);
      moving();
      expect(during.length).toBeGreaterThan(1);
      expect(Math.max(...during.map((v) => v ?? 0))).toBe(2);
    });
  });

  it("after the refusal, the opt-in to the replica's loss window promotes the replica here at once", async () => {
    await run(async ({ pool, step }) => {
      pool.retained = [D];
      pool.snapshots.set(D, [{ datasetId: D, name: 'move-000002', identity: 'i2', received: true }]);
      expect(await step(cluster({ primary: ME, bAlive: false, bHolds: true, replicaHere: true }))).toMatchObject([
        { action: 'refuse', code: 'SOURCE_UNREACHABLE', message: expect.stringContaining('accept-replica-loss') },
      ]);
      const optIn = { 'clusterhq:flocker:accept-replica-loss': 'true' };
      expect(
        await step(cluster({ primary: ME, bAlive: false, bHolds: true, replicaHere: true, metadata: optIn })),
      ).toEqual([]);
      expect(pool.calls).toEqual([`promote ${D} move-000002`, `mount ${D}`]);
    });
  });

  it('the data-node marker (issue 24): no holder shown, the replica here unnamed (a restarted service forgot its primary): refused naming the node, then both opt-ins promote the replica (one is not enough: the node may be alive); nothing made empty', async () => {
    await run(async ({ pool, step }) => {
      pool.retained = [D];
      pool.snapshots.set(D, [{ datasetId: D, name: 'move-000002', identity: 'i2', received: true }]);
      // B is shown without the copy (its report before the restart was forgotten), no report names the replica here.
      const marked = { 'clusterhq:flocker:data-node': B, 'clusterhq:flocker:replicas': '1' };
      expect(await step(cluster({ primary: ME, metadata: marked }))).toMatchObject([
        {
          action: 'refuse',
          code: 'SOURCE_UNREACHABLE',
          message: expect.stringMatching(
            new RegExp(
              `may be on node ${B}.*snapshot move-000002.*accept-replica-loss=true and .*accept-data-loss=true`,
            ),
          ),
        },
      ]);
      const replicaOnly = { ...marked, 'clusterhq:flocker:accept-replica-loss': 'true' };
      expect(await step(cluster({ primary: ME, metadata: replicaOnly }))).toMatchObject([
        { action: 'refuse', code: 'SOURCE_UNREACHABLE' },
      ]);
      expect(pool.calls).toEqual([]);
      const optIn = { ...replicaOnly, 'clusterhq:flocker:accept-data-loss': 'true' };
      expect(await step(cluster({ primary: ME, metadata: optIn }))).toEqual([]);
      expect(pool.calls).toEqual([`promote ${D} move-000002`, `mount ${D}`]);
    });
  });

  it('the data-node marker, nothing of the dataset here: refused without touching the pool; the holder shown, no refusal', async () => {
    await run(async ({ pool, step }) => {
      const marked = { 'clusterhq:flocker:data-node': B };
      expect(await step(cluster({ primary: ME, metadata: marked }))).toMatchObject([
        { action: 'refuse', code: 'SOURCE_UNREACHABLE', message: expect.stringContaining(`may be on node ${B}`) },
      ]);
      // B reports its copy again: the move is B's to push (nothing to do here), the refusal gone.
      expect(await step(cluster({ primary: ME, metadata: marked, bHolds: true }))).toEqual([]);
      expect(pool.calls).toEqual([]);
      // Started empty only when the user accepts it (B gone for good).
      expect(
        await step(cluster({ primary: ME, metadata: { ...marked, 'clusterhq:flocker:accept-data-loss': 'true' } })),
      ).toEqual([]);
      expect(pool.calls).toEqual([`create ${D}`, `mount ${D}`]);
    });
  });
  /**
   * Two live copies after a double fault (localChanges.twoLiveCopies.test): this node the primary
   * again, its copy not mounted, B holding one too and answering its status at 127.0.0.2 (a
   * transfer listener on a pool in memory).
   */
  const withB = async (
    bLineage: CopyLineage | undefined,
    body: Parameters<typeof run>[0],
    keepSourceSnapshots?: number,
  ): Promise<void> => {
    const bPool = new MemoryPool();
    bPool.live.set(D, { size: 1000, mounts: ['/flocker/b'] });
    if (bLineage !== undefined) bPool.lineages.set(D, bLineage);
    const server = new TransferServer({ engine: bPool, credentials: pki.node(B) });
    const port = await server.listen(0, '127.0.0.2');
    try {
      await run(body, port, keepSourceSnapshots);
    } finally {
      await server.close();
    }
  };

  it("two live copies: B's copy made from this one's final snapshot and written since: this older copy is retired, never mounted", async () => {
    await withB({ from: 'S1', sameAs: null, snapshots: ['S1'] }, async ({ pool, step }) => {
      pool.live.set(D, { size: 1000, mounts: [] });
      pool.snapshots.set(D, [{ datasetId: D, name: 'move-000001', identity: 'S1', received: false }]);
      pool.lineages.set(D, { from: null, sameAs: 'S1', snapshots: ['S1'] });
      expect(await step(cluster({ primary: ME, bHolds: true, bHost: '127.0.0.2' }))).toEqual([]);
      // The engine checks again, right before its delete, that it is unchanged since S1 (RV4 finding 1).
      expect(pool.calls).toEqual([`retire ${D} unchanged since move-000001`]);
    });
  });

  it('the same, written between the lineage and the retire (a writer no scan saw): the retire refuses, the copy stays live, the error reported', async () => {
    await withB({ from: 'S1', sameAs: null, snapshots: ['S1'] }, async ({ pool, step }) => {
      pool.live.set(D, { size: 1000, mounts: [] });
      pool.snapshots.set(D, [{ datasetId: D, name: 'move-000001', identity: 'S1', received: false }]);
      pool.lineages.set(D, { from: null, sameAs: 'S1', snapshots: ['S1'] });
      pool.failRetire = new SourceChangedAfterPromoteError('changed since move-000001');
      expect(await step(cluster({ primary: ME, bHolds: true, bHost: '127.0.0.2' }))).toMatchObject([
        { dataset_id: D, action: 'retire', code: 'SOURCE_CHANGED' },
      ]);
      expect(pool.live.has(D)).toBe(true);
      expect(pool.snapshots.get(D)?.map((x) => x.name)).toEqual(['move-000001']);
    });
  });

  it('the same, the snapshot it was found unchanged since gone by the retire: not retired', async () => {
    await withB({ from: 'S1', sameAs: null, snapshots: ['S1'] }, async ({ pool, step }) => {
      pool.live.set(D, { size: 1000, mounts: [] });
      pool.lineages.set(D, { from: null, sameAs: 'S1', snapshots: ['S1'] });
      expect(await step(cluster({ primary: ME, bHolds: true, bHost: '127.0.0.2' }))).toMatchObject([
        { dataset_id: D, action: 'retire', code: 'UNKNOWN_SNAPSHOT' },
      ]);
      expect(pool.calls).toEqual([]);
      expect(pool.live.has(D)).toBe(true);
    });
  });

  it('the same with keep_source_snapshots 0: destroyed, a copy kept aside here earlier left in place (review RT2 finding 3)', async () => {
    await withB(
      { from: 'S1', sameAs: null, snapshots: ['S1'] },
      async ({ pool, step }) => {
        pool.live.set(D, { size: 1000, mounts: [] });
        pool.snapshots.set(D, [{ datasetId: D, name: 'move-000001', identity: 'S1', received: false }]);
        pool.lineages.set(D, { from: null, sameAs: 'S1', snapshots: ['S1'] });
        expect(await step(cluster({ primary: ME, bHolds: true, bHost: '127.0.0.2' }))).toEqual([]);
        // Retired first (scan and data check, RV4 finding 4), then destroyed.
        expect(pool.calls).toEqual([`retire ${D} unchanged since move-000001`]);
        expect(pool.destroys).toEqual([{ datasetId: D, keepAsides: true }]);
        expect(pool.live.has(D)).toBe(false);
      },
      0,
    );
  });

  it("the old primary back after a failover (B's copy its replica promoted, the loss accepted; this one written since): kept aside, then retired", async () => {
    await withB({ from: 'R1', sameAs: null, snapshots: ['R1'] }, async ({ pool, control, step }) => {
      pool.live.set(D, { size: 1000, mounts: [`/flocker/${D}`] });
      pool.lineages.set(D, { from: null, sameAs: null, snapshots: ['R1', 'R2'] });
      // R1: the replica B promoted; R2: a round B never got (this node killed in it), the newest here.
      pool.snapshots.set(D, [
        { datasetId: D, name: 'move-000001', identity: 'R1', received: false },
        { datasetId: D, name: 'move-000002', identity: 'R2', received: false },
      ]);
      const failedOver = (interval: string) =>
        cluster({
          primary: B,
          bHolds: true,
          bHost: '127.0.0.2',
          metadata: { 'clusterhq:flocker:accept-replica-loss': 'true', 'clusterhq:flocker:replica-interval': interval },
        });
      expect(await step(failedOver('5'))).toEqual([]);
      // Unmounted by the first turn, kept aside and retired by the next (a resync's; its lineage asked again).
      expect(pool.live.get(D)?.mounts).toEqual([]);
      expect(pool.calls).toEqual([]);
      expect(await step(failedOver('6'))).toEqual([]);
      // Retired before the prune (the newest kept): a kill between them leaves the snapshot B's copy is told apart by.
      expect(pool.calls).toEqual([`keepAside ${D}`, `retire ${D}`, `destroySnapshot ${D} move-000001`]);
      expect(pool.live.has(D)).toBe(false);
      // Reported by the turn that kept it aside (no later turn may come for a while).
      expect(control.reports.at(-1)?.kept_aside).toEqual([{ dataset_id: D, path: `/pool/flocker/diverged/${D}-x` }]);
    });
  });

  it('a copy kept aside is in the reports (kept_aside: dataset and path) until the pool lists it no more (review U2: it was only in a log line)', async () => {
    await run(async ({ pool, control, step }) => {
      const turn = (n: number) =>
        step(cluster({ primary: ME, metadata: { 'clusterhq:flocker:replica-interval': String(n) } }));
      await turn(5);
      expect(control.reports.at(-1)).not.toHaveProperty('kept_aside');
      pool.kept.push({ datasetId: D, path: `/pool/flocker/diverged/${D}-x` });
      await turn(6);
      expect(control.reports.at(-1)?.kept_aside).toEqual([{ dataset_id: D, path: `/pool/flocker/diverged/${D}-x` }]);
      pool.kept.length = 0;
      await turn(7);
      expect(control.reports.at(-1)).not.toHaveProperty('kept_aside');
    });
  });

  it('the dataset deleted: its copy kept aside destroyed with it, and gone from the report of that same turn', async () => {
    await run(async ({ pool, control, step }) => {
      pool.retained = [D];
      pool.kept.push({ datasetId: D, path: `/pool/flocker/diverged/${D}-x` });
      await step(cluster({ primary: B, metadata: { 'clusterhq:flocker:replica-interval': '5' } }));
      expect(control.reports.at(-1)?.kept_aside).toEqual([{ dataset_id: D, path: `/pool/flocker/diverged/${D}-x` }]);
      await step(cluster({ primary: B, deleted: true }));
      expect(pool.destroys).toEqual([{ datasetId: D, keepAsides: false }]);
      expect(control.reports.at(-1)).not.toHaveProperty('kept_aside');
    });
  });

  it('the same, a container still holding the copy: keepAside refused (in use, as the engines do: review RT2 finding 1), nothing retired or pruned; the next try keeps it aside and retires', async () => {
    await withB({ from: 'R1', sameAs: null, snapshots: ['R1'] }, async ({ pool, clock, step }) => {
      pool.live.set(D, { size: 1000, mounts: [] });
      pool.lineages.set(D, { from: null, sameAs: null, snapshots: ['R1', 'R2'] });
      pool.snapshots.set(D, [
        { datasetId: D, name: 'move-000001', identity: 'R1', received: false },
        { datasetId: D, name: 'move-000002', identity: 'R2', received: false },
      ]);
      pool.failKeepAside = new StorageError('DEVICE_BUSY', `dataset ${D} is mounted in another mount namespace`);
      const failedOver = cluster({
        primary: B,
        bHolds: true,
        bHost: '127.0.0.2',
        metadata: { 'clusterhq:flocker:accept-replica-loss': 'true' },
      });
      expect(await step(failedOver)).toMatchObject([{ dataset_id: D, action: 'retire', code: 'DEVICE_BUSY' }]);
      expect(pool.calls).toEqual([`keepAside ${D}`]);
      // The snapshot B's copy is made from is still here: the copies are still ordered, the same decision.
      expect(pool.snapshots.get(D)?.map((x) => x.name)).toEqual(['move-000001', 'move-000002']);
      expect(await step(() => clock.advance(60_000))).toEqual([]);
      expect(pool.calls).toEqual([
        `keepAside ${D}`,
        `keepAside ${D}`,
        `retire ${D}`,
        `destroySnapshot ${D} move-000001`,
      ]);
      expect(pool.live.has(D)).toBe(false);
    });
  });

  it('two live copies, B answering without a lineage (an agent one release behind): refused naming B, this copy neither mounted nor retired', async () => {
    await withB(undefined, async ({ pool, step }) => {
      pool.live.set(D, { size: 1000, mounts: [] });
      pool.lineages.set(D, { from: null, sameAs: 'S1', snapshots: ['S1'] });
      const refused = await step(cluster({ primary: ME, bHolds: true, bHost: '127.0.0.2' }));
      expect(refused).toMatchObject([{ dataset_id: D, action: 'refuse', code: 'TWO_LIVE_COPIES' }]);
      expect(refused[0]?.message).toContain(B);
      expect(pool.calls).toEqual([]);
      expect(pool.live.has(D)).toBe(true);
    });
  });

  it('a replica round sending when its dataset is deleted (s26 REPLSTOP-F): stopped at once, no byte sent after, no error, the destroy after the send ended; B discards the partial receive', async () => {
    const events: string[] = [];
    let received = 0;
    const bPool = new MemoryPool();
    // Through the engine's type: MemoryPool's own receive and createSnapshot take no arguments.
    const bEngine: LocalEngine = bPool;
    bEngine.receive = async (datasetId, name, identity, stream) => {
      events.push('B receiving');
      try {
        for await (const chunk of stream) received += (chunk as Buffer).length;
      } catch (e) {
        // A cut-off stream: the engine keeps nothing of it (btrfs/zfs discard a partial receive).
        events.push('B discarded the partial receive');
        throw e;
      }
      return { datasetId, name, identity, received: true };
    };
    const server = new TransferServer({ engine: bPool, credentials: pki.node(B) });
    const port = await server.listen(0, '127.0.0.2');
    try {
      await run(async ({ pool, step }) => {
        replicaSource(pool);
        // A send that never ends by itself (a first whole send of a large copy): a chunk every 5 ms until aborted.
        let aborted = false;
        pool.send = () => {
          const stream = new Readable({ read() {} });
          let fail: (e: Error) => void = () => {};
          const done = new Promise<void>((_, reject) => (fail = reject));
          done.catch(() => undefined);
          const timer = setInterval(() => stream.push(Buffer.alloc(64 * 1024, 1)), 5);
          return {
            stream,
            done,
            abort: () => {
              if (aborted) return;
              aborted = true;
              events.push('send aborted');
              clearInterval(timer);
              stream.destroy(new Error('send killed'));
              setTimeout(() => {
                events.push('send ended');
                fail(new Error('send killed'));
              }, 50);
            },
          };
        };
        const destroy = pool.destroyDataset.bind(pool);
        pool.destroyDataset = async (datasetId, o) => {
          events.push('destroy');
          return destroy(datasetId, o);
        };
        const replicated = { 'clusterhq:flocker:replicas': '1', 'clusterhq:flocker:replica-interval': '2' };
        expect(await step(cluster({ primary: ME, bHost: '127.0.0.2', metadata: replicated }))).toEqual([]);
        await until(() => received >= 256 * 1024);
        const errors = await step(cluster({ primary: ME, deleted: true, bHost: '127.0.0.2', metadata: replicated }));
        const discarded = 'B discarded the partial receive';
        await until(() => events.includes('destroy') && events.includes(discarded));
        expect(errors).toEqual([]);
        // A's order is the property (the destroy after the send ended); B's discard comes after the abort, in whichever
        // turn its socket's end arrives (review S26B B8: not ordered against A's 50-ms 'send ended' on a loaded host).
        expect(events.filter((e) => e !== discarded)).toEqual(['B receiving', 'send aborted', 'send ended', 'destroy']);
        expect(events.indexOf(discarded)).toBeGreaterThan(events.indexOf('send aborted'));
        // No byte after the stop: what B received does not grow (the send's timer is cleared by the abort).
        const bytes = received;
        await new Promise((r) => setTimeout(r, 100));
        expect(received).toBe(bytes);
        expect(pool.live.has(D)).toBe(false);
      }, port);
    } finally {
      await server.close();
    }
  });
  it("a replica round to B when B becomes the primary (review B10/F10): runs on while bytes move, stopped once nothing moved for 30 s of the agent's clock", async () => {
    const events: string[] = [];
    let received = 0;
    let stalled = false;
    const bPool = new MemoryPool();
    const bEngine: LocalEngine = bPool;
    bEngine.receive = async (datasetId, name, identity, stream) => {
      stream.on('error', () => undefined);
      for await (const chunk of stream) {
        received += (chunk as Buffer).length;
        // B's receive hangs (a zfs recv stuck): it reads no more; the connection's buffers fill.
        if (stalled) await new Promise(() => undefined);
      }
      return { datasetId, name, identity, received: true };
    };
    const server = new TransferServer({ engine: bPool, credentials: pki.node(B) });
    const port = await server.listen(0, '127.0.0.2');
    try {
      await run(async ({ pool, step, clock }) => {
        replicaSource(pool);
        // A first whole send of a large copy: a chunk every 5 ms until aborted.
        let sent = 0;
        let sends = 0;
        let sending: Readable | undefined;
        pool.send = () => {
          // The move that follows the stop fails at once (it is not what this test is about): a failure in back-off.
          if (++sends > 1) throw new Error('not in this test: the move');
          const stream = new Readable({ read() {} });
          sending = stream;
          let fail: (e: Error) => void = () => {};
          const done = new Promise<void>((_, reject) => (fail = reject));
          done.catch(() => undefined);
          // Produced as the stream is read (its buffer at most a MiB): `sent` stops once the connection takes no more.
          const timer = setInterval(() => {
            if (stream.readableLength >= 1024 * 1024) return;
            sent++;
            stream.push(Buffer.alloc(64 * 1024, 1));
          }, 5);
          return {
            stream,
            done,
            abort: () => {
              events.push('send aborted');
              clearInterval(timer);
              stream.destroy(new Error('send killed'));
              fail(new Error('send killed'));
            },
          };
        };
        const replicated = { 'clusterhq:flocker:replicas': '1', 'clusterhq:flocker:replica-interval': '2' };
        expect(await step(cluster({ primary: ME, bHost: '127.0.0.2', metadata: replicated }))).toEqual([]);
        await until(() => received >= 256 * 1024);
        // B is the primary now: the round is the move's first send, and moves: it runs on.
        expect(await step(cluster({ primary: B, bHost: '127.0.0.2', metadata: replicated }))).toEqual([]);
        const before = received;
        await until(() => received >= before + 256 * 1024);
        expect(events).toEqual([]);
        // B stops reading: once the buffers are full nothing moves; not stopped before 30 s of the agent's clock.
        stalled = true;
        // Where the send is: any byte the round hands on reads the stream (its length changes, the producer refills).
        const position = (): string => `${sent}:${sending?.readableLength ?? -1}`;
        // Nothing moves any more: the producer blocked by back-pressure (its stream full, nothing read from it) and
        // its position unchanged for a second of real time, judged every 50 ms (a loaded host stalling this process
        // longer than a timer turn does not pass for the stall).
        const quiet = async (): Promise<string> => {
          let last = position();
          let since = Date.now();
          for (;;) {
            await new Promise((r) => setTimeout(r, 50));
            const now = position();
            if (now !== last || (sending?.readableLength ?? 0) < 1024 * 1024) {
              last = now;
              since = Date.now();
            } else if (Date.now() - since >= 1_000) return now;
          }
        };
        // 29 s of the agent's clock after the last progress: not stopped. Bytes that still moved after the quiet was
        // judged (this process stalled past the checks) were progress at the advanced clock: the round's 30 s run from
        // there, so the quiet is judged again and the 29 s given again (never fewer than 29 s since the last progress).
        let at = await quiet();
        for (;;) {
          await clock.advance(29_000);
          await new Promise((r) => setTimeout(r, 200));
          expect(events).toEqual([]);
          if (position() === at) break;
          at = await quiet();
        }
        // 31 s: stopped (the recheck timer's turn).
        await clock.advance(2_000);
        await until(() => events.includes('send aborted'));
        // Then the move (its first send from here: the round's snapshot never reached B).
        await until(() => sends === 2);
      }, port);
    } finally {
      await server.close();
    }
  });
});
