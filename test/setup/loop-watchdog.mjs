// Owns the event-loop watchdog of the test suite (issue 16): a test whose main thread stops
// turning its event loop fails at once with the stuck JavaScript stack, instead of hanging
// `npm test` until CI cuts it. The main thread bumps a heartbeat in shared memory from an unref'd
// 100 ms interval; a watcher thread (./loop-watchdog-thread.mjs) reads it, and when the heartbeat
// is older than the bound while armed — 2 s (SOCKSERV_LOOP_WATCHDOG_MS) of the main thread's own
// time, not counting time it waited for a CPU on a loaded machine — it pauses the main thread
// through the inspector, writes the stack to stderr and to a file, and kills the process.
//
// Plain JavaScript, not TypeScript: it runs where there is no jest transform — in the watcher
// thread, under `node --import ./test/setup/loop-watchdog-register.mjs` (child processes), and in
// jest's worker processes, loaded by ./loop-watchdog-environment.mjs outside the test's vm context.
// One watchdog per process (the first call starts it); arming is the caller's: jest's environment
// arms it only while a test file's tests and hooks run, never while jest loads and transforms
// modules (legitimate synchronous work that can pass 2 s on a cold cache).

import { setInterval } from 'node:timers';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, Worker } from 'node:worker_threads';
import { writeSync } from 'node:fs';

/** Int32 slots of the shared state (the watcher thread reads the same layout). */
const BEAT = 0;
const ARMED = 1;
const LABEL_LENGTH = 2;
/** Byte offset and size of the label: what is running now (a test's name), UTF-8. */
const LABEL_OFFSET = 16;
const LABEL_BYTES = 1024;
const BEAT_MS = 100;

let instance;

/**
 * The process's watchdog, started on first use (disarmed).
 * @returns {{ arm(): void, disarm(): void, label(text: string): void }}
 */
export function loopWatchdog() {
  // The watcher pauses and measures the process's main thread: a heartbeat from any other thread
  // would be judged against the wrong thread.
  if (!isMainThread) throw new Error('loop watchdog: start it from the main thread');
  instance ??= start();
  return instance;
}

/** Where reports go: one file per report, named `<pid>-<ms since epoch>.txt`. */
export function reportDirectory() {
  return process.env.SOCKSERV_LOOP_WATCHDOG_DIR ?? join(tmpdir(), 'sockserv-loop-watchdog');
}

function start() {
  const stallMs = Number(process.env.SOCKSERV_LOOP_WATCHDOG_MS ?? 2000);
  const reportDir = reportDirectory();
  const logFile = process.env.SOCKSERV_LOOP_WATCHDOG_LOG;
  const logMs = Number(process.env.SOCKSERV_LOOP_WATCHDOG_LOG_MS ?? 500);
  const buffer = new SharedArrayBuffer(LABEL_OFFSET + LABEL_BYTES);
  const state = new Int32Array(buffer, 0, LABEL_OFFSET / 4);
  const label = new Uint8Array(buffer, LABEL_OFFSET, LABEL_BYTES);
  const encoder = new TextEncoder();
  // node:timers, not the global: a test that installs fake timers must not stop the heartbeat.
  setInterval(() => Atomics.add(state, BEAT, 1), BEAT_MS).unref();
  const worker = new Worker(new URL('./loop-watchdog-thread.mjs', import.meta.url), {
    workerData: { buffer, stallMs, reportDir, logFile, logMs, labelOffset: LABEL_OFFSET, labelBytes: LABEL_BYTES },
    // Its output must not wait for this thread (which is the one stuck when it speaks): it writes
    // with fs.writeSync(2) itself; these are only for a crash of the watcher.
    stdout: false,
    stderr: false,
  });
  // Never what keeps a test process (or jest) alive.
  worker.unref();
  worker.on('error', (error) => writeSync(2, `loop watchdog: the watcher thread failed: ${error?.stack ?? error}\n`));
  return {
    arm() {
      Atomics.add(state, BEAT, 1); // a fresh heartbeat: time spent disarmed is not a stall
      Atomics.store(state, ARMED, 1);
    },
    disarm() {
      Atomics.store(state, ARMED, 0);
    },
    /** What runs now; also a heartbeat, since the main thread got this far. */
    label(text) {
      const { written } = encoder.encodeInto(text, label);
      Atomics.store(state, LABEL_LENGTH, written);
      Atomics.add(state, BEAT, 1);
    },
  };
}

export const STATE = Object.freeze({ BEAT, ARMED, LABEL_LENGTH });
