/**
 * Which nodes' views a change touches (issue 23, per-node deltas on the agent channel).
 *
 * Node N's view (Views.snapshotFor) holds the datasets whose primary N is or that N holds
 * (a manifestation, or a volume attached to its instance), their leases, the states of the
 * nodes holding those datasets, and every configured snapshot; the datasets leased to it; the orphans it takes care of
 * (deleted datasets whose primary is dead and that no live node holds, each given to one live node
 * reporting its volume or a deleted snapshot of it: orphanViews.ts) with their primaries' states. This index keeps, for each
 * node, the generation at which each entry of its view last changed (`d:<dataset>` for a
 * dataset or its lease, `n:<node>` for a node state, `w:` for a change outside the view that
 * its node's agents wait on: its containers) — so a long-poll is woken only when its
 * node's view changed, and a delta carries only the entries changed since the poll's `since`.
 * Each change costs O(what it touches): a dataset write touches its old and new primary and
 * its holders; a node report touches that node and the views holding what it held or holds.
 *
 * A local-backend node's view (issue 24, the reference: @flocker/api localViewOf) also holds the
 * datasets its pool retains (its report's `retained`) and those a primary names it the replica
 * node of, the states of its datasets' primaries, and every local node as a peer (`p:<node>`:
 * address, liveness, live copies in steps (@flocker/api peerCopies), replicas held). A primary's
 * report touches the local views of its datasets; a local node's peer entry (or a replica naming)
 * touches every local view — a new copy only when the count crosses a step.
 *
 * Generations are `<instance>.<configuration version>.<state generation>`, both counters
 * monotonic in one process: an entry stamped (cv, sg) changed after `since` (scv, ssg) iff
 * cv > scv or sg > ssg.
 */
import { isLocalBackend, type NodeReport, peerCopies } from '@flocker/api';
import type { Configuration } from './configuration';
import { CaretakerIndex, type CaretakerMove } from './orphanViews';
import { PersistentMap } from './PersistentMap';

export interface Stamp {
  readonly cv: number;
  readonly sg: number;
}

export interface ParsedGeneration extends Stamp {
  readonly instance: string;
}

/**
 * The last two tokens parsed: in a fan-out every waiter holds the same one, checked several times each, and its
 * watch then checks the new one it moved to — one entry missed at every other call.
 */
let lastParsed: { generation: string; parsed: ParsedGeneration | undefined } | undefined;
let beforeParsed: typeof lastParsed;

/** A generation token of this service (`instance.cv.sg`), or undefined when it is not one. */
export function parseGeneration(generation: string): ParsedGeneration | undefined {
  if (lastParsed?.generation === generation) return lastParsed.parsed;
  if (beforeParsed?.generation === generation) {
    [lastParsed, beforeParsed] = [beforeParsed, lastParsed];
    return lastParsed.parsed;
  }
  const m = /^([^.]+)\.(\d+)\.(\d+)$/.exec(generation);
  const parsed = m === null ? undefined : { instance: m[1] as string, cv: Number(m[2]), sg: Number(m[3]) };
  beforeParsed = lastParsed;
  lastParsed = { generation, parsed };
  return parsed;
}

/** True when `stamp` is a change the holder of `since` has not seen. */
export function after(stamp: Stamp, since: Stamp): boolean {
  return stamp.cv > since.cv || stamp.sg > since.sg;
}

/** Above this many changed datasets in one configuration change, every view is treated as changed. */
export const MAX_TRACKED_CHANGE = 4096;

interface Held {
  /** Datasets with a manifestation on the node. */
  readonly manifestations: readonly string[];
  /** Datasets whose volume is attached to the node's own instance. */
  readonly attached: readonly string[];
}

interface NodeLog {
  /** Entry key → when it last changed. */
  readonly keys: Map<string, Stamp>;
  /** The latest stamp of any entry. */
  latest: Stamp;
  /** Entries older than this were forgotten: a `since` before it gets a full answer. */
  horizon: Stamp | undefined;
}

/** What a change touched: some nodes' views, or all of them. */
export type Touched = ReadonlySet<string> | 'all';

/**
 * The whole cluster's view (Views.snapshot: every dataset, live lease, reported node state, the
 * configured snapshots), followed by whole-cluster watchers (the Docker plugins, issue 23) as if it
 * were one more node: `'*'` is never a node's UUID. Its log is touched by every dataset, lease and
 * node-state change, O(the change) each, and answers what changed since a generation in
 * O(log n + the change), not O(the view): at 100,000 datasets a per-node style scan of every key
 * per change would cost more than the delta saves.
 */
export const WHOLE_CLUSTER = '*';

/**
 * An append-only log of (key, stamp), stamps nondecreasing in both counters (so `after(stamp,
 * since)` is false then true along it: binary search), each key's latest entry indexed. Compacted
 * (older entries of a key dropped) once it is twice its keys. Keys are answered in the order they
 * were first touched (see since).
 */
export class ChangeLog {
  private keys: string[] = [];
  private stamps: Stamp[] = [];
  /** Key → index of its latest entry. */
  private latestAt = new Map<string, number>();
  /** Key → its rank by first touch (kept through compactions). */
  private readonly born = new Map<string, number>();
  private births = 0;
  /** Entries older than this were forgotten: a `since` before it gets a full answer. */
  horizon: Stamp | undefined;

  get latest(): Stamp | undefined {
    return this.stamps[this.stamps.length - 1];
  }

  get size(): number {
    return this.latestAt.size;
  }

  touch(key: string, at: Stamp): void {
    // Kept monotonic whatever the caller: a later entry stamped earlier is only answered more often.
    const stamp = max(at, this.latest);
    if (!this.born.has(key)) this.born.set(key, this.births++);
    this.latestAt.set(key, this.keys.length);
    this.keys.push(key);
    this.stamps.push(stamp);
    if (this.keys.length > 2 * this.latestAt.size + 1024) this.compact(() => true);
  }

  /**
   * The keys changed after `since` (each once), or undefined when older than the horizon. In the order they were
   * first touched, not last: a follower appends the entries new to it in the delta's order, and the whole snapshot
   * lists datasets and nodes in the order they came (the configuration's and the reports' insertion order; a dataset
   * is first touched at its creation, a node at its first report). So merged = snapshot, order included: the Docker
   * plugin resolves a name to the first live dataset bearing it, the same one whether it merged or took a snapshot.
   */
  since(s: Stamp): string[] | undefined {
    if (this.horizon !== undefined && after(this.horizon, s)) return undefined;
    let lo = 0;
    let hi = this.stamps.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (after(this.stamps[mid] as Stamp, s)) hi = mid;
      else lo = mid + 1;
    }
    const out: string[] = [];
    for (let i = lo; i < this.keys.length; i++) {
      const key = this.keys[i] as string;
      if (this.latestAt.get(key) === i) out.push(key);
    }
    if (out.length > 1) out.sort((a, b) => (this.born.get(a) ?? 0) - (this.born.get(b) ?? 0));
    return out;
  }

  /** Forgets the keys `keep` refuses (things gone from the view), moving the horizon past them. */
  forget(keep: (key: string) => boolean): void {
    this.compact(keep);
  }

  private compact(keep: (key: string) => boolean): void {
    const keys: string[] = [];
    const stamps: Stamp[] = [];
    const latestAt = new Map<string, number>();
    for (let i = 0; i < this.keys.length; i++) {
      const key = this.keys[i] as string;
      if (this.latestAt.get(key) !== i) continue;
      const at = this.stamps[i] as Stamp;
      if (!keep(key)) {
        this.horizon = max(at, this.horizon);
        this.born.delete(key);
        continue;
      }
      latestAt.set(key, keys.length);
      keys.push(key);
      stamps.push(at);
    }
    this.keys = keys;
    this.stamps = stamps;
    this.latestAt = latestAt;
  }
}

export class NodeViewIndex {
  private readonly logs = new Map<string, NodeLog>();
  private readonly held = new Map<string, Held>();
  /** Dataset → nodes with a manifestation of it. */
  private readonly holders = new Map<string, Set<string>>();
  /** Dataset → nodes whose instance its volume is attached to. */
  private readonly attached = new Map<string, Set<string>>();
  private config: Configuration;
  /** Local-backend nodes (issue 24) → what their peer entry shows that their report sets, and its last key. */
  private readonly localNodes = new Map<string, { host: string; copies: number; key: string }>();
  /** Node → the datasets its pool retains without a live copy (its report's `retained`), and back. */
  private readonly retainedBy = new Map<string, readonly string[]>();
  private readonly retainers = new Map<string, Set<string>>();
  /** Reporter → the `dataset node` replica namings of its report. */
  private readonly namingsBy = new Map<string, readonly string[]>();
  /** Dataset → replica node → how many reports name it; replica node → those datasets (its peer's replica_of). */
  private readonly named = new Map<string, Map<string, number>>();
  private readonly namedOn = new Map<string, Set<string>>();
  /** Primary → its datasets: a local view shows the primaries of its datasets. */
  private readonly primaryOf = new Map<string, Set<string>>();
  private readonly alive: (node: string) => boolean;
  /** When the configured snapshots (part of every view) last changed. */
  private snapshotsAt: Stamp;
  /** When every view last changed wholesale (a change too big to track): older `since`s get full answers. */
  private everythingAt: Stamp;
  /** Node → datasets leased to it (its view holds them: its leases, whatever the primary). */
  private readonly leasedTo = new Map<string, Set<string>>();
  /** Datasets needing a caretaker (orphans; stranded deleted snapshots), each in one live node's view (orphanViews.ts). */
  private readonly caretakers: CaretakerIndex;
  /** The whole cluster's view (WHOLE_CLUSTER): every dataset (`d:`, its lease with it) and node state (`n:`). */
  private readonly whole = new ChangeLog();
  /**
   * Nodes declared dead without a report since this start, known from their identity alone (NodeReports.ghosts):
   * in every node's view (their instance, for a new primary to force-detach what is still attached to it). Few: the
   * block-backend nodes that have not reported since this start (hosts that died before it, or retired ones whose
   * identity was kept: docs/production.md).
   */
  private ghostSet: ReadonlySet<string> = EMPTY_SET;
  /** Every node ever in ghostSet, and when the set last changed: a `since` before that gets their `n:` keys. */
  private readonly everGhost = new Set<string>();
  private ghostsAt: Stamp | undefined;

  /** `stamp`: the current generation's counters (read at each change, after the change). */
  constructor(
    readonly instance: string,
    initial: Configuration,
    private readonly stamp: () => Stamp,
    /** Whether a node is alive (as of its last report or liveness change); without it, every node is. */
    alive: (node: string) => boolean = () => true,
  ) {
    this.config = initial;
    this.alive = alive;
    for (const d of initial.datasets.values()) addMember(this.primaryOf, d.primary, d.dataset_id);
    this.caretakers = new CaretakerIndex({
      dataset: (id) => this.config.datasets.get(id),
      holders: (id) => [...(this.holders.get(id) ?? []), ...(this.attached.get(id) ?? [])],
      alive,
    });
    for (const l of initial.leases.values()) addMember(this.leasedTo, l.node_uuid, l.dataset_id);
    // Orphans at start get their caretakers as the nodes report (no node reports a volume yet).
    for (const d of initial.datasets.values()) if (d.deleted) this.caretakers.knowDeleted(d.dataset_id, d.primary);
    this.caretakers.knowSnapshots(initial.snapshots);
    this.snapshotsAt = this.everythingAt = { cv: initial.version, sg: 0 };
  }

  /** NodeReports.ghosts as last told (ghostsChanged). */
  get ghosts(): ReadonlySet<string> {
    return this.ghostSet;
  }

  /** The ghosts changed (one declared, or one reported): every view shows them, or no longer does. */
  ghostsChanged(ghosts: ReadonlySet<string>): void {
    this.ghostSet = ghosts;
    for (const g of ghosts) this.everGhost.add(g);
    this.ghostsAt = this.stamp();
  }

  /** Nodes holding a manifestation of the dataset. */
  holdersOf(dataset: string): ReadonlySet<string> | undefined {
    return this.holders.get(dataset);
  }

  /** Nodes whose (local) report lists the dataset retained without a live copy. */
  retainersOf(dataset: string): ReadonlySet<string> | undefined {
    return this.retainers.get(dataset);
  }

  /** The live node taking care of a dataset (an orphan, or one with a stranded deleted snapshot), if it has one. */
  caretaker(dataset: string): string | undefined {
    return this.caretakers.caretaker(dataset);
  }

  /** The witness of a dataset no live node holds (orphanViews.witnessOf): its state is in the dataset's views. */
  witness(dataset: string): string | undefined {
    return this.caretakers.witness(dataset);
  }

  /** The datasets leased to node (in its view). */
  leasesOf(node: string): ReadonlySet<string> {
    return this.leasedTo.get(node) ?? EMPTY_SET;
  }

  /** Whether node's last report was of a local backend (issue 24): its view is a local one. */
  isLocal(node: string): boolean {
    return this.localNodes.has(node);
  }

  /** The local-backend nodes (the peers of a local view). */
  localNodeIds(): Iterable<string> {
    return this.localNodes.keys();
  }

  /** How many local-backend nodes there are (the peers of a local view). */
  get localNodeCount(): number {
    return this.localNodes.size;
  }

  /** The datasets node's pool retains without a live copy (its report's `retained`, a local node's). */
  retainedOf(node: string): readonly string[] {
    return this.retainedBy.get(node) ?? [];
  }

  /** The datasets whose standby replica a report names on node (its peer's replica_of). */
  replicasOn(node: string): ReadonlySet<string> {
    return this.namedOn.get(node) ?? EMPTY_SET;
  }

  /** The datasets node takes care of: orphans, and those with a deleted snapshot no live viewer holds (orphanViews.ts). */
  caredBy(node: string): ReadonlySet<string> {
    return this.caretakers.caredBy(node);
  }

  /**
   * Records a new committed configuration: the views of the old and new primaries and of the
   * holders of each changed dataset (or lease) changed. Returns who to wake. `onPrimaryMove` hears of each dataset
   * whose primary changed (from the one diff of the datasets made here).
   */
  configurationChanged(
    next: Configuration,
    onPrimaryMove?: (id: string, before: string | undefined, after: string | undefined) => void,
  ): Touched {
    const prev = this.config;
    if (prev === next) return new Set();
    this.config = next;
    const now = this.stamp();
    let all = false;
    if (prev.snapshots !== next.snapshots && !sameValues(prev.snapshots, next.snapshots)) {
      this.snapshotsAt = now;
      all = true;
    }
    const changed = new Set<string>();
    // The datasets' changes, diffed once for the orphan index, the primary index and the views below.
    const datasetIds =
      prev.datasets === next.datasets
        ? []
        : (({ deletes, sets }) => [...deletes, ...sets])(
            PersistentMap.diff<string, unknown>(prev.datasets, next.datasets),
          );
    // The orphan index learns of every dataset change, even one too big to track per view.
    const moves: CaretakerMove[] =
      datasetIds.length === 0 ? [] : this.caretakers.datasetsChanged(datasetIds, (id) => prev.datasets.get(id));
    // A deleted snapshot keeps its dataset's caretaker while a backend holds it (orphanViews.ts).
    moves.push(...this.caretakers.snapshotsChanged(prev.snapshots, next.snapshots));
    // The primary index too (a local view shows its datasets' primaries).
    for (const id of datasetIds) {
      const before = prev.datasets.get(id)?.primary;
      const after = next.datasets.get(id)?.primary;
      if (before === after) continue;
      if (before !== undefined) removeMember(this.primaryOf, before, id);
      if (after !== undefined) addMember(this.primaryOf, after, id);
      onPrimaryMove?.(id, before, after);
    }
    // The lease index too (every change: a lease adds its dataset to its node's view).
    const leaseIds =
      prev.leases === next.leases
        ? []
        : (({ deletes, sets }) => [...deletes, ...sets])(PersistentMap.diff<string, unknown>(prev.leases, next.leases));
    for (const id of leaseIds) {
      const before = prev.leases.get(id)?.node_uuid;
      const after = next.leases.get(id)?.node_uuid;
      if (before !== undefined) removeMember(this.leasedTo, before, id);
      if (after !== undefined) addMember(this.leasedTo, after, id);
    }
    for (const id of datasetIds) changed.add(id);
    if (changed.size <= MAX_TRACKED_CHANGE) for (const id of leaseIds) changed.add(id);
    if (changed.size > MAX_TRACKED_CHANGE) {
      this.everythingAt = now;
      return 'all';
    }
    const touched = new Set<string>();
    // The whole cluster's view: each changed dataset (or lease) as it is now; and, whatever changed, its
    // configuration tag (a plugin's lease conditional on the tag it followed: a stale one is refused).
    for (const id of changed) this.whole.touch(`d:${id}`, now);
    this.whole.touch('w:', now);
    touched.add(WHOLE_CLUSTER);
    // Containers are not in the view, but a node's container agent long-polls its view to hear of
    // its containers' changes: a `w:` entry wakes it and carries nothing.
    if (prev.containers !== next.containers) {
      for (const [a, b] of [
        [prev.containers, next.containers],
        [next.containers, prev.containers],
      ] as const)
        for (const [name, c] of a ?? []) {
          const other = b?.get(name);
          if (other === c) continue;
          this.touch(c.node_uuid, 'w:containers', now, touched);
          if (other !== undefined) this.touch(other.node_uuid, 'w:containers', now, touched);
        }
    }
    for (const id of changed) {
      const viewers = new Set<string>();
      const before = prev.datasets.get(id)?.primary;
      const after = next.datasets.get(id)?.primary;
      if (before !== undefined) viewers.add(before);
      if (after !== undefined) viewers.add(after);
      for (const n of this.holders.get(id) ?? []) viewers.add(n);
      for (const n of this.attached.get(id) ?? []) viewers.add(n);
      const caretaker = this.caretakers.caretaker(id);
      if (caretaker !== undefined) viewers.add(caretaker);
      // The nodes it is (or was) leased to.
      for (const l of [prev.leases.get(id), next.leases.get(id)]) if (l !== undefined) viewers.add(l.node_uuid);
      // Local nodes retaining it or named its replica node.
      for (const n of this.retainers.get(id) ?? []) viewers.add(n);
      for (const n of this.named.get(id)?.keys() ?? []) viewers.add(n);
      for (const v of viewers) {
        this.touch(v, `d:${id}`, now, touched);
        // The dataset may have entered or left v's view, and with it the states of its holders.
        for (const h of this.shownWith(id)) this.touch(v, `n:${h}`, now, touched);
        // A local view shows its primary's state (the old and the new one's, after a move).
        if (this.localNodes.has(v))
          for (const p of [before, after]) if (p !== undefined) this.touch(v, `n:${p}`, now, touched);
      }
      // A caretaker's view shows the (dead) primary's state too.
      if (caretaker !== undefined)
        for (const p of [before, after]) if (p !== undefined) this.touch(caretaker, `n:${p}`, now, touched);
    }
    this.caretakerMoves(moves, now, touched);
    return all ? 'all' : touched;
  }

  /**
   * Records that node `uuid`'s state changed (a new report, or its liveness): its own view
   * (and the datasets entering or leaving it) and every view that shows its state.
   */
  nodeChanged(uuid: string, report: NodeReport | undefined): ReadonlySet<string> {
    const now = this.stamp();
    const touched = new Set<string>();
    const old = this.held.get(uuid) ?? { manifestations: [], attached: [] };
    const next: Held =
      report === undefined
        ? old
        : {
            manifestations: report.manifestations.map((m) => m.dataset_id),
            attached: (report.volumes ?? [])
              .filter((v) => v.attached_to !== undefined && v.attached_to === report.instance_id)
              .map((v) => v.dataset_id),
          };
    if (next !== old) {
      for (const id of old.manifestations) removeMember(this.holders, id, uuid);
      for (const id of old.attached) removeMember(this.attached, id, uuid);
      for (const id of next.manifestations) addMember(this.holders, id, uuid);
      for (const id of next.attached) addMember(this.attached, id, uuid);
      this.held.set(uuid, next);
    }
    // Its own state, in its own view and in the whole cluster's.
    this.touch(uuid, `n:${uuid}`, now, touched);
    this.whole.touch(`n:${uuid}`, now);
    touched.add(WHOLE_CLUSTER);
    // A local node's view (issue 24): what it retains, the replicas named on it, its peers.
    if (report !== undefined) this.localReported(uuid, report, now, touched);
    // Datasets entering or leaving its own view (the primary ones stay whatever it reports).
    const before = new Set([...old.manifestations, ...old.attached]);
    const nowHeld = new Set([...next.manifestations, ...next.attached]);
    for (const id of symmetricDifference(before, nowHeld)) this.enterOrLeave(uuid, id, now, touched);
    this.peerChanged(uuid, now, touched);
    // The local views of the datasets it is the primary of show its state.
    if (this.localNodes.size > 0)
      for (const id of this.primaryOf.get(uuid) ?? [])
        for (const v of this.viewersOf(id))
          if (v !== uuid && this.localNodes.has(v)) this.touch(v, `n:${uuid}`, now, touched);
    // Orphans whose caretaker this change (its report, its liveness) moved.
    this.caretakerMoves(
      this.caretakers.nodeChanged(uuid, report, [
        ...old.manifestations,
        ...old.attached,
        ...next.manifestations,
        ...next.attached,
      ]),
      now,
      touched,
    );
    // Every view showing its state: those of the datasets it held or holds (and their caretakers).
    for (const id of new Set([...old.manifestations, ...next.manifestations])) {
      // Its primary, holders, the nodes it is attached to, its caretaker, its lease's node.
      for (const v of this.viewersOf(id)) this.touch(v, `n:${uuid}`, now, touched);
    }
    // The views of the datasets it witnesses show its state.
    for (const id of this.caretakers.witnessedBy(uuid))
      for (const v of this.viewersOf(id)) this.touch(v, `n:${uuid}`, now, touched);
    // The caretakers of the orphans it is the primary of show its state.
    for (const caretaker of this.caretakers.caretakersOfPrimary(uuid)) this.touch(caretaker, `n:${uuid}`, now, touched);
    return touched;
  }

  /** Whether node's view may have changed since `since` (a generation of another process: yes). */
  changedSince(node: string, since: string): boolean {
    const s = parseGeneration(since);
    if (s === undefined || s.instance !== this.instance) return true;
    if (after(this.everythingAt, s) || after(this.snapshotsAt, s)) return true;
    if (this.ghostsAt !== undefined && after(this.ghostsAt, s)) return true;
    if (node === WHOLE_CLUSTER) {
      const latest = this.whole.latest;
      return latest !== undefined && after(latest, s);
    }
    const log = this.logs.get(node);
    return log !== undefined && after(log.latest, s);
  }

  /**
   * The entries of node's view changed since `since`, and whether the snapshots did; undefined
   * when that is not known (another process's generation, or older than what is kept): answer
   * the whole view then.
   */
  changesSince(node: string, since: string): { keys: string[]; snapshots: boolean } | undefined {
    const s = parseGeneration(since);
    if (s === undefined || s.instance !== this.instance || after(this.everythingAt, s)) return undefined;
    if (node === WHOLE_CLUSTER) {
      const keys = this.whole.since(s);
      return keys === undefined ? undefined : { keys, snapshots: after(this.snapshotsAt, s) };
    }
    const log = this.logs.get(node);
    if (log?.horizon !== undefined && after(log.horizon, s)) return undefined;
    const keys: string[] = [];
    if (log !== undefined && after(log.latest, s)) for (const [k, at] of log.keys) if (after(at, s)) keys.push(k);
    // The ghosts entered or left every view (a node's own log does not say).
    if (this.ghostsAt !== undefined && after(this.ghostsAt, s)) {
      const listed = new Set(keys);
      for (const g of this.everGhost) if (!listed.has(`n:${g}`)) keys.push(`n:${g}`);
    }
    return { keys, snapshots: after(this.snapshotsAt, s) };
  }

  /**
   * Forgets the entries of node's log that are not in its view (`inView`) once the log has
   * grown past twice the view: a `since` older than what was forgotten gets a full answer.
   * Keeps memory per node proportional to its view, whatever its history.
   */
  prune(node: string, inView: (key: string) => boolean, viewSize: number): void {
    if (node === WHOLE_CLUSTER) {
      // Keys of datasets purged and nodes forgotten.
      if (this.whole.size > 2 * viewSize + 64) this.whole.forget(inView);
      return;
    }
    const log = this.logs.get(node);
    if (log === undefined || log.keys.size <= 2 * viewSize + 64) return;
    for (const [k, at] of log.keys) {
      if (inView(k)) continue;
      log.keys.delete(k);
      if (log.horizon === undefined || after(at, log.horizon)) log.horizon = max(at, log.horizon);
    }
  }

  /** Nodes that ever reported (a bound of the whole cluster's node states). */
  get nodesSeen(): number {
    return this.held.size;
  }

  /** Entries kept over all nodes (a metric of this index's memory). */
  get size(): number {
    let n = this.whole.size;
    for (const log of this.logs.values()) n += log.keys.size;
    return n;
  }

  /** An orphan moved between caretakers: it (and its primary's and holders' states) left one view and entered the other. */
  private caretakerMoves(moves: readonly CaretakerMove[], now: Stamp, touched: Set<string>): void {
    for (const m of moves) {
      if (m.witness === true) {
        // Its viewers' views show another node's state.
        for (const v of this.viewersOf(m.datasetId))
          for (const w of [m.from, m.to]) if (w !== undefined) this.touch(v, `n:${w}`, now, touched);
        continue;
      }
      for (const v of [m.from, m.to]) {
        if (v === undefined) continue;
        this.touch(v, `d:${m.datasetId}`, now, touched);
        const primary = this.config.datasets.get(m.datasetId)?.primary;
        if (primary !== undefined) this.touch(v, `n:${primary}`, now, touched);
        for (const h of this.shownWith(m.datasetId)) this.touch(v, `n:${h}`, now, touched);
      }
    }
  }

  /** The nodes whose views hold the dataset: its primary, holders, nodes it is attached to, its caretaker, its lease's node. */
  private viewersOf(id: string): Set<string> {
    const out = new Set<string>([...(this.holders.get(id) ?? []), ...(this.attached.get(id) ?? [])]);
    const lease = this.config.leases.get(id);
    if (lease !== undefined) out.add(lease.node_uuid);
    const primary = this.config.datasets.get(id)?.primary;
    if (primary !== undefined) out.add(primary);
    const caretaker = this.caretakers.caretaker(id);
    if (caretaker !== undefined) out.add(caretaker);
    for (const n of this.retainers.get(id) ?? []) out.add(n);
    for (const n of this.named.get(id)?.keys() ?? []) out.add(n);
    return out;
  }

  /**
   * A local node's report (issue 24): the datasets it retains and the replica namings of its
   * report, each entering or leaving the view of the node concerned (a naming also changes that
   * node's peer entry, in every local view); a node becoming local (or not) answers its next
   * poll with its whole view.
   */
  private localReported(uuid: string, report: NodeReport, now: Stamp, touched: Set<string>): void {
    const local = isLocalBackend(report.backend);
    const wasLocal = this.localNodes.has(uuid);
    if (local !== wasLocal) {
      if (local) this.localNodes.set(uuid, { host: report.host, copies: report.manifestations.length, key: '' });
      else {
        this.localNodes.delete(uuid);
        this.peerTouched(uuid, now, touched);
      }
      this.wholeViewNext(uuid, now, touched);
    } else if (local) {
      const entry = this.localNodes.get(uuid);
      if (entry !== undefined) {
        entry.host = report.host;
        entry.copies = report.manifestations.length;
      }
    }
    const oldRetained = this.retainedBy.get(uuid) ?? [];
    const retained = local ? [...new Set(report.retained ?? [])] : [];
    if (oldRetained.length > 0 || retained.length > 0) {
      for (const id of oldRetained) removeMember(this.retainers, id, uuid);
      for (const id of retained) addMember(this.retainers, id, uuid);
      if (retained.length > 0) this.retainedBy.set(uuid, retained);
      else this.retainedBy.delete(uuid);
      for (const id of symmetricDifference(new Set(oldRetained), new Set(retained)))
        this.enterOrLeave(uuid, id, now, touched);
    }
    const oldNamings = this.namingsBy.get(uuid) ?? [];
    const namings = [...new Set((report.replicas ?? []).map((r) => `${r.dataset_id} ${r.node_uuid}`))];
    if (oldNamings.length === 0 && namings.length === 0) return;
    if (namings.length > 0) this.namingsBy.set(uuid, namings);
    else this.namingsBy.delete(uuid);
    const gone = new Set(oldNamings);
    for (const x of namings) gone.delete(x);
    const added = new Set(namings);
    for (const x of oldNamings) added.delete(x);
    for (const [pairs, step] of [
      [gone, -1],
      [added, 1],
    ] as const)
      for (const pair of pairs) {
        const [id, node] = pair.split(' ') as [string, string];
        const counts = this.named.get(id) ?? new Map<string, number>();
        const count = (counts.get(node) ?? 0) + step;
        if (count > 0) counts.set(node, count);
        else counts.delete(node);
        if (counts.size > 0) this.named.set(id, counts);
        else this.named.delete(id);
        if (count === 0 || (count === 1 && step === 1)) {
          if (count > 0) addMember(this.namedOn, node, id);
          else removeMember(this.namedOn, node, id);
          this.enterOrLeave(node, id, now, touched);
          this.peerTouched(node, now, touched);
        }
      }
  }

  /** A local node's peer entry in every local view, when what it shows (address, liveness, copies in steps) changed. */
  private peerChanged(uuid: string, now: Stamp, touched: Set<string>): void {
    const entry = this.localNodes.get(uuid);
    if (entry === undefined) return;
    const key = `${entry.host} ${this.alive(uuid)} ${peerCopies(entry.copies)}`;
    if (key === entry.key) return;
    entry.key = key;
    this.peerTouched(uuid, now, touched);
  }

  /** Node's peer entry changed: every local view shows it. */
  private peerTouched(node: string, now: Stamp, touched: Set<string>): void {
    for (const v of this.localNodes.keys()) this.touch(v, `p:${node}`, now, touched);
  }

  /** A dataset entered or left v's view: it, the states shown with it and (a local view) its primary's. */
  private enterOrLeave(v: string, id: string, now: Stamp, touched: Set<string>): void {
    this.touch(v, `d:${id}`, now, touched);
    for (const h of this.shownWith(id)) this.touch(v, `n:${h}`, now, touched);
    const primary = this.config.datasets.get(id)?.primary;
    if (primary !== undefined && this.localNodes.has(v)) this.touch(v, `n:${primary}`, now, touched);
  }

  /** Node's view changed more than its log says (it became a local one or stopped being one): a poll from before gets it whole. */
  private wholeViewNext(node: string, now: Stamp, touched: Set<string>): void {
    this.touch(node, `n:${node}`, now, touched);
    const log = this.logs.get(node);
    if (log !== undefined) log.horizon = max(now, log.horizon);
  }

  /**
   * The nodes whose states a view holding the dataset shows for it: its holders and its witness. The agents read
   * the holders' states to pick one destroyer of a deleted snapshot among the nodes deciding about the dataset
   * (dataset-agent snapshotDestroyer); a witness's state (shown for VOLUME_ELSEWHERE) does not count there.
   */
  private shownWith(id: string): string[] {
    const witness = this.caretakers.witness(id);
    const holders = [...(this.holders.get(id) ?? [])];
    return witness !== undefined ? [...holders, witness] : holders;
  }

  private touch(node: string, key: string, at: Stamp, touched: Set<string>): void {
    touched.add(node);
    const log = this.logs.get(node);
    if (log === undefined) this.logs.set(node, { keys: new Map([[key, at]]), latest: at, horizon: undefined });
    else {
      // Re-inserted so the map stays in stamp order (oldest first).
      log.keys.delete(key);
      log.keys.set(key, at);
      log.latest = max(at, log.latest);
    }
  }
}

const EMPTY_SET: ReadonlySet<string> = new Set();

function max(a: Stamp, b: Stamp | undefined): Stamp {
  if (b === undefined) return a;
  return { cv: Math.max(a.cv, b.cv), sg: Math.max(a.sg, b.sg) };
}

function sameValues<V>(a: ReadonlyMap<string, V> | undefined, b: ReadonlyMap<string, V> | undefined): boolean {
  const x = a ?? new Map<string, V>();
  const y = b ?? new Map<string, V>();
  if (x.size !== y.size) return false;
  for (const [k, v] of x) if (y.get(k) !== v) return false;
  return true;
}

function symmetricDifference(a: ReadonlySet<string>, b: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const x of a) if (!b.has(x)) out.push(x);
  for (const x of b) if (!a.has(x)) out.push(x);
  return out;
}

function addMember(index: Map<string, Set<string>>, key: string, member: string): void {
  const bucket = index.get(key);
  if (bucket === undefined) index.set(key, new Set([member]));
  else bucket.add(member);
}

function removeMember(index: Map<string, Set<string>>, key: string, member: string): void {
  const bucket = index.get(key);
  if (bucket === undefined) return;
  bucket.delete(member);
  if (bucket.size === 0) index.delete(key);
}
