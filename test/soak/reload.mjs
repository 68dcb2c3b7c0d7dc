// npm run soak:reload [-- --connections C --window W --reloads R --every MS --workers N]: a reload
// under load. A ThreadingTCPServer in a child process (reload-server.mjs) serves
// test/fixtures/version-1.js; C connections each keep W requests outstanding (every 5th an async
// one that awaits 1 ms), while the server reloads R times, every MS ms, alternating version-2.js
// and version-1.js. It reports, and fails (exit 1) unless the first three are 0:
//   - requests failed (an error reply, a reply out of order or missing, a connection dropped),
//   - requests that ran twice (the fixtures' ledger, in the server's memory),
//   - replies from a version older than one already seen on that connection,
// and measures the longest gap any connection saw between two replies — during the reloads
// (from reload() to the new version serving, plus 250 ms) and outside them — the time from
// reload() to the new version serving, and the server's threads, heap and RSS before and after
// (RSS rises to a plateau: glibc keeps stopped threads' memory in its arenas; see docs/deployment.md).
// Bounded: loopback only, a deadline on the whole run.

import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import { ROOT, deadline, mib } from './common.mjs';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '16' },
    window: { type: 'string', default: '32' },
    reloads: { type: 'string', default: '20' },
    every: { type: 'string', default: '500' },
    workers: { type: 'string', default: '2' },
  },
});
const CONNECTIONS = Number(values.connections);
const WINDOW = Number(values.window);
const RELOADS = Number(values.reloads);
const EVERY_MS = Number(values.every);
const WORKERS = Number(values.workers);
/** A reload's window for the gap statistics: from reload() to the new version serving, plus this. */
const AFTER_RELOAD_MS = 250;
const fixture = (name) => `${ROOT}test/fixtures/${name}.js`;
deadline(60_000 + RELOADS * (EVERY_MS + 5_000), 'the reload soak');

// ---- the server, in a child process -----------------------------------------------------------

const child = spawn(process.execPath, ['--expose-gc', `${ROOT}test/soak/reload-server.mjs`, fixture('version-1'), JSON.stringify({ workers: WORKERS, onHandlerError: 'reply' })], {
  cwd: ROOT,
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
let nextId = 0;
const waiting = new Map();
let onListening;
const listening = new Promise((resolve) => (onListening = resolve));
child.on('message', (message) => {
  if (message.type === 'listening') onListening(message.port);
  else if (message.type === 'answer') {
    waiting.get(message.id)?.(message.answer);
    waiting.delete(message.id);
  }
});
child.on('exit', (code, signal) => {
  if (!stopping) {
    console.error(`the server process exited (${code ?? signal})`);
    process.exit(1);
  }
});
let stopping = false;
const request = (message) =>
  new Promise((resolve) => {
    const id = nextId++;
    waiting.set(id, resolve);
    child.send({ ...message, id });
  });
const port = await listening;

// ---- the clients --------------------------------------------------------------------------------

/** One connection, closed loop: W requests outstanding; checks each reply as it arrives. */
function client(c) {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.setNoDelay(true);
  const state = { c, sent: 0, answered: 0, failed: 0, switches: 0, version: 0, arrivals: [], dropped: false, done: null };
  let buffered = '';
  let stop = false;
  // Ids are dense over all connections (the server's ledger counts the runs of ids below 4 Mi).
  const idOf = (n) => 1 + c + n * CONNECTIONS;
  const pump = () => {
    let batch = '';
    while (!stop && state.sent - state.answered < WINDOW) {
      const id = idOf(state.sent++);
      batch += id % 5 === 0 ? `${id} sleep 1\n` : `${id}\n`;
    }
    if (batch) socket.write(batch);
  };
  socket.on('connect', pump);
  socket.on('data', (chunk) => {
    const now = performance.now();
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      const expected = idOf(state.answered++);
      const match = /^v(\d+) (\d+)$/.exec(line);
      if (match === null || Number(match[2]) !== expected) {
        state.failed++;
        if (state.failed <= 3) console.error(`connection ${c}: reply ${JSON.stringify(line)} where ${expected} was due`);
        continue;
      }
      const version = Number(match[1]);
      // v1 and v2 alternate, one switch per reload: a connection that went back to the version it
      // left (a request run on the old version after a later one ran on the new) counts more.
      if (state.version !== 0 && version !== state.version) state.switches++;
      state.version = version;
      state.arrivals.push(now);
    }
    if (stop && state.answered === state.sent) socket.end();
    else pump();
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    if (!stop || state.answered < state.sent) state.dropped = true;
    state.done?.();
  });
  state.finish = () =>
    new Promise((resolve) => {
      state.done = resolve;
      stop = true;
      if (state.answered === state.sent) socket.end();
    });
  return state;
}

const before = await request({ type: 'ask' });
const clients = Array.from({ length: CONNECTIONS }, (_, c) => client(c));
const reloads = [];
const loadStarted = performance.now();
await new Promise((resolve) => setTimeout(resolve, EVERY_MS));
for (let r = 0; r < RELOADS; r++) {
  const name = r % 2 === 0 ? 'version-2' : 'version-1';
  const startedAt = performance.now();
  const answer = await request({ type: 'reload', handler: fixture(name) });
  const endedAt = performance.now();
  if (answer.error) {
    console.error(`reload ${r + 1} failed: ${answer.error}`);
    process.exitCode = 1;
  }
  reloads.push({ startedAt, endedAt, ms: answer.ms ?? NaN });
  // At least AFTER_RELOAD_MS on each version, so every connection sees it (the last one too).
  const pause = Math.max(AFTER_RELOAD_MS, EVERY_MS - (performance.now() - startedAt));
  await new Promise((resolve) => setTimeout(resolve, pause));
}
await Promise.all(clients.map((state) => state.finish()));
const loadMs = performance.now() - loadStarted;

// ---- the figures ---------------------------------------------------------------------------------

const inReload = (from, to) => reloads.some((r) => from < r.endedAt + AFTER_RELOAD_MS && to > r.startedAt);
let gapInReload = 0;
let gapOutside = 0;
for (const state of clients) {
  for (let i = 1; i < state.arrivals.length; i++) {
    const gap = state.arrivals[i] - state.arrivals[i - 1];
    if (inReload(state.arrivals[i - 1], state.arrivals[i])) gapInReload = Math.max(gapInReload, gap);
    else gapOutside = Math.max(gapOutside, gap);
  }
}
// The last old version retires once it carries nothing: its threads stop shortly after.
let after = await request({ type: 'ask' });
for (const until = performance.now() + 10_000; after.threads > before.threads && performance.now() < until; ) {
  await new Promise((resolve) => setTimeout(resolve, 100));
  after = await request({ type: 'ask' });
}
stopping = true;
child.send({ type: 'stop' });
await new Promise((resolve) => child.on('exit', resolve));

const answered = clients.reduce((sum, s) => sum + s.answered, 0);
const failed = clients.reduce((sum, s) => sum + s.failed, 0);
const dropped = clients.filter((s) => s.dropped).length;
const switches = clients.reduce((sum, s) => sum + s.switches, 0);
const sorted = reloads.map((r) => r.ms).sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)] ?? NaN;
const ms = (value) => `${Math.round(value)} ms`;
console.log(`reload under load: ${CONNECTIONS} connections × ${WINDOW} outstanding, ${WORKERS} workers, ${RELOADS} reloads every ${EVERY_MS} ms`);
console.log(`  requests: ${answered} answered in ${(loadMs / 1000).toFixed(1)} s (${Math.round(answered / (loadMs / 1000))}/s), ${failed} failed, ${dropped} connections dropped, ${after.twice.length} ran twice (of the ${Math.min(answered, after.ids - 1)} the ledger counts)`);
console.log(`  version switches seen by the connections: ${switches} (${RELOADS} reloads × ${CONNECTIONS} connections = ${RELOADS * CONNECTIONS} expected)`);
console.log(`  reload() to the new version serving: median ${ms(median)}, max ${ms(sorted.at(-1) ?? NaN)}`);
console.log(`  longest gap any connection saw between two replies: ${ms(gapInReload)} around a reload, ${ms(gapOutside)} otherwise`);
console.log(`  server: main-thread event-loop delay max ${ms(after.loopDelayMax)}; threads ${before.threads} → ${after.threads}, heap ${mib(before.heapUsed)} → ${mib(after.heapUsed)}, rss ${mib(before.rss)} → ${mib(after.rss)}, handler version ${after.stats.handlerVersion}, requests failed ${after.stats.requestsFailed}`);
const ok =
  failed === 0 &&
  dropped === 0 &&
  after.twice.length === 0 &&
  switches === RELOADS * CONNECTIONS &&
  after.stats.requestsFailed === 0 &&
  after.threads === before.threads &&
  process.exitCode !== 1;
console.log(ok ? 'ok' : 'FAILED');
process.exit(ok ? 0 : 1);
