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
  listVolumes(): Promise<BlockDeviceVolume[]>;
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
