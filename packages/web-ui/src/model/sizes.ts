// The pure size helpers only: '@flocker/api' as a whole brings undici (Node-only)
// into a browser bundle, its sizes module depends on nothing.
export { formatSize, parseSize, SizeError, realSize, deviceSize } from '@flocker/api/sizes';
export {
  MINIMUM_DATASET_SIZE,
  METADATA_NAME_KEY,
  METADATA_PROFILE_KEY,
  METADATA_FILESYSTEM_KEY,
  DATASET_FILESYSTEMS,
  XFS_MINIMUM_SIZE,
} from '@flocker/api/schemas';
