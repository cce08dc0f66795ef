export * from './protocol';
export { createPluginHttpServer, listenOnUnixSocket, decodeBody } from './PluginHttpServer';
export {
  FlockerVolumeBackend,
  leaseVerdict,
  type ControlClient,
  type FlockerVolumeBackendOptions,
  type LeaseVerdict,
} from './FlockerVolumeBackend';
export { MountRegistry } from './MountRegistry';
export {
  parseSize,
  validateVolumeName,
  parseCreateOptions,
  DEFAULT_VOLUME_SIZE,
  volumeDatasetId,
} from './volumeOptions';
export {
  resolveSettings,
  readAgentYaml,
  waitForNodeUuid,
  DEFAULT_SOCKET,
  type PluginSettings,
  type PluginArgs,
} from './config';
export {
  startVolumePlugin,
  createLogger,
  type VolumePluginOptions,
  type RunningVolumePlugin,
} from './startVolumePlugin';
export {
  DockerodeView,
  DockerUnreachableError,
  type DockerView,
  type DockerContainer,
  type DockerMount,
} from './DockerView';
export {
  DockerReconciler,
  containersUsing,
  decideVolume,
  driverNameOf,
  DEFAULT_MOUNT_SAFETY_WINDOW_MS,
  DEFAULT_RECONCILE_INTERVAL_MS,
} from './DockerReconciler';
