// The server side of the abuse soak (test/soak/abuse.mjs runs it as a child process, so a server
// whose main thread stops turning cannot take the driver with it: the driver kills it on a
// deadline). Answers the driver over IPC, { type: 'ask', id, what, ... } → { type: 'answer', id, answer }:
//
//   measure   after a full GC: open descriptors (count and kinds), threads (count and names),
//             RSS, heap, external and ArrayBuffer memory (the main thread's; workers' heaps are in
//             the RSS only), server.stats() — works before listen and after close too
//   listen    starts a ThreadingTCPServer on 127.0.0.1:0 (argv[2] the handler, `options` merged
//             over a counting logger); answers { port }
//   ping      cheap: connections, requests in flight and queued, RSS (proves the main thread turns)
//   phase     starts a new phase: resets the event-loop delay histogram and returns the counters
//   counts    what happened since `phase`: handleError calls by code (with sample messages), log
//             lines by message, the main thread's event-loop delay (p50/p99/max ms)
//   close     await server.close(); answers how long it took
//
// A watchdog thread (abuse-watchdog.mjs) prints the main thread's stack on stderr when it stalls
// for 2 s. The process exits when the driver disconnects.

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { ThreadingTCPServer } from '../../dist/src/index.js';

const STALL_MS = 2000;
const HEARTBEAT_MS = 50;
const [handler] = process.argv.slice(2);

// The watchdog first, so it is part of every baseline below.
const heartbeat = new SharedArrayBuffer(4);
const beat = new Int32Array(heartbeat);
const origin = Date.now();
Atomics.store(beat, 0, 0);
setInterval(() => Atomics.store(beat, 0, Date.now() - origin), HEARTBEAT_MS).unref();
const watchdog = new Worker(new URL('./abuse-watchdog.mjs', import.meta.url), { workerData: { heartbeat, origin, stallMs: STALL_MS } });
await new Promise((resolve) => watchdog.once('online', resolve));
watchdog.unref(); // the IPC channel keeps this process alive, not the watchdog
// libuv starts its thread pool on first use; use it now so it is in the "before" thread count.
await readFile('/proc/self/status');

/** What the server said and did, since the last `phase`. */
let counts = newCounts();
function newCounts() {
  return { failures: {}, samples: {}, log: {} };
}
function note(level, context, message) {
  const text = typeof context === 'string' ? context : message;
  const code = typeof context === 'object' && context !== null ? context.code : undefined;
  const key = `${level}: ${text}${code ? ` (${code})` : ''}`;
  counts.log[key] = (counts.log[key] ?? 0) + 1;
}
const logger = {
  debug: () => {},
  info: () => {},
  warn: (context, message) => note('warn', context, message),
  error: (context, message) => note('error', context, message),
};

class AbuseServer extends ThreadingTCPServer {
  handleError(request, clientAddress, error) {
    const code = error?.code ?? 'no code';
    counts.failures[code] = (counts.failures[code] ?? 0) + 1;
    const samples = (counts.samples[code] ??= []);
    const message = String(error?.message).slice(0, 200);
    if (samples.length < 3 && !samples.includes(message)) samples.push(message);
    super.handleError(request, clientAddress, error);
  }
}

let server;
let loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

function fdKinds() {
  const kinds = {};
  for (const fd of readdirSync('/proc/self/fd')) {
    let target;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the directory listing's own descriptor, already closed
    }
    const kind = target.replace(/:\[\d+\]$/, '').replace(/^anon_inode:\[?([^\]]*)\]?$/, '$1');
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return kinds;
}

function threads() {
  const count = Number(/^Threads:\s+(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
  const names = {};
  for (const task of readdirSync('/proc/self/task')) {
    try {
      const name = readFileSync(`/proc/self/task/${task}/comm`, 'utf8').trim();
      names[name] = (names[name] ?? 0) + 1;
    } catch {
      // the thread ended while we looked
    }
  }
  return { count, names };
}

async function measure() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc?.();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const { rss, heapUsed, external, arrayBuffers } = process.memoryUsage();
  const fds = fdKinds();
  const stats = server?.stats();
  return {
    fds: Object.values(fds).reduce((a, b) => a + b, 0),
    fdKinds: fds,
    threads: threads(),
    rss,
    heapUsed,
    external,
    arrayBuffers,
    stats: stats && { ...stats, requestDurations: undefined },
  };
}

const ms = (ns) => +(ns / 1e6).toFixed(1);

const answers = {
  measure,
  async listen({ options }) {
    server = new AbuseServer({ host: '127.0.0.1', port: 0 }, handler, { ...options, logger });
    const { port } = await server.listen();
    return { port };
  },
  ping() {
    const s = server?.stats();
    const rss = process.memoryUsage.rss();
    return s ? { connections: s.connections, requestsInFlight: s.requestsInFlight, queuedRequests: s.queuedRequests, rss } : { rss };
  },
  phase() {
    counts = newCounts();
    loopDelay.disable();
    loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    return server?.stats();
  },
  counts() {
    return {
      ...counts,
      stats: server?.stats(),
      loopDelay: { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) },
    };
  },
  async close() {
    const started = performance.now();
    await server.close();
    loopDelay.disable();
    return { ms: Math.round(performance.now() - started) };
  },
};

process.on('message', async (message) => {
  if (message?.type !== 'ask') return;
  let answer;
  try {
    answer = await answers[message.what](message);
  } catch (error) {
    answer = { error: String(error?.stack ?? error) };
  }
  if (process.connected) process.send({ type: 'answer', id: message.id, answer });
});
process.on('disconnect', () => process.exit(0));
process.send({ type: 'ready' });
