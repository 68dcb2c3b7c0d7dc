// The first thing `npm run test:system` reports: every system tool its tests drive is installed.
// Where one is missing this fails with one message naming the Debian packages to install (and
// each test file that needs it fails too, naming its own) — never a skip.

import { TOOLS, requireTools } from './tools.js';

test.each(Object.entries(TOOLS))('%s is installed', (_name, tool) => {
  requireTools(tool);
});

test('all of them at once (the apt-get line to run)', () => {
  requireTools(...Object.values(TOOLS));
});
