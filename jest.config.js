// Jest runs the TypeScript sources through ts-jest as native ESM (see CONTRIBUTING.md, "How the build works").
// Worker threads never see this transform: they load the compiled files that `npm test` builds
// into dist/ first, which is why the test script runs `npm run build` before jest.
// The test environment is jest's node environment plus the event-loop watchdog
// (test/setup/loop-watchdog*.mjs): a test whose main thread stops turning its event loop for 2 s
// (a nextTick or microtask loop, an endless synchronous loop — where no timer, the per-test
// timeout included, can fire) fails at once: the watchdog prints the stuck stack on stderr and in
// a file, then kills the test process, which jest reports as "A jest worker process … was
// terminated" for that file; the watchdog's reporter, listed before jest's, adds the report to
// that failure. workerIdleMemoryLimit is set for that: with it, jest always runs test
// files in worker processes — never in band in its own process (its choice with one test file or
// one spare core), where the kill would end the whole run without a summary. (Its other effect,
// recycling a worker whose heap is still above 1 GB after a file, never happens here.)
// No forceExit: jest ends its worker processes itself when the run is over (it force-kills one
// that does not exit, and says so), so a leaked handle cannot hang `npm test`; forceExit would
// only hide such a leak in the in-band case.
// `npm test` needs Node alone: the tests that drive system tools (nginx, haproxy, redis-cli,
// openssl) live in test/system/ and run with `npm run test:system` (jest.system.config.js).
/** @type {import('jest').Config} */
export default {
  testEnvironment: '<rootDir>/test/setup/loop-watchdog-environment.mjs',
  extensionsToTreatAsEsm: ['.ts'],
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/system/'],
  moduleNameMapper: {
    '^sockserv$': '<rootDir>/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.test.json' }],
  },
  testTimeout: 30000,
  workerIdleMemoryLimit: '1GB',
  reporters: ['<rootDir>/test/setup/loop-watchdog-reporter.mjs', 'default'],
};
