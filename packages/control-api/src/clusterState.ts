/**
 * Pure views over the nodes' reports: which nodes are alive, where datasets are,
 * and the node states agents receive. Time is passed in.
 */
import type { DatasetState, NodeReport, NodeState, NodeStateSummary, SnapshotState } from '@flocker/api';
import { BlockJoiner, drive, type ListBody, MAX_RESTARTS } from './listBodies';
import { Slice } from './slices';

/** The clocks a node's liveness is measured on: monotonic ms (now) and wall-clock epoch ms (wallNow). */
export interface LivenessClock {
  now(): number;
  wallNow(): number;
}

export interface ReportedNode {
  readonly report: NodeReport;
  /** Wall-clock epoch ms of the last report: shown (last_seen) and shared between replicas, never timed against. */
  readonly lastSeen: number;
  /**
   * When this process last heard from the node, on `clock`'s monotonic now: liveness is measured from it (runtime
   * clock.ts: a wall-clock step must not look like minutes without contact, nor hide them). Absent: lastSeen.
   */
  readonly heardAt?: number;
  readonly clock?: LivenessClock;
  /**
   * False: held only from what the store held at this start (etcd's read at subscribe), never heard from since, so
   * however old: alive until start + T (heardAt is the start) but no live claimant of its instance (NodeReports.
   * claimingInstance) and not reporting for a forget (review FR M1). Absent: heard.
   */
  readonly heardSinceStart?: boolean;
}

/**
 * The wall-clock ms equivalent of when this process last heard from the node: heardAt moved onto the wall clock as it
 * reads now (a step of the wall clock since moves it along), so `now - liveSeen` is the monotonic time elapsed.
 */
export function liveSeen(node: ReportedNode): number {
  const { heardAt, clock } = node;
  return heardAt === undefined || clock === undefined ? node.lastSeen : heardAt + clock.wallNow() - clock.now();
}

/** `now`: wall-clock ms (the caller's ControlState.now()); the time since the node was heard is monotonic. */
export function isAlive(node: ReportedNode, now: number, nodeTimeoutMs: number): boolean {
  return now - liveSeen(node) <= nodeTimeoutMs;
}

export function aliveNodes(nodes: Iterable<ReportedNode>, now: number, nodeTimeoutMs: number): ReportedNode[] {
  const out: ReportedNode[] = [];
  for (const node of nodes) if (isAlive(node, now, nodeTimeoutMs)) out.push(node);
  return out;
}

/** The configured primary of a dataset (undefined: none configured); see shownCopy. */
export type PrimaryOf = (datasetId: string) => string | undefined;

const NO_PRIMARY: PrimaryOf = () => undefined;

/**
 * Whether a copy of a dataset on node `candidate` is shown rather than one on `current` when two live nodes report
 * one (review K6: a local move between its promote and the source's retire, a TWO_LIVE_COPIES refusal, a block
 * volume still reported on its old node): the configured primary's copy, else the lowest node UUID's. Not the first
 * in node order: that is the order nodes first reported to this process, which differs between replicas and
 * restarts, and a client polling for "primary == node and a path" (flocker-go, a move's wait) would see the other
 * node's copy. The same node twice (two reports of it in a list): the first stays.
 */
function shownRather(candidate: string, current: string, primary: string | undefined): boolean {
  if (candidate === current || current === primary) return false;
  return candidate === primary || candidate < current;
}

/**
 * Each dataset's shown report among the alive reports with a manifestation of it not hidden there (shownRather),
 * for the datasets more than one report has.
 */
function shownCopies(
  alive: readonly ReportedNode[],
  primaryOf: PrimaryOf,
  hidden: ReadonlyMap<NodeReport, ReadonlySet<string>>,
): Map<string, NodeReport> {
  const shown = new Map<string, NodeReport>();
  for (const { report } of alive) {
    const skip = hidden.get(report);
    for (const m of report.manifestations) {
      const id = m.dataset_id;
      if (skip?.has(id) === true) continue;
      const current = shown.get(id);
      if (current === undefined || shownRather(report.uuid, current.uuid, primaryOf(id))) shown.set(id, report);
    }
  }
  return shown;
}

/**
 * Where each dataset actually is, from alive nodes only: a manifestation gives the
 * primary (and the path when mounted); a backend volume manifest on no alive node
 * appears without a primary. Of two live copies the configured primary's is shown (shownRather), at its report's
 * place in the list; a report naming a dataset twice shows its first.
 */
export function deriveDatasetState(alive: readonly ReportedNode[], primaryOf: PrimaryOf = NO_PRIMARY): DatasetState[] {
  const byId = new Map<string, DatasetState>();
  const kept = keptAsideIndex(alive);
  const shown = shownCopies(alive, primaryOf, new Map());
  for (const { report } of alive) {
    for (const m of report.manifestations) {
      if (shown.get(m.dataset_id) === report && !byId.has(m.dataset_id))
        byId.set(m.dataset_id, manifestationState(report.uuid, m));
    }
  }
  for (const { report } of alive) {
    for (const v of report.volumes ?? []) {
      if (byId.has(v.dataset_id)) continue;
      byId.set(v.dataset_id, { dataset_id: v.dataset_id, maximum_size: v.size });
    }
  }
  const out = [...byId.values()];
  return kept.size === 0 ? out : out.map((d) => withKeptAside(d, kept.get(d.dataset_id)));
}

type KeptAside = NonNullable<DatasetState['kept_aside']>;

/**
 * The copies live nodes kept aside (NodeReport.kept_aside, issue 24), by dataset: each distinct report in the order
 * of `reports`, its copies in its own order. A dataset state entry shows them last (kept_aside), so an API client
 * sees per dataset that a copy with writes its live copy lacks is kept, and where; a dataset no live node has gets
 * no entry from them (a Flocker v1 client reads an entry as "the dataset exists").
 */
function keptAsideIndex(reports: Iterable<{ readonly report: NodeReport }>, only?: string): Map<string, KeptAside> {
  const out = new Map<string, KeptAside>();
  const seen = new Set<NodeReport>();
  for (const { report } of reports) {
    if (report.kept_aside === undefined || seen.has(report)) continue;
    seen.add(report);
    for (const k of report.kept_aside) {
      if (only !== undefined && k.dataset_id !== only) continue;
      const list = out.get(k.dataset_id);
      const copy = { node_uuid: report.uuid, path: k.path };
      if (list === undefined) out.set(k.dataset_id, [copy]);
      else list.push(copy);
    }
  }
  return out;
}

function withKeptAside(d: DatasetState, kept: KeptAside | undefined): DatasetState {
  return kept === undefined ? d : { ...d, kept_aside: kept };
}

/** An entry's JSON with `kept_aside` (JSON) last, as JSON.stringify(withKeptAside(…)) writes it. */
function spliceKeptAside(entry: string, kept: string | undefined): string {
  return kept === undefined ? entry : `${entry.slice(0, -1)},"kept_aside":${kept}}`;
}

/** keptAsideIndex's lists as JSON. */
function keptAsideJson(index: ReadonlyMap<string, KeptAside>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [id, list] of index) out.set(id, JSON.stringify(list));
  return out;
}

type Manifestation = NodeReport['manifestations'][number];

function manifestationState(node: string, m: Manifestation): DatasetState {
  return {
    dataset_id: m.dataset_id,
    primary: node,
    maximum_size: m.size,
    ...(m.status === 'mounted' && m.path !== undefined ? { path: m.path } : {}),
    ...(m.status === 'mounted' && m.used_bytes !== undefined ? { used_bytes: m.used_bytes } : {}),
    // Only while a grow waits (TN F3): v1 readers see the old shape otherwise.
    ...(m.grow_pending !== undefined ? { grow_pending: m.grow_pending } : {}),
  };
}

/**
 * JSON.stringify(deriveDatasetState(alive)), built from each report's manifestations
 * serialised once per report (reports are immutable values; `fragments` keeps them):
 * at 100,000 datasets a new state generation costs a join, not 100,000 objects and a
 * serializer walk over them (~200 ms of the first read after a change, issue 23).
 */
export function datasetStateJson(
  alive: readonly ReportedNode[],
  fragments: WeakMap<NodeReport, readonly string[]>,
  hidden: ReadonlyMap<NodeReport, ReadonlySet<string>> = new Map(),
  primaryOf: PrimaryOf = NO_PRIMARY,
): string {
  const seen = new Set<string>();
  const hiddenIds = new Set<string>();
  const parts: string[] = [];
  const kept = keptAsideJson(keptAsideIndex(alive));
  const shown = shownCopies(alive, primaryOf, hidden);
  for (const { report } of alive) {
    let own = fragments.get(report);
    if (own === undefined) {
      own = report.manifestations.map((m) => JSON.stringify(manifestationState(report.uuid, m)));
      fragments.set(report, own);
    }
    const ms = report.manifestations;
    const skip = hidden.get(report);
    for (let i = 0; i < ms.length; i++) {
      const id = (ms[i] as Manifestation).dataset_id;
      if (seen.has(id)) continue;
      // Hidden: not listed from its backend volume either (as DatasetStateList, whose volumes skip any shown id).
      if (skip?.has(id) === true) {
        hiddenIds.add(id);
        continue;
      }
      if (shown.get(id) !== report) continue;
      seen.add(id);
      parts.push(spliceKeptAside(own[i] as string, kept.get(id)));
    }
  }
  for (const { report } of alive) {
    for (const v of report.volumes ?? []) {
      if (seen.has(v.dataset_id) || hiddenIds.has(v.dataset_id)) continue;
      seen.add(v.dataset_id);
      parts.push(
        spliceKeptAside(JSON.stringify({ dataset_id: v.dataset_id, maximum_size: v.size }), kept.get(v.dataset_id)),
      );
    }
  }
  return `[${parts.join(',')}]`;
}

/**
 * datasetStateJson's list narrowed to one dataset, found without building the list: `[entry]` as the whole list
 * shows it, or `[]` (GET /v1/state/datasets?dataset_id=, the read a waiter confirms a "mounted" by). The same rules
 * for one id: of the alive reports with a manifestation of it not hidden there, the one shownRather picks (its first
 * one in that report);
 * else, when no alive report has a manifestation of it (hidden ones count: a hidden "mounted" is not shown from its
 * backend volume either), the first backend volume of it. A scan of the alive reports' ids, no serialisation but of
 * the one entry: at 100,000 datasets the whole list is ~18 MB.
 */
export function datasetStateOfJson(
  alive: readonly ReportedNode[],
  id: string,
  hidden: ReadonlyMap<NodeReport, ReadonlySet<string>> = new Map(),
  primaryOf: PrimaryOf = NO_PRIMARY,
): string {
  let held = false;
  const kept = (): string | undefined => keptAsideJson(keptAsideIndex(alive, id)).get(id);
  const shown = shownOf(
    alive.map((n) => n.report),
    id,
    hidden,
    primaryOf,
  );
  if (shown !== undefined) return `[${spliceKeptAside(shownJson(shown, id), kept())}]`;
  for (const { report } of alive) if (report.manifestations.some((x) => x.dataset_id === id)) held = true;
  if (held) return '[]';
  for (const { report } of alive) {
    const v = report.volumes?.find((x) => x.dataset_id === id);
    if (v !== undefined)
      return `[${spliceKeptAside(JSON.stringify({ dataset_id: v.dataset_id, maximum_size: v.size }), kept())}]`;
  }
  return '[]';
}

/** A report's DatasetState bytes, made once per report (an immutable value): see DatasetStateList. */
class ReportStateBytes {
  /** The manifestations' DatasetState JSON joined with commas; undefined when the report names a dataset twice. */
  readonly joined: Buffer | undefined;
  /** Each backend volume's DatasetState JSON (a volume no manifestation shows). */
  readonly volumes: readonly string[];
  /**
   * Each manifestation's DatasetState JSON, in the report's order: kept only for a report taken one by one. The
   * strings are built by concatenation (ropes of several heap objects each): 100,000 of them kept for every report
   * made each later GC mark them, and a list build afterwards cost ~2x the CPU.
   */
  private made: readonly string[] | undefined;

  constructor(private readonly report: NodeReport) {
    const fragments = this.make();
    const ids = new Set(report.manifestations.map((m) => m.dataset_id));
    this.joined = ids.size === fragments.length && fragments.length > 0 ? Buffer.from(fragments.join(',')) : undefined;
    if (this.joined === undefined) this.made = fragments;
    this.volumes = (report.volumes ?? []).map((v) =>
      JSON.stringify({ dataset_id: v.dataset_id, maximum_size: v.size }),
    );
  }

  /** For a report sharing a dataset with another (rare): its manifestations are taken one by one. */
  fragments(): readonly string[] {
    this.made ??= this.make();
    return this.made;
  }

  private make(): string[] {
    const node = JSON.stringify(this.report.uuid);
    return this.report.manifestations.map((m) => manifestationStateJson(node, m));
  }
}

/**
 * JSON.stringify(manifestationState(node, m)), written out (`node` is the uuid's JSON): the first
 * read of the state list after a start makes 100,000 of these, and building each object to
 * serialise it cost ~3x as much (clusterState.test checks the bytes against JSON.stringify).
 */
function manifestationStateJson(node: string, m: Manifestation): string {
  let json = `{"dataset_id":${JSON.stringify(m.dataset_id)},"primary":${node}`;
  if (m.size !== undefined) json += `,"maximum_size":${JSON.stringify(m.size)}`;
  if (m.status === 'mounted') {
    if (m.path !== undefined) json += `,"path":${JSON.stringify(m.path)}`;
    if (m.used_bytes !== undefined) json += `,"used_bytes":${JSON.stringify(m.used_bytes)}`;
  }
  if (m.grow_pending !== undefined) json += `,"grow_pending":${JSON.stringify(m.grow_pending)}`;
  return `${json}}`;
}

/** Of `reports` with a manifestation of `id` not hidden there, the one shown (shownRather); undefined: none. */
function shownOf(
  reports: Iterable<NodeReport>,
  id: string,
  hidden: ReadonlyMap<NodeReport, ReadonlySet<string>>,
  primaryOf: PrimaryOf,
): NodeReport | undefined {
  let shown: NodeReport | undefined;
  let primary: string | undefined;
  for (const report of reports) {
    if (hidden.get(report)?.has(id) === true || !report.manifestations.some((m) => m.dataset_id === id)) continue;
    if (shown === undefined) {
      shown = report;
      primary = primaryOf(id);
    } else if (shownRather(report.uuid, shown.uuid, primary)) shown = report;
  }
  return shown;
}

/** The state entry's JSON of a report's (first) manifestation of `id`. */
function shownJson(report: NodeReport, id: string): string {
  const m = report.manifestations.find((x) => x.dataset_id === id) as Manifestation;
  return manifestationStateJson(JSON.stringify(report.uuid), m);
}

/** The holders in the order of `nodes` (ties between reports of one node: the first decides), lazily; one holder as it is. */
function* inAliveOrder(nodes: readonly ReportedNode[], held: NodeReport | NodeReport[]): Iterable<NodeReport> {
  if (!Array.isArray(held)) {
    yield held;
    return;
  }
  const among = new Set(held);
  for (const { report } of nodes) if (among.has(report)) yield report;
}

/**
 * datasetStateJson's bytes, brought up to date per change (issue 23): each report's bytes are
 * made once (reports are immutable values), and an index of which alive reports show each
 * dataset is kept from the reports that came and went since the last call. A report sharing no
 * dataset with another (the usual case) is copied whole; only the datasets two reports show are
 * decided one by one (the first in order wins). So a new state generation at 100,000 datasets
 * costs a look at each node and a copy of the blocks that changed (BlockJoiner), not a join of
 * 100,000 strings (~220 ms on a loaded host), a Set of 100,000 ids (~90 ms) nor a copy of the
 * whole 18 MB (12-80 ms).
 */
export class DatasetStateList {
  private readonly bytes = new WeakMap<NodeReport, ReportStateBytes>();
  private alive = new Set<NodeReport>();
  /**
   * Dataset id → the alive report whose manifestations show it, or the reports when more than one do (a report twice
   * if it lists it twice): no array per dataset for the usual one.
   */
  private readonly holders = new Map<string, NodeReport | NodeReport[]>();
  /** The ids with more than one entry in holders. */
  private readonly shared = new Set<string>();
  /**
   * Dataset id → how many backend volumes of it the alive reports list, and the last report learnt listing one while
   * it still does (one-dataset reads, entryOf: an id no report lists is answered at once, one listed once from that
   * report). A count, not the reports: on a shared backend (EBS, Cinder) every node lists every volume, and a list
   * of N reports per volume cost O(N) per report that came or went (review RC: 1,000 nodes x 1,000 volumes, a new
   * volume listed by all: 1.4 s for the next one-dataset read, the scan before ~1 ms).
   */
  private readonly volumeCounts = new Map<string, { n: number; last: NodeReport | undefined }>();
  /**
   * Dataset id → how many alive reports keep a copy of it aside (kept_aside: rare): a list with none is built as
   * before, a read of a dataset none keeps costs no scan for them.
   */
  private readonly keptCounts = new Map<string, number>();
  /** The reports list `alive` was last brought up to date from (entryOf skips the walk for the same list). */
  private syncedWith: readonly ReportedNode[] | undefined;
  /** The list sharedIds was last asked about, its caller vouching it unchanged since (body skips the walk). */
  private unchanged: readonly ReportedNode[] | undefined;
  /** The body's blocks (~256 KiB of reports each): a new report copies its block, not the list. */
  private readonly blocks = new BlockJoiner();
  /** Bumped by every change of the indexes (sync, replaceInPlace, a sliced sync): a sliced walk sees another's. */
  private changes = 0;

  /** Brings `alive` and the indexes up to date with `nodes` (the reports that came and went since). */
  private sync(nodes: readonly ReportedNode[]): void {
    if (this.replaceInPlace(nodes)) return;
    this.changes++;
    const next = new Set<NodeReport>();
    for (const { report } of nodes) next.add(report);
    for (const report of this.alive) if (!next.has(report)) this.forget(report);
    for (const report of next) if (!this.alive.has(report)) this.learn(report);
    this.alive = next;
    this.syncedWith = nodes;
  }

  /**
   * The usual next generation: the same list with a few reports replaced in place (a node reported). Compares
   * position by position (~10,000 pointer comparisons, not a Set of 10,000 built per generation); false, having
   * changed nothing, for anything else (other lengths, reports moved or repeated, many replaced). The previous list
   * must not have been changed since it was passed (Views makes a new one per generation and keeps it as it is).
   */
  private replaceInPlace(nodes: readonly ReportedNode[]): boolean {
    const prev = this.syncedWith;
    // alive holding as many reports as prev has entries: prev's reports were all distinct. The same list again is
    // walked whole (body()'s callers may have changed it since).
    if (prev === undefined || prev === nodes || prev.length !== nodes.length || this.alive.size !== prev.length)
      return false;
    const gone: NodeReport[] = [];
    const come = new Set<NodeReport>();
    for (let i = 0; i < nodes.length; i++) {
      const before = (prev[i] as ReportedNode).report;
      const after = (nodes[i] as ReportedNode).report;
      if (before === after) continue;
      if (this.alive.has(after) || come.has(after) || gone.length >= 64) return false;
      gone.push(before);
      come.add(after);
    }
    for (const report of gone) {
      this.forget(report);
      this.alive.delete(report);
    }
    this.changes++;
    for (const report of come) {
      this.learn(report);
      this.alive.add(report);
    }
    this.syncedWith = nodes;
    return true;
  }

  /**
   * sync across event-loop turns (issue 23: the first read after a start learns 10,000 reports, ~15% of its 0.8 s).
   * Between two slices the indexes describe `alive` exactly (each report learnt or forgotten with its entry), so a
   * sync by another reader meanwhile is correct; this one then starts over from where that one left them. Returns in
   * a turn where the indexes are those of `nodes`. `walk`: look at every report even if synced with this very list
   * (a caller who may have changed it since, as body()'s).
   */
  async syncSliced(nodes: readonly ReportedNode[], slice: Slice, walk = false): Promise<void> {
    for (let restarts = 0; ; restarts++) {
      if (this.syncedWith === nodes && !walk) return;
      if (!walk && this.replaceInPlace(nodes)) return;
      // Moved away again and again by other reads between slices: the rest in this turn (bounded).
      if (restarts > MAX_RESTARTS) return this.sync(nodes);
      walk = false;
      const next = new Set<NodeReport>();
      for (const { report } of nodes) next.add(report);
      const gone: NodeReport[] = [];
      for (const report of this.alive) if (!next.has(report)) gone.push(report);
      const come: NodeReport[] = [];
      for (const report of next) if (!this.alive.has(report)) come.push(report);
      this.syncedWith = undefined;
      const mine = ++this.changes;
      let i = 0;
      for (; i < gone.length + come.length; i++) {
        const report = (i < gone.length ? gone[i] : come[i - gone.length]) as NodeReport;
        if (i < gone.length) {
          this.forget(report);
          this.alive.delete(report);
        } else {
          this.learn(report);
          this.alive.add(report);
        }
        if (!slice.due()) continue;
        await slice.next();
        if (this.changes !== mine) break;
      }
      if (i < gone.length + come.length) continue;
      this.syncedWith = nodes;
      return;
    }
  }

  /** Whether the indexes are those of `nodes` (a sync of it now costs no walk). */
  syncedTo(nodes: readonly ReportedNode[]): boolean {
    return this.syncedWith === nodes;
  }

  /**
   * datasetStateOfJson(nodes, id, hidden), from the indexes: O(the reports showing the dataset) per read, not a scan
   * of every alive report's manifestations and volumes (1.2-2.3 ms at 100,000 datasets, on every poll of a waiter;
   * issue 23). `nodes` is the alive list the caller keeps per state generation, never changed once passed: the same
   * list again costs no walk of it.
   */
  entryOf(
    nodes: readonly ReportedNode[],
    id: string,
    hidden: ReadonlyMap<NodeReport, ReadonlySet<string>> = new Map(),
    primaryOf: PrimaryOf = NO_PRIMARY,
  ): string {
    if (this.syncedWith !== nodes) this.sync(nodes);
    const kept = (): string | undefined =>
      this.keptCounts.has(id) ? keptAsideJson(keptAsideIndex(nodes, id)).get(id) : undefined;
    const held = this.holders.get(id);
    if (held !== undefined) {
      const shown = shownOf(inAliveOrder(nodes, held), id, hidden, primaryOf);
      return shown === undefined ? '[]' : `[${spliceKeptAside(shownJson(shown, id), kept())}]`;
    }
    const listed = this.volumeCounts.get(id);
    if (listed === undefined) return '[]';
    // Listed once: by `last`. Else the first alive report listing it (on a shared backend the first one), as the scan.
    for (const { report } of listed.n === 1 && listed.last !== undefined ? [{ report: listed.last }] : nodes) {
      const v = report.volumes?.find((x) => x.dataset_id === id);
      if (v !== undefined)
        return `[${spliceKeptAside(JSON.stringify({ dataset_id: v.dataset_id, maximum_size: v.size }), kept())}]`;
    }
    return '[]';
  }

  /**
   * The datasets more than one alive report of `nodes` shows (rare): the list shows the configured primary's copy of
   * each (shownRather), so their primaries are part of what the list depends on (Views' memo key). `nodes`, as for
   * entryOf, is never changed once passed: a body() of the same list next takes the indexes as they are (no second
   * walk of 10,000 reports per generation).
   */
  sharedIds(nodes: readonly ReportedNode[]): ReadonlySet<string> {
    if (this.syncedWith !== nodes) this.sync(nodes);
    this.unchanged = nodes;
    return this.shared;
  }

  /**
   * `hidden`: manifestations not to show, by report (ControlState.staleMounts: a "mounted" from before the
   * dataset was moved back to its node); such a report's manifestations are taken one by one.
   */
  body(
    nodes: readonly ReportedNode[],
    hidden: ReadonlyMap<NodeReport, ReadonlySet<string>> = new Map(),
    primaryOf: PrimaryOf = NO_PRIMARY,
  ): ListBody {
    if (this.unchanged !== nodes || this.syncedWith !== nodes) this.sync(nodes);
    this.unchanged = undefined;
    return drive(this.build(nodes, hidden, primaryOf));
  }

  /**
   * body() built across event-loop turns (issue 23), byte for byte the same: the same steps, and before each slice
   * the indexes are brought back to `nodes` should another read have moved them meanwhile (what a step reads of them
   * is a function of the alive reports, so the body is exactly that of `nodes`, `hidden` and `primaryOf`). `nodes`
   * must not change until it returns (Views passes its per-generation list, never changed once made).
   */
  async bodySliced(
    nodes: readonly ReportedNode[],
    hidden: ReadonlyMap<NodeReport, ReadonlySet<string>> = new Map(),
    primaryOf: PrimaryOf = NO_PRIMARY,
    slice: Slice = new Slice(),
  ): Promise<ListBody> {
    await this.syncSliced(nodes, slice, this.unchanged !== nodes);
    this.unchanged = undefined;
    const steps = this.build(nodes, hidden, primaryOf);
    for (;;) {
      const step = steps.next();
      if (step.done === true) return step.value;
      if (!slice.due()) continue;
      await slice.next();
      if (this.syncedWith !== nodes) await this.syncSliced(nodes, slice, false);
    }
  }

  /** body()'s work in steps (one per report): the indexes must be those of `nodes` whenever a step runs. */
  private *build(
    nodes: readonly ReportedNode[],
    hidden: ReadonlyMap<NodeReport, ReadonlySet<string>>,
    primaryOf: PrimaryOf,
  ): Generator<void, ListBody, void> {
    // The reports showing a dataset another shows too: their manifestations are taken one by one.
    const clashing = new Set<NodeReport>(hidden.keys());
    // The report each shared dataset is shown from (none: hidden on all).
    const shownFrom = new Map<string, NodeReport | undefined>();
    for (const id of this.shared) {
      const held = this.holders.get(id);
      if (!Array.isArray(held)) continue;
      for (const r of held) clashing.add(r);
      shownFrom.set(id, shownOf(inAliveOrder(nodes, held), id, hidden, primaryOf));
    }
    // Datasets a node kept a copy of aside: their holders' entries are taken one by one, to carry kept_aside.
    const kept = this.keptCounts.size === 0 ? new Map<string, string>() : keptAsideJson(keptAsideIndex(nodes));
    for (const id of kept.keys()) {
      const held = this.holders.get(id);
      if (held === undefined) continue;
      for (const r of Array.isArray(held) ? held : [held]) clashing.add(r);
    }
    const taken = new Set<string>();
    const chunks: Buffer[] = [];
    const loose: string[] = [];
    const flush = (): void => {
      if (loose.length > 0) chunks.push(Buffer.from(loose.join(',')));
      loose.length = 0;
    };
    const done = new Set<NodeReport>();
    for (const { report } of nodes) {
      yield;
      // The same report twice in the list shows its datasets once, as the first.
      if (done.has(report)) continue;
      done.add(report);
      const own = this.bytesOf(report);
      if (!clashing.has(report) && own.joined !== undefined) {
        flush();
        chunks.push(own.joined);
        continue;
      }
      const ms = report.manifestations;
      const fragments = own.fragments();
      const skip = hidden.get(report);
      for (let i = 0; i < ms.length; i++) {
        const id = (ms[i] as Manifestation).dataset_id;
        if (skip?.has(id) === true) continue;
        if (this.shared.has(id)) {
          if (taken.has(id) || shownFrom.get(id) !== report) continue;
          taken.add(id);
        }
        loose.push(spliceKeptAside(fragments[i] as string, kept.get(id)));
      }
    }
    // Backend volumes no alive node shows as a manifestation, the first report of each.
    for (const { report } of nodes) {
      const vs = report.volumes ?? [];
      if (vs.length === 0) continue;
      yield;
      const own = this.bytesOf(report);
      for (let i = 0; i < vs.length; i++) {
        const id = (vs[i] as NonNullable<NodeReport['volumes']>[number]).dataset_id;
        if (this.holders.has(id) || taken.has(id)) continue;
        taken.add(id);
        loose.push(spliceKeptAside(own.volumes[i] as string, kept.get(id)));
      }
    }
    flush();
    return yield* this.blocks.steps(chunks);
  }

  private bytesOf(report: NodeReport): ReportStateBytes {
    let own = this.bytes.get(report);
    if (own === undefined) {
      own = new ReportStateBytes(report);
      this.bytes.set(report, own);
    }
    return own;
  }

  private learn(report: NodeReport): void {
    for (const k of report.kept_aside ?? [])
      this.keptCounts.set(k.dataset_id, (this.keptCounts.get(k.dataset_id) ?? 0) + 1);
    for (const v of report.volumes ?? []) {
      const listed = this.volumeCounts.get(v.dataset_id);
      if (listed === undefined) this.volumeCounts.set(v.dataset_id, { n: 1, last: report });
      else {
        listed.n += 1;
        listed.last = report;
      }
    }
    for (const m of report.manifestations) {
      const held = this.holders.get(m.dataset_id);
      if (held === undefined) this.holders.set(m.dataset_id, report);
      else {
        if (Array.isArray(held)) held.push(report);
        else this.holders.set(m.dataset_id, [held, report]);
        this.shared.add(m.dataset_id);
      }
    }
  }

  private forget(report: NodeReport): void {
    for (const k of report.kept_aside ?? []) {
      const n = (this.keptCounts.get(k.dataset_id) ?? 0) - 1;
      if (n <= 0) this.keptCounts.delete(k.dataset_id);
      else this.keptCounts.set(k.dataset_id, n);
    }
    for (const v of report.volumes ?? []) {
      const listed = this.volumeCounts.get(v.dataset_id);
      if (listed === undefined) continue;
      listed.n -= 1;
      if (listed.n <= 0) this.volumeCounts.delete(v.dataset_id);
      else if (listed.last === report) listed.last = undefined;
    }
    for (const m of report.manifestations) {
      const held = this.holders.get(m.dataset_id);
      if (held === report) this.holders.delete(m.dataset_id);
      if (!Array.isArray(held)) continue;
      const at = held.indexOf(report);
      if (at >= 0) held.splice(at, 1);
      if (held.length === 0) this.holders.delete(m.dataset_id);
      if (held.length === 1) this.holders.set(m.dataset_id, held[0] as NodeReport);
      if (held.length <= 1) this.shared.delete(m.dataset_id);
    }
  }
}

/**
 * The snapshots the backends hold, from alive nodes' reports: one entry per snapshot
 * (on a shared backend every node reports all of them; the first report wins).
 */
export function deriveSnapshotState(alive: readonly ReportedNode[]): SnapshotState[] {
  const byId = new Map<string, SnapshotState>();
  for (const { report } of alive) {
    for (const s of report.snapshots ?? []) {
      if (byId.has(s.snapshot_id)) continue;
      byId.set(s.snapshot_id, {
        snapshot_id: s.snapshot_id,
        dataset_id: s.dataset_id,
        size: s.size,
        created_at: s.created_at,
        status: s.status,
      });
    }
  }
  return [...byId.values()];
}

/**
 * The snapshot ids alive nodes report, or undefined when no alive node reports
 * snapshots at all (none has a backend with snapshots, or none is alive): then nothing
 * can tell that a deleted snapshot is gone from its backend.
 */
export function reportedSnapshotIds(alive: readonly ReportedNode[]): Set<string> | undefined {
  let ids: Set<string> | undefined;
  for (const { report } of alive) {
    if (report.snapshots === undefined) continue;
    ids ??= new Set();
    for (const s of report.snapshots) ids.add(s.snapshot_id);
  }
  return ids;
}

/** GET /v1/state/nodes: Flocker's uuid and host, with the storage zone, free capacity and agent release a node reports. */
export function nodeSummaries(alive: readonly ReportedNode[]): NodeStateSummary[] {
  return alive.map(({ report }) => ({
    uuid: report.uuid,
    host: report.host,
    ...(report.zone !== undefined ? { zone: report.zone } : {}),
    ...(report.available_bytes !== undefined ? { available_bytes: report.available_bytes } : {}),
    ...(report.version !== undefined ? { version: report.version } : {}),
  }));
}

export function nodeStates(nodes: Iterable<ReportedNode>, now: number, nodeTimeoutMs: number): NodeState[] {
  const out: NodeState[] = [];
  for (const node of nodes) {
    const alive = isAlive(node, now, nodeTimeoutMs);
    out.push({
      ...node.report,
      alive,
      last_seen: new Date(node.lastSeen).toISOString(),
      // The moment this replica stopped hearing from the node for the timeout, on the wall clock.
      ...(alive ? {} : { dead_since: new Date(liveSeen(node) + nodeTimeoutMs).toISOString() }),
    });
  }
  return out;
}

export function nodeByEra(nodes: Iterable<ReportedNode>, era: string): string | undefined {
  let found: ReportedNode | undefined;
  for (const node of nodes) {
    // Eras are per boot; should two nodes claim one, the latest report is the truth.
    if (node.report.era === era && (found === undefined || node.lastSeen > found.lastSeen)) found = node;
  }
  return found?.report.uuid;
}
