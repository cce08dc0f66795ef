export { startControlService, createApp, createLogger, DEFAULT_LIMITS, DEFAULT_PORT, MAX_BODY_BYTES } from './server';
export type { ServerLimits } from './server';
export type { ControlService, ControlServiceOptions } from './server';
export {
  FileConfigurationStore,
  MemoryConfigurationStore,
  CONFIGURATION_FILE,
  CURRENT_FORMAT_VERSION,
  LOG_FILE,
  LOG_FORMAT_VERSION,
} from './ConfigurationStore';
export type { ConfigurationStore, FileConfigurationStoreOptions, Migration } from './ConfigurationStore';
export type { Configuration, StoredLease } from './configuration';
export { ApiError, HTTP_STATUS, toApiError } from './httpErrors';
export { ConfigurationError, ControlError, RequestError, StoreError, UsageError } from './errors';
export type { ConfigurationCode, ErrorCode, RequestCode, StoreCode, UsageCode } from './errors';
export { buildOpenApi } from './openapi';
export { CONTROL_ENV, CONTROL_NODE_FLAGS } from './nodeFlags';
export { DEFAULT_STALL_GUARD } from './stallGuard';
export type { StallGuardOptions } from './stallGuard';
export { routes } from './routes';
export { FLOCKER_VERSION } from '@flocker/api';
export { authorize } from './authorization';
export type { AuthorizationDecision, AuthorizationFacts, AuthorizationRequest } from './authorization';
export {
  chooseTls,
  readTlsFiles,
  peerIdentity,
  TlsConfigError,
  DEFAULT_TLS_DIR,
  CLUSTER_CERT_FILE,
  CONTROL_CERT_FILE,
  CONTROL_KEY_FILE,
} from './tls';
export type { ServerTlsCredentials, TlsChoice, TlsFilePaths } from './tls';
