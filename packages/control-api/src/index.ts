export { startControlService, createApp, createLogger, DEFAULT_LIMITS, DEFAULT_PORT, MAX_BODY_BYTES } from './server';
export type { ServerLimits } from './server';
export type { ControlService, ControlServiceOptions } from './server';
export { FileConfigurationStore, MemoryConfigurationStore, CONFIGURATION_FILE, CURRENT_FORMAT_VERSION, LOG_FILE, LOG_FORMAT_VERSION } from './ConfigurationStore';
export type { ConfigurationStore, FileConfigurationStoreOptions, Migration } from './ConfigurationStore';
export type { Configuration, StoredLease } from './configuration';
export { ApiError } from './errors';
export { buildOpenApi } from './openapi';
export { routes, FLOCKER_VERSION } from './routes';
