// Prometheus metrics and health endpoints shared by every Flocker process.
export type { Registry } from 'prom-client';
export { newRegistry, processRegistry, releaseVersion, type FlockerProcess } from './registry';
export { LabelBound, OTHER, statusLabel, STEP_KINDS, VOLUME_STATES, type StepKind, type VolumeState } from './labels';
export {
  containerAgentMetrics,
  controlMetrics,
  csiMetrics,
  datasetAgentMetrics,
  DOCKER_METHODS,
  pluginMetrics,
  registerAgentSampler,
  registerClusterSampler,
  registerCertificateExpiry,
  secondsSince,
  type AgentSample,
  type ClusterSample,
  type ContainerAgentMetrics,
  type ControlMetrics,
  type CsiMetrics,
  type DatasetAgentMetrics,
  type PluginMetrics,
  type VolumeSample,
} from './definitions';
export { DEFAULT_CHECK_TIMEOUT_MS, readiness, type CheckResult, type HealthCheck, type Readiness } from './health';
export {
  DEFAULT_METRICS_ADDRESS,
  DEFAULT_METRICS_PORTS,
  handleMetricsRequest,
  hostChecked,
  METRICS_CHECK_HOST_MODES,
  MetricsConfigError,
  metricsCheckHost,
  startMetricsServer,
  type MetricsCheckHost,
  type MetricsEndpoints,
  type MetricsServer,
  type MetricsServerOptions,
} from './server';
