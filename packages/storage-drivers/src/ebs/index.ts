export { createEbsDriver } from './createEbsDriver';
export {
  EbsDriver,
  createEc2Client,
  DEFAULT_EBS_TIMING,
  MAX_VOLUME_GIB,
  TAG_CLUSTER,
  TAG_CREATE_TOKEN,
  TAG_DATASET,
  TAG_PROFILE,
  TAG_TEMPORARY,
  TAG_TEMPORARY_SINCE,
  type EbsDriverOptions,
  type EbsTiming,
} from './EbsDriver';
export { ebsDatasetConfigSchema, type EbsDatasetConfig } from './options';
export {
  DEVICE_NAMES,
  findEbsDevice,
  linuxEbsHost,
  pickDeviceName,
  waitForDevice,
  waitForDeviceGone,
  type EbsHost,
  type HostPaths,
  type WaitForDeviceOptions,
} from './devices';
export { fetchInstanceIdFromImds, DEFAULT_IMDS_ENDPOINT, type ImdsOptions } from './imds';
export { volumeTypeForProfile, type VolumeTypeChoice } from './profiles';
