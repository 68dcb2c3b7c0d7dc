// Owns the watcher side of the event-loop watchdog (./loop-watchdog.mjs starts it): a worker
// thread that reads the main thread's heartbeat. When it is armed and the heartbeat has not moved
// for stallMs of the main thread's own time, the main thread is stuck — a nextTick or microtask
// loop, an endless synchronous loop, a synchronous call that never returns — and no timer of its
// own (jest's test timeout included) can ever fire.
//
// "Its own time" is wall time minus the time the main thread spent runnable but waiting for a CPU
// (Linux: /proc/self/task/<pid>/schedstat): on a saturated machine (CI runners, several jest
// workers, handler threads) a test doing half a second of legitimate synchronous work can take
// several seconds of wall time, and must not be killed for the machine's load; a spinning or
// blocked thread accrues its own time at full rate, loaded machine or not. Where schedstat is
// missing, wall time is used.
//
// Then this thread asks the main thread's inspector to pause it: V8 serves inspector messages
// through interrupts, which a spinning thread takes at its next function call or loop back-edge
// (and a thread in Atomics.wait wakes for), so Debugger.pause stops it where it spins and
// `Debugger.paused` carries its call frames. The report (what ran, the frames with their urls and
// lines) goes to stderr with fs.writeSync (this thread's console would travel through the stuck
// main thread) and to a file; then the process is killed with SIGKILL, which jest reports as "A
// jest worker process … was terminated by another process" for the test file (a signal, not an
// exit code: an exit code would make jest-worker retry the file). A main thread stuck in a
// synchronous call that takes no interrupt gets a report without frames after PAUSE_TIMEOUT_MS.
//
// SOCKSERV_LOOP_WATCHDOG_LOG=<file> turns the watchdog into a probe instead: nothing is killed;
// every stall longer than SOCKSERV_LOOP_WATCHDOG_LOG_MS (default 500) is appended to the file
// with its length and what was running — how to find the tests that come near the bound.

import { appendFileSync, mkdirSync, openSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { workerData } from 'node:worker_threads';
import { STATE } from './loop-watchdog.mjs';

const { buffer, stallMs, reportDir, labelOffset, labelBytes, logFile, logMs } = workerData;
const state = new Int32Array(buffer, 0, labelOffset / 4);
const labelView = new Uint8Array(buffer, labelOffset, labelBytes);
const POLL_MS = Math.min(100, Math.max(10, stallMs / 20));
const PAUSE_TIMEOUT_MS = 2000;
const SAMPLES = 6;

// This thread's own failure must be seen: its 'error' event would travel through the main thread,
// the one that may be stuck.
process.on('uncaughtException', (error) => writeAll(`loop watchdog: the watcher thread failed: ${error?.stack ?? error}\n`));
process.on('unhandledRejection', (error) => writeAll(`loop watchdog: the watcher thread failed: ${error?.stack ?? error}\n`));

// Opened once and read in place: opening it at every poll would briefly hold one more file
// descriptor, and tests that count the process's descriptors would see it.
const schedstat = openOrNull(`/proc/self/task/${process.pid}/schedstat`);
const schedstatBuffer = Buffer.alloc(128);

function openOrNull(path) {
  try {
    return openSync(path, 'r');
  } catch {
    return null;
  }
}

/** Ms the main thread has spent runnable and waiting for a CPU (Linux schedstat's second field), or 0 where unknown. */
function mainThreadWaitMs() {
  if (schedstat === null) return 0;
  try {
    const n = readSync(schedstat, schedstatBuffer, 0, schedstatBuffer.length, 0);
    return Number(schedstatBuffer.toString('latin1', 0, n).split(' ')[1]) / 1e6 || 0;
  } catch {
    return 0;
  }
}

function currentLabel() {
  return new TextDecoder().decode(labelView.slice(0, Atomics.load(state, STATE.LABEL_LENGTH)));
}

let seen = Atomics.load(state, STATE.BEAT);
let since = performance.now();
let waitedAtSince = mainThreadWaitMs();
let lastPoll = since;
/** Probe mode: the longest stall of the current episode, and what was running. */
let episode = { stalledMs: 0, waitedMs: 0, label: '' };

const poll = setInterval(() => {
  const now = performance.now();
  const waited = mainThreadWaitMs();
  const beat = Atomics.load(state, STATE.BEAT);
  // A moved heartbeat, a disarmed watchdog, or a poll that itself came late (this thread was
  // starved: the whole process was stopped, so nothing can be judged) restarts the count.
  if (beat !== seen || Atomics.load(state, STATE.ARMED) === 0 || now - lastPoll > stallMs / 2) {
    if (logFile && episode.stalledMs >= logMs) {
      appendFileSync(logFile, `${Math.round(episode.stalledMs)} ms (+${Math.round(episode.waitedMs)} ms waiting for a CPU)\t${process.pid}\t${episode.label}\n`);
    }
    episode = { stalledMs: 0, waitedMs: 0, label: '' };
    seen = beat;
    since = now;
    waitedAtSince = waited;
  }
  lastPoll = now;
  const stalledMs = now - since - (waited - waitedAtSince);
  if (logFile) {
    if (stalledMs > episode.stalledMs) episode = { stalledMs, waitedMs: waited - waitedAtSince, label: episode.label || currentLabel() };
  } else if (stalledMs >= stallMs) {
    clearInterval(poll);
    report(stalledMs);
  }
}, POLL_MS);

function report(stalledMs) {
  const startedAt = performance.now();
  const label = currentLabel();
  let finished = false;
  const finish = (stacks, why) => {
    if (finished) return;
    finished = true;
    clearTimeout(giveUp);
    try {
      const lines = [
        `loop watchdog: the main thread of process ${process.pid} has not turned its event loop for ${Math.round(stalledMs)} ms of its own time (bound ${stallMs} ms; it also waited ${Math.round(mainThreadWaitMs() - waitedAtSince)} ms for a CPU, up to this report)${label ? ` while running: ${label}` : ''}.`,
      ];
      if (stacks.length > 0) {
        lines.push(
          `Its JavaScript stack, paused through the inspector (${stacks.reduce((n, s) => n + s.count, 0)} samples in ${Math.round(performance.now() - startedAt)} ms; each distinct stack once, most frequent first):`,
        );
        for (const { text, count } of stacks) lines.push(`  seen ${count}×:`, text);
      }
      if (why) lines.push(`${stacks.length > 0 ? 'Sampling stopped' : 'No JavaScript stack'}: ${why}.`);
      try {
        mkdirSync(reportDir, { recursive: true });
        const file = join(reportDir, `${process.pid}-${Date.now()}.txt`);
        writeFileSync(file, `${lines.join('\n')}\n`);
        lines.push(`This report is also in ${file}.`);
      } catch (error) {
        lines.push(`(Could not write the report file: ${error.message}.)`);
      }
      lines.push('Killing the process (SIGKILL): the test file fails.');
      writeAll(`\n${lines.join('\n')}\n\n`);
    } finally {
      // Whatever went wrong above, the stuck process must not outlive its report.
      process.kill(process.pid, 'SIGKILL');
    }
  };
  const samples = new Map();
  const stacks = () => [...samples].sort((a, b) => b[1] - a[1]).map(([text, count]) => ({ text, count }));
  const giveUp = setTimeout(
    () => finish(stacks(), `the main thread did not pause within ${PAUSE_TIMEOUT_MS} ms: it is blocked outside JavaScript (a synchronous call)`),
    PAUSE_TIMEOUT_MS,
  );
  sample(samples).then(
    () => finish(stacks(), null),
    (error) => finish(stacks(), error.message),
  );
}

/**
 * Pauses the main thread SAMPLES times, a few ms apart, and counts each distinct stack: one pause
 * of a nextTick loop often lands in Node's tick queue (processTicksAndRejections) rather than in
 * the function that reschedules itself. Async stack traces (enabled first) name what scheduled
 * the callback that runs: the looping function itself, for a nextTick or microtask loop.
 */
async function sample(samples) {
  const session = new Session();
  session.connectToMainThread();
  const post = (method, params) =>
    new Promise((resolve, reject) => session.post(method, params, (error, result) => (error ? reject(error) : resolve(result))));
  // Call frames name their script by id: Debugger.enable announces every script with its url.
  const urls = new Map();
  session.on('Debugger.scriptParsed', ({ params }) => urls.set(params.scriptId, params.url));
  let paused;
  session.on('Debugger.paused', ({ params }) => paused?.(params));
  await post('Debugger.enable');
  await post('Debugger.setAsyncCallStackDepth', { maxDepth: 2 });
  for (let i = 0; i < SAMPLES; i++) {
    const params = await new Promise((resolve, reject) => {
      paused = resolve;
      post('Debugger.pause').catch(reject);
    });
    paused = undefined;
    const text = formatStack(params, urls);
    samples.set(text, (samples.get(text) ?? 0) + 1);
    if (i === SAMPLES - 1) break; // left paused: the process is about to be killed
    await post('Debugger.resume');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function formatStack({ callFrames, asyncStackTrace }, urls) {
  const at = (name, scriptId, url, line, column) =>
    `    at ${name || '<anonymous>'} (${url || urls.get(scriptId) || `script ${scriptId}`}:${line + 1}:${(column ?? 0) + 1})`;
  const lines = callFrames.map((f) => at(f.functionName, f.location.scriptId, f.url, f.location.lineNumber, f.location.columnNumber));
  // One async parent is enough to name what scheduled this callback; the async-hook frames that
  // record it are noise.
  if (asyncStackTrace) {
    lines.push(`    -- scheduled by (${asyncStackTrace.description ?? 'async'}) --`);
    for (const f of asyncStackTrace.callFrames) {
      if (!/^node:internal\/(inspector_)?async_hook/.test(f.url)) lines.push(at(f.functionName, f.scriptId, f.url, f.lineNumber, f.columnNumber));
    }
  }
  return lines.join('\n');
}

/** fs.writeSync to stderr, retried: a pipe (jest's worker stderr) may be non-blocking and full. */
function writeAll(text) {
  let bytes = Buffer.from(text);
  for (let attempt = 0; bytes.length > 0 && attempt < 1000; attempt++) {
    try {
      bytes = bytes.subarray(writeSync(2, bytes));
    } catch (error) {
      if (error.code !== 'EAGAIN') return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}
