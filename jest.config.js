// Tests are compiled by `tsc -b` (TypeScript 7) and run as plain JavaScript:
// no transform step, so the test run sees exactly the code that ships.
/** @type {import('jest').Config} */
module.exports = {
  testSequencer: '<rootDir>/scripts/jest-sequencer.js',
  // Jest's default 5 s per test is a flake under load (CI's two workers on two cores, or helpers' e2e runs): heavy
  // property and burst tests took 5-8 s so. A test that hangs still fails, 20 s in.
  testTimeout: 20_000,
  projects: [
    {
      displayName: 'unit',
      testEnvironment: 'node',
      // scripts/*.test.js: the test runner's own plain-JS helpers (scripts/jest-lanes.js), run as they are.
      roots: ['<rootDir>/packages', '<rootDir>/scripts'],
      testMatch: ['**/dist/**/*.test.js', '<rootDir>/scripts/*.test.js'],
      testPathIgnorePatterns: ['/node_modules/'],
    },
    {
      displayName: 'e2e',
      // Node's, recording failed tests: a cluster stopped after one keeps its logs (e2e/src/cluster/failedLogs.ts).
      testEnvironment: '<rootDir>/e2e/dist/testing/failureEnvironment.js',
      roots: ['<rootDir>/e2e'],
      testMatch: ['**/dist/**/*.test.js'],
      testPathIgnorePatterns: ['/node_modules/'],
    },
  ],
};
