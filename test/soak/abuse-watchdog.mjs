// The abuse soak's server-side watchdog (a worker thread of test/soak/abuse-server.mjs): the
// server's main thread stores the time in shared memory every HEARTBEAT_MS; this thread checks it.
// When the main thread has not turned for `stallMs`, it pauses it through the inspector
// (Session.connectToMainThread: the pause lands as a V8 interrupt, so it works on a thread stuck in
// a JavaScript loop — a nextTick loop included — though not on one blocked in native code), takes
// its JavaScript stack, resumes it, profiles it for 300 ms (a stack taken once may land between two
// callbacks of a loop), and writes one line
//   ABUSE-WATCHDOG {"stallMs":…,"stack":["fn file:line:col",…],"hot":["NN %: fn … > fn …",…]}
// straight to file descriptor 2 with writeSync: process.stderr of a worker goes through the main
// thread, which is the one that is stuck. One line per stall (the next after the main thread has
// turned again). The driver (test/soak/abuse.mjs) reads it from the server's stderr.

import { writeSync } from 'node:fs';
import { Session } from 'node:inspector';
import { workerData } from 'node:worker_threads';

/** heartbeat: an Int32Array's buffer whose slot 0 is the main thread's last beat, in ms since `origin` (a Date.now()). */
const { heartbeat, origin, stallMs } = workerData;
const beat = new Int32Array(heartbeat);
const CHECK_MS = 100;
/** How long the inspector may take to pause the main thread and hand over its stack. */
const PAUSE_TIMEOUT_MS = 3000;
/** How long the profile of a stalled main thread runs. */
const PROFILE_MS = 300;

let reported = false;

function post(session, method, params) {
  return new Promise((resolve, reject) => session.post(method, params ?? {}, (error, result) => (error ? reject(error) : resolve(result))));
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Where the main thread is: one paused stack, and a short CPU profile of what it keeps running. */
async function mainThreadSnapshot() {
  const session = new Session();
  session.connectToMainThread();
  try {
    const scripts = new Map(); // a paused frame names its script by id; its url comes with scriptParsed
    session.on('Debugger.scriptParsed', ({ params }) => scripts.set(params.scriptId, params.url));
    const paused = new Promise((resolve) => session.once('Debugger.paused', (message) => resolve(message.params.callFrames)));
    await withTimeout(post(session, 'Debugger.enable'), PAUSE_TIMEOUT_MS, 'Debugger.enable');
    await withTimeout(post(session, 'Debugger.pause'), PAUSE_TIMEOUT_MS, 'Debugger.pause');
    const frames = await withTimeout(paused, PAUSE_TIMEOUT_MS, 'Debugger.paused');
    await post(session, 'Debugger.resume').catch(() => {});
    await post(session, 'Debugger.disable').catch(() => {});
    const stack = frames.map((f) => where(f.functionName, f.url || scripts.get(f.location.scriptId) || '', f.location.lineNumber, f.location.columnNumber));
    // A stack taken once can land between two callbacks (a nextTick loop shows as
    // processTicksAndRejections alone); a short profile shows what runs over and over.
    let hot;
    try {
      await withTimeout(post(session, 'Profiler.enable'), PAUSE_TIMEOUT_MS, 'Profiler.enable');
      await post(session, 'Profiler.setSamplingInterval', { interval: 200 });
      await withTimeout(post(session, 'Profiler.start'), PAUSE_TIMEOUT_MS, 'Profiler.start');
      await new Promise((resolve) => setTimeout(resolve, PROFILE_MS));
      const { profile } = await withTimeout(post(session, 'Profiler.stop'), PAUSE_TIMEOUT_MS, 'Profiler.stop');
      hot = hotPaths(profile);
    } catch (error) {
      hot = [`(no profile: ${error.message})`];
    }
    return { stack, hot };
  } finally {
    session.disconnect();
  }
}

function where(functionName, url, line, column) {
  return `${functionName || '(anonymous)'} ${url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules)\//, '$1/')}:${line + 1}:${column + 1}`;
}

/** The profile's busiest call paths (root first), with their share of the samples. */
function hotPaths(profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const total = profile.nodes.reduce((sum, node) => sum + (node.hitCount ?? 0), 0) || 1;
  const skip = new Set(['(root)', '(program)', '(idle)', '(garbage collector)']);
  return profile.nodes
    .filter((node) => node.hitCount > 0 && !skip.has(node.callFrame.functionName))
    .sort((a, b) => b.hitCount - a.hitCount)
    .slice(0, 4)
    .map((node) => {
      const path = [];
      for (let id = node.id; id !== undefined && byId.get(id).callFrame.functionName !== '(root)'; id = parent.get(id)) {
        const { functionName, url, lineNumber, columnNumber } = byId.get(id).callFrame;
        path.unshift(where(functionName, url, lineNumber, columnNumber));
      }
      return `${Math.round((100 * node.hitCount) / total)} %: ${path.join(' > ')}`;
    });
}

setInterval(async () => {
  const stall = Date.now() - origin - Atomics.load(beat, 0);
  if (stall < stallMs) {
    reported = false;
    return;
  }
  if (reported) return;
  reported = true;
  let snapshot;
  try {
    snapshot = await mainThreadSnapshot();
  } catch (error) {
    snapshot = { stack: [`(no JavaScript stack: ${error.message} — stuck in native code?)`] };
  }
  writeSync(2, `ABUSE-WATCHDOG ${JSON.stringify({ stallMs: Date.now() - origin - Atomics.load(beat, 0), ...snapshot })}\n`);
}, CHECK_MS);
