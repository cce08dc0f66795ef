/** Test support (`@flocker/backup/testing`): an in-memory object store and sparse test images. */
export { MemoryObjectStore, type StoreOperation } from './MemoryObjectStore';
export { makeSparseImage, mutateImage, sha256File, type ImageRegion } from './images';
