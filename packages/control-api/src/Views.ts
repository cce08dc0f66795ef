/**
 * Serialized response bodies, cached per configuration version / state generation:
 * with 10,000 datasets and 1,000 agents each big body is built once per change and
 * the same Buffer is written to every reader. Bodies are assembled from per-value
 * JSON fragments (datasets and reports are immutable values, each stringified once),
 * so a change costs a string join, not a walk through a serializer.
 * Outgoing bodies are checked against their schemas only when `validate` is on (tests):
 * their parts were validated on the way in, and a check of megabytes per change
 * would dominate the service's time.
 */
import { createHash } from 'node:crypto';
import { gzip } from 'node:zlib';
import { z } from 'zod';
import {
  BackupConfiguration,
  BackupState,
  ClusterDelta,
  ClusterSnapshot,
  DatasetConfiguration,
  DatasetState,
  type ManifestationState,
  type NodeReport,
  NodeStateSummary,
  peerCopies,
  SnapshotConfiguration,
  SnapshotState,
} from '@flocker/api';
import { backupConfigurations, deriveBackupState } from './backups';
import {
  aliveNodes,
  DatasetStateList,
  datasetStateJson,
  deriveSnapshotState,
  isAlive,
  nodeSummaries,
  type PrimaryOf,
  type ReportedNode,
} from './clusterState';
import { type Configuration, configurationTag, leaseView, liveLease, type StoredLease } from './configuration';
import type { ControlState } from './ControlState';
import { jsonOf } from './json';
import { type Body, JoinedList, ListBody } from './listBodies';
import { WHOLE_CLUSTER } from './nodeViews';
import { PersistentMap } from './PersistentMap';
import { parsesNewMembers } from './releases';
import { Slice } from './slices';

/** A delta's members, each a list of JSON values (Views.deltaJson). */
type DeltaParts = Record<
  'datasets' | 'removedDatasets' | 'leases' | 'removedLeases' | 'nodes' | 'removedNodes',
  string[]
>;
const emptyParts = (): DeltaParts => ({
  datasets: [],
  removedDatasets: [],
  leases: [],
  removedLeases: [],
  nodes: [],
  removedNodes: [],
});

/**
 * Who a view of the agent channel is served to, for what it may carry (releases.ts): a node's UUID (a node's own
 * view; a whole view asked for with a node's certificate), API_VIEWER (an API user's certificate: clients read the
 * views leniently), or undefined (no certificate: plain HTTP).
 */
export type Viewer = string | undefined;
export const API_VIEWER = 'api';

interface Cached {
  key: string;
  body: Body;
}

/** With compression on (--compress-lists), bodies at least this big are also gzipped (once, in the background). */
export const GZIP_MIN_BYTES = 64 * 1024;

/** The whole lists: each cached body gets an entity tag, so a client repeating a poll can get a 304. */
const LISTS: ReadonlySet<string> = new Set([
  'datasets',
  'snapshots',
  'snapshotState',
  'backups',
  'backupState',
  'datasetState',
  'nodes',
]);

export class Views {
  private cache = new Map<string, Cached>();
  /** Gzipped copies of the big cached bodies, made off the request path (zlib's thread pool), one per body. */
  private readonly gzipped = new WeakMap<Body, Buffer | 'pending'>();
  /** Entity tags of the cached whole lists: this process, the list, and the version or generation it shows. */
  private readonly etags = new WeakMap<Body, string>();
  /** Bodies built by this process: each new body's tag is new, even were a version ever seen again (a restored store). */
  private builds = 0;
  /** The sliced builds under way (one per list at most: sharedBuild), and what their lists showed as they began. */
  private readonly building = new Map<string, { seen: string; done: Promise<unknown> }>();
  /** The walk of the state indexes under way (syncStates), and the alive list it brings them to. */
  private stateSync: { alive: readonly ReportedNode[]; done: Promise<void> } | undefined;
  /** Datasets by primary node, kept up to date from the configuration's changes (not rebuilt per write). */
  private primaries:
    | { datasets: ReadonlyMap<string, DatasetConfiguration>; byPrimary: Map<string, Map<string, DatasetConfiguration>> }
    | undefined;
  private snapshotsJoined:
    { snapshots: ReadonlyMap<string, SnapshotConfiguration> | undefined; json: string } | undefined;
  private snapshotsArray:
    { snapshots: ReadonlyMap<string, SnapshotConfiguration> | undefined; json: string } | undefined;
  /** The dataset states' list, from per-report bytes (clusterState.DatasetStateList). */
  private readonly stateList = new DatasetStateList();
  /**
   * The alive reports of the dataset states' memo key: the list and its one-dataset reads (datasetStateOf) take the
   * same nodes, so a node past its timeout leaves both at once (at the next report or liveness check).
   */
  private stateAlive: { key: string; alive: readonly ReportedNode[] } | undefined;
  /** The datasets map the datasets list last showed, and the memo key it goes by. */
  private datasetsShown: { datasets: ReadonlyMap<string, DatasetConfiguration>; key: string } | undefined;
  /** The configured datasets' list, patched per change (listBodies.ts). */
  private readonly datasetList = new JoinedList<DatasetConfiguration>();
  /** Reports with `retained` or `kept_aside`, as a node's view shows them (withoutRetained). */
  private readonly unretained = new WeakMap<NodeReport, string>();
  /** The same for the whole cluster's snapshot: `kept_aside` kept (nodeStateJson). */
  private readonly unretainedWhole = new WeakMap<NodeReport, string>();
  /** Both again without `grow_pending`, for views of nodes behind (newMembersHidden): only reports that carry it. */
  private readonly unretainedLegacy = new WeakMap<NodeReport, string>();
  private readonly unretainedWholeLegacy = new WeakMap<NodeReport, string>();
  /** Whether a report carries grow_pending: once per report (a node's view of a node behind asks per answer). */
  private readonly growing = new WeakMap<NodeReport, boolean>();
  private leaseOrdering: { leases: ReadonlyMap<string, StoredLease>; order: Map<string, number> } | undefined;
  /** Reported release → whether it parses this release's new members (few distinct values: a cluster's releases). */
  private readonly parsesBy = new Map<string, boolean>();
  /** Whether an alive node's agent reports a release older than the members, by state generation (anyNodeBehind). */
  private behind: { key: string; any: boolean } | undefined;
  /**
   * Whether the whole snapshot of a key carries a member new in this release (a lease's hand-over members, a
   * manifestation's grow_pending): else its legacy variant is the same body.
   */
  private snapshotMembers: { key: string; any: boolean } | undefined;

  constructor(
    private readonly state: ControlState,
    private readonly validate = false,
    /** Gzip the big bodies (once per change) for clients that accept it: off unless the operator asks (--compress-lists). */
    private readonly compress = false,
    /** The time box of each sliced build (tests: a pause that changes state mid-build). */
    private readonly slice: () => Slice = () => new Slice(),
  ) {}

  private memo(name: string, key: string, schema: z.ZodType, build: () => string | Buffer): Buffer {
    // A name is always built by the same kind of builder.
    return this.cached(name, key, schema, build) as Buffer;
  }

  /** memo for the lists kept as chunks (ListBody). */
  private memoList(name: string, key: string, schema: z.ZodType, build: () => ListBody): ListBody {
    return this.cached(name, key, schema, build) as ListBody;
  }

  private cached(name: string, key: string, schema: z.ZodType, build: () => string | Body): Body {
    const hit = this.cache.get(name);
    if (hit !== undefined && hit.key === key) return hit.body;
    return this.remember(name, key, schema, build());
  }

  /** A body built for `key` kept as the list's (with its tag); the one already kept for `key`, if any: one per key. */
  private remember(name: string, key: string, schema: z.ZodType, built: string | Body): Body {
    const hit = this.cache.get(name);
    if (hit !== undefined && hit.key === key) return hit.body;
    if (this.validate) schema.parse(JSON.parse(built.toString()));
    // A body built by patching may be the previous body unchanged: a new one (of the same bytes) keeps one tag per
    // body.
    const body =
      typeof built === 'string'
        ? Buffer.from(built)
        : hit?.body !== built
          ? built
          : built instanceof ListBody
            ? new ListBody(built.chunks)
            : Buffer.from(built);
    this.cache.set(name, { key, body });
    if (LISTS.has(name)) this.etags.set(body, `"${this.state.instanceId}.${name}.${key}.${++this.builds}"`);
    if (this.compress && body.length >= GZIP_MIN_BYTES) this.gzipInBackground(name, body);
    return body;
  }

  /** The entity tag (quoted) of a cached whole list; undefined for any other body. */
  etagOf(body: Body): string | undefined {
    return this.etags.get(body);
  }

  /**
   * The gzipped copy of a cached body, once made (issue 23: 100,000 datasets are ~25 MB of
   * JSON, ~3 MB gzipped); undefined until then, for other bodies and with compression off:
   * send the body itself.
   */
  gzipOf(body: Body): Buffer | undefined {
    const gz = this.gzipped.get(body);
    return gz === 'pending' ? undefined : gz;
  }

  private gzipInBackground(name: string, body: Body): void {
    this.gzipped.set(body, 'pending');
    // Level 1: most of the size gain for a fraction of the time; a body already replaced is not kept. (A ListBody is
    // copied together for it: compression is off unless asked for, and costs far more than the copy.)
    gzip(body instanceof ListBody ? body.toBuffer() : body, { level: 1 }, (err, gz) => {
      if (err === null && this.cache.get(name)?.body === body) this.gzipped.set(body, gz);
      else this.gzipped.delete(body);
    });
  }

  datasets(): ListBody {
    const config = this.state.configuration;
    // Keyed by the datasets themselves (the version that first showed them): a write that leaves them as they were
    // (a lease's) keeps the body and its tag, so pollers get 304, not a copy of the whole list.
    if (this.datasetsShown?.datasets !== config.datasets)
      this.datasetsShown = { datasets: config.datasets, key: String(config.version) };
    return this.memoList('datasets', this.datasetsShown.key, z.array(DatasetConfiguration), () => {
      const body = this.datasetList.of(config.datasets);
      // Tests check the patched bytes against a fresh join.
      if (this.validate && body.toString() !== joinArray(config.datasets.values()))
        throw new Error('the patched datasets list differs from the configuration');
      return body;
    });
  }

  /**
   * datasets() built across event-loop turns (issue 23), for GET /v1/configuration/datasets: the same bytes and tags,
   * with the configuration tag of the version it shows (a later write's tag would let a client's If-Match pass on
   * a list it has not seen).
   */
  datasetsSliced(): Promise<{ body: ListBody; tag: string }> {
    const version = (): string => String(this.state.configuration.version);
    return this.sharedBuild('datasets', version, async (slice) => {
      const config = this.state.configuration;
      if (this.datasetsShown?.datasets !== config.datasets)
        this.datasetsShown = { datasets: config.datasets, key: String(config.version) };
      const key = this.datasetsShown.key;
      const tag = configurationTag(config);
      const hit = this.cache.get('datasets');
      if (hit?.key === key) return { body: hit.body as ListBody, tag };
      const body = await this.datasetList.ofSliced(config.datasets, slice);
      if (this.validate && body.toString() !== joinArray(config.datasets.values()))
        throw new Error('the sliced datasets list differs from the configuration');
      return { body: this.remember('datasets', key, z.array(DatasetConfiguration), body) as ListBody, tag };
    });
  }

  snapshots(): Buffer {
    const config = this.state.configuration;
    return this.memo('snapshots', String(config.version), z.array(SnapshotConfiguration), () =>
      joinArray(config.snapshots?.values() ?? []),
    );
  }

  /** What the backends hold, from alive nodes' reports (like datasetState, not rebuilt by configuration writes). */
  snapshotState(): Buffer {
    const s = this.state;
    return this.memo('snapshotState', `${s.instanceId}.${s.stateGeneration}`, z.array(SnapshotState), () =>
      JSON.stringify(deriveSnapshotState(aliveNodes(s.reportedNodes(), s.now(), s.nodeTimeoutMs))),
    );
  }

  /** Backup requests (issue 20): the snapshots that carry a backup target. */
  backups(): Buffer {
    const config = this.state.configuration;
    return this.memo('backups', String(config.version), z.array(BackupConfiguration), () =>
      JSON.stringify(backupConfigurations(config)),
    );
  }

  /** Backups as the alive agents running them report them. */
  backupState(): Buffer {
    const s = this.state;
    return this.memo('backupState', `${s.instanceId}.${s.stateGeneration}`, z.array(BackupState), () =>
      JSON.stringify(deriveBackupState(aliveNodes(s.reportedNodes(), s.now(), s.nodeTimeoutMs))),
    );
  }

  /** Depends on node reports and liveness only, so configuration writes do not rebuild it. */
  datasetState(): ListBody {
    const s = this.state;
    // Also on the stale "mounted" hidden (ControlState.staleMounts): their end may move no state generation.
    const hidden = s.staleMounts();
    const generation = this.datasetStateKey(hidden);
    const alive = this.aliveOf(generation);
    const primaryOf = this.primaryOf();
    const key = generation + this.sharedPrimariesKey(alive, primaryOf);
    return this.memoList('datasetState', key, z.array(DatasetState), () => {
      const body = this.stateList.body(alive, hidden, primaryOf);
      if (this.validate && body.toString() !== datasetStateJson(alive, new WeakMap(), hidden, primaryOf))
        throw new Error('the joined dataset states differ from the reports');
      return body;
    });
  }

  /**
   * datasetState() built across event-loop turns (issue 23), for GET /v1/state/datasets: the same bytes and tags. Its
   * inputs (the alive reports, the stale mounts hidden, the configured primaries) are taken in one turn and its key
   * and tag are theirs, whatever changes while it is built.
   */
  datasetStateSliced(): Promise<ListBody> {
    // Cheap, and changed by whatever may change the list (a configuration write: the primaries two copies follow).
    const seen = (): string => `${this.datasetStateKey(this.state.staleMounts())}.${this.state.configuration.version}`;
    return this.sharedBuild('datasetState', seen, async (slice) => {
      const s = this.state;
      const hidden = s.staleMounts();
      const generation = this.datasetStateKey(hidden);
      const alive = this.aliveOf(generation);
      const primaryOf = this.primaryOf();
      // The shared datasets' primaries are part of the key: the indexes first (sliced: the first read learns them all).
      await this.syncStates(alive, slice);
      const key = generation + this.sharedPrimariesKey(alive, primaryOf);
      const hit = this.cache.get('datasetState');
      if (hit?.key === key) return hit.body as ListBody;
      const body = await this.stateList.bodySliced(alive, hidden, primaryOf, slice);
      if (this.validate && body.toString() !== datasetStateJson(alive, new WeakMap(), hidden, primaryOf))
        throw new Error('the sliced dataset states differ from the reports');
      return this.remember('datasetState', key, z.array(DatasetState), body) as ListBody;
    });
  }

  /**
   * One build of a list at a time, shared by its readers (issue 23). A reader takes the build under way when what the
   * list shows has not changed since it began (`seen`: the same then and now), so what it gets is what its request
   * would have read; a build of something older is waited out, then the reader looks again (a cache hit, or a build
   * of its own that later readers share). So at most one build per list holds its partial chunks.
   */
  private async sharedBuild<T>(
    name: 'datasets' | 'datasetState',
    seen: () => string,
    build: (slice: Slice) => Promise<T>,
  ): Promise<T> {
    for (let under = this.building.get(name); under !== undefined; under = this.building.get(name)) {
      if (under.seen === seen()) return (await under.done) as T;
      // An older build's failure is its readers'.
      await under.done.catch(() => undefined);
    }
    const entry = { seen: seen(), done: undefined as unknown as Promise<unknown> };
    const done = build(this.slice()).finally(() => {
      if (this.building.get(name) === entry) this.building.delete(name);
    });
    entry.done = done;
    this.building.set(name, entry);
    return done;
  }

  /** datasetState's entry of one dataset (GET /v1/state/datasets?dataset_id=), without building the list. */
  datasetStateOf(id: string): string {
    const hidden = this.state.staleMounts();
    return this.stateList.entryOf(this.aliveOf(this.datasetStateKey(hidden)), id, hidden, this.primaryOf());
  }

  /**
   * datasetStateOf for the route (waiters poll it): its first call after a start learns every report into the
   * indexes (~15% of the list's first build, ~80 ms at 10,000 x 10), here across event-loop turns and shared by the
   * pollers that come meanwhile. The answer is datasetStateOf's in the turn it is given (the inputs of then: what
   * changed during the learn is in it; the few reports that came since, learnt in that turn as for any read).
   */
  async datasetStateOfSliced(id: string): Promise<string> {
    await this.datasetStatesLearnt();
    return this.datasetStateOf(id);
  }

  /**
   * The state indexes brought up to the alive reports across event-loop turns: a datasetStateOf in the turn this
   * resolves in is a lookup, not a learn of every report (the first one after a start). For datasetStateOfSliced
   * and the report route's settle (mountedOnPrimary).
   */
  async datasetStatesLearnt(): Promise<void> {
    // A generation that moved again and again while its reports were learnt: the rest in datasetStateOf's turn.
    for (let tries = 0; tries < 3; tries++) {
      const alive = this.aliveOf(this.datasetStateKey(this.state.staleMounts()));
      await this.syncStates(alive);
      if (this.aliveOf(this.datasetStateKey(this.state.staleMounts())) === alive) break;
    }
  }

  /**
   * The state indexes brought up to `alive` across turns (stateList.syncSliced), one walk at a time, shared by every
   * reader of the same alive list (a list build, one-dataset reads): two walks at once would restart each other.
   * A list that needs no walk (the same, or a few reports replaced in place) is synced in the caller's turn.
   */
  private async syncStates(alive: readonly ReportedNode[], slice?: Slice): Promise<void> {
    for (let under = this.stateSync; under !== undefined; under = this.stateSync) {
      if (under.alive === alive) return under.done;
      // An older walk's failure is its readers'.
      await under.done.catch(() => undefined);
    }
    const entry = { alive, done: this.stateList.syncSliced(alive, slice ?? this.slice()) };
    if (this.stateList.syncedTo(alive)) return entry.done;
    this.stateSync = entry;
    return entry.done.finally(() => {
      if (this.stateSync === entry) this.stateSync = undefined;
    });
  }

  /** The configured primary of a dataset, in the configuration of now (two live copies show its: clusterState). */
  private primaryOf(): PrimaryOf {
    const datasets = this.state.configuration.datasets;
    return (id) => datasets.get(id)?.primary;
  }

  /**
   * The state list's key part for the datasets two alive reports show (rare; '' when none): which copy it shows
   * follows their configured primaries, and a move is a configuration write that moves no state generation.
   */
  private sharedPrimariesKey(alive: readonly ReportedNode[], primaryOf: PrimaryOf): string {
    const shared = this.stateList.sharedIds(alive);
    if (shared.size === 0) return '';
    const h = createHash('sha256');
    for (const id of shared) h.update(`${id}:${primaryOf(id) ?? ''},`);
    return `.p${h.digest('base64url').slice(0, 22)}`;
  }

  private datasetStateKey(hidden: ReadonlyMap<NodeReport, ReadonlySet<string>>): string {
    const s = this.state;
    if (hidden.size === 0) return `${s.instanceId}.${s.stateGeneration}`;
    // By node and dataset: a move changes no generation, and may hide the same dataset on another node's report.
    // Hashed: the key goes into the ETag, and hundreds hidden at once (a host evacuated, nodes held below a load
    // floor) would make a header beyond what clients accept (undici: 16 KiB).
    const stale = createHash('sha256');
    for (const [report, ids] of hidden) for (const id of ids) stale.update(`${report.uuid}:${id},`);
    return `${s.instanceId}.${s.stateGeneration}.${stale.digest('base64url').slice(0, 22)}`;
  }

  private aliveOf(key: string): readonly ReportedNode[] {
    if (this.stateAlive?.key !== key) {
      const s = this.state;
      this.stateAlive = { key, alive: aliveNodes(s.reportedNodes(), s.now(), s.nodeTimeoutMs) };
    }
    return this.stateAlive.alive;
  }

  nodes(): Buffer {
    const s = this.state;
    return this.memo('nodes', `${s.instanceId}.${s.stateGeneration}`, z.array(NodeStateSummary), () =>
      // Nodes alive with their state unknown too (liveness-only reports): alive, a kubelet finds its node by host.
      JSON.stringify(
        nodeSummaries([
          ...aliveNodes(s.reportedNodes(), s.now(), s.nodeTimeoutMs),
          ...aliveNodes(s.unknownNodes(), s.now(), s.nodeTimeoutMs),
        ]),
      ),
    );
  }

  /**
   * Lease lifetimes in a snapshot are rounded to the second it was built; rebuilt at least every second. `legacy`: the
   * variant without the members new in this release (newMembersHidden), built only when asked for, and the very same
   * body while neither a lease nor a node state carries one.
   */
  snapshot(legacy = false): Buffer {
    const s = this.state;
    const now = s.now();
    const key = `${s.generation}@${Math.floor(now / 1000)}`;
    if (legacy) {
      const current = this.snapshot();
      if (this.snapshotMembers?.key === key && !this.snapshotMembers.any) return current;
    }
    return this.memo(legacy ? 'snapshot-legacy' : 'snapshot', key, ClusterSnapshot, () => {
      const leases: string[] = [];
      let members = false;
      for (const lease of s.configuration.leases.values()) {
        if (lease.expires_at !== null && lease.expires_at <= now) continue;
        members ||= hasHandoverMembers(lease);
        leases.push(leaseJson(lease, now, legacy));
      }
      const nodes: string[] = [];
      for (const uuid of s.reportedNodeIds()) {
        const report = s.reportedNode(uuid)?.report;
        members ||= report !== undefined && this.hasGrowPending(report);
        nodes.push(this.nodeStateJson(uuid, now, true, legacy));
      }
      if (!legacy) this.snapshotMembers = { key, any: members };
      return snapshotJson(
        s,
        joinArray(s.configuration.datasets.values()),
        `[${leases.join(',')}]`,
        `[${nodes.join(',')}]`,
        snapshotsJson(s.configuration),
      );
    });
  }

  /**
   * whole: for the whole cluster's snapshot (the CLI's, an API client's), which shows `kept_aside`; a node's
   * view never does (agents one release behind parse node states strictly, and no decision reads it). legacy: for a
   * viewer behind (newMembersHidden), without the manifestations' grow_pending.
   */
  private nodeStateJson(uuid: string, now: number, whole = false, legacy = false): string {
    const node = this.state.reportedNode(uuid);
    const reported = this.state.reportJson(uuid);
    if (node === undefined || reported === undefined) return '';
    const kept = node.report.kept_aside !== undefined;
    const hide = legacy && this.hasGrowPending(node.report);
    let json =
      !hide && node.report.retained === undefined && (whole || !kept)
        ? reported
        : this.withoutRetained(node.report, whole, hide);
    // NodeState = the report plus alive, last_seen and (while dead) dead_since; splice them into the report's JSON.
    const alive = isAlive(node, now, this.state.nodeTimeoutMs);
    // A retired node's stored report still counted alive after this start says so where people look (review FR F2):
    // the whole snapshot only (no decision reads it; a node's view changes only with its generation). Rare: re-made.
    const note = whole && alive ? this.state.notHeardError(uuid) : undefined;
    if (note !== undefined) {
      const state = JSON.parse(json) as NodeReport;
      json = JSON.stringify({ ...state, errors: [...state.errors, note] });
    }
    const dead = alive
      ? ''
      : `,"dead_since":${JSON.stringify(new Date(node.lastSeen + this.state.nodeTimeoutMs).toISOString())}`;
    return `${json.slice(0, -1)},"alive":${alive},"last_seen":${JSON.stringify(new Date(node.lastSeen).toISOString())}${dead}}`;
  }

  /**
   * A report's JSON without `retained` (issue 24): only the view index reads it (nodeViews.ts),
   * and agents one release behind parse node states strictly (docs/compatibility.md) — so it is
   * in no answer. Made once per report. legacy: without the manifestations' grow_pending either (nodeStateJson).
   */
  private withoutRetained(report: NodeReport, whole: boolean, legacy = false): string {
    const cache = legacy
      ? whole
        ? this.unretainedWholeLegacy
        : this.unretainedLegacy
      : whole
        ? this.unretainedWhole
        : this.unretained;
    let json = cache.get(report);
    if (json === undefined) {
      const { retained: _retained, kept_aside: keptAside, ...rest } = report;
      if (legacy) rest.manifestations = report.manifestations.map(withoutGrowPending);
      json = JSON.stringify(whole && keptAside !== undefined ? { ...rest, kept_aside: keptAside } : rest);
      cache.set(report, json);
    }
    return json;
  }

  /**
   * The snapshot one node needs: datasets whose primary it is, that it holds, that are leased to
   * it, or that it takes care of (orphanViews.ts), their leases, and the states of itself and of the nodes holding
   * those datasets (and of the orphans' primaries). With
   * many nodes this keeps each long-poll answer small (kilobytes, not megabytes).
   */
  snapshotFor(node: string, viewer: Viewer = node): string {
    const legacy = this.newMembersHidden(viewer);
    if (node === WHOLE_CLUSTER) return this.snapshot(legacy).toString();
    const s = this.state;
    const now = s.now();
    const generation = s.generation;
    const config = s.configuration;
    const { datasets, nodeIds } = this.viewOf(node);
    const local = s.nodeViews.isLocal(node);
    const peerIds = local ? [...s.nodeViews.localNodeIds()] : [];
    s.nodeViews.prune(
      node,
      (key) => inView(key, datasets, nodeIds, local),
      datasets.size + nodeIds.size + peerIds.length,
    );
    const leaseOrder = this.leaseOrder();
    // Looked up per dataset (then put in the configuration's lease order), not by scanning every lease per agent.
    const leased: StoredLease[] = [];
    for (const id of datasets.keys()) {
      const lease = liveLease(config, id, now);
      if (lease !== undefined) leased.push(lease);
    }
    if (leased.length > 1)
      leased.sort((a, b) => (leaseOrder.get(a.dataset_id) ?? 0) - (leaseOrder.get(b.dataset_id) ?? 0));
    const leases = leased.map((l) => leaseJson(l, now, legacy));
    const nodes: string[] = [];
    for (const id of nodeIds)
      if (s.reportedNode(id) !== undefined) nodes.push(this.nodeStateJson(id, now, false, legacy));
    const json = snapshotJson(
      {
        generation,
        configurationTag: s.configurationTag,
        nodeTimeoutMs: s.nodeTimeoutMs,
        leaseGraceMs: s.leaseGraceMs,
      },
      joinArray(datasets.values()),
      `[${leases.join(',')}]`,
      `[${nodes.join(',')}]`,
      // Every configured snapshot: few, and a node may have to destroy one of a dataset it never held (as its
      // caretaker or a live holder; which of them does: dataset-agent snapshotDestroyer).
      this.snapshotsMember(config),
      // A local node's peers (issue 24: @flocker/api localViewOf); no member in other views.
      local ? `,"peers":[${this.peersJson(peerIds, now).join(',')}]` : '',
    );
    if (this.validate) ClusterSnapshot.parse(JSON.parse(json));
    return json;
  }

  /**
   * What changed in node's view since generation `since` (a ClusterDelta, issue 23): the
   * entries NodeViewIndex stamped after it, each as it is now or as removed. O(the view)
   * to know what is in it, plus O(the change) of JSON. Undefined when the index cannot say
   * (a `since` of another process, or older than it keeps): answer the whole view then.
   */
  deltaFor(node: string, since: string, viewer: Viewer = node): string | undefined {
    const legacy = this.newMembersHidden(viewer);
    if (node === WHOLE_CLUSTER) return this.clusterDelta(since, legacy);
    const s = this.state;
    const changes = s.nodeViews.changesSince(node, since);
    if (changes === undefined) return undefined;
    const config = s.configuration;
    // The change that reaches every view (a snapshot asked for) touches no entry of it: answered without looking at it.
    if (changes.keys.every((k) => k.startsWith('w:')))
      return this.deltaJson(since, changes.snapshots ? this.snapshotsList(config) : undefined);
    const now = s.now();
    const { datasets, nodeIds } = this.viewOf(node);
    const parts = emptyParts();
    const local = s.nodeViews.isLocal(node);
    const changedPeers: string[] = [];
    for (const key of changes.keys) {
      const id = key.slice(2);
      if (key.startsWith('w:')) continue;
      if (key.startsWith('p:')) {
        if (local) changedPeers.push(id);
        continue;
      }
      if (key.startsWith('d:')) datasetChange(parts, config, id, datasets.get(id), now, legacy);
      else if (nodeIds.has(id) && s.reportedNode(id) !== undefined)
        parts.nodes.push(this.nodeStateJson(id, now, false, legacy));
      else parts.removedNodes.push(JSON.stringify(id));
    }
    let peers = '';
    if (local) {
      const known = new Set(s.nodeViews.localNodeIds());
      const set = this.peersJson(
        changedPeers.filter((id) => known.has(id)),
        now,
      );
      const removed = changedPeers.filter((id) => !known.has(id) || s.reportedNode(id) === undefined);
      if (set.length > 0) peers += `,"peers":[${set.join(',')}]`;
      if (removed.length > 0) peers += `,"removed_peers":${JSON.stringify(removed)}`;
    }
    s.nodeViews.prune(
      node,
      (key) => inView(key, datasets, nodeIds, local),
      datasets.size + nodeIds.size + (local ? s.nodeViews.localNodeCount : 0),
    );
    return this.deltaJson(since, changes.snapshots ? this.snapshotsList(config) : undefined, parts, peers);
  }

  /**
   * What changed in the whole cluster's view (snapshot()) since `since`: the datasets, leases and
   * node states NodeViewIndex stamped after it, each as it is now or as removed — O(log n + the
   * change), never a walk of the whole view (at 100,000 datasets, 18 MB). Undefined when the index
   * cannot say (another process's generation, older than it keeps): answer the whole view then.
   */
  private clusterDelta(since: string, legacy: boolean): string | undefined {
    const s = this.state;
    const changes = s.nodeViews.changesSince(WHOLE_CLUSTER, since);
    if (changes === undefined) return undefined;
    const config = s.configuration;
    const snapshots = changes.snapshots ? this.snapshotsList(config) : undefined;
    if (changes.keys.every((k) => k.startsWith('w:'))) return this.deltaJson(since, snapshots);
    const now = s.now();
    const parts = emptyParts();
    for (const key of changes.keys) {
      const id = key.slice(2);
      if (key.startsWith('d:')) datasetChange(parts, config, id, config.datasets.get(id), now, legacy);
      else if (key.startsWith('n:')) {
        if (s.reportedNode(id) !== undefined) parts.nodes.push(this.nodeStateJson(id, now, true, legacy));
        else parts.removedNodes.push(JSON.stringify(id));
      }
    }
    // Keys of datasets purged and nodes forgotten go once they are many (a `since` before them: the whole view).
    s.nodeViews.prune(
      WHOLE_CLUSTER,
      (key) =>
        key.startsWith('w:') ||
        (key.startsWith('d:') ? config.datasets.has(key.slice(2)) : s.reportedNode(key.slice(2)) !== undefined),
      config.datasets.size + s.nodeViews.nodesSeen,
    );
    return this.deltaJson(since, snapshots, parts);
  }

  /**
   * Local nodes as peers (issue 24, @flocker/api LocalPeer), sorted by uuid: address, liveness as
   * their states show it, live copies, and the datasets whose replica is named on them.
   */
  private peersJson(ids: readonly string[], now: number): string[] {
    const out: string[] = [];
    for (const uuid of [...ids].sort()) {
      const node = this.state.reportedNode(uuid);
      if (node === undefined) continue;
      out.push(
        JSON.stringify({
          uuid,
          host: node.report.host,
          alive: isAlive(node, now, this.state.nodeTimeoutMs),
          copies: peerCopies(node.report.manifestations.length),
          replica_of: [...this.state.nodeViews.replicasOn(uuid)].sort(),
        }),
      );
    }
    return out;
  }

  private deltaJson(
    since: string,
    snapshots: string | undefined,
    parts: DeltaParts = emptyParts(),
    /** A local view's `peers` / `removed_peers` members, each with a leading comma ('' when none). */
    peers = '',
  ): string {
    const s = this.state;
    const timing = `"node_timeout_seconds":${s.nodeTimeoutMs / 1000},"lease_grace_seconds":${s.leaseGraceMs / 1000}`;
    const json =
      `{"delta":true,"since":${JSON.stringify(since)},"generation":${JSON.stringify(s.generation)},` +
      `"configuration_tag":${JSON.stringify(s.configurationTag)},"datasets":[${parts.datasets.join(',')}],` +
      `"removed_datasets":[${parts.removedDatasets.join(',')}],` +
      (snapshots !== undefined ? `"snapshots":${snapshots},` : '') +
      `"leases":[${parts.leases.join(',')}],"removed_leases":[${parts.removedLeases.join(',')}],` +
      `"nodes":[${parts.nodes.join(',')}],"removed_nodes":[${parts.removedNodes.join(',')}],${timing}${peers}}`;
    if (this.validate) ClusterDelta.parse(JSON.parse(json));
    return json;
  }

  /**
   * Whether views served to `viewer` leave out the members new in this release (releases.ts): the lease hand-over's
   * (`release_on_request`, `release_requested`) and a manifestation's `grow_pending` — one rule for all of them: a
   * node whose agent reports an older release than the members', or none; for a viewer not known (plain HTTP), whether
   * any alive node does (its plugin may be the one asking). O(1) per answer for a known node: its report's release,
   * compared once per value.
   */
  newMembersHidden(viewer: Viewer): boolean {
    if (viewer === API_VIEWER) return false;
    if (viewer === undefined || viewer === WHOLE_CLUSTER) return this.anyNodeBehind();
    return !this.parses(this.state.reportedNode(viewer)?.report.version);
  }

  /** Whether a report carries grow_pending (new in this release: left out for viewers behind, newMembersHidden). */
  private hasGrowPending(report: NodeReport): boolean {
    let growing = this.growing.get(report);
    if (growing === undefined) {
      growing = report.manifestations.some((m) => m.grow_pending !== undefined);
      this.growing.set(report, growing);
    }
    return growing;
  }

  private parses(version: string | undefined): boolean {
    if (version === undefined) return false;
    let parses = this.parsesBy.get(version);
    if (parses === undefined) {
      parses = parsesNewMembers(version, this.state.newMembersSince);
      // Bounded whatever the reports say (a report's version is any short string).
      if (this.parsesBy.size >= 256) this.parsesBy.clear();
      this.parsesBy.set(version, parses);
    }
    return parses;
  }

  /** Whether an alive node reports an older release than the members' (or none): once per state generation. */
  private anyNodeBehind(): boolean {
    const s = this.state;
    const key = `${s.instanceId}.${s.stateGeneration}`;
    if (this.behind?.key !== key) {
      const alive = aliveNodes(s.reportedNodes(), s.now(), s.nodeTimeoutMs);
      this.behind = { key, any: alive.some((n) => !this.parses(n.report.version)) };
    }
    return this.behind.any;
  }

  /** The configured snapshots as a JSON array, joined once per change of them. */
  private snapshotsList(config: Configuration): string {
    const current = config.snapshots;
    if (this.snapshotsArray === undefined || this.snapshotsArray.snapshots !== current)
      this.snapshotsArray = { snapshots: current, json: joinArray(current?.values() ?? []) };
    return this.snapshotsArray.json;
  }

  /** The datasets in node's view (primary or held) and the nodes whose states it shows. */
  private viewOf(node: string): { datasets: Map<string, DatasetConfiguration>; nodeIds: Set<string> } {
    const s = this.state;
    const config = s.configuration;
    const datasets = new Map<string, DatasetConfiguration>();
    for (const d of this.byPrimary().get(node)?.values() ?? []) datasets.set(d.dataset_id, d);
    const own = s.reportedNode(node);
    if (own !== undefined) {
      const ids = own.report.manifestations.map((m) => m.dataset_id);
      for (const v of own.report.volumes ?? []) if (v.attached_to === own.report.instance_id) ids.push(v.dataset_id);
      for (const id of ids) {
        const d = config.datasets.get(id);
        if (d !== undefined) datasets.set(id, d);
      }
    }
    const nodeIds = new Set<string>([node]);
    // Datasets leased to it, wherever their primary (its leases, its agent's flocker_leases).
    for (const id of s.nodeViews.leasesOf(node)) {
      const d = config.datasets.get(id);
      if (d !== undefined) datasets.set(id, d);
    }
    // Datasets this node takes care of (orphans: deleted, primary not alive, held by no live node; or with a deleted
    // snapshot no live viewer holds: orphanViews.ts), with their primary's state (its instance, to force-detach;
    // its liveness, to own the cleanup).
    for (const id of s.nodeViews.caredBy(node)) {
      const d = config.datasets.get(id);
      if (d === undefined || datasets.has(id)) continue;
      datasets.set(id, d);
      nodeIds.add(d.primary);
    }
    // A local node (issue 24, @flocker/api localViewOf): what its pool retains, the replicas named
    // on it, and the primaries' states of all its datasets (a move's target, a replica's source).
    if (s.nodeViews.isLocal(node)) {
      for (const id of [...s.nodeViews.retainedOf(node), ...s.nodeViews.replicasOn(node)]) {
        const d = config.datasets.get(id);
        if (d !== undefined) datasets.set(id, d);
      }
      for (const d of datasets.values()) nodeIds.add(d.primary);
    }
    // Nodes declared dead without a report since this start (NodeReports.ghosts): a volume this node's pool shows
    // attached to one's instance is force-detached by its new primary, as it would be for a node that died since.
    // Not in a local node's view: nothing of its pool is attached to another instance.
    if (!s.nodeViews.isLocal(node)) for (const g of s.nodeViews.ghosts) nodeIds.add(g);
    for (const id of datasets.keys()) {
      for (const holder of s.nodeViews.holdersOf(id) ?? []) nodeIds.add(holder);
      // A dataset no live node holds: one node reporting a volume of it (its primary must not create a second).
      const witness = s.nodeViews.witness(id);
      if (witness !== undefined) nodeIds.add(witness);
    }
    return { datasets, nodeIds };
  }

  /** The agent channel's `snapshots` member, joined once per change of the configured snapshots. */
  private snapshotsMember(config: Configuration): string {
    const current = config.snapshots;
    if (this.snapshotsJoined?.snapshots !== current || this.snapshotsJoined === undefined)
      this.snapshotsJoined = { snapshots: current, json: snapshotsJson(config) };
    return this.snapshotsJoined.json;
  }

  /**
   * Applies the configuration's changes since the last call to the by-primary index:
   * a write touches a few datasets, so this is a small diff (PersistentMap shares its
   * base between versions), where a rebuild walked all 10,000 datasets per write and
   * left megabytes of garbage behind.
   */
  private byPrimary(): Map<string, Map<string, DatasetConfiguration>> {
    const next = this.state.configuration.datasets;
    const index = this.primaries;
    if (index !== undefined && index.datasets === next) return index.byPrimary;
    const diff = index !== undefined ? PersistentMap.diff(index.datasets, next) : undefined;
    if (index === undefined || diff === undefined || diff.deletes.length + diff.sets.length > 256) {
      const byPrimary = new Map<string, Map<string, DatasetConfiguration>>();
      for (const d of next.values()) addTo(byPrimary, d.primary, d.dataset_id, d);
      this.primaries = { datasets: next, byPrimary };
      return byPrimary;
    }
    const { byPrimary, datasets: prev } = index;
    for (const id of [...diff.deletes, ...diff.sets]) {
      const old = prev.get(id);
      if (old !== undefined) removeFrom(byPrimary, old.primary, id);
    }
    for (const id of diff.sets) {
      const d = next.get(id);
      if (d !== undefined) addTo(byPrimary, d.primary, id, d);
    }
    index.datasets = next;
    return byPrimary;
  }

  private leaseOrder(): Map<string, number> {
    const leases = this.state.configuration.leases;
    if (this.leaseOrdering?.leases === leases) return this.leaseOrdering.order;
    const order = new Map<string, number>();
    for (const id of leases.keys()) order.set(id, order.size);
    this.leaseOrdering = { leases, order };
    return order;
  }
}

/** Adds `member` to the collection under `key` of a Map of Maps (insertion-ordered) or Sets. */
function addTo<V>(index: Map<string, Map<string, V>>, key: string, member: string, value: V): void {
  const bucket = index.get(key);
  if (bucket === undefined) index.set(key, new Map([[member, value]]));
  else bucket.set(member, value);
}

function removeFrom(
  index: Map<string, { delete(member: string): boolean; readonly size: number }>,
  key: string,
  member: string,
): void {
  const bucket = index.get(key);
  if (bucket === undefined) return;
  bucket.delete(member);
  if (bucket.size === 0) index.delete(key);
}

/** Whether a NodeViewIndex entry key (`d:<dataset>`, `n:<node>`, a local view's `p:<node>`) is in a view. */
function inView(
  key: string,
  datasets: ReadonlyMap<string, unknown>,
  nodeIds: ReadonlySet<string>,
  local = false,
): boolean {
  const id = key.slice(2);
  return key.startsWith('d:')
    ? datasets.has(id)
    : key.startsWith('n:')
      ? nodeIds.has(id)
      : local && key.startsWith('p:');
}

function joinArray(values: Iterable<object>): string {
  const parts: string[] = [];
  for (const v of values) parts.push(jsonOf(v));
  return `[${parts.join(',')}]`;
}

interface SnapshotHead {
  readonly generation: string;
  readonly configurationTag: string;
  readonly nodeTimeoutMs: number;
  readonly leaseGraceMs: number;
}

/** The configured snapshots as the agent channel's `snapshots` member ('' when none: agents from before them parse strictly). */
function snapshotsJson(config: { readonly snapshots?: ReadonlyMap<string, SnapshotConfiguration> }): string {
  return config.snapshots === undefined || config.snapshots.size === 0
    ? ''
    : `"snapshots":${joinArray(config.snapshots.values())},`;
}

function snapshotJson(
  head: SnapshotHead,
  datasets: string,
  leases: string,
  nodes: string,
  snapshots = '',
  peers = '',
): string {
  const timing = `"node_timeout_seconds":${head.nodeTimeoutMs / 1000},"lease_grace_seconds":${head.leaseGraceMs / 1000}`;
  return `{"generation":${JSON.stringify(head.generation)},"configuration_tag":${JSON.stringify(head.configurationTag)},"datasets":${datasets},${snapshots}"leases":${leases},"nodes":${nodes},${timing}${peers}}`;
}

function withoutGrowPending(m: ManifestationState): ManifestationState {
  if (m.grow_pending === undefined) return m;
  const { grow_pending: _pending, ...plain } = m;
  return plain;
}

/** Whether a lease carries a member of the lease hand-over (release_on_request, release_requested). */
function hasHandoverMembers(lease: StoredLease): boolean {
  return lease.release_on_request === true || lease.release_requested !== undefined;
}

/** A lease's JSON in a view; `legacy`: without the lease hand-over's members (Views.newMembersHidden). */
function leaseJson(lease: StoredLease, now: number, legacy: boolean): string {
  const view = leaseView(lease, now);
  if (!legacy || !hasHandoverMembers(lease)) return JSON.stringify(view);
  const { release_on_request: _promise, release_requested: _request, ...plain } = view;
  return JSON.stringify(plain);
}

/** A changed dataset in a delta: it (`d`; undefined when gone: removed) and its live lease (or the lease removed). */
function datasetChange(
  parts: DeltaParts,
  config: Configuration,
  id: string,
  d: DatasetConfiguration | undefined,
  now: number,
  legacy: boolean,
): void {
  if (d === undefined) {
    parts.removedDatasets.push(JSON.stringify(id));
    return;
  }
  parts.datasets.push(jsonOf(d));
  const lease = liveLease(config, id, now);
  if (lease !== undefined) parts.leases.push(leaseJson(lease, now, legacy));
  else parts.removedLeases.push(JSON.stringify(id));
}
