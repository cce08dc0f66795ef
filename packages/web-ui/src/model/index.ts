export * from './view';
export * from './events';
export * from './wire';
export * from './safety';
export * from './snapshots';
export { formatSize, parseSize, SizeError, MINIMUM_DATASET_SIZE, DATASET_FILESYSTEMS, XFS_MINIMUM_SIZE } from './sizes';
export * from './list';
export * from './local';
export * from './leaseRefusal';
