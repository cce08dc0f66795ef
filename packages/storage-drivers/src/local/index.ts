export * from './engine';
export {
  BtrfsEngine,
  parseQgroupShow,
  parseSubvolumeList,
  type BtrfsEngineOptions,
  type SubvolumeEntry,
} from './btrfs';
export { ZfsEngine, parseZfsDatasets, parseZfsSnapshots, zfsAvailable, type ZfsEngineOptions } from './zfs';
export * from './plan';
export {
  TransferClient,
  TransferServer,
  TransferRequest,
  StatusAnswer,
  nodeUuidOfPem,
  type NodeTlsCredentials,
  type TargetApi,
  type TransferPeer,
  type TransferServerOptions,
} from './transfer';
export {
  moveLocalDataset,
  type LocalMoveOptions,
  type MoveProgress,
  type MovePhase,
  type MoveResult,
} from './LocalMover';
export {
  parseMountInfoWithRoot,
  spawnProcess,
  type MountInfoEntry,
  type SpawnFn,
  type StreamProcess,
} from './processes';
export type { HostFs } from './hostFs';
