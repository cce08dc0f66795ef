export * from './BlockDeviceApi';
export {
  LoopbackDriver,
  DEFAULT_ALLOCATION_UNIT,
  type LoopbackDriverOptions,
  type RepairReport,
} from './LoopbackDriver';
export {
  hasSpares,
  readExt4Superblock,
  SPARE_MTIME,
  spareVerdict,
  type Ext4Superblock,
  type SpareCapable,
  type SpareVerdict,
  type SpareVolume,
} from './loopbackSpares';
export {
  blockDeviceSize,
  filesystemType,
  freezeFilesystem,
  growthReserveArgs,
  hasFilesystem,
  isDeviceBusy,
  isLoopDeviceNeverWritten,
  listMounts,
  majorMinorOf,
  makeFilesystem,
  mount,
  ONLINE_GROWTH_FACTOR,
  parseMountInfo,
  resizeFilesystem,
  thawFilesystem,
  unmount,
  XFS_MINIMUM_DEVICE_SIZE,
  xfsSizeFromSuperblock,
  type BlockdevOptions,
  type FilesystemKind,
  type MakeFilesystemOptions,
  type MountEntry,
  type MountOptions,
  type NeverWrittenProbe,
} from './blockdev';
export { execFileExec, type ExecFn, type ExecResult } from './exec';
export { findLoopDevices, loopBindingOf } from './losetup';
export { syscallMountData } from './mountHelper';
export { PoolLock } from './PoolLock';
// The EBS driver loads the AWS SDK (~250 ms): only on demand, not for every user of this package.
export { createEbsDriver } from './ebs/createEbsDriver';
export type { EbsDriver, EbsDriverOptions, EbsTiming } from './ebs/EbsDriver';
export { ebsDatasetConfigSchema, type EbsDatasetConfig } from './ebs/options';
export { fetchInstanceIdFromImds } from './ebs/imds';
export {
  findEbsDevice,
  linuxEbsHost,
  waitForDevice,
  waitForDeviceGone,
  type EbsHost,
  type HostPaths,
} from './ebs/devices';
export { volumeTypeForProfile } from './ebs/profiles';
export { CinderDriver, GIB, type CinderDriverDeps } from './cinder/CinderDriver';
export { CinderClient, CINDER_MICROVERSION } from './cinder/CinderClient';
export { CinderDriverOptionsSchema, type CinderDriverOptions, type CinderDriverOptionsInput } from './cinder/schemas';
export { OpenStackHttpError, OpenStackConnectionError } from './cinder/http';
// Local storage (issue 24): btrfs/ZFS engines and moves between nodes.
export * from './local';
// Dell EMC XtremIO (issue 25): XMS REST API v2, iSCSI attach with the host's initiator.
export { XtremioDriver, NO_TIERS_MESSAGE, type XtremioDriverDeps } from './xtremio/XtremioDriver';
export {
  XtremioDriverOptionsSchema,
  type XtremioDriverOptions,
  type XtremioDriverOptionsInput,
} from './xtremio/schemas';
// EMC ScaleIO / Dell PowerFlex (issue 25); its gateway simulator is test-only (scaleio/simulator).
export { ScaleIoDriver, type ScaleIoDriverDeps } from './scaleio/ScaleIoDriver';
export { ScaleIoOptionsSchema, type ScaleIoOptions, type ScaleIoOptionsInput } from './scaleio/schemas';
export { ScaleIoApiError } from './scaleio/client';
export { RackspaceSession, RACKSPACE_IDENTITY_URL } from './cinder/rackspace';
