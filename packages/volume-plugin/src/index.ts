export * from './protocol';
export { createPluginHttpServer, listenOnUnixSocket, decodeBody } from './PluginHttpServer';
export { FlockerVolumeBackend, type ControlClient, type FlockerVolumeBackendOptions } from './FlockerVolumeBackend';
export { MountRegistry } from './MountRegistry';
export { parseSize, validateVolumeName, parseCreateOptions, DEFAULT_VOLUME_SIZE, volumeDatasetId } from './volumeOptions';
export { resolveSettings, readAgentYaml, waitForNodeUuid, DEFAULT_SOCKET, type PluginSettings, type PluginArgs } from './config';
export { startVolumePlugin, createLogger, type VolumePluginOptions, type RunningVolumePlugin } from './startVolumePlugin';
export { callPlugin, type PluginReply } from './testing';
