/**
 * A control service in memory that answers node views by deltas (issue 23), as the real one
 * does (Views.snapshotFor / deltaFor): a node's view holds the datasets whose primary it is or
 * that it holds, their leases, its own state and the states of the nodes holding a manifestation
 * of those datasets, and every configured snapshot; the datasets leased to it; and the datasets it takes care of (orphans:
 * deleted, primary dead, held by no live node; and datasets whose deleted snapshots no live node seeing them holds — one live
 * node reporting a volume or such a snapshot of each, @flocker/api/caretaker) with their primaries' states. A node's poll waits while its view is
 * unchanged; a delta carries what changed since `since`, or the whole view when `since` is not
 * known (another process's generation: see restart()). Agents' reports become their node
 * states, as on the real service. Test support, not exported by the package.
 */
import type { ClusterAnswer, ClusterDelta, ClusterSnapshot, NodeReport, NodeState } from '@flocker/api';
import { caretakerOf, type OrphanFacts, witnessOf } from '@flocker/api/caretaker';
import { systemClock, type Clock } from '../clock';
import type { ControlChannel } from '../DatasetAgent';

const LAST_SEEN = '2026-01-01T00:00:00.000Z';

export class ViewControl implements ControlChannel {
  /** Generations are `<instance>.<n>`: a restart starts a new instance and forgets every older view. */
  private instance = 1;
  private n = 1;
  /** The configuration's version: the tag (the whole cluster's, as on the real service) names it. */
  private version = 1;
  private datasets: ClusterSnapshot['datasets'] = [];
  private leases: ClusterSnapshot['leases'] = [];
  private snapshots: ClusterSnapshot['snapshots'];
  /** Node states set by the test (other nodes). */
  private others: NodeState[] = [];
  /** Node states from the agents' reports. */
  private readonly reported = new Map<string, NodeState>();
  /** The whole snapshot at each generation of this instance. */
  private history = new Map<string, ClusterSnapshot>();
  private waiters: Array<() => void> = [];
  readonly reports: NodeReport[] = [];
  /** Every delta request: since and wait. */
  readonly deltaRequests: Array<{ since: string | undefined; timeoutMs: number }> = [];
  /**
   * Orphans (deleted, primary dead, held by no live node) in their caretaker's view, and the witness
   * of a dataset no live node holds in its views, as the control service does (orphanViews.ts); off:
   * a service from before them.
   */
  caretakers = true;
  /** Answers given, by kind, and their JSON bytes. */
  readonly answered = { whole: 0, view: 0, delta: 0, wholeBytes: 0, viewBytes: 0, deltaBytes: 0 };

  /**
   * `holdMs`: the longest a poll is held (the agent's own wait is longer in tests): a poll whose
   * view does not change is answered after it, carrying the current generation and tag.
   */
  constructor(
    private readonly clock: Clock = systemClock,
    private readonly holdMs = 200,
  ) {
    this.history.set(this.generation, this.snapshot());
  }

  get tag(): string {
    return `t${this.version}`;
  }

  get generation(): string {
    return `${this.instance}.${this.n}`;
  }

  setDatasets(d: ClusterSnapshot['datasets']): void {
    this.datasets = d;
    this.version++;
    this.bump();
  }
  setLeases(l: ClusterSnapshot['leases']): void {
    this.leases = l;
    this.version++;
    this.bump();
  }
  setNodes(n: NodeState[]): void {
    this.others = n;
    this.bump();
  }
  setSnapshots(s: ClusterSnapshot['snapshots']): void {
    this.snapshots = s;
    this.version++;
    this.bump();
  }

  /** A restart of the service: new generations; a `since` from before gets a whole view. */
  restart(): void {
    this.instance++;
    this.n = 1;
    this.history = new Map();
    this.bump();
  }

  last(): NodeReport | undefined {
    return this.reports[this.reports.length - 1];
  }

  async reportNodeState(report: NodeReport): Promise<unknown> {
    this.reports.push(report);
    this.reported.set(report.uuid, { ...report, alive: true, last_seen: LAST_SEEN });
    this.bump();
    return { generation: this.generation, configuration_tag: this.tag };
  }

  async waitForCluster(since?: string, timeoutMs = 1000): Promise<ClusterSnapshot> {
    if (since === this.generation) await this.changeOrTimeout(() => since !== this.generation, timeoutMs);
    const s = this.snapshot();
    this.answered.whole++;
    this.answered.wholeBytes += JSON.stringify(s).length;
    return s;
  }

  async waitForClusterDelta(since: string | undefined, timeoutMs: number, node: string): Promise<ClusterAnswer> {
    this.deltaRequests.push({ since, timeoutMs });
    const asked = since === undefined ? undefined : this.history.get(since);
    if (asked !== undefined) {
      const was = viewKey(viewOf(asked, node, this.caretakers));
      await this.changeOrTimeout(
        () =>
          since === undefined ||
          !this.history.has(since) ||
          viewKey(viewOf(this.snapshot(), node, this.caretakers)) !== was,
        timeoutMs,
      );
    }
    // Looked up again: a restart while waiting forgot it.
    const before = since === undefined ? undefined : this.history.get(since);
    const now = viewOf(this.snapshot(), node, this.caretakers);
    if (before === undefined || since === undefined) {
      this.answered.view++;
      this.answered.viewBytes += JSON.stringify(now).length;
      return now;
    }
    const delta = deltaOf(viewOf(before, node, this.caretakers), now, since);
    this.answered.delta++;
    this.answered.deltaBytes += JSON.stringify(delta).length;
    return delta;
  }

  private changeOrTimeout(changed: () => boolean, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const t = this.clock.setTimer(
        () => {
          this.waiters = this.waiters.filter((w) => w !== check);
          resolve();
        },
        Math.min(timeoutMs, this.holdMs),
      );
      const check = (): void => {
        if (!changed()) return;
        t.cancel();
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  private bump(): void {
    this.n++;
    this.history.set(this.generation, this.snapshot());
    for (const w of [...this.waiters]) w();
  }

  snapshot(): ClusterSnapshot {
    return {
      generation: this.generation,
      configuration_tag: this.tag,
      datasets: this.datasets,
      ...(this.snapshots !== undefined ? { snapshots: this.snapshots } : {}),
      leases: this.leases,
      nodes: [...this.others.filter((n) => !this.reported.has(n.uuid)), ...this.reported.values()],
    };
  }
}

/** A view's content (not its generation or tag, which every change anywhere moves). */
function viewKey(v: ClusterSnapshot): string {
  return JSON.stringify({ ...v, generation: '', configuration_tag: '' });
}

/** The control service's node view (Views.snapshotFor) of a whole snapshot. */
export function viewOf(s: ClusterSnapshot, node: string, caretakers = true): ClusterSnapshot {
  const own = s.nodes.find((n) => n.uuid === node);
  const held = new Set([
    ...(own?.manifestations ?? []).map((m) => m.dataset_id),
    ...(own?.volumes ?? []).filter((v) => v.attached_to === own?.instance_id).map((v) => v.dataset_id),
  ]);
  const cared = caretakers ? caredBy(s, node) : new Set<string>();
  const leased = new Set(s.leases.filter((l) => l.node_uuid === node).map((l) => l.dataset_id));
  const datasets = s.datasets.filter(
    (d) => d.primary === node || held.has(d.dataset_id) || cared.has(d.dataset_id) || leased.has(d.dataset_id),
  );
  const ids = new Set(datasets.map((d) => d.dataset_id));
  const primaries = new Set(datasets.filter((d) => cared.has(d.dataset_id)).map((d) => d.primary));
  const witnesses = new Set(caretakers ? datasets.flatMap((d) => witnessFor(s, d) ?? []) : []);
  const nodes = s.nodes.filter(
    (n) =>
      n.uuid === node ||
      primaries.has(n.uuid) ||
      witnesses.has(n.uuid) ||
      n.manifestations.some((m) => ids.has(m.dataset_id)),
  );
  return {
    generation: s.generation,
    configuration_tag: s.configuration_tag,
    datasets,
    ...(s.snapshots !== undefined ? { snapshots: s.snapshots } : {}),
    leases: s.leases.filter((l) => ids.has(l.dataset_id)),
    nodes,
  };
}

/** What decides a dataset's caretaker and witness (the control service's CaretakerIndex keeps the same facts). */
function factsOf(s: ClusterSnapshot, d: ClusterSnapshot['datasets'][number]): OrphanFacts {
  const id = d.dataset_id;
  const holds = (n: NodeState): boolean =>
    n.manifestations.some((m) => m.dataset_id === id) ||
    (n.volumes ?? []).some((v) => v.dataset_id === id && v.attached_to === n.instance_id);
  return {
    deleted: d.deleted,
    primary: d.primary,
    holders: s.nodes.filter(holds).map((n) => n.uuid),
    reporters: s.nodes.filter((n) => (n.volumes ?? []).some((v) => v.dataset_id === id)).map((n) => n.uuid),
    deletedSnapshots: (s.snapshots ?? [])
      .filter((x) => x.deleted === true && x.dataset_id === id)
      .map((x) =>
        s.nodes.filter((n) => (n.snapshots ?? []).some((y) => y.snapshot_id === x.snapshot_id)).map((n) => n.uuid),
      ),
  };
}

/**
 * The datasets node takes care of — orphans, and datasets with deleted snapshots no live node seeing them
 * holds — by the control service's own rule (@flocker/api/caretaker, as orphanViews.ts).
 */
function caredBy(s: ClusterSnapshot, node: string): Set<string> {
  const alive = new Set(s.nodes.filter((n) => n.alive).map((n) => n.uuid));
  const isAlive = (n: string): boolean => alive.has(n);
  return new Set(
    s.datasets.filter((d) => caretakerOf(d.dataset_id, factsOf(s, d), isAlive) === node).map((d) => d.dataset_id),
  );
}

/** The witness of a dataset no live node holds (witnessOf): a live node reporting a volume of it. */
function witnessFor(s: ClusterSnapshot, d: ClusterSnapshot['datasets'][number]): string | undefined {
  const alive = new Set(s.nodes.filter((n) => n.alive).map((n) => n.uuid));
  return witnessOf(d.dataset_id, factsOf(s, d), (n) => alive.has(n));
}

/** What changed from view `a` (at `since`) to view `b`, as the control service's delta. */
export function deltaOf(a: ClusterSnapshot, b: ClusterSnapshot, since: string): ClusterDelta {
  const changed = <T>(x: readonly T[], y: readonly T[], key: (v: T) => string): { set: T[]; removed: string[] } => {
    const before = new Map(x.map((v) => [key(v), JSON.stringify(v)]));
    const after = new Set(y.map(key));
    return {
      set: y.filter((v) => before.get(key(v)) !== JSON.stringify(v)),
      removed: [...before.keys()].filter((k) => !after.has(k)),
    };
  };
  const datasets = changed(a.datasets, b.datasets, (d) => d.dataset_id);
  const leases = changed(a.leases, b.leases, (l) => l.dataset_id);
  const nodes = changed(a.nodes, b.nodes, (n) => n.uuid);
  return {
    delta: true,
    since,
    generation: b.generation,
    configuration_tag: b.configuration_tag,
    datasets: datasets.set,
    removed_datasets: datasets.removed,
    ...(JSON.stringify(a.snapshots ?? []) !== JSON.stringify(b.snapshots ?? [])
      ? { snapshots: b.snapshots ?? [] }
      : {}),
    leases: leases.set,
    removed_leases: leases.removed,
    nodes: nodes.set,
    removed_nodes: nodes.removed,
  };
}
