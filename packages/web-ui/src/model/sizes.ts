// The pure size helpers only: '@flocker/api' as a whole brings undici (Node-only)
// into a browser bundle, its sizes module depends on nothing.
export { formatSize, parseSize, SizeError } from '@flocker/api/sizes';
export { MINIMUM_DATASET_SIZE, METADATA_NAME_KEY } from '@flocker/api/schemas';
