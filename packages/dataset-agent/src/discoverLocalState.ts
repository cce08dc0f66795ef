/** Observation: the pool as the driver lists it, plus devices, filesystems and mounts of this host. */
import type { BlockDeviceApi, BlockDeviceVolume } from '@flocker/storage-drivers';
import type { HostMount, HostOps } from './HostOps';
import type { DiscoveredVolume, LocalState } from './LocalState';

/**
 * Observes the pool and this host. With onlyDataset, device details are gathered
 * for that dataset's volumes only (and only those are returned): a cheap,
 * fresh look before each step of one dataset.
 */
export async function discoverLocalState(
  driver: BlockDeviceApi,
  host: HostOps,
  instanceId: string,
  onlyDataset?: string,
  listVolumes: () => Promise<BlockDeviceVolume[]> = () => driver.listVolumes(),
  /** Datasets whose volumes are listed without device details (no device is touched for them). */
  noDetails: ReadonlySet<string> = new Set(),
  /**
   * Volumes known to hold nothing (created by this process and never formatted):
   * reported without a filesystem without probing. Only ever leads to a format
   * action, and makeFilesystem itself refuses to format over anything it finds.
   */
  knownBlank: (blockdeviceId: string) => boolean = () => false,
): Promise<LocalState> {
  const [all, mounts] = await Promise.all([listVolumes(), host.listMounts()]);
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
      const mountPoints = await mountPointsOf(host, devicePath, mounts);
      // A mounted device has a filesystem; only probe the others (blkid costs a process).
      let hasFilesystem: boolean | undefined = mountPoints.length > 0 ? true : knownBlank(v.blockdeviceId) ? false : undefined;
      if (hasFilesystem === undefined) {
        try {
          hasFilesystem = await host.hasFilesystem(devicePath);
        } catch {
          hasFilesystem = undefined; // never guess "empty": that would lead to mkfs over data
        }
      }
      return hasFilesystem === undefined ? { ...base, devicePath } : { ...base, devicePath, hasFilesystem, mountPoints };
    }),
  );
  return { instanceId, volumes: discovered };
}

async function mountPointsOf(host: HostOps, devicePath: string, mounts: readonly HostMount[]): Promise<string[]> {
  const number = await host.deviceNumber(devicePath);
  return mounts
    .filter((m) => m.device === devicePath || (number !== null && m.majorMinor === number))
    .map((m) => m.mountPoint)
    .sort();
}
