/**
 * The storage driver interface, modelled on what cloud block storage offers
 * (EBS, Cinder): volumes live in a shared pool and are attached to one compute
 * instance at a time. The dataset agent is written against this only.
 */

export interface BlockDeviceVolume {
  /** The backend's id of the volume (EBS vol-…, Cinder UUID, loopback UUID). */
  readonly blockdeviceId: string;
  /** Size in bytes, a multiple of allocationUnit(). */
  readonly size: number;
  /** Compute instance id the volume is attached to, or null. */
  readonly attachedTo: string | null;
  /** The dataset this volume holds. */
  readonly datasetId: string;
  /** Storage profile asked for at creation, if any. */
  readonly profile?: string;
}

export interface CreateVolumeOptions {
  readonly profile?: string;
  /**
   * Refuse (DATASET_HAS_VOLUME) when the pool holds a volume of the dataset already — checked
   * together with the create where the backend can (loopback: under the pool lock), so two hosts
   * that both decided to create a dataset's volume never make two. Without it, a create always
   * makes a new volume (the contract's "its own id, even for the same dataset").
   */
  readonly onlyVolume?: boolean;
}

/**
 * A volume the pool has but cannot describe (its record is unreadable: torn,
 * not JSON, malformed). listVolumes() leaves it out; it is NOT "no volume":
 * its dataset may well have its data in it, so nothing may create another
 * volume for that dataset, nor take over a mount of its device.
 */
export interface VolumeProblem {
  readonly code: 'CORRUPT_RECORD';
  readonly blockdeviceId: string;
  /** The dataset, when what is left of the record still names one. */
  readonly datasetId?: string;
  /** Loop devices (loopback) still serving the volume's image on this kernel. */
  readonly devices?: readonly string[];
  readonly message: string;
}

/** listPool(): the volumes, and what could not be read. */
export interface PoolListing {
  readonly volumes: BlockDeviceVolume[];
  readonly problems: VolumeProblem[];
}

/** What a pool says about itself (loopback: `<root>/pool.json`). */
export interface PoolIdentity {
  /** The cluster the pool belongs to; null for a cluster without an identity (plain HTTP, no cluster_id). */
  readonly clusterId: string | null;
  /** ISO 8601 time the pool was first claimed. */
  readonly created: string;
  /** The pool's own id (its storage zone, see storageZone); absent in a pool.json written before it existed. */
  readonly poolId?: string;
}

/**
 * A point-in-time copy of a volume, kept by the backend (issue 20). Keyed by the Flocker
 * snapshot id (a UUID the control service assigns), which the backend records with it
 * (loopback: in its record; EBS: a tag; Cinder: metadata), so every call is idempotent.
 */
export interface BlockDeviceSnapshot {
  /** The Flocker snapshot id (lower-case UUID). */
  readonly snapshotId: string;
  /** The backend's own id (EBS snap-…, Cinder UUID, loopback: the snapshot id). */
  readonly backendId: string;
  /** The dataset the snapshot was taken of. */
  readonly datasetId: string;
  /** The volume it was taken of (it may since have been destroyed). */
  readonly sourceBlockdeviceId: string;
  /** Size in bytes of the volume at the time (a clone is at least this big). */
  readonly size: number;
  /** ISO 8601 time the backend took it. */
  readonly createdAt: string;
  /**
   * creating: taken (the point in time is fixed) but not yet usable for a clone (EBS
   * "pending"); ready: usable; error: the backend failed it (destroy it and take another).
   */
  readonly status: 'creating' | 'ready' | 'error';
}

export interface SnapshotOptions {
  /**
   * Called once the point in time is fixed, before createSnapshot returns, where the driver
   * has more to do after that (loopback: make the copy durable, rename it, write its record):
   * the caller thaws the file system it froze then, so the frozen window is the copy only.
   */
  readonly pointInTimeFixed?: () => Promise<void>;
}

export interface DetachOptions {
  /**
   * Detach even though the instance holding it is not the caller (the holder is
   * declared dead). The driver must make sure the old holder can no longer write.
   */
  readonly force?: boolean;
}

export interface BlockDeviceApi {
  /** Short name of the backend, e.g. "loopback". */
  readonly backend: string;
  /** Sizes are rounded up to a multiple of this many bytes. */
  allocationUnit(): number;
  /** This node's compute instance id in the backend's terms. */
  computeInstanceId(): Promise<string>;
  createVolume(datasetId: string, size: number, options?: CreateVolumeOptions): Promise<BlockDeviceVolume>;
  /** Fails with VOLUME_ATTACHED while attached. */
  destroyVolume(blockdeviceId: string): Promise<void>;
  /** Fails with ALREADY_ATTACHED if attached anywhere, including to instanceId itself. */
  attachVolume(blockdeviceId: string, instanceId: string): Promise<BlockDeviceVolume>;
  /**
   * Fails with UNATTACHED if not attached; without force, with NOT_ATTACHED_HERE
   * if attached to another instance, and with DEVICE_BUSY while still in use.
   */
  detachVolume(blockdeviceId: string, options?: DetachOptions): Promise<void>;
  /**
   * Optional: detachVolume (unforced) then destroyVolume as one operation (loopback: one lock hold and one device
   * scan, no detached record written in between). A volume not attached is only destroyed; one attached to another
   * instance fails with NOT_ATTACHED_HERE, one still in use with DEVICE_BUSY (both leave it as it was); an unknown
   * one with UNKNOWN_VOLUME. Absent: the caller makes the two calls.
   */
  detachAndDestroyVolume?(blockdeviceId: string): Promise<void>;
  /** Every readable volume; a volume whose record cannot be read is left out (see listPool). */
  listVolumes(): Promise<BlockDeviceVolume[]>;
  /**
   * Present where a volume can be unreadable on its own (loopback: a corrupt
   * record): the volumes and, separately, the problems. One bad volume never
   * makes the whole listing fail.
   */
  listPool?(): Promise<PoolListing>;
  /**
   * The largest volume (bytes, a multiple of allocationUnit()) this backend can
   * create, or undefined when unknown. createVolume and resizeVolume refuse
   * larger sizes with INVALID_SIZE.
   */
  maximumVolumeSize?(): Promise<number | undefined>;
  /**
   * Present where the pool itself carries the cluster's identity (loopback;
   * EBS and Cinder filter every call by their configured cluster_id instead).
   * Null while the pool has not been claimed by any cluster.
   */
  poolIdentity?(): Promise<PoolIdentity | null>;
  /**
   * Claims an unclaimed pool for a cluster (atomically, under the pool's lock)
   * and answers the pool's identity: the one just written, or the one found
   * (possibly another cluster's: the caller compares).
   */
  claimPool?(clusterId: string | null): Promise<PoolIdentity>;
  /**
   * The storage zone this node is in: the nodes of one zone can each attach every volume
   * created in it (volumes move within a zone without copying). Loopback: the pool's id;
   * EBS: the availability zone; Cinder: the configured availability zone. Undefined when
   * unknown (then every node is taken to reach every volume).
   */
  storageZone?(): Promise<string | undefined>;
  /**
   * Free capacity (bytes) of the backend where it has a real figure (loopback: free bytes of
   * the pool's file system); undefined otherwise. Volumes may be thin: it bounds new data, not sizes.
   */
  availableBytes?(): Promise<number | undefined>;
  /**
   * The local device path of a volume attached to this instance. Fails with
   * UNATTACHED if not attached, NOT_ATTACHED_HERE if attached to another instance.
   */
  getDevicePath(blockdeviceId: string): Promise<string>;
  /** Present where the backend can grow volumes. */
  resizeVolume?(blockdeviceId: string, size: number): Promise<BlockDeviceVolume>;
  /**
   * Present where a force detach leaves something behind on this kernel that
   * must wait until the old holder lets go (loopback: the fenced loop device
   * and the frozen copy of its image). Releases what no longer is in use:
   * detaches such devices once nothing has them mounted, and removes images
   * no device uses any more; anything still in use is left alone. Safe to call
   * at any time (the agent calls it after unmounting stale mounts). Returns
   * the devices detached and the files removed.
   */
  releaseFenced?(): Promise<{ devices: string[]; images: string[] }>;
  /**
   * Snapshots (issue 20); present together on backends that have them. The caller makes
   * the copy crash-consistent: it freezes a mounted file system (fsfreeze) around
   * createSnapshot, so the point in time must be fixed when createSnapshot returns (the
   * backend may finish copying later: status "creating").
   *
   * createSnapshot: idempotent by snapshotId (taken already: that one is answered, even if
   * the source has since changed). Fails with UNKNOWN_VOLUME for an unknown source.
   */
  createSnapshot?(blockdeviceId: string, snapshotId: string, options?: SnapshotOptions): Promise<BlockDeviceSnapshot>;
  /** Every snapshot of this cluster the backend holds (on a shared backend every node sees all). */
  listSnapshots?(): Promise<BlockDeviceSnapshot[]>;
  /** Idempotent: an unknown snapshot is gone already. Snapshots outlive their source volume. */
  destroySnapshot?(snapshotId: string): Promise<void>;
  /**
   * A new volume for datasetId holding the snapshot's data (the file system included: the
   * caller must not format it; it grows the file system when size is larger). Fails with
   * UNKNOWN_SNAPSHOT, SNAPSHOT_NOT_READY while it is "creating", INVALID_SIZE when size is
   * below the snapshot's size. Idempotent as createVolume is (the caller looks for a volume
   * of datasetId first).
   */
  createVolumeFromSnapshot?(
    snapshotId: string,
    datasetId: string,
    size: number,
    options?: CreateVolumeOptions,
  ): Promise<BlockDeviceVolume>;
  /**
   * The snapshot's data readable on this host (issue 20: backups read it): a path to a file or
   * block device that does not change while it is open, its size, and release() to call when
   * done. Present where the backend can do it (loopback: the snapshot's read-only image file; EBS,
   * Cinder: a temporary volume made from it, attached here, never in listVolumes, deleted by release;
   * a crash's leftover is adopted or removed by a later open: see the storage-drivers README).
   * Fails with UNKNOWN_SNAPSHOT.
   */
  openSnapshot?(snapshotId: string): Promise<OpenedSnapshot>;
}

/** See BlockDeviceApi.openSnapshot. */
export interface OpenedSnapshot {
  readonly path: string;
  readonly size: number;
  release(): Promise<void>;
}

export type StorageErrorCode =
  | 'UNKNOWN_VOLUME'
  | 'ALREADY_ATTACHED'
  | 'UNATTACHED'
  | 'VOLUME_ATTACHED'
  | 'NOT_ATTACHED_HERE'
  | 'INVALID_SIZE'
  /** The device is in use (e.g. mounted), so it cannot be detached or changed now. */
  | 'DEVICE_BUSY'
  /** A filesystem already exists on the device; refusing to overwrite it. */
  | 'FILESYSTEM_EXISTS'
  /** A volume's record in the pool cannot be read (see VolumeProblem). */
  | 'CORRUPT_RECORD'
  /** The dataset has a volume already (another host made it meanwhile): a create makes no second one. */
  | 'DATASET_HAS_VOLUME'
  /** No snapshot with that id (issue 20). */
  | 'UNKNOWN_SNAPSHOT'
  /** The snapshot exists but cannot be cloned yet (EBS "pending"). */
  | 'SNAPSHOT_NOT_READY'
  | 'BACKEND_ERROR';

/** Errors from drivers carry a stable code the agent decides on. */
export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    readonly blockdeviceId?: string,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}

export function isStorageError(e: unknown, code?: StorageErrorCode): e is StorageError {
  return e instanceof StorageError && (code === undefined || e.code === code);
}

/** Round a requested size up to the backend's allocation unit. */
export function roundUpToUnit(size: number, unit: number): number {
  return Math.ceil(size / unit) * unit;
}
