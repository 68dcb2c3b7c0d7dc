// `sockserv serve` flags that map to server options, checked on the server they build (nothing listens).

import { createServerFromArgs } from '../src/cli/serve.js';
import { DEFAULTS } from '../src/index.js';
import { fixture } from './helpers/client.js';

test('--max-client-memory sets maxClientMemory (default 256 MiB); it must be a positive count', () => {
  expect(createServerFromArgs([fixture('echo'), '--inline', '--max-client-memory', '1048576']).options.maxClientMemory).toBe(1048576);
  expect(createServerFromArgs([fixture('echo'), '--inline']).options.maxClientMemory).toBe(DEFAULTS.maxClientMemory);
  expect(DEFAULTS.maxClientMemory).toBe(256 * 1024 * 1024);
  expect(() => createServerFromArgs([fixture('echo'), '--inline', '--max-client-memory', '0'])).toThrow(/--max-client-memory/);
});
