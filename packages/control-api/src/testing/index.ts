/**
 * Test support for this package's tests, the benchmark and the e2e tests
 * (`@flocker/control-api/testing`), outside the control service's public surface.
 */
export {
  EtcdTestCluster,
  freePort,
  makeEtcdTestPki,
  type EtcdTestClusterOptions,
  type EtcdTestPki,
} from './etcdCluster';
export { seedFileStore } from './seedFileStore';
// The e2e tests read what etcd holds as a replica would (nodes-forget-etcd).
export { EtcdConfigurationStore } from '../etcd/EtcdConfigurationStore';
