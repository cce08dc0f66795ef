/**
 * Caretakers of orphaned datasets (issue 23): a deleted dataset whose primary is not alive and
 * that no live node holds is in no live node's view (Views.snapshotFor), yet its volume is
 * still in some pool and must be destroyed (whole snapshots let any live node sharing the pool
 * do it: calculateChanges' "owner" when the primary is gone). Such a dataset is put in the view
 * of ONE live node: among the live nodes reporting a volume of it (they share its pool and can
 * destroy it), the highest rendezvous hash of (dataset, node) — so it moves only when that node
 * dies or stops reporting the volume, and each node's view gains only the orphans it is given
 * (a view stays small however big the cluster). Once the volume is gone no node reports it and
 * the dataset leaves every view again.
 *
 * Its deleted snapshots too: a snapshot outlives its dataset (a clone may still be made of it), but
 * one deleted in the configuration must leave the backend, and the agent destroys a snapshot only
 * while deciding about its dataset (snapshotChanges.ts), i.e. while the dataset is in its view. So
 * a live node reporting a deleted snapshot of the dataset in its backend listing (report.snapshots)
 * counts as a reporter as well: the caretaker stays (the same node: a shared pool's nodes report
 * volumes and snapshots alike) until the volume AND those snapshots are gone. A snapshot not
 * deleted keeps no caretaker: it stays, as with a live primary.
 *
 * And a deleted snapshot that live nodes report but no live node whose view has its dataset does —
 * its (live) dataset's primary is dead, or the primary's and holders' backends are another pool —
 * is stranded: the dataset gets a caretaker among the live nodes reporting such a snapshot, until
 * they stop (the rule: @flocker/api/caretaker, shared with the agents' tests).
 *
 * The same index keeps each dataset's witness (witnessOf): a dataset not deleted that no live node
 * holds shows its views one live node reporting a volume of it, so its primary, about to create a
 * volume, sees one in another pool (the agent's VOLUME_ELSEWHERE refusal), as whole snapshots did.
 *
 * Kept incrementally: each change recomputes only the datasets it can affect (a changed dataset;
 * for a node's report or liveness change, the datasets it reports volumes of or holds, the deleted
 * datasets whose primary it is — on a liveness change also those with deleted snapshots — and those it
 * cares for). Returns which assignments moved, so the
 * caller (NodeViewIndex) stamps the old and new caretakers' views.
 */
import type { NodeReport } from '@flocker/api';
import { caretakerOf, fnv1a, witnessOf } from '@flocker/api/caretaker';

// The pure rule lives in @flocker/api (the agents' tests mirror the service with it); re-exported here.
export { caretakerAmong, caretakerOf, fnv1a, type OrphanFacts, witnessOf } from '@flocker/api/caretaker';

/** Whether x comes before y in the dataset's rendezvous order (caretakerAmong's). */
function beats(datasetId: string, x: string, y: string): boolean {
  const sx = fnv1a(`${datasetId}/${x}`);
  const sy = fnv1a(`${datasetId}/${y}`);
  return sx > sy || (sx === sy && x < y);
}

/** A caretaker (or witness) assignment that moved. */
export interface CaretakerMove {
  readonly datasetId: string;
  readonly from: string | undefined;
  readonly to: string | undefined;
  /** A witness moved (the views of the dataset show another node), not a caretaker. */
  readonly witness?: true;
}

/** Where the index reads the facts it does not keep itself. */
export interface CaretakerSources {
  /** The dataset's configuration (deleted, primary), undefined when it is not configured. */
  readonly dataset: (id: string) => { readonly deleted: boolean; readonly primary: string } | undefined;
  /** Nodes holding the dataset (manifestation or attached to their own instance). */
  readonly holders: (id: string) => Iterable<string>;
  /** Whether the node is alive now (as of its last report or liveness change). */
  readonly alive: (node: string) => boolean;
}

/** A configured snapshot, as far as the index reads it. */
export interface SnapshotFacts {
  readonly dataset_id: string;
  readonly deleted?: true;
}

export class CaretakerIndex {
  /**
   * Node → datasets it reports volumes of (its backend listing). No reverse index: in a shared pool
   * every node reports every volume, and only the rare orphan needs its reporters (reportersOf scans).
   */
  private readonly reportedBy = new Map<string, ReadonlySet<string>>();
  /** Node → its liveness when last indexed: a change makes every dataset it reports worth a recompute. */
  private readonly lastAlive = new Map<string, boolean>();
  /** Deleted datasets by primary (a primary's death may orphan them). */
  private readonly deletedByPrimary = new Map<string, Set<string>>();
  private readonly assigned = new Map<string, string>();
  private readonly caring = new Map<string, Set<string>>();
  private readonly witnesses = new Map<string, string>();
  private readonly witnessing = new Map<string, Set<string>>();
  /** Node → snapshot ids its backend listing holds (report.snapshots). No reverse index, as reportedBy. */
  private readonly snapshotsReportedBy = new Map<string, ReadonlySet<string>>();
  /** Dataset → its snapshots deleted in the configuration (the caretaker's to destroy while reported). */
  private readonly deletedSnapshots = new Map<string, Set<string>>();
  /** Deleted snapshot → its dataset. */
  private readonly deletedSnapshotOf = new Map<string, string>();

  constructor(private readonly sources: CaretakerSources) {}

  /** The orphans node takes care of (in its view). */
  caredBy(node: string): ReadonlySet<string> {
    return this.caring.get(node) ?? EMPTY;
  }

  caretaker(datasetId: string): string | undefined {
    return this.assigned.get(datasetId);
  }

  /** The witness of a dataset no live node holds (witnessOf). */
  witness(datasetId: string): string | undefined {
    return this.witnesses.get(datasetId);
  }

  /** The datasets node witnesses (its state is in their viewers' views). */
  witnessedBy(node: string): ReadonlySet<string> {
    return this.witnessing.get(node) ?? EMPTY;
  }

  /** The caretakers of the orphans whose primary is node (their views show its state). */
  caretakersOfPrimary(node: string): string[] {
    const out: string[] = [];
    for (const id of this.deletedByPrimary.get(node) ?? []) {
      const c = this.assigned.get(id);
      if (c !== undefined) out.push(c);
    }
    return out;
  }

  /** A deleted dataset of the starting configuration (no node has reported yet: no caretaker). */
  knowDeleted(datasetId: string, primary: string): void {
    add(this.deletedByPrimary, primary, datasetId);
  }

  /** The configured snapshots at start (before any report: no caretaker yet). */
  knowSnapshots(snapshots: ReadonlyMap<string, SnapshotFacts> | undefined): void {
    for (const [id, s] of snapshots ?? []) if (s.deleted === true) this.noteDeletedSnapshot(id, s.dataset_id);
  }

  /**
   * The configured snapshots changed (one asked for, deleted, or purged once no backend holds it): the
   * datasets of those deleted or purged are recomputed. O(the snapshots) — every view holds them all anyway.
   */
  snapshotsChanged(
    prev: ReadonlyMap<string, SnapshotFacts> | undefined,
    next: ReadonlyMap<string, SnapshotFacts> | undefined,
  ): CaretakerMove[] {
    if (prev === next) return [];
    const affected = new Set<string>();
    for (const [id, s] of next ?? [])
      if (s.deleted === true && !this.deletedSnapshotOf.has(id)) {
        this.noteDeletedSnapshot(id, s.dataset_id);
        affected.add(s.dataset_id);
      }
    for (const [id, dataset] of this.deletedSnapshotOf)
      if (next?.get(id)?.deleted !== true) {
        this.deletedSnapshotOf.delete(id);
        remove(this.deletedSnapshots, dataset, id);
        affected.add(dataset);
      }
    const moves: CaretakerMove[] = [];
    for (const id of affected) this.recompute(id, moves);
    return moves;
  }

  /** Datasets changed in the configuration (created, deleted, moved, removed). */
  datasetsChanged(ids: Iterable<string>, previous: (id: string) => { primary: string } | undefined): CaretakerMove[] {
    const moves: CaretakerMove[] = [];
    for (const id of ids) {
      const before = previous(id);
      if (before !== undefined) remove(this.deletedByPrimary, before.primary, id);
      const now = this.sources.dataset(id);
      if (now?.deleted === true) add(this.deletedByPrimary, now.primary, id);
      this.recompute(id, moves);
    }
    return moves;
  }

  /**
   * Node uuid's report or liveness changed (`report`: its report now, undefined to keep the last).
   * `held`: the datasets it held before and holds now (NodeViewIndex's), which its liveness affects.
   * O(the datasets it reports) — what reading its report costs anyway.
   */
  nodeChanged(uuid: string, report: NodeReport | undefined, held: Iterable<string>): CaretakerMove[] {
    const affected = new Set<string>(held);
    const old = this.reportedBy.get(uuid) ?? EMPTY;
    const next = report !== undefined ? new Set((report.volumes ?? []).map((v) => v.dataset_id)) : old;
    const alive = this.sources.alive(uuid);
    const livenessChanged = this.lastAlive.get(uuid) !== alive;
    if (livenessChanged) {
      this.lastAlive.set(uuid, alive);
      for (const id of old) affected.add(id);
      for (const id of next) affected.add(id);
    } else if (next !== old) {
      for (const id of old) if (!next.has(id)) affected.add(id);
      for (const id of next) if (!old.has(id)) affected.add(id);
    }
    if (next.size > 0) this.reportedBy.set(uuid, next);
    else this.reportedBy.delete(uuid);
    // Its snapshots: only a deleted one's dataset can need (or stop needing) a caretaker for it.
    const oldSnaps = this.snapshotsReportedBy.get(uuid) ?? EMPTY;
    const nextSnaps = report !== undefined ? new Set((report.snapshots ?? []).map((s) => s.snapshot_id)) : oldSnaps;
    const changedSnaps = livenessChanged
      ? [...oldSnaps, ...nextSnaps]
      : nextSnaps === oldSnaps
        ? []
        : [...oldSnaps].filter((id) => !nextSnaps.has(id)).concat([...nextSnaps].filter((id) => !oldSnaps.has(id)));
    for (const id of changedSnaps) {
      const dataset = this.deletedSnapshotOf.get(id);
      if (dataset !== undefined) affected.add(dataset);
    }
    if (nextSnaps.size > 0) this.snapshotsReportedBy.set(uuid, nextSnaps);
    else this.snapshotsReportedBy.delete(uuid);
    for (const id of this.deletedByPrimary.get(uuid) ?? []) affected.add(id);
    // A primary's death strands the deleted snapshots of its datasets, deleted or not (few: purged once gone).
    if (livenessChanged)
      for (const id of this.deletedSnapshots.keys()) if (this.sources.dataset(id)?.primary === uuid) affected.add(id);
    for (const id of this.caring.get(uuid) ?? []) affected.add(id);
    for (const id of this.witnessing.get(uuid) ?? []) affected.add(id);
    const moves: CaretakerMove[] = [];
    for (const id of affected) this.recompute(id, moves, uuid);
    return moves;
  }

  private noteDeletedSnapshot(id: string, dataset: string): void {
    this.deletedSnapshotOf.set(id, dataset);
    add(this.deletedSnapshots, dataset, id);
  }

  /** For each deleted snapshot of the dataset, the nodes reporting it (a scan each: asked only when one may be stranded). */
  private *deletedSnapshotReporters(id: string): Generator<Generator<string>> {
    for (const snapshot of this.deletedSnapshots.get(id) ?? []) yield this.snapshotReportersOf(snapshot);
  }

  private *snapshotReportersOf(snapshot: string): Generator<string> {
    for (const [node, ids] of this.snapshotsReportedBy) if (ids.has(snapshot)) yield node;
  }

  /**
   * Whether every deleted snapshot of a dataset its live primary or a live holder sees is held by one of
   * them (what most datasets with deleted snapshots are: their primary destroys them): no caretaker,
   * known without scanning the reporters.
   */
  private snapshotsSeen(id: string, primary: string): boolean {
    const { alive } = this.sources;
    const viewers = [primary, ...this.sources.holders(id)].filter(alive);
    if (viewers.length === 0) return false;
    for (const snapshot of this.deletedSnapshots.get(id) ?? [])
      if (!viewers.some((v) => this.snapshotsReportedBy.get(v)?.has(snapshot) === true)) return false;
    return true;
  }

  /** The nodes reporting a volume of the dataset (a scan: asked only for an orphan). */
  private *reportersOf(id: string): Generator<string> {
    for (const [node, ids] of this.reportedBy) if (ids.has(id)) yield node;
  }

  private recompute(id: string, moves: CaretakerMove[], changed?: string): void {
    const d = this.sources.dataset(id);
    this.recomputeWitness(id, d, moves, changed);
    // Most datasets a report or liveness change reaches are neither deleted nor have deleted snapshots:
    // settled without more lookups; one with deleted snapshots its primary (or a holder) holds, likewise.
    const snapshotsLeft = this.deletedSnapshots.has(id);
    const to =
      d === undefined || (!d.deleted && !snapshotsLeft) || (!d.deleted && this.snapshotsSeen(id, d.primary))
        ? undefined
        : caretakerOf(
            id,
            {
              deleted: d.deleted,
              primary: d.primary,
              holders: this.sources.holders(id),
              reporters: this.reportersOf(id),
              deletedSnapshots: this.deletedSnapshotReporters(id),
            },
            this.sources.alive,
          );
    const from = this.assigned.get(id);
    if (from === to) return;
    if (from !== undefined) remove(this.caring, from, id);
    if (to !== undefined) {
      this.assigned.set(id, to);
      add(this.caring, to, id);
    } else this.assigned.delete(id);
    moves.push({ datasetId: id, from, to });
  }

  /**
   * The witness, kept incrementally: while it is alive and reports the dataset only the changed node
   * can take its place (if it comes first in the rendezvous order); otherwise a scan of the reporters.
   */
  private recomputeWitness(
    id: string,
    d: { readonly deleted: boolean } | undefined,
    moves: CaretakerMove[],
    changed: string | undefined,
  ): void {
    const { alive } = this.sources;
    const reports = (n: string): boolean => alive(n) && this.reportedBy.get(n)?.has(id) === true;
    const from = this.witnesses.get(id);
    let to: string | undefined;
    if (d === undefined || d.deleted || [...this.sources.holders(id)].some(alive)) to = undefined;
    else if (from !== undefined && reports(from))
      to = changed !== undefined && changed !== from && reports(changed) && beats(id, changed, from) ? changed : from;
    else to = witnessOf(id, { deleted: false, holders: [], reporters: this.reportersOf(id) }, alive);
    if (from === to) return;
    if (from !== undefined) remove(this.witnessing, from, id);
    if (to !== undefined) {
      this.witnesses.set(id, to);
      add(this.witnessing, to, id);
    } else this.witnesses.delete(id);
    moves.push({ datasetId: id, from, to, witness: true });
  }
}

const EMPTY: ReadonlySet<string> = new Set();

function add(index: Map<string, Set<string>>, key: string, member: string): void {
  const bucket = index.get(key);
  if (bucket === undefined) index.set(key, new Set([member]));
  else bucket.add(member);
}

function remove(index: Map<string, Set<string>>, key: string, member: string): void {
  const bucket = index.get(key);
  if (bucket === undefined) return;
  bucket.delete(member);
  if (bucket.size === 0) index.delete(key);
}
