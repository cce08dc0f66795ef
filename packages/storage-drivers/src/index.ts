export * from './BlockDeviceApi';
export { LoopbackDriver, DEFAULT_ALLOCATION_UNIT, type LoopbackDriverOptions, type RepairReport } from './LoopbackDriver';
export {
  filesystemType,
  hasFilesystem,
  isDeviceBusy,
  listMounts,
  makeFilesystem,
  mount,
  parseMountInfo,
  resizeFilesystem,
  unmount,
  type BlockdevOptions,
  type MakeFilesystemOptions,
  type MountEntry,
  type MountOptions,
} from './blockdev';
export { execFileExec, type ExecFn, type ExecResult } from './exec';
export { findLoopDevices } from './losetup';
export { PoolLock } from './PoolLock';
export {
  EbsDriver,
  createEc2Client,
  ebsDatasetConfigSchema,
  fetchInstanceIdFromImds,
  findEbsDevice,
  linuxEbsHost,
  volumeTypeForProfile,
  waitForDevice,
  type EbsDatasetConfig,
  type EbsDriverOptions,
  type EbsHost,
  type EbsTiming,
} from './ebs';
