// The abusive clients of the abuse soak (a worker thread of test/soak/abuse.mjs). It lowers its
// own thread's priority (nice, Linux; workerData.nice) so that on a small machine the load it
// makes competes less with the server and the probe than with itself — as if the abusers were
// other machines. Every socket is on 127.0.0.1, every wait is bounded, and an 'abort' destroys
// every socket at once.
//
// { type: 'run', name, kinds, port, durationMs, mode, seed } runs a phase: for each kind, `lanes`
// loops each run one episode (one abusive client, or one batch of them), then a fresh client —
// "fresh\n" must be answered "ok fresh\n" within workerData.freshMs of its connect — then the
// next episode, until durationMs has passed (every lane runs at least one episode). Answers
// { type: 'done', result: { kinds: { [kind]: { episodes, outcomes, problems } }, fresh } }.
// { type: 'warmup', port } takes each client path once, no faults (same answer).
//
// The kinds (the handler is test/fixtures/abuse.js):
//   nonreader-close|reset|halfclose  pipelines 200 × "big 262144" (50 MiB of replies), never reads,
//                       holds 0.3–2 s (short: 0.4–1.2 s), then closes (destroy), resets
//                       (resetAndDestroy) or half-closes (end, still not reading, then closes 1 s
//                       later; short: 0.3 s)
//   slowloris           one byte every 200–400 ms until the phase ends, then the newline: the line
//                       must be answered within freshMs
//   garbage             16–64 KiB of random bytes (newlines included), then FIN; must be closed
//   overlong            a line 256 KiB past maxFrameBytes, then FIN: "ERROR ERR_FRAME_TOO_LONG", EOF
//   storm               a batch of connections opened at once, each closed at once, reset, reset
//                       after a partial request, half-closed, or after one answered request
//   flood               one connection pipelines thousands of "f" requests; every "ok f" must come
//   exit | throw-nonerror | hang | spin | oom   faulty handlers: "exit" (process.exit), the four
//                       non-Error throws (one connection each), "hang" (never settles), "loop"
//                       (spins past requestTimeout), "oom" (past workerHeapMb); each connection
//                       must be closed within FAULT_CLOSE_MS

import { readlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';

const { nice = 0, maxFrameBytes, freshMs } = workerData;
const BIG_COUNT = 200;
const BIG_BYTES = 256 * 1024;
/** A faulty request's connection must be closed within this (requestTimeout is 500 ms). */
const FAULT_CLOSE_MS = 5000;
const CONNECT_MS = 3000;

lowerThreadPriority(nice);

function lowerThreadPriority(value) {
  if (value <= 0 || process.platform !== 'linux') return;
  try {
    setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), value);
  } catch {
    // not permitted: run at normal priority
  }
}

/** mulberry32: a seeded PRNG, so a run's choices replay. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One running phase: its clock, its sockets (for abort), its tallies. */
class Phase {
  constructor({ port, durationMs, mode, seed }) {
    this.port = port;
    this.mode = mode;
    this.until = performance.now() + durationMs;
    this.random = prng(seed);
    this.aborted = false;
    this.sockets = new Set();
    this.sleepers = new Set();
    this.kinds = {};
    this.fresh = { checks: 0, failed: 0, maxMs: 0, failures: [] };
  }

  kind(name) {
    return (this.kinds[name] ??= { episodes: 0, outcomes: {}, problems: {} });
  }

  outcome(kind, label) {
    const k = this.kind(kind);
    k.outcomes[label] = (k.outcomes[label] ?? 0) + 1;
  }

  problem(kind, text) {
    const k = this.kind(kind);
    k.problems[text] = (k.problems[text] ?? 0) + 1;
  }

  /** Resolves after `ms`, or at once on abort. */
  sleep(ms) {
    if (this.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }

  abort() {
    this.aborted = true;
    for (const socket of this.sockets) socket.destroy();
    for (const wake of [...this.sleepers]) wake();
  }

  get timeLeft() {
    return !this.aborted && performance.now() < this.until;
  }
}

/** A client connection that records what it receives (up to `keep` bytes; all are counted). */
class Client {
  static open(phase, { read = true, keep = 1 << 20, timeoutMs = CONNECT_MS } = {}) {
    return new Promise((resolve, reject) => {
      const socket = connect({ port: phase.port, host: '127.0.0.1', noDelay: true });
      if (!read) socket.pause();
      const client = new Client(phase, socket, read, keep);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect: not connected within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(client);
      });
      socket.once('close', () => {
        clearTimeout(timer);
        reject(new Error(`connect: ${client.error?.code ?? 'closed before connecting'}`));
      });
    });
  }

  constructor(phase, socket, read, keep) {
    this.phase = phase;
    this.socket = socket;
    this.keep = keep;
    this.chunks = [];
    this.kept = 0;
    this.bytes = 0;
    this.ended = false;
    this.closed = false;
    this.error = undefined;
    this.waiters = new Set();
    phase.sockets.add(socket);
    if (read) {
      socket.on('data', (chunk) => {
        this.bytes += chunk.length;
        this.onData?.(chunk);
        if (this.kept < keep) {
          this.chunks.push(chunk);
          this.kept += chunk.length;
        }
        this.wake();
      });
    }
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', (error) => {
      this.error = error;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      phase.sockets.delete(socket);
      this.wake();
    });
  }

  get text() {
    return Buffer.concat(this.chunks).toString('latin1');
  }

  write(data) {
    if (!this.socket.destroyed) this.socket.write(data, () => {});
  }

  /** True once `done()` holds; false after `ms` or on abort. */
  until(done, ms) {
    if (done()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (value) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(value);
      };
      const check = () => {
        if (done()) finish(true);
        else if (this.phase.aborted) finish(false);
      };
      const timer = setTimeout(() => finish(done()), ms);
      this.waiters.add(check);
    });
  }

  wake() {
    for (const check of [...this.waiters]) check();
  }

  /** How the connection ended, as the client saw it. */
  get ending() {
    if (this.error) return `reset (${this.error.code ?? this.error.message})`;
    if (this.ended) return 'EOF';
    return this.closed ? 'closed' : 'open';
  }
}

const quote = (text, max = 60) => JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);

// ---- the episodes ---------------------------------------------------------------------------

function nonReader(how) {
  return async (phase, kind) => {
    const client = await Client.open(phase, { read: false });
    client.write(`big ${BIG_BYTES}\n`.repeat(BIG_COUNT));
    // How long it sits on 50 MiB of replies without reading: long enough, mostly, for
    // writeBufferHardLimit (16 MiB) to disconnect it first.
    await phase.sleep(phase.mode === 'short' ? 400 + Math.floor(phase.random() * 800) : 300 + Math.floor(phase.random() * 1700));
    const errorBefore = client.error?.code;
    if (how === 'close') client.socket.destroy();
    else if (how === 'reset') client.socket.resetAndDestroy();
    else {
      client.socket.end();
      await phase.sleep(phase.mode === 'short' ? 300 : 1000);
      client.socket.destroy();
    }
    phase.outcome(kind, errorBefore ? `${how} (the server had reset it: ${errorBefore})` : how);
  };
}

async function slowloris(phase, kind) {
  const client = await Client.open(phase);
  const started = performance.now();
  let line = '';
  while (!phase.aborted && (line.length < 3 || (phase.timeLeft && line.length < 4000)) && !client.closed) {
    const byte = String.fromCharCode(97 + Math.floor(phase.random() * 26));
    client.write(byte);
    line += byte;
    await phase.sleep(200 + Math.floor(phase.random() * 200));
  }
  if (phase.aborted) return;
  if (client.closed) {
    phase.problem(kind, `closed by the server while dribbling (${client.ending})`);
    return;
  }
  client.write('\n');
  const answered = await client.until(() => client.bytes >= line.length + 4, freshMs);
  if (answered && client.text === `ok ${line}\n`) phase.outcome(kind, 'its line answered');
  else
    phase.problem(
      kind,
      `a line dribbled over ${Math.round((performance.now() - started) / 1000)} s was not answered within ${freshMs} ms of its newline (${client.ending})`,
    );
  client.socket.end();
  await client.until(() => client.closed, 3000);
  client.socket.destroy();
}

async function garbage(phase, kind) {
  const size = 16384 + Math.floor(phase.random() * 49152);
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i++) bytes[i] = Math.floor(phase.random() * 256);
  const client = await Client.open(phase);
  client.write(bytes);
  client.socket.end();
  const closed = await client.until(() => client.closed, FAULT_CLOSE_MS);
  client.socket.destroy();
  if (!closed) phase.problem(kind, `not closed within ${FAULT_CLOSE_MS} ms of the client's FIN`);
  else phase.outcome(kind, `${client.text.split('\n').length - 1 > 0 ? 'replies' : 'no reply'}, then ${client.ending}`);
}

async function overlong(phase, kind) {
  const client = await Client.open(phase);
  client.write(Buffer.alloc(maxFrameBytes + 256 * 1024, 'A'));
  client.socket.end();
  const closed = await client.until(() => client.closed, FAULT_CLOSE_MS);
  client.socket.destroy();
  if (!closed) phase.problem(kind, `not closed within ${FAULT_CLOSE_MS} ms of the client's FIN`);
  else if (client.text !== 'ERROR ERR_FRAME_TOO_LONG\n') phase.problem(kind, `got ${quote(client.text)} instead of "ERROR ERR_FRAME_TOO_LONG", then ${client.ending}`);
  else phase.outcome(kind, `ERROR ERR_FRAME_TOO_LONG, then ${client.ending}`);
}

const STORM_FATES = ['close at once', 'reset at once', 'one request', 'reset mid-request', 'FIN at once'];

async function stormOne(phase, kind, fate) {
  let client;
  try {
    client = await Client.open(phase);
  } catch (error) {
    phase.outcome(kind, `${fate}: ${error.message}`);
    return;
  }
  switch (fate) {
    case 'close at once':
      client.socket.destroy();
      break;
    case 'reset at once':
      client.socket.resetAndDestroy();
      break;
    case 'one request': {
      client.write('storm\n');
      const answered = await client.until(() => client.bytes >= 9 || client.closed, freshMs);
      if (!(answered && client.text === 'ok storm\n')) phase.problem(kind, `a storm client's request was not answered within ${freshMs} ms (${client.ending})`);
      client.socket.end();
      await client.until(() => client.closed, 3000);
      break;
    }
    case 'reset mid-request':
      client.write('sto', () => {});
      await new Promise((resolve) => setImmediate(resolve));
      client.socket.resetAndDestroy();
      break;
    default:
      client.socket.end();
      await client.until(() => client.closed, 3000);
  }
  client.socket.destroy();
  phase.outcome(kind, fate);
}

async function storm(phase, kind) {
  const size = { soak: 200, short: 100, mixed: 50 }[phase.mode];
  await Promise.all(Array.from({ length: size }, () => stormOne(phase, kind, STORM_FATES[Math.floor(phase.random() * STORM_FATES.length)])));
}

async function flood(phase, kind) {
  const count = phase.mode === 'soak' ? 20000 : 5000;
  const expected = 'ok f\n';
  const client = await Client.open(phase, { keep: 0 });
  let mismatch = false;
  let at = 0;
  client.onData = (chunk) => {
    for (let i = 0; i < chunk.length && !mismatch; i++, at++) if (chunk[i] !== expected.charCodeAt(at % 5)) mismatch = true;
  };
  client.write('f\n'.repeat(count));
  const answered = await client.until(() => client.bytes >= count * 5 || client.closed, 15000);
  client.socket.end();
  await client.until(() => client.closed, 3000);
  client.socket.destroy();
  if (phase.aborted) return;
  if (!answered || client.bytes !== count * 5) phase.problem(kind, `${count} pipelined requests: ${Math.floor(client.bytes / 5)} answered (${client.ending})`);
  else if (mismatch) phase.problem(kind, `${count} pipelined requests: a reply differs from "ok f"`);
  else phase.outcome(kind, `${count} answered`);
}

/** A faulty request on a connection of its own: the connection must be closed (onHandlerError 'close'). */
async function faulty(phase, kind, request) {
  const client = await Client.open(phase);
  client.write(`${request}\n`);
  const closed = await client.until(() => client.closed, FAULT_CLOSE_MS);
  client.socket.destroy();
  if (phase.aborted) return;
  const reply = client.text ? quote(client.text.trim()) : 'no reply';
  if (!closed) phase.problem(kind, `"${request}": neither answered nor closed within ${FAULT_CLOSE_MS} ms (received ${reply})`);
  else phase.outcome(kind, `"${request}": ${reply}, then ${client.ending}`);
}

const fault = (request) => (phase, kind) => faulty(phase, kind, request);

async function throwNonError(phase, kind) {
  for (const request of ['throw-null-proto', 'throw-42', 'throw-undefined', 'throw-string']) {
    if (phase.aborted) return;
    await faulty(phase, kind, request);
  }
}

/** Each kind: its episode, and how many lanes run it at once (a phase of that kind alone, short or soak; or the mixed phase). */
const KINDS = {
  'nonreader-close': { episode: nonReader('close'), lanes: { soak: 2, short: 3, mixed: 1 } },
  'nonreader-reset': { episode: nonReader('reset'), lanes: { soak: 2, short: 3, mixed: 1 } },
  'nonreader-halfclose': { episode: nonReader('halfclose'), lanes: { soak: 2, short: 3, mixed: 1 } },
  slowloris: { episode: slowloris, lanes: { soak: 20, short: 5, mixed: 5 } },
  garbage: { episode: garbage, lanes: { soak: 2, short: 1, mixed: 1 } },
  overlong: { episode: overlong, lanes: { soak: 2, short: 1, mixed: 1 } },
  storm: { episode: storm, lanes: { soak: 1, short: 1, mixed: 1 } },
  flood: { episode: flood, lanes: { soak: 3, short: 1, mixed: 1 } },
  exit: { episode: fault('exit'), lanes: { soak: 1, short: 1, mixed: 1 } },
  'throw-nonerror': { episode: throwNonError, lanes: { soak: 2, short: 1, mixed: 1 } },
  hang: { episode: fault('hang'), lanes: { soak: 2, short: 1, mixed: 1 } },
  spin: { episode: fault('loop'), lanes: { soak: 1, short: 1, mixed: 1 } },
  oom: { episode: fault('oom'), lanes: { soak: 1, short: 1, mixed: 1 } },
};

/** After each abusive client: a new connection must be answered within freshMs. */
async function freshClient(phase, afterKind) {
  const started = performance.now();
  let client;
  let reason;
  try {
    client = await Client.open(phase, { timeoutMs: freshMs });
    client.write('fresh\n');
    const answered = await client.until(() => client.bytes >= 9 || client.closed, Math.max(1, freshMs - (performance.now() - started)));
    if (!answered) reason = `no reply within ${freshMs} ms`;
    else if (client.text !== 'ok fresh\n') reason = `got ${quote(client.text)}, then ${client.ending}`;
  } catch (error) {
    reason = error.message;
  }
  client?.socket.destroy();
  if (phase.aborted) return;
  const ms = Math.round(performance.now() - started);
  phase.fresh.checks++;
  phase.fresh.maxMs = Math.max(phase.fresh.maxMs, ms);
  if (reason) {
    phase.fresh.failed++;
    if (phase.fresh.failures.length < 5) phase.fresh.failures.push(`after ${afterKind}: ${reason}`);
  }
}

async function lane(phase, kind) {
  const { episode } = KINDS[kind];
  let episodes = 0;
  while (!phase.aborted && (episodes === 0 || phase.timeLeft)) {
    episodes++;
    phase.kind(kind).episodes++;
    try {
      await episode(phase, kind);
    } catch (error) {
      if (!phase.aborted) phase.problem(kind, error.message);
    }
    if (phase.aborted) break;
    await freshClient(phase, kind);
  }
}

/**
 * Each client path once before the baseline (JIT, buffers, pools): 20 big replies read in full,
 * 5000 pipelined requests, an overlong line, random bytes, 50 fresh connections. No fault: the
 * workers the baseline sees are the ones the pool started with.
 */
async function warmup(phase) {
  const reader = await Client.open(phase, { keep: 0 });
  reader.write(`big ${BIG_BYTES}\n`.repeat(20));
  if (!(await reader.until(() => reader.bytes >= 20 * (BIG_BYTES + 1), 10000))) phase.problem('warmup', `20 big replies: ${reader.bytes} bytes`);
  reader.socket.destroy();
  const flooder = await Client.open(phase, { keep: 0 });
  flooder.write('f\n'.repeat(5000));
  if (!(await flooder.until(() => flooder.bytes >= 5000 * 5, 10000))) phase.problem('warmup', `5000 small replies: ${flooder.bytes} bytes`);
  flooder.socket.destroy();
  await overlong(phase, 'warmup');
  await garbage(phase, 'warmup');
  await Promise.all(Array.from({ length: 50 }, () => freshClient(phase, 'warmup')));
}

let running = null;
parentPort.on('message', async (message) => {
  if (message.type === 'abort') {
    running?.abort();
    return;
  }
  const phase = new Phase(message);
  running = phase;
  const started = performance.now();
  if (message.type === 'warmup') await warmup(phase);
  else if (message.kinds.length === 0) await phase.sleep(message.durationMs); // the probe alone
  else {
    const lanes = [];
    for (const kind of message.kinds) {
      if (!KINDS[kind]) throw new Error(`no such kind of abuse: ${kind}`);
      for (let i = 0; i < KINDS[kind].lanes[message.mode]; i++) lanes.push(lane(phase, kind));
    }
    await Promise.all(lanes);
  }
  running = null;
  parentPort.postMessage({
    type: 'done',
    result: { kinds: phase.kinds, fresh: phase.fresh, aborted: phase.aborted, ms: Math.round(performance.now() - started) },
  });
});
parentPort.postMessage({ type: 'ready', kinds: Object.keys(KINDS) });
