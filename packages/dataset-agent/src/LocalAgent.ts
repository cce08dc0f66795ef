/**
 * The dataset agent of a node with a local backend (issue 24: `dataset: {backend: local}`).
 * Each dataset's live copy is on one node's own pool; nothing is attached across nodes, so this is
 * not the block-device agent (DatasetAgent) but a smaller level-triggered loop: follow the
 * cluster, look at this node's copies, decide (localChanges.ts, pure), act, report. A move is a
 * transfer this node pushes to the new primary's transfer listener (mutual TLS with the node
 * certificates); every node runs one (TransferServer) for moves to it.
 *
 * It follows its node's view (issue 23/24) as the block agent does (ClusterFollower: a watch, else
 * long-poll deltas, else whole snapshots); a local node's view carries what its decisions read
 * (@flocker/api localViewOf: what its pool retains, replicas named on it, its datasets' primaries,
 * every local node as a peer). A control service whose views lack that (older: no `peers` once it
 * knows this node as a local one) is followed by whole snapshots, as before.
 */
import {
  configurationVersionOfTag,
  type ActionError,
  type ClusterSnapshot,
  type KeptAsideCopy,
  type NodeReport,
} from '@flocker/api';
import { backoffDelay, followLongPoll } from '@flocker/runtime';
import { datasetAgentMetrics, processRegistry } from '@flocker/metrics';
import {
  moveLocalDataset,
  snapshotsToPrune,
  sourceSnapshotsToPrune,
  DEFAULT_KEEP_SOURCE_SNAPSHOTS,
  LocalStorageError,
  TransferClient,
  TransferServer,
  type LocalEngine,
  type MoveProgress,
  type NodeTlsCredentials,
} from '@flocker/storage-drivers';
import type winston from 'winston';
import { ActedVersion } from './actedVersion';
import { systemClock, type Clock, type TimerHandle } from './clock';
import { ClusterFollower } from './ClusterFollower';
import { followerReads } from './controlChannel';
import type { ControlChannel } from './DatasetAgentOptions';
import { errorCode, errorMessage } from './errors';
import { sampleAgent } from './metrics';
import { coarseUsedBytes } from './usedSpace';
import { reportedAvailableBytes } from './capacity';
import {
  DEFAULT_REPLICA_INTERVAL_MS,
  calculateLocalChanges,
  copiesToCompare,
  failureSteps,
  keepsReplica,
  localClusterNodes,
  leasedHere,
  localDesired,
  markedReplicasHere,
  localMountPath,
  mayReceiveFrom,
  replicasNamedOn,
  replicaRoundRecheckMs,
  replicaSettings,
  viewKind,
  replicaStep,
  type CopyLineage,
  type LocalAction,
  type LocalClusterNode,
  type LocalCopyHere,
  type LocalObservation,
  type LocalFailureRecord,
  type ReplicaRecord,
  type ReplicaRoundProgress,
} from './localChanges';

export interface LocalAgentOptions {
  readonly nodeUuid: string;
  readonly era: string;
  /** This node's address as reported; other nodes' movers connect to it. */
  readonly host: string;
  readonly engine: LocalEngine;
  readonly control: ControlChannel;
  readonly mountRoot: string;
  readonly defaultSize: number;
  readonly resyncIntervalMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly logger: winston.Logger;
  /** The node certificate (CN node-<uuid>), its key and the cluster CA. */
  readonly credentials: NodeTlsCredentials;
  /** The transfer listener's port, the same on every node. */
  readonly transferPort: number;
  /** Where the listener binds (default every address). */
  readonly listenHost?: string;
  readonly pollWaitMs?: number;
  /** While a move waits for the release: a catch-up round this often (ms). */
  readonly catchUpMs?: number;
  /** Between a standby replica's snapshots when the dataset's metadata does not say (ms; default 30 s). */
  readonly replicaIntervalMs?: number;
  /** After a move away: how many of its move snapshots the old source keeps (agent.yml keep_source_snapshots; default 1). */
  readonly keepSourceSnapshots?: number;
  /** The failures' back-off and timestamps (default: the system clock). */
  readonly clock?: Clock;
  /** Test only: a move's hook once the target promoted, before this copy is retired (LocalMoveOptions.afterPromote). */
  readonly afterPromote?: () => void | Promise<void>;
  /** Test only: a move's hook right before its first promote is asked for (LocalMoveOptions.beforePromote). */
  readonly beforePromote?: () => void | Promise<void>;
}

type Replica = ReplicaRecord & { readonly snapshot: string | null };

/** How long a peer's status may take when two live copies are compared (a turn waits for it). */
const LINEAGE_TIMEOUT_MS = 10_000;

/** A copy on this node's pool with the bytes the engine counts for it (btrfs qgroup / ZFS referenced). */
export type LocalCopyReport = LocalCopyHere & { readonly usedBytes: number };

interface Failure extends LocalFailureRecord {
  readonly code: string;
  readonly message: string;
  readonly attempts: number;
  readonly since: string;
}

/** An action the agent carries out (a refusal only records why not: LocalAgent.refused). */
type StorageAction = Exclude<LocalAction, { kind: 'refuse' }>;

/** Between two looks at the pool's free bytes (a turn runs every resync, and at every change). */
const CAPACITY_INTERVAL_MS = 10_000;

export class LocalAgent {
  private snapshot: ClusterSnapshot | null = null;
  /**
   * The configuration version reports carry (session 10): turns and moves out tracked from their start. A risen
   * version asks for nothing: a move onto this node changes decisionKey (a turn, which reports), a move out's end
   * asks for a turn, and other changes (leases) need no report.
   */
  private readonly acted = new ActedVersion(
    () => configurationVersionOfTag(this.snapshot?.configuration_tag),
    () => undefined,
  );
  /** The configuration version of the snapshot the running turn decides on (a move out it starts: startMove). */
  private decidedVersion: number | undefined;
  private readonly metrics = datasetAgentMetrics(processRegistry('dataset-agent'));
  private readonly stopping = new AbortController();
  private readonly server: TransferServer;
  private readonly movers = new Map<string, Promise<void>>();
  /** Takes a running move back (see LocalMoveOptions.cancel). */
  private readonly cancels = new Map<string, AbortController>();
  /** Ends a running move wherever it is (its dataset deleted: stopMove). */
  private readonly stops = new Map<string, AbortController>();
  /** The pool's free bytes as last looked at (reported as available_bytes, rounded down); undefined: no figure. */
  private availableBytes: number | undefined;
  /** When the pool's free bytes were last looked at (this.clock, ms). */
  private capacityAt: number | undefined;
  private readonly progress = new Map<string, MoveProgress & { readonly to: string }>();
  /**
   * A running move's warning (review RV4 finding 3: SOURCE_WRITTEN_UNSEEN, the released source keeps
   * changing after each final snapshot): reported as the dataset's error while the move copies on.
   */
  private readonly moveWarnings = new Map<string, { code: string; message: string; since: string; attempts: number }>();
  private lastProgressReport = 0;
  private readonly failures = new Map<string, Failure>();
  /** The turns asked for when failures' back-offs end (cancelled on stop). */
  private readonly retryTimers = new Set<TimerHandle>();
  private readonly clock: Clock;
  /** The standby replicas of the datasets this node is the primary of (seeded from its last report after a restart). */
  private readonly replicas = new Map<string, Replica>();
  private replicasSeeded = false;
  /** Replica snapshots being sent. */
  private readonly replicating = new Map<string, Promise<void>>();
  /** Ends a running replica round (its dataset deleted or no longer this node's: stopReplica). */
  private readonly replicaStops = new Map<string, AbortController>();
  /** The running rounds' progress (this.clock): a round to a new primary runs on only while it moves (review F10). */
  private readonly replicaRounds = new Map<string, { movedAt: number; primaryGoneAt?: number }>();
  /** The turn asked for when a round kept on for a move reaches its idle or follow bound (replicaRoundRecheckMs). */
  private roundCheck: TimerHandle | undefined;
  private running: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private following: Promise<void> | undefined;
  private copies: readonly LocalCopyReport[] = [];
  /** What the last turn-triggering snapshot said that decisions depend on (see decisionKey). */
  private decidedOn: string | undefined;
  /** Follows this node's view (or whole snapshots from a service without deltas). */
  private follower: ClusterFollower | undefined;
  /** Following whole snapshots itself: the control service's views are not local ones (an older service). */
  private wholeOnly = false;
  /** The last snapshot held is a local view (it has peers): the service takes `retained` in reports. */
  private localViews = false;
  /** Datasets the pool retains without a live copy (reported as `retained` to a service with local views). */
  private retainedHere: readonly string[] = [];
  /**
   * Copies kept aside on the pool (writes the primary's copy lacks), reported as `kept_aside` so that
   * the user learns of them (review U2: they were only in a log line). Control is upgraded first: it knows the field.
   */
  private keptAsideHere: readonly KeptAsideCopy[] = [];
  /** What was last logged of each dataset's two live copies (lineages). */
  private readonly lineagesSaid = new Map<string, string>();

  constructor(private readonly o: LocalAgentOptions) {
    this.clock = o.clock ?? systemClock;
    this.server = new TransferServer({
      engine: o.engine,
      credentials: o.credentials,
      logger: o.logger,
      mountPathFor: (datasetId) => localMountPath(datasetId, o),
      // Only the dataset's primary takes its data (as this node last saw the configuration); a
      // standby replica's node takes snapshots from the primary (never a promote: the primary sends none).
      // Never a replica beside a live copy here (its round's prune would take the snapshots it is compared by).
      mayReceive: (datasetId, peer) =>
        mayReceiveFrom(
          this.snapshot,
          o.nodeUuid,
          datasetId,
          peer,
          this.copies.some((c) => c.datasetId === datasetId),
        ),
      promoted: () => this.requestTurn(),
    });
  }

  async start(): Promise<void> {
    sampleAgent(
      () => this.buildReport(),
      () => this.snapshot?.leases.filter((l) => l.node_uuid === this.o.nodeUuid).length ?? 0,
    );
    await this.o.engine.prepare();
    const port = await this.server.listen(this.o.transferPort, this.o.listenHost ?? '0.0.0.0');
    this.o.logger.info('local transfer listener started', {
      port,
      engine: this.o.engine.engine,
      pool: this.o.engine.pool,
    });
    const { control, nodeUuid } = this.o;
    if (control.waitForClusterDelta === undefined) this.followWhole();
    else {
      this.follower = new ClusterFollower({
        ...followerReads(control, nodeUuid),
        nodeUuid,
        clock: systemClock,
        logger: this.o.logger,
        pollWaitMs: Math.min(this.o.pollWaitMs ?? 10_000, this.o.resyncIntervalMs),
        backoffInitialMs: this.o.backoffInitialMs,
        backoffMaxMs: this.o.backoffMaxMs,
        adopted: (snap) => this.adoptedView(snap),
      });
      this.follower.start();
    }
    this.timer = setInterval(() => this.requestTurn(), this.o.resyncIntervalMs);
  }

  /** How it follows the cluster now (tests, logs): the follower's mode, or 'whole' on its own. */
  get followMode(): string {
    return this.wholeOnly || this.follower === undefined ? 'whole' : this.follower.followMode;
  }

  /** Answers read by the follower, by kind (tests, the e2e's check that the agent follows its view). */
  get answers(): Readonly<Record<string, number>> | undefined {
    return this.follower?.answers;
  }

  private adoptedView(snap: ClusterSnapshot): void {
    if (this.wholeOnly || this.stopping.signal.aborted) return;
    const kind = viewKind(snap, this.o.nodeUuid, this.follower?.followMode !== 'whole');
    if (kind === 'older') {
      // The service knows this node as a local one and still gives no peers: its views are not local ones.
      this.o.logger.info(
        "the control service's node views lack what a local node decides on: following whole snapshots",
      );
      this.follower?.stop();
      this.followWhole();
      return;
    }
    // Before its first report the service does not know this node is local: a narrow view, whose
    // turn only does what needs no other node (the report it ends with brings the local view).
    this.localViews = kind === 'local';
    this.take(snap);
  }

  private take(snapshot: ClusterSnapshot): void {
    // Our own reports move the generation too: a turn only when what decides changed.
    const key = decisionKey(snapshot, this.o.nodeUuid);
    this.snapshot = snapshot;
    if (key !== this.decidedOn) {
      this.decidedOn = key;
      this.requestTurn();
    }
  }

  /** Whole snapshots by long-polls (a control service without deltas, or without local views). */
  private followWhole(): void {
    this.wholeOnly = true;
    this.localViews = false;
    this.following = followLongPoll({
      wait: (since, timeoutMs) => this.o.control.waitForCluster(since, timeoutMs),
      waitMs: Math.min(this.o.pollWaitMs ?? 10_000, this.o.resyncIntervalMs),
      onSnapshot: (snapshot) => this.take(snapshot),
      onError: (e, failures) =>
        this.o.logger.warn('cannot reach the control service', { error: errorMessage(e), failures }),
      backoff: { initialMs: this.o.backoffInitialMs, maxMs: this.o.backoffMaxMs, jitter: true },
      signal: this.stopping.signal,
    });
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    clearInterval(this.timer);
    for (const t of this.retryTimers) t.cancel();
    this.retryTimers.clear();
    this.roundCheck?.cancel();
    this.follower?.stop();
    await this.following;
    await this.running;
    await Promise.allSettled([...this.movers.values(), ...this.replicating.values()]);
    await this.server.close();
  }

  /** A turn now, or right after the running one. */
  requestTurn(): void {
    if (this.stopping.signal.aborted) return;
    if (this.running !== null) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.acted.track(() => this.turn());
        } catch (e) {
          this.o.logger.error('local turn failed', { code: errorCode(e), error: errorMessage(e) });
        }
      } while (this.again && !this.stopping.signal.aborted);
      this.running = null;
    })();
  }

  private async turn(): Promise<void> {
    const snapshot = this.snapshot;
    if (snapshot === null) return;
    this.decidedVersion = configurationVersionOfTag(snapshot.configuration_tag);
    const { engine } = this.o;
    await this.lookAtCapacity();
    const datasets = await engine.listDatasets();
    this.copies = await Promise.all(
      datasets.map(async (d) => ({
        datasetId: d.datasetId,
        size: d.size,
        usedBytes: d.usedBytes,
        mountPoints: await engine.mountPoints(d.datasetId),
      })),
    );
    const me = this.o.nodeUuid;
    if (!this.replicasSeeded) {
      // After a restart: the replica node this node recorded (and the replica's age) as its last report said.
      this.replicasSeeded = true;
      for (const r of snapshot.nodes.find((n) => n.uuid === me)?.replicas ?? [])
        if (!this.replicas.has(r.dataset_id))
          this.replicas.set(r.dataset_id, {
            node: r.node_uuid,
            snapshot: r.snapshot,
            takenAt: r.taken_at === null ? null : Date.parse(r.taken_at),
          });
    }
    for (const datasetId of [...this.replicas.keys()])
      if (!keepsReplica(snapshot, me, datasetId) && !this.replicating.has(datasetId)) this.replicas.delete(datasetId);
    const [retainedList, keptAside] = await Promise.all([engine.listRetained(), engine.listKeptAside?.() ?? []]);
    const retained = new Set(retainedList);
    this.keptAsideHere = keptAside.map((k) => ({ dataset_id: k.datasetId, path: k.path }));
    const live = new Set(this.copies.map((c) => c.datasetId));
    // In the view of a service with local views (the report says so): they are this node's to clean up.
    this.retainedHere = [...retained].filter((id) => !live.has(id)).sort();
    // Only received snapshots, no live copy: a standby replica (or a move's leftover) the decision may find stale.
    // A retained dataset's snapshots listed once for both questions below (each list runs the engine's tool).
    const listed = new Map<string, ReturnType<typeof engine.listSnapshots>>();
    const snapshotsOf = (datasetId: string): ReturnType<typeof engine.listSnapshots> => {
      const known = listed.get(datasetId);
      if (known !== undefined) return known;
      const list = engine.listSnapshots(datasetId);
      listed.set(datasetId, list);
      return list;
    };
    const receivedOnly = new Set<string>();
    for (const datasetId of retained)
      if (!live.has(datasetId) && !this.movers.has(datasetId)) {
        const held = await snapshotsOf(datasetId);
        if (held.length > 0 && held.every((s) => s.received)) receivedOnly.add(datasetId);
      }
    const replicaHere = new Map<string, string>();
    // Which replicas are named on this node, as the primaries report it (a dead primary's last report included), and
    // those a restarted control service forgot the namings of (moved here with the data-node marker).
    const named = new Set([...replicasNamedOn(snapshot, me), ...markedReplicasHere(snapshot, me, receivedOnly)]);
    for (const datasetId of named)
      if (retained.has(datasetId) && !live.has(datasetId)) {
        const newest = (await snapshotsOf(datasetId)).at(-1);
        if (newest !== undefined) replicaHere.set(datasetId, newest.name);
      }
    // When this node first saw another node the primary of a dataset it runs a round of (the follow bound's start).
    const clockNow = this.clock.now();
    for (const [datasetId, round] of this.replicaRounds) {
      const primary = snapshot.datasets.find((x) => x.dataset_id === datasetId)?.primary;
      if (primary === me) delete round.primaryGoneAt;
      else round.primaryGoneAt ??= clockNow;
    }
    const replicaRounds = new Map<string, ReplicaRoundProgress>(
      [...this.replicaRounds].map(([datasetId, round]) => [datasetId, { ...round }]),
    );
    const observation: LocalObservation = {
      copies: this.copies,
      moving: new Set(this.movers.keys()),
      retained,
      replicaRecords: this.replicas,
      replicating: new Set(this.replicating.keys()),
      replicaRounds,
      replicaHere,
      receivedOnly,
      leasedHere: leasedHere(snapshot, this.o.nodeUuid),
    };
    const desired = localDesired(snapshot);
    const nodes = localClusterNodes(snapshot);
    const ctx = { ...this.o, now: Date.now(), clockNow };
    // Two live copies (a double fault): the decision orders them by their lineages, asked for only then.
    const compare = copiesToCompare(desired, nodes, observation, ctx);
    const lineages = compare.size > 0 ? await this.lineages(compare) : undefined;
    for (const datasetId of this.lineagesSaid.keys()) if (!compare.has(datasetId)) this.lineagesSaid.delete(datasetId);
    const actions = calculateLocalChanges(
      desired,
      nodes,
      lineages !== undefined ? { ...observation, lineages } : observation,
      ctx,
    );
    // A round kept on for a move is looked at again when its bounds pass: no snapshot need come then.
    this.roundCheck?.cancel();
    this.roundCheck = undefined;
    const recheck = replicaRoundRecheckMs(observation, ctx);
    if (recheck !== undefined)
      this.roundCheck = this.clock.setTimer(() => {
        this.roundCheck = undefined;
        this.requestTurn();
      }, recheck + 1);
    // A failure the decision no longer has the action of goes (a stale error must not stand for what
    // the node does now); a refusal is recorded at once, whatever back-off an earlier failure had.
    const { due, forget } = failureSteps(
      actions,
      this.failures,
      this.clock.now(),
      new Set([...this.movers.keys(), ...this.replicating.keys()]),
    );
    for (const datasetId of forget) {
      const f = this.failures.get(datasetId);
      this.failures.delete(datasetId);
      this.o.logger.info('local failure dropped: the decision no longer has its action', {
        datasetId,
        action: f?.action,
        code: f?.code,
      });
    }
    let changed = false;
    for (const action of due) {
      if (this.stopping.signal.aborted) break;
      if (action.kind === 'refuse') {
        this.refused(action);
        continue;
      }
      const started = Date.now();
      // A move and a replica send run in the background: timed when they end (startMove, startReplica).
      const timed = action.kind !== 'moveOut' && action.kind !== 'replicate';
      try {
        await this.execute(action);
        if (timed) this.metrics.step(action.kind, (Date.now() - started) / 1000);
        this.failures.delete(action.datasetId);
        changed = true;
      } catch (e) {
        if (timed) this.metrics.step(action.kind, (Date.now() - started) / 1000, errorCode(e));
        this.failed(action, errorCode(e), errorMessage(e));
      }
    }
    if (changed) {
      // A copy kept aside (a retire) or deleted with its dataset: in this turn's report, not the next turn's.
      const keptAside = (await engine.listKeptAside?.()) ?? [];
      this.keptAsideHere = keptAside.map((k) => ({ dataset_id: k.datasetId, path: k.path }));
      const after = await engine.listDatasets();
      this.copies = await Promise.all(
        after.map(async (d) => ({
          datasetId: d.datasetId,
          size: d.size,
          usedBytes: d.usedBytes,
          mountPoints: await engine.mountPoints(d.datasetId),
        })),
      );
    }
    await this.report();
  }

  /**
   * The lineages of the live copies of each dataset here and on the other nodes holding one too
   * (their transfer listeners' status). A node that does not answer in time, or answers without one
   * (an agent one release behind), is left out: its order is not known (the decision refuses).
   */
  private async lineages(
    compare: ReadonlyMap<string, readonly LocalClusterNode[]>,
  ): Promise<Map<string, Map<string, CopyLineage>>> {
    const out = new Map<string, Map<string, CopyLineage>>();
    await Promise.all(
      [...compare].map(async ([datasetId, others]) => {
        const known = new Map<string, CopyLineage>();
        const unknown: Record<string, string> = {};
        const mine = await this.o.engine.lineage?.(datasetId).catch((e: unknown) => {
          unknown[this.o.nodeUuid] = errorMessage(e);
          return null;
        });
        if (mine != null) known.set(this.o.nodeUuid, mine);
        await Promise.all(
          others.map(async (n) => {
            const peer = new TransferClient(
              { host: n.host, port: this.o.transferPort, nodeUuid: n.uuid },
              this.o.credentials,
              LINEAGE_TIMEOUT_MS,
            );
            try {
              const lineage = (await peer.status(datasetId)).live.lineage;
              if (lineage !== undefined) known.set(n.uuid, lineage);
              else unknown[n.uuid] = 'its status tells no lineage (an agent one release behind?)';
            } catch (e) {
              unknown[n.uuid] = errorMessage(e);
            }
          }),
        );
        // Logged when it changes, not at every turn while a refusal stands.
        const said = JSON.stringify([Object.fromEntries(known), unknown]);
        if (this.lineagesSaid.get(datasetId) !== said) {
          this.lineagesSaid.set(datasetId, said);
          this.o.logger.info('two live copies of a dataset: their lineages', {
            datasetId,
            lineages: Object.fromEntries(known),
            ...(Object.keys(unknown).length > 0 ? { unknown } : {}),
          });
        }
        out.set(datasetId, known);
      }),
    );
    return out;
  }

  private failed(action: StorageAction, code: string, message: string): void {
    const before = this.failures.get(action.datasetId);
    const attempts = (before?.attempts ?? 0) + 1;
    const delay = backoffDelay(attempts - 1, {
      initialMs: this.o.backoffInitialMs,
      maxMs: this.o.backoffMaxMs,
      jitter: true,
    });
    this.failures.set(action.datasetId, {
      action: action.kind,
      code,
      message,
      attempts,
      since: before?.since ?? new Date(this.clock.wallNow()).toISOString(),
      retryAt: this.clock.now() + delay,
    });
    this.o.logger.warn('local action failed', {
      datasetId: action.datasetId,
      action: action.kind,
      code,
      error: message,
    });
    const timer = this.clock.setTimer(() => {
      this.retryTimers.delete(timer);
      this.requestTurn();
    }, delay);
    this.retryTimers.add(timer);
  }

  /**
   * Nothing to do but say why (the dataset's error): looked at again on every turn, with no back-off
   * (it touches no storage). The same refusal again leaves the record (and the report) as it is.
   */
  private refused(action: Extract<LocalAction, { kind: 'refuse' }>): void {
    const before = this.failures.get(action.datasetId);
    if (before?.action === 'refuse' && before.code === action.code && before.message === action.message) return;
    this.failures.set(action.datasetId, {
      action: 'refuse',
      code: action.code,
      message: action.message,
      attempts: 1,
      since: new Date(this.clock.wallNow()).toISOString(),
      retryAt: 0,
    });
    this.o.logger.warn('local action refused', {
      datasetId: action.datasetId,
      code: action.code,
      error: action.message,
    });
  }

  private async execute(action: StorageAction): Promise<void> {
    const { engine, logger } = this.o;
    logger.info('local action', { ...action });
    switch (action.kind) {
      case 'create':
        await engine.createDataset(action.datasetId, action.size);
        await engine.mount(action.datasetId, action.mountPath);
        return;
      case 'mount':
        await engine.mount(action.datasetId, action.mountPath);
        return;
      case 'resize':
        await engine.resizeDataset(action.datasetId, action.size);
        return;
      case 'unmount':
        await engine.unmount(action.mountPath);
        return;
      case 'destroy':
        await engine.destroyDataset(action.datasetId, action.keepAsides === true ? { keepAsides: true } : undefined);
        return;
      case 'retire': {
        // As the mover's own clean-up would have (it was killed after the promote): the retention option.
        const keepSource = this.o.keepSourceSnapshots ?? DEFAULT_KEEP_SOURCE_SNAPSHOTS;
        const snapshots = await engine.listSnapshots(action.datasetId);
        // The snapshot the lineage found this copy unchanged since: kept, and checked again by the
        // engine's retire right before its delete (review RV4 finding 1). Gone since: not retired.
        const since =
          action.unchangedSince === undefined
            ? undefined
            : snapshots.find((s) => s.identity === action.unchangedSince)?.name;
        if (action.unchangedSince !== undefined && since === undefined)
          throw new LocalStorageError(
            'UNKNOWN_SNAPSHOT',
            `dataset ${action.datasetId}: the snapshot this copy was found unchanged since (${action.unchangedSince}) is gone; not retiring it`,
          );
        const checked = since === undefined ? undefined : { unchangedSince: since };
        const prune = async (): Promise<void> => {
          const final = since ?? snapshots[snapshots.length - 1]?.name ?? '';
          for (const name of sourceSnapshotsToPrune(snapshots, final, keepSource))
            await engine.destroySnapshot(action.datasetId, name);
        };
        if (action.keepAside === true) {
          // Writes the primary's copy never got: kept out of the live path first (the engine's keepAside,
          // idempotent: btrfs a read-only snapshot, ZFS the file system renamed aside, its retire then
          // finds nothing). Retired before the prune: the snapshot the primary's copy branched from may
          // be older than the newest here, and a kill before the retire must leave it (the order is told
          // by it). No destroy for keep_source_snapshots 0: it would remove the copy kept aside.
          if (engine.keepAside !== undefined) {
            const kept = await engine.keepAside(action.datasetId);
            logger.warn("kept this node's copy aside before letting go of it: it has writes the primary's copy lacks", {
              datasetId: action.datasetId,
              keptAt: kept,
            });
          }
          await engine.retire(action.datasetId);
          await prune();
          return;
        }
        // A copy kept aside at an earlier failover stays (until the dataset is deleted). keep 0: retired
        // first (the all-namespace scan and the data check, as the mover's clean-up), then destroyed.
        if (keepSource < 1) {
          await engine.retire(action.datasetId, checked);
          return engine.destroyDataset(action.datasetId, { keepAsides: true });
        }
        await prune();
        await engine.retire(action.datasetId, checked);
        return;
      }
      case 'cancelMove':
        this.cancels.get(action.datasetId)?.abort();
        return;
      case 'stopMove':
        this.stops.get(action.datasetId)?.abort();
        return;
      case 'stopReplica':
        this.replicaStops.get(action.datasetId)?.abort();
        return;
      case 'moveOut':
        this.startMove(action);
        return;
      case 'replicate':
        this.startReplica(action);
        return;
      case 'promoteReplica':
        // The primary's node is dead and the user accepted the loss window (the writes after this snapshot).
        await engine.promote(action.datasetId, action.snapshot, action.size);
        await engine.mount(action.datasetId, action.mountPath);
        logger.warn('promoted the standby replica of a dataset whose primary node is dead', {
          datasetId: action.datasetId,
          snapshot: action.snapshot,
        });
        return;
    }
  }

  /**
   * One replica round in the background: a new snapshot here, sent (incrementally from the newest
   * one the replica node holds) with the move's transfer; never promoted there. Both sides then keep
   * only it (the next round's and a move's base).
   */
  private startReplica(action: Extract<LocalAction, { kind: 'replicate' }>): void {
    const { datasetId } = action;
    const { engine } = this.o;
    const started = Date.now();
    const target = new TransferClient(
      { host: action.to.host, port: this.o.transferPort, nodeUuid: action.to.uuid },
      this.o.credentials,
    );
    // Recorded at once: the node stays the replica's while it is alive (and the report names it).
    const newNode = this.replicas.get(datasetId)?.node !== action.to.uuid;
    if (newNode) this.replicas.set(datasetId, { node: action.to.uuid, snapshot: null, takenAt: null });
    const stop = new AbortController();
    this.replicaStops.set(datasetId, stop);
    const signal = AbortSignal.any([this.stopping.signal, stop.signal]);
    const round: { movedAt: number; primaryGoneAt?: number } = { movedAt: this.clock.now() };
    this.replicaRounds.set(datasetId, round);
    // Progress: bytes handed to the receiver's connection, or an answer from it.
    const moved = (): void => {
      round.movedAt = this.clock.now();
    };
    const run = (async () => {
      // Named in the control service first: the dataset enters the replica node's view (its
      // listener takes snapshots only of datasets it knows are replicated to it).
      if (newNode) await this.report();
      signal.throwIfAborted();
      // The replica node holds no live copy to order: its lineage is not asked for (not computed there).
      const [source, status] = await Promise.all([
        engine.listSnapshots(datasetId),
        target.status(datasetId, { lineage: false }),
      ]);
      signal.throwIfAborted();
      const step = replicaStep(source, status.snapshots);
      const takenAt = Date.now();
      const taken = await engine.createSnapshot(datasetId, step.name);
      signal.throwIfAborted();
      const send = engine.send(datasetId, step.name, step.parent);
      // A stop cuts the send off: the peer sees a cut-off stream and keeps nothing of it.
      const cut = (): void => send.abort();
      signal.addEventListener('abort', cut, { once: true });
      try {
        await target.receive(
          { datasetId, name: step.name, parent: step.parent, identity: taken.identity },
          send,
          moved,
          signal,
        );
        moved();
      } catch (e) {
        send.abort();
        await send.done.catch(() => undefined);
        throw e;
      } finally {
        signal.removeEventListener('abort', cut);
      }
      this.replicas.set(datasetId, { node: action.to.uuid, snapshot: step.name, takenAt });
      signal.throwIfAborted();
      await target.prune(datasetId, step.name);
      moved();
      for (const name of snapshotsToPrune(await engine.listSnapshots(datasetId), step.name))
        await engine.destroySnapshot(datasetId, name);
      return step;
    })()
      .then((step) => {
        this.metrics.step('replicate', (Date.now() - started) / 1000);
        this.o.logger.info('sent a replica snapshot', { datasetId, to: action.to.uuid, ...step });
        this.failures.delete(datasetId);
        void this.report();
      })
      .catch((e: unknown) => {
        if (this.stopping.signal.aborted) return;
        // Stopped (stopReplica): not a failure; what follows (the destroy, the move) is the next turn's.
        if (stop.signal.aborted) {
          this.failures.delete(datasetId);
          this.o.logger.info("a replica round was stopped: its dataset is deleted or no longer this node's", {
            datasetId,
            to: action.to.uuid,
            error: errorMessage(e),
          });
          return;
        }
        this.metrics.step('replicate', (Date.now() - started) / 1000, errorCode(e));
        this.failed(action, errorCode(e), errorMessage(e));
      })
      .finally(() => {
        this.replicating.delete(datasetId);
        this.replicaStops.delete(datasetId);
        this.replicaRounds.delete(datasetId);
        // The next round when it is due (the turn decides).
        const d = this.snapshot?.datasets.find((x) => x.dataset_id === datasetId);
        const interval =
          (d !== undefined ? replicaSettings(d.metadata).replicaIntervalMs : undefined) ??
          this.o.replicaIntervalMs ??
          DEFAULT_REPLICA_INTERVAL_MS;
        setTimeout(() => this.requestTurn(), interval).unref();
        this.requestTurn();
      });
    this.replicating.set(datasetId, run);
  }

  /** Runs in the background (phase 1 while the volume is in use here); the turn after it ends looks again. */
  private startMove(action: Extract<LocalAction, { kind: 'moveOut' }>): void {
    const { datasetId } = action;
    const started = Date.now();
    const target = new TransferClient(
      { host: action.to.host, port: this.o.transferPort, nodeUuid: action.to.uuid },
      this.o.credentials,
    );
    const cancel = new AbortController();
    this.cancels.set(datasetId, cancel);
    const stop = new AbortController();
    this.stops.set(datasetId, stop);
    const run = moveLocalDataset({
      cancel: cancel.signal,
      engine: this.o.engine,
      target,
      datasetId,
      size: action.size,
      logger: this.o.logger,
      signal: AbortSignal.any([this.stopping.signal, stop.signal]),
      stop: stop.signal,
      // Released: no lease here (the followed snapshot's, as the turn reads it) and no mount in any
      // namespace (the host's goes once no lease is held: calculateLocalChanges).
      released: async () =>
        !(this.snapshot !== null && leasedHere(this.snapshot, this.o.nodeUuid).has(datasetId)) &&
        !(await this.o.engine.inUse(datasetId)),
      ...(this.o.catchUpMs !== undefined ? { catchUpMs: this.o.catchUpMs } : {}),
      ...(this.o.keepSourceSnapshots !== undefined ? { keepSourceSnapshots: this.o.keepSourceSnapshots } : {}),
      ...(this.o.afterPromote !== undefined ? { afterPromote: this.o.afterPromote } : {}),
      ...(this.o.beforePromote !== undefined ? { beforePromote: this.o.beforePromote } : {}),
      onSourceChanging: (warning) => {
        if (warning === null) this.moveWarnings.delete(datasetId);
        else {
          const before = this.moveWarnings.get(datasetId);
          this.moveWarnings.set(datasetId, {
            ...warning,
            since: before?.since ?? new Date(this.clock.wallNow()).toISOString(),
            attempts: (before?.attempts ?? 0) + 1,
          });
          this.o.logger.warn('a move cannot finish: its released source keeps changing', {
            datasetId,
            code: warning.code,
          });
        }
        void this.report();
      },
      onProgress: (p) => {
        const before = this.progress.get(datasetId);
        this.progress.set(datasetId, { ...p, to: action.to.uuid });
        // In the API state: at once on a new phase or round, else at most once a second.
        const now = Date.now();
        if (before?.phase !== p.phase || before.rounds !== p.rounds || now - this.lastProgressReport >= 1000) {
          this.lastProgressReport = now;
          void this.report();
        }
      },
    })
      .then((result) => {
        this.metrics.step('move', (Date.now() - started) / 1000);
        this.o.logger.info('moved a local dataset', { datasetId, to: action.to.uuid, ...result });
        this.failures.delete(datasetId);
      })
      .catch((e: unknown) => {
        if (this.stopping.signal.aborted) return;
        this.metrics.step('move', (Date.now() - started) / 1000, errorCode(e));
        if (stop.signal.aborted)
          this.o.logger.info('a move was stopped: its dataset is deleted', { datasetId, error: errorMessage(e) });
        else if (cancel.signal.aborted)
          this.o.logger.info('a move was taken back', { datasetId, error: errorMessage(e) });
        else this.failed(action, errorCode(e), errorMessage(e));
      })
      .finally(() => {
        this.movers.delete(datasetId);
        this.moveWarnings.delete(datasetId);
        this.cancels.delete(datasetId);
        this.stops.delete(datasetId);
        this.progress.delete(datasetId);
        this.requestTurn();
      });
    this.movers.set(datasetId, run);
    // Decided on the turn's snapshot (a later one may have come during its listings): reports wait for its end to
    // name a later version (it unmounts here).
    void this.acted.track(() => run, { version: this.decidedVersion });
  }

  /** What a move of a dataset from this node is doing (phase, bytes), while one runs. */
  moveProgress(datasetId: string): (MoveProgress & { readonly to: string }) | undefined {
    return this.progress.get(datasetId);
  }

  buildReport(): NodeReport {
    const errors: ActionError[] = [...this.failures.entries()].map(([datasetId, f]) => ({
      dataset_id: datasetId,
      action: f.action,
      code: f.code,
      message: f.message,
      attempts: f.attempts,
      since: f.since,
    }));
    // A running move's warning, for a dataset with no failure of its own.
    for (const [datasetId, w] of this.moveWarnings)
      if (!this.failures.has(datasetId))
        errors.push({
          dataset_id: datasetId,
          action: 'moveOut',
          code: w.code,
          message: w.message,
          attempts: w.attempts,
          since: w.since,
        });
    return {
      uuid: this.o.nodeUuid,
      era: this.o.era,
      host: this.o.host,
      // Nothing is attached across nodes: the node is its own instance (and its own storage zone).
      instance_id: this.o.nodeUuid,
      backend: `local-${this.o.engine.engine}`,
      zone: `local:${this.o.nodeUuid}`,
      ...(this.availableBytes !== undefined ? { available_bytes: this.availableBytes } : {}),
      manifestations: this.copies.map((c) =>
        localManifestation(c, localMountPath(c.datasetId, this.o), this.o.engine.engine, this.o.engine.pool),
      ),
      ...(this.progress.size > 0
        ? {
            moves: [...this.progress.entries()].map(([datasetId, p]) => ({
              dataset_id: datasetId,
              to: p.to,
              phase: p.phase,
              rounds: p.rounds,
              bytes_sent: p.bytesSent,
              bytes_total: p.bytesTotal,
            })),
          }
        : {}),
      ...(this.localViews && this.retainedHere.length > 0 ? { retained: [...this.retainedHere] } : {}),
      ...(this.keptAsideHere.length > 0 ? { kept_aside: [...this.keptAsideHere] } : {}),
      ...this.acted.reported(),
      ...(this.replicas.size > 0
        ? {
            replicas: [...this.replicas.entries()].map(([datasetId, r]) => ({
              dataset_id: datasetId,
              node_uuid: r.node,
              snapshot: r.snapshot,
              taken_at: r.takenAt === null ? null : new Date(r.takenAt).toISOString(),
            })),
          }
        : {}),
      errors,
    };
  }

  /**
   * The pool's free bytes, as block agents report their backend's (capacity.ts: rounded down to the
   * smallest volume, so a write changes the report rarely): what over-commit warnings (the CLI's
   * volumes create --size, the plugin's default size) read. Looked at most every 10 s (ZFS runs a
   * command); a failed look reports no figure rather than an old one.
   */
  private async lookAtCapacity(): Promise<void> {
    const { engine } = this.o;
    const now = this.clock.now();
    if (engine.availableBytes === undefined) return;
    if (this.capacityAt !== undefined && now - this.capacityAt < CAPACITY_INTERVAL_MS) return;
    this.capacityAt = now;
    try {
      this.availableBytes = reportedAvailableBytes(await engine.availableBytes());
    } catch (e) {
      if (this.availableBytes !== undefined)
        this.o.logger.warn("cannot find the pool's free capacity", { code: errorCode(e), error: errorMessage(e) });
      this.availableBytes = undefined;
    }
  }

  private async report(): Promise<void> {
    try {
      await this.o.control.reportNodeState(this.buildReport());
    } catch (e) {
      this.o.logger.warn('report failed', { error: errorMessage(e) });
    }
  }
}

/**
 * How the node report shows a copy on this node's pool. A mounted one carries used_bytes, coarsened
 * (usedSpace.ts) so a dataset being written changes the report — a new cluster generation waking every
 * long-poll — only when its usage moves by about 1/64.
 */
export function localManifestation(
  c: LocalCopyReport,
  path: string,
  engine: string,
  pool: string,
): NodeReport['manifestations'][number] {
  const mounted = c.mountPoints.includes(path);
  return {
    dataset_id: c.datasetId,
    blockdevice_id: `${engine}:${pool}/${c.datasetId}`,
    size: c.size ?? 0,
    status: mounted ? 'mounted' : 'attached',
    ...(mounted ? { path, used_bytes: coarseUsedBytes(c.usedBytes) } : {}),
  };
}

/**
 * What decisions depend on in a snapshot or a local view: the datasets' configuration (with their
 * replica settings), the other nodes' liveness, addresses, copies and the replicas named on every
 * node (not a replica's age: that moves at every round). This node's own copies are what it
 * already knows (its own report, echoed back).
 */
export function decisionKey(snapshot: ClusterSnapshot, nodeUuid: string): string {
  return JSON.stringify([
    localDesired(snapshot),
    localClusterNodes(snapshot).map((n) =>
      n.uuid === nodeUuid
        ? [n.uuid, n.replicaOf ?? []]
        : [n.uuid, n.alive, n.host, n.copies, n.copyCount ?? null, n.replicaOf ?? []],
    ),
    // The replicas named on this node, also before it has a state of its own (its first start).
    replicasNamedOn(snapshot, nodeUuid),
    // Its leases (a move away when released keeps the host's mount while one is held).
    [...leasedHere(snapshot, nodeUuid)].sort(),
  ]);
}
