// A single-threaded node:net server: one listener per --work (in order), all on one event loop.
//   node dist/bench/servers/plain-net.js --work ping
//   node dist/bench/servers/plain-net.js --work pbkdf2 --work ping   (responsiveness baseline)

import { parseArgs } from 'node:util';
import { isWorkName } from '../work.js';
import { announce, exitOnStop } from './lifecycle.js';
import { createLineServer, listenLocal } from './line-server.js';

const { values } = parseArgs({
  options: { work: { type: 'string', multiple: true }, host: { type: 'string', default: '127.0.0.1' } },
});
const works = values.work ?? ['ping'];
exitOnStop();
for (const work of works) {
  if (!isWorkName(work)) throw new Error(`unknown --work ${work}`);
  announce(values.host, await listenLocal(createLineServer(work), values.host));
}
