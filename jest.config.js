// Tests are compiled by `tsc -b` (TypeScript 7) and run as plain JavaScript:
// no transform step, so the test run sees exactly the code that ships.
/** @type {import('jest').Config} */
module.exports = {
  testSequencer: '<rootDir>/scripts/jest-sequencer.js',
  projects: [
    {
      displayName: 'unit',
      testEnvironment: 'node',
      roots: ['<rootDir>/packages'],
      testMatch: ['**/dist/**/*.test.js'],
      testPathIgnorePatterns: ['/node_modules/'],
    },
    {
      displayName: 'e2e',
      testEnvironment: 'node',
      roots: ['<rootDir>/e2e'],
      testMatch: ['**/dist/**/*.test.js'],
      testPathIgnorePatterns: ['/node_modules/'],
    },
  ],
};
