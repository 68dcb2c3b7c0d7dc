// Owns jest's test environment: jest's own node environment, plus the event-loop watchdog
// (./loop-watchdog.mjs), armed from the start of a test file's run to its end — every test and
// every hook, afterAll included — and disarmed while jest loads, transforms and links modules
// (synchronous work that may legitimately pass the 2 s bound on a cold cache). Each test and hook
// names itself to the watchdog, so a report says what was running — and that is a heartbeat too:
// jest runs synchronous tests back to back without turning the event loop, and the bound is per
// test (a file of twenty 200 ms synchronous tests is not stuck), while a test that is stuck never
// gets to the next event. Jest loads this module once per worker process (outside the tests' vm
// contexts), so the watchdog is one thread per process.

import { TestEnvironment } from 'jest-environment-node';
import { loopWatchdog } from './loop-watchdog.mjs';

export default class LoopWatchdogEnvironment extends TestEnvironment {
  #watchdog = loopWatchdog();
  #file;
  /** The test running now (its name), or null between tests. */
  #test = null;

  constructor(config, context) {
    super(config, context);
    this.#file = context.testPath;
  }

  handleTestEvent(event) {
    const watchdog = this.#watchdog;
    switch (event.name) {
      case 'run_start':
        watchdog.label(this.#file);
        watchdog.arm();
        break;
      case 'test_start':
        this.#test = testName(event.test);
        break;
      case 'hook_start': {
        const { type } = event.hook;
        const ofTest = this.#test !== null && (type === 'beforeEach' || type === 'afterEach');
        watchdog.label(`${this.#file} › ${type}${ofTest ? ` of ${this.#test}` : ''}`);
        break;
      }
      case 'test_fn_start':
        watchdog.label(`${this.#file} › ${this.#test}`);
        break;
      case 'test_done':
        this.#test = null;
        watchdog.label(this.#file);
        break;
      case 'run_finish':
        watchdog.disarm();
        break;
    }
  }
}

function testName(test) {
  const names = [];
  for (let block = test; block && block.name !== 'ROOT_DESCRIBE_BLOCK'; block = block.parent) names.unshift(block.name);
  return names.join(' › ');
}
