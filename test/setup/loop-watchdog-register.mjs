// `node --import ./test/setup/loop-watchdog-register.mjs script.js`: the event-loop watchdog
// (./loop-watchdog.mjs), armed from the start, for a process outside jest — the test that proves
// the watchdog works spawns its livelocked children this way.

import { isMainThread } from 'node:worker_threads';
import { loopWatchdog } from './loop-watchdog.mjs';

// --import runs in every worker thread of the process too (they inherit execArgv): the watchdog
// watches the main thread only, and only the main thread starts it.
if (isMainThread) {
  const watchdog = loopWatchdog();
  watchdog.label(`node ${process.argv.slice(1).join(' ')}`);
  watchdog.arm();
}
