export {
  AgentConfigSchema,
  DEFAULT_CONFIG_PATH,
  DEFAULT_CONTROL_PORT,
  formatIssues,
  loadAgentConfig,
  parseAgentConfig,
} from './config';
export type { AgentConfig, LoopbackBackendConfig, RunnableAgentConfig } from './config';
export { AgentError, isAgentError, type AgentErrorCode } from './errors';
export { ensureNodeIdentity, readEra, readNodeIdentity, NODE_IDENTITY_FILE, type NodeIdentity } from './identity';
export { calculateChanges, TRANSITIONS, type Discovered, type Role } from './calculateChanges';
export type {
  Action,
  ActionKind,
  DecisionContext,
  DesiredDataset,
  DesiredState,
  DiscoveredVolume,
  LocalState,
} from './LocalState';
export { ACTION_KINDS } from './LocalState';
export { discoverLocalState } from './discoverLocalState';
export { executeAction } from './executeAction';
export { linuxHostOps, type HostOps, type HostMount } from './HostOps';
export {
  DatasetAgent,
  backoffDelay,
  desiredStateOf,
  parseCrashAfter,
  type ControlChannel,
  type DatasetAgentOptions,
} from './DatasetAgent';
export { startDatasetAgent, type RunningDatasetAgent, type StartDatasetAgentOptions } from './startDatasetAgent';
