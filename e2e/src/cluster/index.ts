export {
  startCluster,
  openCluster,
  Cluster,
  defaultCommands,
  agentFromDist,
  REPO_ROOT,
  type ClusterOptions,
} from './Cluster';
export { ClusterHost, PLUGIN_SOCKET, VOLUME_DRIVER, pingDocker, type ComponentCommands } from './Host';
export { clusterLayout, type ClusterLayout, type HostLayout } from './layout';
export { TINY_IMAGE } from './image';
export { ClusterError, run, sleep, waitFor, type RunResult, type RunOptions } from './run';
export { teardown, type TeardownReport } from './teardown';
export * from './scenario';
export { ClusterPki, type CertificateFiles, type ServerTlsFiles } from './pki';
