// `node --import ./test/setup/loop-watchdog-register.mjs script.js`: the event-loop watchdog
// (./loop-watchdog.mjs), armed from the start, for a process outside jest — the test that proves
// the watchdog works spawns its livelocked children this way.

import { loopWatchdog } from './loop-watchdog.mjs';

const watchdog = loopWatchdog();
watchdog.label(`node ${process.argv.slice(1).join(' ')}`);
watchdog.arm();
