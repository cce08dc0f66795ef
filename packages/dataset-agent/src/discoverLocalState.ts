/** Observation: the pool as the driver lists it, plus devices, filesystems and mounts of this host. */
import { basename, dirname } from 'node:path';
import type { BlockDeviceApi, BlockDeviceVolume } from '@flocker/storage-drivers';
import type { HostMount, HostOps } from './HostOps';
import type { DiscoveredVolume, LocalState, StrayMount } from './LocalState';

export interface DiscoverOptions {
  readonly driver: BlockDeviceApi;
  readonly host: HostOps;
  readonly instanceId: string;
  /**
   * Device details are gathered for this dataset's volumes only (and only those
   * are returned): a cheap, fresh look before each step of one dataset.
   */
  readonly onlyDataset?: string;
  /** Lists the pool; default driver.listVolumes (the agent shares concurrent listings). */
  readonly listVolumes?: () => Promise<BlockDeviceVolume[]>;
  /** Datasets whose volumes are listed without device details (no device is touched for them). */
  readonly noDetails?: ReadonlySet<string>;
  /**
   * Volumes known to hold nothing (created by this process and never formatted):
   * reported without a filesystem without probing. Only ever leads to a format
   * action, and makeFilesystem itself refuses to format over anything it finds.
   */
  readonly knownBlank?: (blockdeviceId: string) => boolean;
  /**
   * Volumes known to hold a file system (issue 23: seen holding one by this process, see
   * DatasetWorker.formatted): reported with one without probing. Only ever keeps a format
   * away, which is the safe side: a mount of a volume wiped by hand since fails.
   */
  readonly knownFormatted?: (blockdeviceId: string) => boolean;
  /**
   * With it (and without onlyDataset), mounts at <mountRoot>/<dataset> of a device
   * that is no volume attached here are returned as strayMounts: what is left of a
   * volume this node lost (fenced, moved away while it was cut off).
   */
  readonly mountRoot?: string;
  /**
   * List the backend's snapshots too (issue 20; drivers that have them). A failed listing
   * leaves LocalState.snapshots absent (no snapshot decided on), never fails the look.
   */
  readonly withSnapshots?: boolean;
  /** Told of a failed snapshot listing. */
  readonly onSnapshotListFailed?: (err: unknown) => void;
  /** Given the mount table this look read (the agent finds mounts gone read-only in it: readOnlyMounts). */
  readonly onMounts?: (mounts: readonly HostMount[]) => void;
}

export async function discoverLocalState(o: DiscoverOptions): Promise<LocalState> {
  const { driver, host, instanceId, onlyDataset } = o;
  const noDetails = o.noDetails ?? new Set<string>();
  const knownBlank = o.knownBlank ?? (() => false);
  const knownFormatted = o.knownFormatted ?? (() => false);
  const [all, mounts, snapshots] = await Promise.all([
    (o.listVolumes ?? (() => driver.listVolumes()))(),
    host.listMounts(),
    o.withSnapshots === true && driver.listSnapshots !== undefined
      ? driver.listSnapshots().catch((err: unknown) => {
          o.onSnapshotListFailed?.(err);
          return undefined;
        })
      : undefined,
  ]);
  o.onMounts?.(mounts);
  const volumes = onlyDataset === undefined ? all : all.filter((v) => v.datasetId === onlyDataset);
  const discovered = await Promise.all(
    volumes.map(async (v): Promise<DiscoveredVolume> => {
      const base = {
        blockdeviceId: v.blockdeviceId,
        datasetId: v.datasetId,
        size: v.size,
        attachedTo: v.attachedTo,
        ...(v.profile !== undefined ? { profile: v.profile } : {}),
      };
      if (v.attachedTo !== instanceId || noDetails.has(v.datasetId)) return base;
      let devicePath: string;
      try {
        devicePath = await driver.getDevicePath(v.blockdeviceId);
      } catch {
        return base; // device unknown: the decision waits, the next observation retries
      }
      const number = await host.deviceNumber(devicePath);
      const mountPoints = mountPointsOf(devicePath, number, mounts);
      // A mounted device has a filesystem; only probe the others (blkid costs a process).
      let hasFilesystem: boolean | undefined =
        mountPoints.length > 0
          ? true
          : knownBlank(v.blockdeviceId)
            ? false
            : knownFormatted(v.blockdeviceId)
              ? true
              : undefined;
      if (hasFilesystem === undefined) {
        try {
          hasFilesystem = await host.hasFilesystem(devicePath);
        } catch {
          hasFilesystem = undefined; // never guess "empty": that would lead to mkfs over data
        }
      }
      if (hasFilesystem === undefined)
        return { ...base, devicePath, ...(number !== null ? { deviceNumber: number } : {}) };
      const filesystem = mountedFilesystemOf(devicePath, number, mounts);
      return {
        ...base,
        devicePath,
        hasFilesystem,
        mountPoints,
        ...(filesystem !== undefined ? { filesystem } : {}),
        ...(number !== null ? { deviceNumber: number } : {}),
      };
    }),
  );
  const strayMounts =
    o.mountRoot !== undefined && onlyDataset === undefined
      ? findStrayMounts(o.mountRoot, mounts, discovered, instanceId, noDetails)
      : [];
  return {
    instanceId,
    volumes: discovered,
    ...(strayMounts.length > 0 ? { strayMounts } : {}),
    ...(snapshots !== undefined ? { snapshots } : {}),
  };
}

function mountPointsOf(devicePath: string, number: string | null, mounts: readonly HostMount[]): string[] {
  return mounts
    .filter((m) => m.device === devicePath || (number !== null && m.majorMinor === number))
    .map((m) => m.mountPoint)
    .sort();
}

/** The file system the device is mounted with (the mount table's type): ext4 or xfs, else undefined. */
function mountedFilesystemOf(
  devicePath: string,
  number: string | null,
  mounts: readonly HostMount[],
): 'ext4' | 'xfs' | undefined {
  const fstype = mounts.find((m) => m.device === devicePath || (number !== null && m.majorMinor === number))?.fstype;
  return fstype === 'ext4' || fstype === 'xfs' ? fstype : undefined;
}

/**
 * Pure: mounts directly under mountRoot whose device is none of the volumes
 * attached here. A dataset whose volume is attached here but whose device is not
 * known (or not looked at: noDetails) is left alone: its mount may be the real one.
 */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function findStrayMounts(
  mountRoot: string,
  mounts: readonly HostMount[],
  volumes: readonly DiscoveredVolume[],
  instanceId: string,
  noDetails: ReadonlySet<string> = new Set(),
): StrayMount[] {
  const root = mountRoot.replace(/\/+$/, '');
  const ours = volumes.filter((v) => v.attachedTo === instanceId);
  const unknown = new Set(
    ours.filter((v) => v.devicePath === undefined || noDetails.has(v.datasetId)).map((v) => v.datasetId),
  );
  const stray: StrayMount[] = [];
  for (const m of mounts) {
    if (dirname(m.mountPoint) !== root) continue;
    const datasetId = basename(m.mountPoint);
    // Only Flocker's own paths (<root>/<dataset uuid>); a dataset being worked on is its worker's.
    if (!UUID.test(datasetId) || unknown.has(datasetId) || noDetails.has(datasetId)) continue;
    const known = ours.some(
      (v) =>
        v.devicePath !== undefined &&
        (v.devicePath === m.device || (v.deviceNumber !== undefined && v.deviceNumber === m.majorMinor)),
    );
    if (!known) stray.push({ datasetId, mountPath: m.mountPoint, device: m.device });
  }
  return stray;
}
