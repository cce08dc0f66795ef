/**
 * Local storage (issue 24): each dataset lives on the node's own pool (a btrfs file system or a
 * ZFS pool), not in a shared pool every node can attach. Nothing here is a block device that
 * can be attached elsewhere, so this is not a BlockDeviceApi: a move is a data transfer
 * (snapshot, send, receive), see LocalMover. The engines (btrfs, ZFS) implement this interface.
 */
import type { Readable } from 'node:stream';
import { StorageError } from '../BlockDeviceApi';

export type LocalEngineName = 'btrfs' | 'zfs';

/** A dataset's live, writable copy on this node's pool. */
export interface LocalDataset {
  readonly datasetId: string;
  /** The enforced size limit in bytes (btrfs qgroup max referenced, ZFS refquota); null when none is set yet. */
  readonly size: number | null;
  /** Bytes the dataset refers to now (qgroup referenced, ZFS referenced). */
  readonly usedBytes: number;
}

/** A read-only snapshot of a dataset, taken here or received from another node. */
export interface LocalSnapshot {
  readonly datasetId: string;
  /** The snapshot's name, the same on every node that holds it (the stream carries it). */
  readonly name: string;
  /**
   * The identity that is equal on the sender and on every receiver of this snapshot: btrfs, the
   * sender's subvolume UUID (a receiver's received_uuid); ZFS, the snapshot's guid. The integrity
   * check compares it after a receive, and the mover finds the newest snapshot both sides share by it.
   */
  readonly identity: string;
  /** Whether it was received (true) or taken here (false). */
  readonly received: boolean;
}

/**
 * What a live copy is made from (issue 24: two live copies after a double fault are ordered by it,
 * never by which node is the primary). Snapshot identities as LocalSnapshot.identity.
 */
export interface CopyLineage {
  /** The snapshot the live copy was promoted from; null: made here (created), or not known. */
  readonly from: string | null;
  /** A snapshot whose content the live copy still is (not written since); null: written since, or not known. */
  readonly sameAs: string | null;
  /** The identities of the dataset's snapshots this pool holds, oldest first. */
  readonly snapshots: readonly string[];
}

/** A send in progress: the stream to forward, and the process's outcome. */
export interface SendStream {
  readonly stream: Readable;
  /** Resolves when the sending process exited 0; rejects with its stderr otherwise. */
  readonly done: Promise<void>;
  /** Stops the send (the stream ends with an error). */
  readonly abort: () => void;
}

/** A copy kept aside (LocalEngine.keepAside): its dataset and where it is on the pool. */
export interface KeptAsideCopy {
  readonly datasetId: string;
  /** btrfs: the read-only subvolume's path; ZFS: the file system's name. */
  readonly path: string;
}

export interface LocalEngine {
  readonly engine: LocalEngineName;
  /** The pool, as agent.yml names it (btrfs: a path; ZFS: a pool or file system name). */
  readonly pool: string;
  /** Checks the pool and makes what the engine keeps there (btrfs: directories, quotas on). Idempotent. */
  prepare(): Promise<void>;
  listDatasets(): Promise<LocalDataset[]>;
  /**
   * Datasets this pool keeps something of without a live copy (snapshots kept after a move away, a
   * retired ZFS file system, a received snapshot not promoted, a receive not finished): what a deleted
   * dataset's destroy removes.
   */
  listRetained(): Promise<string[]>;
  /** Idempotent: an existing dataset gets its limit (again). */
  createDataset(datasetId: string, size: number): Promise<LocalDataset>;
  resizeDataset(datasetId: string, size: number): Promise<void>;
  /**
   * The dataset and every snapshot of it, and its copies kept aside (keepAside) unless keepAsides
   * (a let-go after a move away: an aside is kept until the dataset is deleted). Fails with
   * DEVICE_BUSY while mounted; unknown: done already.
   */
  destroyDataset(datasetId: string, o?: { keepAsides?: boolean }): Promise<void>;
  /**
   * After a move away: the live copy here is not the primary one any more. btrfs deletes it (the
   * final snapshot stays, the base of a move back); ZFS makes it read-only (its snapshots are
   * part of it). DEVICE_BUSY while mounted in any mount namespace (a container's); idempotent;
   * done once on the pool (btrfs: the delete committed, else it could come back after a power cut).
   * unchangedSince (review RV4 finding 1): the snapshot the copy must still equal, checked inside the
   * retire, after its scan, right before the delete (btrfs) or once read-only (ZFS); changed (a writer
   * no scan saw): SourceChangedAfterPromoteError, the copy stays live and writable.
   */
  retire(datasetId: string, o?: { readonly unchangedSince?: string }): Promise<void>;
  /** Where the dataset is mounted on this host (bind mounts, legacy mounts). */
  mountPoints(datasetId: string): Promise<string[]>;
  /**
   * Whether anything on this host still has the dataset mounted, in any mount namespace (a
   * container's bind mount outlives the host's unmount): the release a move's phase 2 waits for.
   */
  inUse(datasetId: string): Promise<boolean>;
  /** Idempotent; DEVICE_BUSY when something else is mounted at mountPath. */
  mount(datasetId: string, mountPath: string): Promise<void>;
  /** Idempotent: not mounted there, nothing to do. */
  unmount(mountPath: string): Promise<void>;
  /** A read-only snapshot of the live dataset; idempotent by name. */
  createSnapshot(datasetId: string, name: string): Promise<LocalSnapshot>;
  /** The complete snapshots of the dataset, oldest first (a partial receive is not one). */
  listSnapshots(datasetId: string): Promise<LocalSnapshot[]>;
  /** Idempotent. */
  destroySnapshot(datasetId: string, name: string): Promise<void>;
  /** The snapshot as a stream: whole, or the difference from parent (a snapshot the receiver has). */
  send(datasetId: string, name: string, parent: string | null): SendStream;
  /**
   * Applies a stream made by send(). The result counts only if the engine accepted the whole
   * stream and the snapshot it made has the sender's identity; otherwise whatever it left is
   * removed and the call fails (TRANSFER_FAILED, INTEGRITY): a partial copy never stays.
   */
  receive(datasetId: string, name: string, identity: string, stream: Readable): Promise<LocalSnapshot>;
  /**
   * Writes out what receives of the dataset left in memory, and resolves once it is on the pool.
   * The mover asks for it after a send while the source is still in use, so the final receive
   * (which, on btrfs, first writes out its parent) does not do it inside the unavailable window.
   * Optional: an engine whose receive needs no such step (ZFS) leaves it out.
   */
  settle?(datasetId: string): Promise<void>;
  /**
   * Makes the received snapshot the live dataset here (the move's last step on the target);
   * idempotent. A live copy made from anything else is never replaced (PEER_REFUSED): it is data
   * of this node's, written since it was made.
   */
  promote(datasetId: string, name: string, size: number): Promise<LocalDataset>;
  /**
   * Whether the live copy was changed since its snapshot `name` (review RV 2): a move asks right
   * before its first promote, so that a writer the namespace scan missed, which wrote after the
   * final snapshot and ended before the look at the release, cannot have its writes left behind.
   * What was written before the call is committed first (a write() returned counts). true: changed
   * (an atime update by a read counts too: one more round, never a loss), or the snapshot is gone;
   * false: not changed since; null: this engine cannot tell (zfs-fuse: no `written`). Never false
   * after a change. Optional (a test engine): absent, not known.
   */
  changedSince?(datasetId: string, name: string): Promise<boolean | null>;
  /**
   * The live copy's lineage; null: no live copy here. Anything not known is null (never a guess):
   * the agent then neither mounts nor retires a copy another node also holds live. Optional (a
   * test engine): absent, nothing is known.
   */
  lineage?(datasetId: string): Promise<CopyLineage | null>;
  /**
   * Before a retire of a copy holding writes the primary's copy never got (an old primary back after
   * its replica was promoted with accept-replica-loss): a read-only copy of it out of the dataset's
   * listings (never a snapshot of it, a live copy or a replica: no decision sees it), removed with
   * the dataset. Answers where it is. Idempotent (one per live copy). Optional (a test engine):
   * absent, the retire goes on without it.
   */
  keepAside?(datasetId: string): Promise<string>;
  /**
   * The copies kept aside on this pool (keepAside) and where they are, by dataset id: writes the
   * primary's copy lacks, which the agent reports so that the user learns of them. Optional (a test engine).
   */
  listKeptAside?(): Promise<KeptAsideCopy[]>;
  /**
   * The pool's capacity as a node reports it: free bytes (what new data may still take; sizes are
   * limits, not reservations). Optional (a test engine).
   */
  availableBytes?(): Promise<number>;
}

export type LocalErrorCode =
  /** The pool is not what agent.yml says (not btrfs, no such ZFS pool), or a tool is missing. */
  | 'POOL_UNAVAILABLE'
  | 'UNKNOWN_DATASET'
  | 'UNKNOWN_SNAPSHOT'
  /** The receiving engine refused or did not finish the stream (truncated, corrupt, cut off). */
  | 'TRANSFER_FAILED'
  /** The stream was applied but what it made is not the sender's snapshot (or the stream's digest differs). */
  | 'INTEGRITY'
  /** The peer node refused a request or is not the node it should be. */
  | 'PEER_REFUSED'
  /** The source's live copy is unreachable (its node is dead): its data cannot be moved. */
  | 'SOURCE_UNREACHABLE'
  /**
   * A retire refused: the copy was written after the snapshot the new primary's copy was made from
   * (SourceChangedAfterPromoteError). The transfer itself succeeded; what a move reports as the
   * SOURCE_WRITTEN_UNSEEN warning while it still copies on, found once it could not.
   */
  | 'SOURCE_CHANGED';

export class LocalStorageError extends Error {
  constructor(
    readonly code: LocalErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'LocalStorageError';
  }
}

/**
 * The peer could not be reached, or its connection dropped or went silent (refused, reset, timed
 * out): nothing the peer said about the data. A mover waits for such a peer longer than it
 * retries other failures (see LocalMoveOptions.maxUnreachableMs).
 */
export class ConnectionLostError extends LocalStorageError {
  constructor(message: string) {
    super('TRANSFER_FAILED', message);
  }
}

export function isLocalStorageError(e: unknown, code?: LocalErrorCode): e is LocalStorageError {
  return e instanceof LocalStorageError && (code === undefined || e.code === code);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * A retire refused because the copy changed since the snapshot it must equal (retire's unchangedSince):
 * it holds writes the new primary's copy lacks. Not retried by a move; the agent's lineage decision
 * takes it from there (TWO_LIVE_COPIES).
 */
export class SourceChangedAfterPromoteError extends LocalStorageError {
  constructor(message: string) {
    super('SOURCE_CHANGED', message);
  }
}

/** Dataset ids and snapshot names become path components and command arguments: only safe ones. */
export function checkDatasetId(datasetId: string): void {
  if (!UUID.test(datasetId)) throw new LocalStorageError('UNKNOWN_DATASET', `"${datasetId}" is not a dataset id`);
}

/** Whether name is a snapshot name this engine makes and takes (checkSnapshotName, and names found on a pool). */
export function isSnapshotName(name: string): boolean {
  return SNAPSHOT_NAME.test(name);
}

export function checkSnapshotName(name: string): void {
  if (!isSnapshotName(name)) throw new LocalStorageError('UNKNOWN_SNAPSHOT', `"${name}" is not a snapshot name`);
}

/**
 * retire's refusal (DEVICE_BUSY) while anything has the copy mounted, in any mount namespace (a
 * container's mount outlives the host's unmount): the rule both engines' retire share.
 */
export async function refuseRetireInUse(
  engine: Pick<LocalEngine, 'inUse' | 'mountPoints'>,
  datasetId: string,
): Promise<void> {
  if (!(await engine.inUse(datasetId))) return;
  const mounted = await engine.mountPoints(datasetId);
  throw new StorageError(
    'DEVICE_BUSY',
    `dataset ${datasetId} is mounted ${mounted.length > 0 ? `at ${mounted.join(', ')}` : 'in another mount namespace (a container)'}`,
  );
}
