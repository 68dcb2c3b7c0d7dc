// Jest runs the TypeScript sources through ts-jest as native ESM (see README "How the build works").
// Worker threads never see this transform: they load the compiled files that `npm test` builds
// into dist/ first, which is why the test script runs `npm run build` before jest.
/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  moduleNameMapper: {
    '^sockserv$': '<rootDir>/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.test.json' }],
  },
  testTimeout: 30000,
};
