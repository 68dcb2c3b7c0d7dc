// `npm run test:system`: the tests that drive real system tools (test/system/: nginx and haproxy
// in front of sockserv, redis-cli, openssl). A missing tool fails its tests and
// test/system/tools.test.ts, naming the Debian packages to install — never a skip.
// Everything else (transform, module mapping) is jest.config.js's.
import base from './jest.config.js';

/** @type {import('jest').Config} */
export default {
  ...base,
  roots: ['<rootDir>/test/system'],
  testPathIgnorePatterns: ['/node_modules/'],
};
