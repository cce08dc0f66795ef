/**
 * Test support for drivers and their users, outside the package's public surface
 * (`@flocker/storage-drivers/testing`): the shared driver contract suite (it calls
 * jest's describe/it, so import this only from tests) and temp-pool helpers.
 */
export {
  blockDeviceApiContract,
  expectStorageError,
  type ContractFixture,
  type ContractOptions,
  type SnapshotLimits,
} from './contract';
export { destroyTempRoot, loopsUnder, makeTempRoot } from './testSupport';
export { startMoto, type MotoServer } from '../ebs/motoSupport';
export { makeBtrfsLoopPool, makeTestCluster, type BtrfsLoopPool, type TestCluster } from '../local/testSupport';
export { localEngineContract, type LocalContractFixture } from '../local/contract';
export { ensureZfs, makeZfsFilePool, type ZfsFilePool, type ZfsReady } from '../local/zfsTestSupport';
export { startSimulatedArray, type SimulatedArray } from '../xtremio/testing/harness';
