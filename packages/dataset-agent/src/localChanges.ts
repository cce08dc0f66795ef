/**
 * The agent's decision for a local backend (issue 24: `dataset: {backend: local}`), where each
 * dataset's live copy is on one node's own pool and a move is a data transfer the node holding
 * the copy pushes to the new primary (LocalMover). Pure: desired configuration x this node's
 * copies x what the other nodes report -> at most one action per dataset.
 */
import { join } from 'node:path';
import {
  acceptedLossNodes,
  type ClusterSnapshot,
  isLocalBackend,
  METADATA_ACCEPT_DATA_LOSS_KEY,
  METADATA_ACCEPT_REPLICA_LOSS_KEY,
  METADATA_ACCEPTED_LOSS_FROM_KEY,
  METADATA_DATA_NODE_KEY,
  METADATA_REPLICA_INTERVAL_KEY,
  METADATA_REPLICAS_KEY,
  peerCopies,
} from '@flocker/api';
import { commonBase, nextSnapshotName, type SnapshotRef } from '@flocker/storage-drivers';

export interface LocalCopyHere {
  readonly datasetId: string;
  /** The enforced size; null when none is set yet. */
  readonly size: number | null;
  /** Where this host has it mounted. */
  readonly mountPoints: readonly string[];
}

export interface LocalDesiredDataset {
  readonly datasetId: string;
  readonly primary: string;
  readonly maximumSize: number | null;
  readonly deleted: boolean;
  /** Standby replicas asked for (0 or 1; see replicaSettings). */
  readonly replicas?: number;
  /** Between the replica's snapshots (ms); absent: the agent's default. */
  readonly replicaIntervalMs?: number;
  /** A move off a dead primary may promote this node's replica (the writes after its newest snapshot are lost). */
  readonly acceptReplicaLoss?: boolean;
  /**
   * The node the control service recorded, at the dataset's last move, as one that may hold its
   * data (@flocker/api METADATA_DATA_NODE_KEY); absent: nobody but the primary may hold it.
   */
  readonly dataNode?: string;
  /** The primary starts the dataset empty although dataNode says its data may be elsewhere. */
  readonly acceptDataLoss?: boolean;
  /**
   * The nodes whose divergent copy a loss the user accepted (a one-shot opt-in, consumed) covers, as the control
   * service recorded them (@flocker/api METADATA_ACCEPTED_LOSS_FROM_KEY): a branch between their copy and the
   * primary's is resolved for the primary (theirs kept aside), not refused.
   */
  readonly acceptedLossFrom?: readonly string[];
  /**
   * A clone (source_snapshot_id) or a restore not done (source_backup without restored): made from
   * a snapshot or a backup, which local storage cannot fill a volume from (never created empty).
   */
  readonly fill?: 'clone' | 'restore';
}

export interface LocalClusterNode {
  readonly uuid: string;
  readonly host: string;
  readonly alive: boolean;
  /** The datasets whose live copy the node reports (a local view: of the nodes whose states it shows). */
  readonly copies: readonly string[];
  /** How many live copies it reports in steps (@flocker/api peerCopies), when `copies` does not list them (a peer of a local view). */
  readonly copyCount?: number;
  /** The datasets whose standby replica the node holds (as their primaries report it). */
  readonly replicaOf?: readonly string[];
}

/** The replica this node keeps of a dataset it is the primary of. */
export interface ReplicaRecord {
  readonly node: string;
  /** When its newest snapshot there was taken (ms since the epoch); null: none sent yet. */
  readonly takenAt: number | null;
}

/** A running replica round as the agent saw it (Clock.now milliseconds: monotonic). */
export interface ReplicaRoundProgress {
  /** When the round last made progress: began, sent bytes to its receiver, or had an answer from it. */
  readonly movedAt: number;
  /** When this node first saw another node the dataset's primary while the round ran; absent: not seen. */
  readonly primaryGoneAt?: number;
}

export interface LocalObservation {
  readonly copies: readonly LocalCopyHere[];
  /** Datasets this node is moving to another node right now. */
  readonly moving: ReadonlySet<string>;
  /** Datasets this pool keeps snapshots (or a retired copy) of without a live copy. */
  readonly retained?: ReadonlySet<string>;
  /** Replicas this node keeps of the datasets it is the primary of (recorded: the node stays while alive). */
  readonly replicaRecords?: ReadonlyMap<string, ReplicaRecord>;
  /** Datasets this node is sending a replica snapshot of right now. */
  readonly replicating?: ReadonlySet<string>;
  /**
   * The running replica rounds' progress, on the agent's clock (LocalDecisionContext.clockNow). A
   * round without an entry is not known to move: never kept on for a new primary (review F10).
   */
  readonly replicaRounds?: ReadonlyMap<string, ReplicaRoundProgress>;
  /** Datasets this pool holds received snapshots of without a live copy: the newest one's name. */
  readonly replicaHere?: ReadonlyMap<string, string>;
  /**
   * Datasets this pool holds only received snapshots of (none taken here) without a live copy: a
   * standby replica, or what a move taken back left. Snapshots taken here (an old source's
   * retention) are never in it.
   */
  readonly receivedOnly?: ReadonlySet<string>;
  /**
   * Where this node and another both hold a live copy of a dataset (copiesToCompare): each node's
   * copy lineage, by node uuid (this node's too). A node missing (not answering, an agent one
   * release behind) is not known: neither copy is mounted nor retired (refused).
   */
  readonly lineages?: ReadonlyMap<string, ReadonlyMap<string, CopyLineage>>;
  /**
   * Datasets this node holds a lease on (the followed snapshot's leases: leasedHere). A move away
   * when released keeps the host's mount while one is held (a Docker Mount answered from it just
   * before the move committed must bind the copy, not the directory under it).
   */
  readonly leasedHere?: ReadonlySet<string>;
}

/**
 * What a node's live copy of a dataset is made from (issue 24: two live copies after a double
 * fault, a move's source killed between the target's promote and its own retire). Snapshot
 * identities (LocalSnapshot.identity) are equal on every node holding the snapshot.
 */
export interface CopyLineage {
  /** The snapshot the live copy was promoted from (a move's or a replica's); null: made here, or not known. */
  readonly from: string | null;
  /** A snapshot here whose content the live copy still is (unchanged since); null: changed since, or not known. */
  readonly sameAs: string | null;
  /** The identities of the dataset's snapshots this node holds. */
  readonly snapshots: readonly string[];
}

/**
 * How this node's live copy stands to another node's. 'older': the other's is made from a snapshot
 * of this copy, unchanged since (the other holds all of this one's data and maybe more); 'newer' the
 * reverse; 'same' both. 'branchedFromTheirs': this copy is made from a snapshot of theirs, which
 * changed since (a replica promoted after a failover, the old primary's writes after it); 'unknown':
 * nothing says (unrelated, both changed, a lineage missing). Never a guess.
 */
export type CopyOrder = 'older' | 'newer' | 'same' | 'branchedFromTheirs' | 'branchedFromMine' | 'unknown';

export function compareCopies(mine: CopyLineage | undefined, theirs: CopyLineage | undefined): CopyOrder {
  if (mine === undefined || theirs === undefined) return 'unknown';
  const mineInTheirs = mine.sameAs !== null && theirs.from === mine.sameAs;
  const theirsInMine = theirs.sameAs !== null && mine.from === theirs.sameAs;
  if (mineInTheirs && theirsInMine) return 'same';
  if (mineInTheirs) return 'older';
  if (theirsInMine) return 'newer';
  const fromTheirs = mine.from !== null && theirs.snapshots.includes(mine.from);
  const fromMine = theirs.from !== null && mine.snapshots.includes(theirs.from);
  if (fromTheirs && !fromMine) return 'branchedFromTheirs';
  if (fromMine && !fromTheirs) return 'branchedFromMine';
  if (!fromTheirs || mine.from === null || theirs.from === null) return 'unknown';
  // Both hold (B -> A, then A -> B with A killed after B's promote: A's copy is made from P, which B
  // holds; B's from F, a snapshot of A's copy taken after P), or both are made from one snapshot.
  // The one made from the later snapshot branched from the other, where a pool's list (oldest first)
  // shows that order and neither shows the reverse; else not known. Symmetric by construction:
  // compareCopies(y, x) is always the inverse of compareCopies(x, y).
  const after = (list: readonly string[], a: string, b: string): boolean => {
    const i = list.indexOf(a);
    const j = list.indexOf(b);
    return i >= 0 && j >= 0 && i > j;
  };
  const m = mine.from;
  const t = theirs.from;
  const theirsLater = after(mine.snapshots, t, m) || after(theirs.snapshots, t, m);
  const mineLater = after(mine.snapshots, m, t) || after(theirs.snapshots, m, t);
  if (theirsLater && !mineLater) return 'branchedFromMine';
  if (mineLater && !theirsLater) return 'branchedFromTheirs';
  return 'unknown';
}

export interface LocalDecisionContext {
  readonly nodeUuid: string;
  readonly mountRoot: string;
  readonly defaultSize: number;
  /** Now (ms since the epoch): when a replica's next snapshot is due. */
  readonly now?: number;
  /** Between a replica's snapshots when the dataset does not say (ms; default 30 s). */
  readonly replicaIntervalMs?: number;
  /** agent.yml keep_source_snapshots (the move's retention; default 1): 0, a move's leftovers go (keptNothingLeftover). */
  readonly keepSourceSnapshots?: number;
  /** Now on the agent's clock (Clock.now, monotonic ms): what replicaRounds' times are read against. */
  readonly clockNow?: number;
  /** A round kept on for the new primary with no progress this long is stopped (default REPLICA_ROUND_IDLE_MS). */
  readonly replicaRoundIdleMs?: number;
  /** A round kept on for the new primary is stopped this long after the primary change (default REPLICA_ROUND_FOLLOW_MAX_MS). */
  readonly replicaRoundFollowMaxMs?: number;
}

export const DEFAULT_REPLICA_INTERVAL_MS = 30_000;
/**
 * A replica round to the dataset's new primary runs on only while it moves bytes: one with nothing
 * sent or answered for this long is stalled (a hung receive, a half-open connection) and is stopped,
 * so that the move can start (review F10 on 5caa5a6: a stalled round blocked the move for good).
 */
export const REPLICA_ROUND_IDLE_MS = 30_000;
/** …and at most this long after the primary change, whatever it moves (a trickle never holds the move off for good). */
export const REPLICA_ROUND_FOLLOW_MAX_MS = 30 * 60_000;

export type LocalAction =
  | { readonly kind: 'create'; readonly datasetId: string; readonly size: number; readonly mountPath: string }
  | { readonly kind: 'mount'; readonly datasetId: string; readonly mountPath: string }
  | { readonly kind: 'resize'; readonly datasetId: string; readonly size: number }
  | { readonly kind: 'unmount'; readonly datasetId: string; readonly mountPath: string }
  /** keepAsides: the dataset is not deleted (a stale replica dropped): a copy kept aside here stays. */
  | { readonly kind: 'destroy'; readonly datasetId: string; readonly keepAsides?: true }
  /** The dataset's primary is this node again while its move away runs: take the move back. */
  | { readonly kind: 'cancelMove'; readonly datasetId: string }
  /**
   * The dataset is deleted while its move away runs: the move ends at once, wherever it is (its
   * promote asked or not: both nodes destroy what they hold once the mover has let go).
   */
  | { readonly kind: 'stopMove'; readonly datasetId: string }
  /**
   * A replica round runs for a dataset that is deleted or no longer this node's (another node its
   * primary; a round to the new primary itself runs on while it makes progress: keepRoundForMove):
   * the round ends at once, its send cut off (the peer discards a partial receive); the destroy or
   * the move follows its end (no other action while it runs).
   */
  | { readonly kind: 'stopReplica'; readonly datasetId: string }
  /**
   * After a move away: keep only the newest snapshot (a move back's base), let go of the live copy.
   * keepAside: the copy holds writes the primary's copy never got (the old primary back after its
   * replica was promoted with accept-replica-loss): kept out of the live path first (LocalEngine
   * keepAside: btrfs a read-only snapshot under <pool>/flocker/diverged/, ZFS the file system
   * renamed to <pool>/flocker-diverged/), removed with the dataset.
   * unchangedSince: the identity of the snapshot this copy's lineage found it unchanged since (sameAs),
   * which the primary's copy is made from: the engine's retire checks it again right before its
   * delete (review RV4 finding 1: a writer no scan saw, writing after the lineage was read).
   */
  | {
      readonly kind: 'retire';
      readonly datasetId: string;
      readonly keepAside?: true;
      readonly unchangedSince?: string;
    }
  | {
      /** Push the live copy to the new primary: phase 1 at once, phase 2 once nothing here holds it. */
      readonly kind: 'moveOut';
      readonly datasetId: string;
      readonly to: { readonly uuid: string; readonly host: string };
      readonly size: number;
    }
  /** Send the standby replica an incremental snapshot (the first one whole). */
  | {
      readonly kind: 'replicate';
      readonly datasetId: string;
      readonly to: { readonly uuid: string; readonly host: string };
    }
  /** The primary's node is dead and the user accepts the loss window: the replica's newest snapshot becomes the live copy. */
  | {
      readonly kind: 'promoteReplica';
      readonly datasetId: string;
      readonly snapshot: string;
      readonly size: number;
      readonly mountPath: string;
    }
  | {
      /**
       * Nothing to do but say why: the only copy is on a dead node, the node the control service
       * recorded as one that may hold the data is shown nowhere, or this pool keeps data of the
       * dataset while no node shown holds its live copy (never a blank new one).
       */
      readonly kind: 'refuse';
      readonly datasetId: string;
      readonly code: 'SOURCE_UNREACHABLE' | 'TWO_LIVE_COPIES' | 'NOT_ON_LOCAL_STORAGE';
      readonly message: string;
    };

export function localMountPath(datasetId: string, ctx: LocalDecisionContext): string {
  return join(ctx.mountRoot, datasetId);
}

function sizeOf(d: LocalDesiredDataset, ctx: LocalDecisionContext): number {
  return d.maximumSize ?? ctx.defaultSize;
}

export function calculateLocalChanges(
  datasets: readonly LocalDesiredDataset[],
  nodes: readonly LocalClusterNode[],
  here: LocalObservation,
  ctx: LocalDecisionContext,
): LocalAction[] {
  const copies = new Map(here.copies.map((c) => [c.datasetId, c]));
  const actions: LocalAction[] = [];
  for (const d of [...datasets].sort((x, y) => (x.datasetId < y.datasetId ? -1 : 1))) {
    const action = decide(d, copies.get(d.datasetId), nodes, here, ctx);
    if (action !== null) actions.push(action);
  }
  return actions;
}

function decide(
  d: LocalDesiredDataset,
  copy: LocalCopyHere | undefined,
  nodes: readonly LocalClusterNode[],
  here: LocalObservation,
  ctx: LocalDecisionContext,
): LocalAction | null {
  const datasetId = d.datasetId;
  const mountPath = localMountPath(datasetId, ctx);
  const moving = here.moving.has(datasetId);
  const replicating = here.replicating?.has(datasetId) === true;
  if (d.deleted) {
    // Its peer refuses a deleted dataset's data: a round sending on would only fail (a first whole
    // send of a large copy: gigabytes for nothing). The destroy waits for the round's end. (A round
    // sends a live copy here: none, nothing of it runs any more.)
    if (replicating && copy !== undefined) return { kind: 'stopReplica', datasetId };
    // The mover would only retry: the target refuses a deleted dataset's data (about a minute of
    // PEER_REFUSED). No live copy here any more: the mover retired it and is ending by itself.
    if (moving) return copy !== undefined ? { kind: 'stopMove', datasetId } : null;
    if (copy === undefined) return here.retained?.has(datasetId) === true ? { kind: 'destroy', datasetId } : null;
    const mounted = [...copy.mountPoints].sort()[0];
    return mounted !== undefined ? { kind: 'unmount', datasetId, mountPath: mounted } : { kind: 'destroy', datasetId };
  }
  if (d.primary === ctx.nodeUuid) {
    if (copy !== undefined) {
      // A move away taken back: stopped until its promote is asked for (the mover decides), else it ends first.
      if (moving) return { kind: 'cancelMove', datasetId };
      if (!copy.mountPoints.includes(mountPath))
        return primaryWithOtherCopies(d, nodes, here, ctx) ?? { kind: 'mount', datasetId, mountPath };
      const size = sizeOf(d, ctx);
      if (copy.size === null || copy.size < size) return { kind: 'resize', datasetId, size };
      return replicaDue(d, nodes, here, ctx);
    }
    // The copy is elsewhere: its node pushes it here (or cannot, if dead). Only no copy anywhere is a new dataset.
    const holders = nodes.filter((n) => n.uuid !== ctx.nodeUuid && n.copies.includes(datasetId));
    if (holders.some((n) => n.alive)) return null;
    const dead = holders[0];
    const replica = here.replicaHere?.get(datasetId);
    if (dead !== undefined && replica !== undefined && d.acceptReplicaLoss === true)
      return { kind: 'promoteReplica', datasetId, snapshot: replica, size: sizeOf(d, ctx), mountPath };
    if (dead !== undefined)
      return {
        kind: 'refuse',
        datasetId,
        code: 'SOURCE_UNREACHABLE',
        message:
          `the data of dataset ${datasetId} is on node ${dead.uuid} (${dead.host}), which is dead: local storage cannot be moved off a dead node; bring it back, or move the dataset back to it` +
          (replica !== undefined
            ? `; or accept losing the writes after this node's replica (snapshot ${replica}): set metadata ${METADATA_ACCEPT_REPLICA_LOSS_KEY}=true`
            : ''),
      };
    // No node shown holds a live copy, yet the control service recorded at the last move a node
    // that may hold the data: its state is missing from the view (the service restarted and the
    // node has not reported again, or it is dead and was forgotten). A create would make an empty
    // copy live, and that node, once back, would retire its own ("the primary holds its live copy
    // already"). Wait for it to show (then its push), or the user's opt-in to start empty. This
    // node's own pool is known here: a marker naming it says nothing more.
    // A replica here is promoted only with both opt-ins: the marked node is not known dead (a
    // restarted service has only not heard from it yet), so it may be alive with newer writes, which
    // it would retire once this node reported the replica live.
    const marked = d.dataNode !== undefined && d.dataNode !== ctx.nodeUuid ? d.dataNode : undefined;
    if (marked !== undefined) {
      if (replica !== undefined && d.acceptReplicaLoss === true && d.acceptDataLoss === true)
        return { kind: 'promoteReplica', datasetId, snapshot: replica, size: sizeOf(d, ctx), mountPath };
      if (d.acceptDataLoss !== true) {
        const host = nodes.find((n) => n.uuid === marked)?.host;
        return {
          kind: 'refuse',
          datasetId,
          code: 'SOURCE_UNREACHABLE',
          message:
            `the data of dataset ${datasetId} may be on node ${marked}${host ? ` (${host})` : ''}, which has not reported it to the control service (restarted? dead?); ` +
            `bring ${marked} back, or set metadata ${METADATA_ACCEPT_DATA_LOSS_KEY}=true to start it empty` +
            (replica !== undefined
              ? `; or start it from this node's replica (snapshot ${replica}), losing the writes after it and any the node made since: set metadata ${METADATA_ACCEPT_REPLICA_LOSS_KEY}=true and ${METADATA_ACCEPT_DATA_LOSS_KEY}=true`
              : ''),
        };
      }
    }
    // No node shown holds a live copy, yet this pool keeps something of the dataset (a move's
    // received snapshots or a receive still running, a replica, a retired copy): it has data, and a
    // holder the view does not show (a control service restarted before the holder reported again)
    // would retire its copy once this node reported a new one. A create would make an empty copy
    // (btrfs) or an older one live (ZFS: the retired or received file system): wait until a holder
    // shows, or the dataset is moved or deleted.
    if (here.retained?.has(datasetId) === true)
      return {
        kind: 'refuse',
        datasetId,
        code: 'SOURCE_UNREACHABLE',
        message:
          `dataset ${datasetId} has data (this node's pool keeps snapshots or a copy of it that is not live) but no node this node sees holds its live copy: ` +
          'not making a new one over it; waiting for the node holding it to report (if no node holds it any more, delete the dataset)',
      };
    // The API refuses these for a node known to be local; one accepted before this node reported its
    // backend (a control-service start) would come out an empty volume the user took for the data.
    if (d.fill !== undefined)
      return {
        kind: 'refuse',
        datasetId,
        code: 'NOT_ON_LOCAL_STORAGE',
        message:
          `dataset ${datasetId} is a ${d.fill === 'clone' ? 'clone of a snapshot' : 'restore of a stored backup'}, and this node keeps its volumes on local storage, ` +
          `which cannot fill a volume from a ${d.fill === 'clone' ? 'snapshot' : 'backup'}: not creating it empty (delete it, or create it on a node with block storage)`,
      };
    return { kind: 'create', datasetId, size: sizeOf(d, ctx), mountPath };
  }
  // Another node is the primary: this node pushes its copy there, then lets go of it.
  if (copy === undefined)
    return staleReplicaHere(d, nodes, here, ctx) || keptNothingLeftover(d, nodes, here, ctx)
      ? { kind: 'destroy', datasetId, keepAsides: true }
      : null;
  const target = nodes.find((n) => n.uuid === d.primary);
  // Not this node's to replicate any more: its round ends first (both touch the snapshots the move starts from),
  // unless it is the move's first send, still moving (keepRoundForMove): then the move follows it.
  if (replicating) return keepRoundForMove(d, target, here, ctx) ? null : { kind: 'stopReplica', datasetId };
  const mounted = copy.mountPoints.includes(mountPath) ? mountPath : undefined;
  if (moving) {
    // The host's own mount goes once this node holds no lease on the dataset (a move when released:
    // at once otherwise); containers keep theirs until they stop (the move's release).
    return mounted !== undefined && here.leasedHere?.has(datasetId) !== true
      ? { kind: 'unmount', datasetId, mountPath: mounted }
      : null;
  }
  // The primary holds a live copy too: a mover killed after the promote, before it retired this
  // one (this copy is let go of: the primary's is made from it), or the primary moved back to an
  // old source before it retired its older copy (this one is pushed once it has: never retired).
  if (target?.copies.includes(datasetId) === true) {
    const mine = lineageOf(here, datasetId, ctx.nodeUuid);
    const order = compareCopies(mine, lineageOf(here, datasetId, target.uuid));
    // Branched from this copy: the primary's is a replica promoted after a failover whose loss the user
    // accepted (the opt-in still set, or, once that move completed and the one-shot opt-in went, the
    // control service's accepted-loss marker naming this node): this copy's writes after that replica
    // are kept aside (out of the live path). Any other branch (e.g. a move's source written after its
    // final snapshot, RV finding 1) holds writes nobody gave up: refused below (TWO_LIVE_COPIES).
    const branched = order === 'branchedFromMine' && lossAccepted(d, ctx.nodeUuid);
    if (order === 'older' || order === 'same' || branched)
      return mounted !== undefined
        ? { kind: 'unmount', datasetId, mountPath: mounted }
        : {
            kind: 'retire',
            datasetId,
            ...(branched ? { keepAside: true as const } : {}),
            ...(!branched && typeof mine?.sameAs === 'string' ? { unchangedSince: mine.sameAs } : {}),
          };
    if (order === 'newer') return null;
    return twoLiveCopies(datasetId, target, order, ctx, copy.mountPoints);
  }
  if (target?.alive === true)
    return { kind: 'moveOut', datasetId, to: { uuid: target.uuid, host: target.host }, size: sizeOf(d, ctx) };
  return null;
}

/**
 * A replica round runs for a dataset whose primary is now another node: it runs on (review B10) when
 * its receiver is that node, alive, without a live copy (it accepts the data: it is the primary), and
 * the round still makes progress. A move sends from the newest snapshot both nodes hold (plan.ts
 * commonBase), and the round's snapshot is one: cut off, the receiver would discard the partial
 * receive and the move send the whole copy again (a first whole send: the data twice). Kept only
 * while it moved within the idle bound and for at most the follow bound after the primary change
 * (review F10: a stalled receive kept on blocked the move for good). Progress not known: stopped.
 */
function keepRoundForMove(
  d: LocalDesiredDataset,
  target: LocalClusterNode | undefined,
  here: LocalObservation,
  ctx: LocalDecisionContext,
): boolean {
  if (target === undefined || !target.alive || target.copies.includes(d.datasetId)) return false;
  if (here.replicaRecords?.get(d.datasetId)?.node !== target.uuid) return false;
  const round = here.replicaRounds?.get(d.datasetId);
  if (round === undefined || ctx.clockNow === undefined) return false;
  if (ctx.clockNow - round.movedAt >= (ctx.replicaRoundIdleMs ?? REPLICA_ROUND_IDLE_MS)) return false;
  const since = round.primaryGoneAt ?? ctx.clockNow;
  return ctx.clockNow - since < (ctx.replicaRoundFollowMaxMs ?? REPLICA_ROUND_FOLLOW_MAX_MS);
}

/**
 * When the decision on the rounds kept on for a move (keepRoundForMove) next changes by time alone:
 * the agent looks again then (no snapshot may come). undefined: no round kept on.
 */
export function replicaRoundRecheckMs(here: LocalObservation, ctx: LocalDecisionContext): number | undefined {
  if (ctx.clockNow === undefined) return undefined;
  const now = ctx.clockNow;
  let next: number | undefined;
  for (const round of here.replicaRounds?.values() ?? []) {
    if (round.primaryGoneAt === undefined) continue;
    const idleEnd = round.movedAt + (ctx.replicaRoundIdleMs ?? REPLICA_ROUND_IDLE_MS);
    const followEnd = round.primaryGoneAt + (ctx.replicaRoundFollowMaxMs ?? REPLICA_ROUND_FOLLOW_MAX_MS);
    const wait = Math.max(0, Math.min(idleEnd, followEnd) - now);
    next = next === undefined ? wait : Math.min(next, wait);
  }
  return next;
}

/**
 * Whether the user accepted losing what `node`'s copy holds beyond the primary's: the marker naming it, or the opt-in
 * while set, for the data-node marker's node (the copy the user was asked about: the failover's old primary; review
 * RV2: not a third node's branch, e.g. a move's source written after its final snapshot). No data-node marker: any.
 */
function lossAccepted(d: LocalDesiredDataset, node: string): boolean {
  if (d.acceptedLossFrom?.includes(node) === true) return true;
  return d.acceptReplicaLoss === true && (d.dataNode === undefined || d.dataNode === node);
}

function lineageOf(here: LocalObservation, datasetId: string, node: string): CopyLineage | undefined {
  return here.lineages?.get(datasetId)?.get(node);
}

/**
 * The primary (this node) with its copy not mounted while other nodes report live copies too:
 * mounted only over older ones (theirs made from it, unchanged), or a replica promoted here whose
 * loss the user accepted; an older copy here is retired (its snapshots kept: the base) and the
 * newer one pushed here; anything else refused. null: mount.
 */
function primaryWithOtherCopies(
  d: LocalDesiredDataset,
  nodes: readonly LocalClusterNode[],
  here: LocalObservation,
  ctx: LocalDecisionContext,
): LocalAction | null {
  const others = nodes.filter((n) => n.uuid !== ctx.nodeUuid && n.copies.includes(d.datasetId));
  const mine = lineageOf(here, d.datasetId, ctx.nodeUuid);
  if (others.length === 0) return markedElsewhere(d, nodes, ctx, mine);
  let retire = false;
  for (const n of others) {
    const order = compareCopies(mine, lineageOf(here, d.datasetId, n.uuid));
    // branchedFromTheirs with the loss accepted (the opt-in still set, or the accepted-loss marker naming that
    // node): this copy is a replica promoted here, mounted; the other keeps its own aside. Otherwise refused.
    if (order === 'newer' || order === 'same' || (order === 'branchedFromTheirs' && lossAccepted(d, n.uuid))) continue;
    if (order === 'older' && n.alive) retire = true;
    // The other holder dead (e.g. a failover's old primary, this node's host rebooted since): the user
    // gave up what its copy may hold that this one lacks. Its copy is not retired by this: once it
    // reports, its node orders the copies (keeps its own aside, or refuses and keeps it).
    else if (!n.alive && d.acceptDataLoss === true) continue;
    else
      return twoLiveCopies(
        d.datasetId,
        n,
        order,
        ctx,
        here.copies.find((c) => c.datasetId === d.datasetId)?.mountPoints ?? [],
        !n.alive,
      );
  }
  // Retired only when older: unchanged since the snapshot the other's copy is made from (mine.sameAs).
  return retire
    ? {
        kind: 'retire',
        datasetId: d.datasetId,
        ...(typeof mine?.sameAs === 'string' ? { unchangedSince: mine.sameAs } : {}),
      }
    : null;
}

/**
 * The data-node marker names another node that the view shows holding no live copy while this
 * node, the primary, holds a copy it has not mounted. The marked node in the view and alive: it
 * reported since the service started, listing no live copy of the dataset (a holder's state is
 * always in a local view): nothing there to hide, mounted. Not shown (a control service restarted
 * before it reported again) or dead: a copy here that is a snapshot taken of a live copy and
 * unchanged since (sameAs set, not the one it was made from) may be the source of a move away whose
 * retire never ran (the move's source killed after the target's promote, the primary moved back):
 * the marked node may hold a newer copy made from it, which mounting this one would hide. Refused,
 * naming it, unless the user accepts the loss (accept-data-loss). Only a copy still the snapshot a
 * promote here made it from (sameAs === from) is mounted: a copy written since (sameAs null) cannot
 * be told from a move's source whose sameAs an atime update or a balance nulled, so it waits for the
 * marked node to report (the refusal says so). Lineage not known: refused. null: mount.
 */
function markedElsewhere(
  d: LocalDesiredDataset,
  nodes: readonly LocalClusterNode[],
  ctx: LocalDecisionContext,
  mine: CopyLineage | undefined,
): LocalAction | null {
  const marked = d.dataNode !== undefined && d.dataNode !== ctx.nodeUuid ? d.dataNode : undefined;
  if (marked === undefined || d.acceptDataLoss === true) return null;
  const markedNode = nodes.find((n) => n.uuid === marked);
  if (markedNode?.alive === true) return null;
  // Only a copy still exactly what a promote here made: a null sameAs is also what an atime update or a balance leaves
  // on a move's source (no write), so it does not prove this copy is the newer one (review RT2, finding 5).
  if (mine !== undefined && mine.from !== null && mine.sameAs === mine.from) return null;
  const host = markedNode?.host;
  return {
    kind: 'refuse',
    datasetId: d.datasetId,
    code: 'SOURCE_UNREACHABLE',
    message:
      `the data of dataset ${d.datasetId} may be on node ${marked}${host ? ` (${host})` : ''}, which has not reported it to the control service (restarted? dead?); ` +
      `this node's copy (not mounted) is not known to be the one a move here made, and ${marked} may hold a newer one made from it: not mounting it. ` +
      `Bring ${marked} back (this node mounts its copy once ${marked} reports holding none), or, if ${marked} is gone for good, set metadata ${METADATA_ACCEPT_DATA_LOSS_KEY}=true to mount this node's copy, losing what ${marked} may hold`,
  };
}

/**
 * The refusal where the order of two live copies is not known. It says what this node does with its
 * copy, true whichever case: left as it is, mounted where it is (a non-primary's copy still mounted,
 * e.g. an old primary back after a failover, is not taken from its users on a guess) or not mounted,
 * and retired by neither node's decision.
 */
function twoLiveCopies(
  datasetId: string,
  other: LocalClusterNode,
  order: CopyOrder,
  ctx: LocalDecisionContext,
  mountPoints: readonly string[],
  /** This node is the primary and the other holder is dead: the way out without it is named (accept-data-loss). */
  otherDead = false,
): LocalAction {
  const why =
    order === 'unknown'
      ? otherDead
        ? 'which one is newer cannot be established (that node does not answer)'
        : 'which one is newer cannot be established (a node did not answer or is one release behind, or the copies are unrelated)'
      : order === 'older'
        ? 'the other copy is made from this one and newer'
        : 'both were written since they parted';
  const mine =
    mountPoints.length > 0
      ? `this node's copy stays as it is (still mounted at ${[...mountPoints].sort().join(', ')})`
      : "this node's copy stays as it is (not mounted)";
  const other_ = `node ${other.uuid} (${other.host})${otherDead ? ', which is dead' : ''}`;
  const wayOut = otherDead
    ? `Bring ${other.uuid} back (the two copies are then ordered by their lineage); ` +
      `or, if ${other.uuid} is gone for good, set metadata ${METADATA_ACCEPT_DATA_LOSS_KEY}=true to mount this node's copy, ` +
      `losing from the volume the writes on ${other.uuid}'s copy that this node's copy lacks ` +
      `(${other.uuid}'s copy is not retired by that: once it reports, that node keeps its copy aside or refuses and keeps it)`
    : 'Keep the one to keep: move the primary to its node, and on the other node take the copy out of the pool ' +
      '(btrfs: snapshot <pool>/flocker/datasets/<id> elsewhere, then delete it; ZFS: zfs rename <pool>/flocker/<id> out of <pool>/flocker)';
  return {
    kind: 'refuse',
    datasetId,
    code: 'TWO_LIVE_COPIES',
    message:
      `dataset ${datasetId} has a live copy on this node (${ctx.nodeUuid}) and on ${other_}: ${why}; ` +
      `${mine}, and neither copy is retired. ${wayOut}`,
  };
}

/**
 * The other nodes whose copy lineage a decision on this node reads (CopyLineage): where this node
 * holds a live copy, not moving it, and another node reports one too (the primary here, its copy
 * not mounted: every such node; another primary: it). Empty almost always: asked only then. Also the
 * primary here with its copy not mounted, no other holder shown and the data-node marker naming
 * another node: an empty list (this node's lineage only: markedElsewhere).
 */
export function copiesToCompare(
  datasets: readonly LocalDesiredDataset[],
  nodes: readonly LocalClusterNode[],
  here: LocalObservation,
  ctx: LocalDecisionContext,
): Map<string, LocalClusterNode[]> {
  const out = new Map<string, LocalClusterNode[]>();
  const copies = new Map(here.copies.map((c) => [c.datasetId, c]));
  // The other holders of this node's copies, in one pass over the nodes' lists (a turn stays linear).
  const holders = new Map<string, LocalClusterNode[]>();
  for (const n of nodes)
    if (n.uuid !== ctx.nodeUuid)
      for (const id of n.copies) if (copies.has(id)) holders.set(id, [...(holders.get(id) ?? []), n]);
  for (const d of datasets) {
    const copy = copies.get(d.datasetId);
    if (d.deleted || copy === undefined || here.moving.has(d.datasetId)) continue;
    const others = holders.get(d.datasetId);
    const primaryUnmounted = d.primary === ctx.nodeUuid && !copy.mountPoints.includes(localMountPath(d.datasetId, ctx));
    if (others === undefined) {
      // No other holder shown, the marker naming another node: this copy's own lineage only (markedElsewhere).
      if (primaryUnmounted && d.dataNode !== undefined && d.dataNode !== ctx.nodeUuid && d.acceptDataLoss !== true)
        out.set(d.datasetId, []);
      continue;
    }
    const ask =
      d.primary === ctx.nodeUuid
        ? !primaryUnmounted
          ? []
          : others
        : here.replicating?.has(d.datasetId) === true
          ? []
          : others.filter((n) => n.uuid === d.primary);
    if (ask.length > 0) out.set(d.datasetId, ask);
  }
  return out;
}

/**
 * Received snapshots here, no live copy, that no one needs: the dataset asks for no replica any
 * more, or its primary reports its replica on another node. Only while the primary's node is
 * alive and reports the live copy (a dead primary's data may be in nothing else), and not while
 * its replica is first recorded (named nowhere yet: kept).
 */
function staleReplicaHere(
  d: LocalDesiredDataset,
  nodes: readonly LocalClusterNode[],
  here: LocalObservation,
  ctx: LocalDecisionContext,
): boolean {
  if (here.receivedOnly?.has(d.datasetId) !== true || here.moving.has(d.datasetId)) return false;
  const primary = nodes.find((n) => n.uuid === d.primary);
  if (primary?.alive !== true || !primary.copies.includes(d.datasetId)) return false;
  if ((d.replicas ?? 0) < 1) return true;
  const named = (n: LocalClusterNode): boolean => (n.replicaOf ?? []).includes(d.datasetId);
  return (
    !nodes.some((n) => n.uuid === ctx.nodeUuid && named(n)) && nodes.some((n) => n.uuid !== ctx.nodeUuid && named(n))
  );
}

/**
 * Review RV4 finding 4: with keep_source_snapshots 0 a kill -9 between a move's retire and its destroy
 * leaves this node's own move snapshots (btrfs) or its retired file system (ZFS), one full copy's space,
 * which no other rule removes (staleReplicaHere: received snapshots only). Destroyed (copies kept aside
 * stay) once nothing here can be wanted: not moving, the primary alive elsewhere with its live copy, and
 * no replica of it named on this node.
 */
function keptNothingLeftover(
  d: LocalDesiredDataset,
  nodes: readonly LocalClusterNode[],
  here: LocalObservation,
  ctx: LocalDecisionContext,
): boolean {
  if (ctx.keepSourceSnapshots !== 0 || d.primary === ctx.nodeUuid) return false;
  if (here.retained?.has(d.datasetId) !== true || here.moving.has(d.datasetId)) return false;
  if (here.replicaHere?.has(d.datasetId) === true) return false;
  const primary = nodes.find((n) => n.uuid === d.primary);
  if (primary?.alive !== true || !primary.copies.includes(d.datasetId)) return false;
  return !nodes.some((n) => n.uuid === ctx.nodeUuid && (n.replicaOf ?? []).includes(d.datasetId));
}

/**
 * The node that keeps a dataset's standby replica: the recorded one while it is alive, else the
 * least-loaded other live node. Its load: its live copies in steps (@flocker/api peerCopies, as a
 * local view's peers show them, so a view and a whole snapshot choose alike) and the replicas it holds.
 */
export function chooseReplicaNode(
  datasetId: string,
  recorded: string | undefined,
  nodes: readonly LocalClusterNode[],
  self: string,
): LocalClusterNode | undefined {
  // Never a node holding a live copy of the dataset (an old primary back after a failover, not let go
  // of yet): a replica there would sit beside a copy the decisions still compare by its snapshots.
  const candidates = nodes.filter((n) => n.alive && n.uuid !== self && !n.copies.includes(datasetId));
  const kept = candidates.find((n) => n.uuid === recorded);
  if (kept !== undefined) return kept;
  const load = (n: LocalClusterNode): number =>
    peerCopies(n.copyCount ?? n.copies.length) + (n.replicaOf ?? []).filter((x) => x !== datasetId).length;
  // The least load, then the least uuid: one scan (a sort per dataset was N log N).
  let best: { node: LocalClusterNode; load: number } | undefined;
  for (const n of candidates) {
    const l = load(n);
    if (best === undefined || l < best.load || (l === best.load && n.uuid < best.node.uuid))
      best = { node: n, load: l };
  }
  return best?.node;
}

/** The primary (this node, its copy mounted): the replica's next snapshot, when one is due. */
function replicaDue(
  d: LocalDesiredDataset,
  nodes: readonly LocalClusterNode[],
  here: LocalObservation,
  ctx: LocalDecisionContext,
): LocalAction | null {
  if ((d.replicas ?? 0) < 1 || here.replicating?.has(d.datasetId) === true) return null;
  const record = here.replicaRecords?.get(d.datasetId);
  const to = chooseReplicaNode(d.datasetId, record?.node, nodes, ctx.nodeUuid);
  if (to === undefined) return null;
  const interval = d.replicaIntervalMs ?? ctx.replicaIntervalMs ?? DEFAULT_REPLICA_INTERVAL_MS;
  const due =
    record?.node !== to.uuid || record.takenAt === null || (ctx.now ?? Date.now()) - record.takenAt >= interval;
  return due ? { kind: 'replicate', datasetId: d.datasetId, to: { uuid: to.uuid, host: to.host } } : null;
}

/** What a dataset's metadata asks of its replica; bad values are no replica (the default refusal stays). */
export function replicaSettings(
  metadata: Readonly<Record<string, string>>,
): Pick<LocalDesiredDataset, 'replicas' | 'replicaIntervalMs' | 'acceptReplicaLoss'> {
  const replicas = metadata[METADATA_REPLICAS_KEY]?.trim() === '1' ? 1 : 0;
  const seconds = Number(metadata[METADATA_REPLICA_INTERVAL_KEY] ?? NaN);
  return {
    replicas,
    ...(Number.isFinite(seconds) && seconds >= 1 ? { replicaIntervalMs: Math.round(seconds * 1000) } : {}),
    acceptReplicaLoss: metadata[METADATA_ACCEPT_REPLICA_LOSS_KEY]?.trim() === 'true',
  };
}

/**
 * One replica round: a new snapshot (its time is the replica's age), sent from the newest one the
 * replica node holds (by identity), or whole when it holds none.
 */
export function replicaStep(
  source: readonly SnapshotRef[],
  target: readonly SnapshotRef[],
): { readonly name: string; readonly parent: string | null } {
  return { name: nextSnapshotName({ source, target }), parent: commonBase({ source, target })?.name ?? null };
}

/** The data-node marker the control service recorded at the last move, and the user's opt-in to start empty over it. */
export function dataNodeSettings(
  metadata: Readonly<Record<string, string>>,
): Pick<LocalDesiredDataset, 'dataNode' | 'acceptDataLoss' | 'acceptedLossFrom'> {
  const node = metadata[METADATA_DATA_NODE_KEY]?.trim();
  const lossFrom = acceptedLossNodes(metadata[METADATA_ACCEPTED_LOSS_FROM_KEY]);
  return {
    ...(node !== undefined && node !== '' ? { dataNode: node } : {}),
    ...(metadata[METADATA_ACCEPT_DATA_LOSS_KEY]?.trim() === 'true' ? { acceptDataLoss: true } : {}),
    ...(lossFrom.length > 0 ? { acceptedLossFrom: lossFrom } : {}),
  };
}

/** The datasets `nodeUuid` holds a lease on in the snapshot (live leases: the service lists no other). */
export function leasedHere(snapshot: ClusterSnapshot, nodeUuid: string): Set<string> {
  const out = new Set<string>();
  for (const l of snapshot.leases) if (l.node_uuid === nodeUuid) out.add(l.dataset_id);
  return out;
}

/** The datasets as the decision takes them, from a whole snapshot or a node's view. */
export function localDesired(snapshot: ClusterSnapshot): LocalDesiredDataset[] {
  return snapshot.datasets.map((d) => ({
    datasetId: d.dataset_id,
    primary: d.primary,
    maximumSize: d.maximum_size ?? null,
    deleted: d.deleted,
    ...replicaSettings(d.metadata),
    ...dataNodeSettings(d.metadata),
    ...(d.source_snapshot_id !== undefined
      ? { fill: 'clone' as const }
      : d.source_backup !== undefined && d.source_backup.restored !== true
        ? { fill: 'restore' as const }
        : {}),
  }));
}

/**
 * The local nodes as the decision takes them, sorted by uuid. From a local node's view (issue 24:
 * `peers` present, @flocker/api localViewOf): every peer, with the copies listed of the nodes whose
 * states the view shows (its datasets' holders and primaries) and counted for the others. From a
 * whole snapshot: every local node's state. Nodes of other backends are never a replica's node
 * (they run no transfer listener).
 */
export function localClusterNodes(snapshot: ClusterSnapshot): LocalClusterNode[] {
  const states = new Map(snapshot.nodes.filter((n) => isLocalBackend(n.backend)).map((n) => [n.uuid, n]));
  // The states' namings indexed in one pass, not one pass per node: a decision stays linear in the local nodes.
  const named = namingsInStates(snapshot);
  const out: LocalClusterNode[] = [];
  if (snapshot.peers !== undefined) {
    const peers = new Map(snapshot.peers.map((p) => [p.uuid, p]));
    for (const uuid of new Set([...peers.keys(), ...states.keys()])) {
      const p = peers.get(uuid);
      const n = states.get(uuid);
      out.push({
        uuid,
        host: n?.host ?? p?.host ?? '',
        alive: n?.alive ?? p?.alive ?? false,
        copies: n?.manifestations.map((m) => m.dataset_id) ?? [],
        ...(n === undefined ? { copyCount: p?.copies ?? 0 } : {}),
        replicaOf: p?.replica_of ?? named(uuid),
      });
    }
  } else
    for (const n of states.values())
      out.push({
        uuid: n.uuid,
        host: n.host,
        alive: n.alive,
        copies: n.manifestations.map((m) => m.dataset_id),
        replicaOf: named(n.uuid),
      });
  return out.sort((a, b) => (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0));
}

/**
 * The datasets this pool keeps a standby replica of that no primary's report names here any more:
 * the control service keeps reports in memory, so after its restart the namings of a primary not
 * reported again (dead, or not yet) are gone. A dataset moved here (this node its primary) with the
 * data-node marker naming another node, asking for a replica, of which this pool holds only received
 * snapshots (`receivedOnly`), is taken for one: promoted only with accept-replica-loss and
 * accept-data-loss (decide: the marked node may be alive with newer writes), and named in the refusal.
 */
export function markedReplicasHere(
  snapshot: ClusterSnapshot,
  nodeUuid: string,
  receivedOnly: ReadonlySet<string>,
): string[] {
  if (receivedOnly.size === 0) return [];
  const out: string[] = [];
  for (const d of snapshot.datasets) {
    if (d.deleted || d.primary !== nodeUuid || !receivedOnly.has(d.dataset_id)) continue;
    const { dataNode } = dataNodeSettings(d.metadata);
    if (dataNode !== undefined && dataNode !== nodeUuid && (replicaSettings(d.metadata).replicas ?? 0) >= 1)
      out.push(d.dataset_id);
  }
  return out.sort();
}

/** The datasets whose standby replica a primary (alive or dead) names on node: its peer entry, else the states' reports. */
export function replicasNamedOn(snapshot: ClusterSnapshot, node: string): string[] {
  const peer = snapshot.peers?.find((p) => p.uuid === node);
  if (peer !== undefined) return [...peer.replica_of];
  return [
    ...new Set(
      snapshot.nodes.flatMap((n) => (n.replicas ?? []).filter((r) => r.node_uuid === node).map((r) => r.dataset_id)),
    ),
  ].sort();
}

/** The replicas the states' reports name on each node (replicasNamedOn without a peer entry), indexed on first use. */
function namingsInStates(snapshot: ClusterSnapshot): (node: string) => string[] {
  let on: Map<string, Set<string>> | undefined;
  return (node) => {
    if (on === undefined) {
      on = new Map();
      for (const n of snapshot.nodes)
        for (const r of n.replicas ?? []) {
          const held = on.get(r.node_uuid) ?? new Set<string>();
          held.add(r.dataset_id);
          on.set(r.node_uuid, held);
        }
    }
    return [...(on.get(node) ?? [])].sort();
  };
}

/**
 * What this node does, from a whole snapshot or its local view (issue 24): the same actions from
 * both (LocalAgent.equivalence.test), since the view carries every dataset and node state an action
 * can depend on (@flocker/api localViewOf).
 */
export function localActions(
  snapshot: ClusterSnapshot,
  here: LocalObservation,
  ctx: LocalDecisionContext,
): LocalAction[] {
  return calculateLocalChanges(localDesired(snapshot), localClusterNodes(snapshot), here, ctx);
}

/**
 * Whether this node's transfer listener takes a dataset's data from `peer`, as the snapshot or
 * view held says: it is the dataset's primary (a move to it), or `peer` is the primary and the
 * dataset asks for a standby replica (a replica round; never a promote: the primary sends none).
 */
export function mayReceiveFrom(
  snapshot: ClusterSnapshot | null,
  nodeUuid: string,
  datasetId: string,
  peer: string,
  /** This node holds a live copy of the dataset: no replica round beside it (an old primary back, not let go of yet). */
  liveHere = false,
): boolean {
  return (
    snapshot?.datasets.some(
      (d) =>
        d.dataset_id === datasetId &&
        !d.deleted &&
        (d.primary === nodeUuid ||
          (!liveHere && d.primary === peer && (replicaSettings(d.metadata).replicas ?? 0) >= 1)),
    ) === true
  );
}

/** Whether the replica this node keeps of a dataset is still its to keep: the dataset's live primary here, a replica asked for. */
export function keepsReplica(snapshot: ClusterSnapshot, nodeUuid: string, datasetId: string): boolean {
  const d = snapshot.datasets.find((x) => x.dataset_id === datasetId);
  return d !== undefined && !d.deleted && d.primary === nodeUuid && replicaSettings(d.metadata).replicas !== 0;
}

/**
 * How a local node takes a snapshot its follower adopted (`view`: a node's view, not a whole
 * snapshot): 'local' a local view (peers), 'narrow' a view from a service that does not know this
 * node as a local one yet (before its first report: a turn on it needs no other node), 'older' a
 * view from a service without local views (it knows the node as local and gives no peers: follow
 * whole snapshots), 'whole' a whole snapshot.
 */
export function viewKind(
  snapshot: ClusterSnapshot,
  nodeUuid: string,
  view: boolean,
): 'local' | 'narrow' | 'older' | 'whole' {
  if (!view) return 'whole';
  if (snapshot.peers !== undefined) return 'local';
  const own = snapshot.nodes.find((n) => n.uuid === nodeUuid);
  return own !== undefined && isLocalBackend(own.backend) ? 'older' : 'narrow';
}

/** What the agent keeps of a dataset's failed action between turns (the rest is its report's). */
export interface LocalFailureRecord {
  readonly action: LocalAction['kind'];
  /** When the action may be tried again (the agent's clock, ms). */
  readonly retryAt: number;
}

/**
 * A turn's failure book-keeping (issue 24). A failure is about the action that failed: once the
 * turn's decision for its dataset has no action of that kind (the dataset needs nothing here any
 * more — moved away, deleted, its copy gone — or needs something else, like a refusal) it is
 * forgotten, so a stale error never stands in the report for what the node does now. A move or a
 * replica send still running keeps it (its own outcome ends it). An action waits out the back-off of
 * a failure of the same kind; a refusal never waits: it touches no storage.
 */
export function failureSteps(
  actions: readonly LocalAction[],
  failures: ReadonlyMap<string, LocalFailureRecord>,
  now: number,
  running: ReadonlySet<string>,
): { readonly due: LocalAction[]; readonly forget: string[] } {
  const decided = new Map(actions.map((a) => [a.datasetId, a.kind]));
  const forget = [...failures]
    .filter(([datasetId, f]) => decided.get(datasetId) !== f.action && !running.has(datasetId))
    .map(([datasetId]) => datasetId);
  const gone = new Set(forget);
  const due = actions.filter((a) => {
    const f = gone.has(a.datasetId) ? undefined : failures.get(a.datasetId);
    return a.kind === 'refuse' || f === undefined || f.retryAt <= now;
  });
  return { due, forget };
}
