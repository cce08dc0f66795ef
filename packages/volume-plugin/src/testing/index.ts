/**
 * Test support for this package's tests and the e2e tests (`@flocker/volume-plugin/testing`),
 * outside the plugin's public surface.
 */
export { callPlugin, type PluginReply } from './callPlugin';
export { FakeDatasetAgent } from './FakeDatasetAgent';
export { FakeDocker } from './FakeDocker';
export { forwardingClient, useOnce } from './leaseUse';
export { until } from './until';
export {
  BackendTestBed,
  GiB,
  HOST_A,
  HOST_B,
  NODE_A,
  NODE_B,
  silentLogger,
  type FakeNode,
  type TestBackendOptions,
} from './backendTestBed';
