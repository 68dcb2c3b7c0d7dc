// Jest runs the TypeScript sources through ts-jest as native ESM (see README "How the build works").
// Worker threads never see this transform: they load the compiled files that `npm test` builds
// into dist/ first, which is why the test script runs `npm run build` before jest.
// `npm test` needs Node alone: the tests that drive system tools (nginx, haproxy, redis-cli,
// openssl) live in test/system/ and run with `npm run test:system` (jest.system.config.js).
/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
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
};
