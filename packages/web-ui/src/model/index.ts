export * from './view';
export * from './events';
export * from './wire';
export * from './safety';
export { formatSize, parseSize, SizeError, MINIMUM_DATASET_SIZE } from './sizes';
