/** Test support for the packages that use @flocker/api (`@flocker/api/testing`): not part of the library. */
export { FakeFullDisk } from './fakeFullDisk';
export { UUID_SPELLINGS } from './uuidSpellings';
