// npm run soak:abuse [-- --seconds 60 --phases a,b,… --mixed a,b,… --seed N --short --json
//                        --probe-max-ms 250 --abuser-nice 5 --workers 2]      (or SOAK_ABUSE_SECONDS=120 npm run soak:abuse)
//
// Abusive clients and faulty handlers against one ThreadingTCPServer (2 workers, requestTimeout
// 500 ms, workerHeapMb 64, every other option at its default; handler test/fixtures/abuse.js),
// while a probe sends a cheap request every 10 ms on a connection of its own and measures each
// reply's latency. The abuse runs in phases, one kind each, then all kinds side by side ("mixed"),
// so a failure names the abuse that caused it:
//
//   nonreader-close, nonreader-reset, nonreader-halfclose, slowloris, garbage, overlong, storm,
//   flood, exit, throw-nonerror, hang, spin, oom, mixed     (abuse-clients.mjs says what each does)
//
// Targets, each printed PASS or FAIL at the end (exit 1 when one is missed; docs/abuse-soak.md):
//   - probe max ≤ 250 ms, in every phase; no probe unanswered (a probe sent is answered before the
//     run ends; the probe's connection is never lost);
//   - after each abusive client, a fresh client is answered within 3 s;
//   - the server keeps turning: its main thread never stalls for 2 s (a watchdog thread in the
//     server prints its stack and a short profile when it does), it never stops answering the
//     driver for 5 s (--short: 3 s; then the driver kills it, reports the phase STUCK and goes on
//     with a new server), it never exits;
//   - documented fault semantics: a non-Error throw fails its request with ERR_HANDLER_FAILED
//     and no worker dies; a never-settling handler fails with ERR_REQUEST_TIMEOUT and no worker dies;
//   - every connection is gone within 10 s after each phase;
//   - after the abuse, server still open: its open descriptors and threads are back to the count
//     before the abuse (waited for, up to 10 s), its RSS within 10 % of it;
//   - after server.close(): descriptors and threads back to the count before listen() (waited
//     for, up to 10 s), RSS within 10 % of the count before the abuse.
//
// "Before the abuse" is measured after a warm-up that takes each client path once (no faults)
// and a quiet baseline phase of probes alone. The server runs in a child process
// (abuse-server.mjs): a server whose main thread spins cannot hang this driver, which kills it on
// a deadline and says what stopped. The probe (abuse-probe.mjs) and the abusive clients
// (abuse-clients.mjs, at nice 5 so on a small machine they compete less with the server than with
// themselves) each run on a thread of their own. --short is the version test/abuse.test.ts runs
// (~20 s, every kind at least once; --seconds does not apply); --json also prints the figures as
// one line "ABUSE-RESULT {…}". The whole run has a deadline (seconds + 180 s, short 120 s).
// The server process inherits the environment: MALLOC_MMAP_THRESHOLD_=131072 tells glibc's
// retention of freed memory from a leak (docs/abuse-soak.md, "RSS").

import { execFileSync, spawn } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { ensureFileLimit, mib, ROOT } from './common.mjs';

const ALL_KINDS = [
  'nonreader-close',
  'nonreader-reset',
  'nonreader-halfclose',
  'slowloris',
  'garbage',
  'overlong',
  'storm',
  'flood',
  'exit',
  'throw-nonerror',
  'hang',
  'spin',
  'oom',
];

const { values } = parseArgs({
  options: {
    seconds: { type: 'string' },
    phases: { type: 'string' },
    mixed: { type: 'string' },
    seed: { type: 'string', default: '1' },
    short: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    'probe-max-ms': { type: 'string', default: '250' },
    'abuser-nice': { type: 'string', default: '5' },
    workers: { type: 'string', default: '2' },
  },
});
const SHORT = values.short;
const SECONDS = Number(values.seconds ?? process.env.SOAK_ABUSE_SECONDS ?? (SHORT ? 12 : 60));
const PHASES = (values.phases ?? [...ALL_KINDS, 'mixed'].join(',')).split(',').filter(Boolean);
/** The kinds the mixed phase runs side by side (--mixed narrows it, to find which together break what). */
const MIXED = values.mixed ? values.mixed.split(',').filter(Boolean) : ALL_KINDS;
for (const name of [...PHASES, ...MIXED]) {
  if (name !== 'mixed' && !ALL_KINDS.includes(name)) {
    console.error(`sockserv soak: no such phase "${name}"; phases: ${[...ALL_KINDS, 'mixed'].join(', ')}`);
    process.exit(2);
  }
}
const SEED = Number(values.seed);
const PROBE_MAX_MS = Number(values['probe-max-ms']);
const FRESH_MS = 3000;
/** The server must answer the driver (IPC) within this, or it is declared stuck and killed. */
const STUCK_MS = SHORT ? 3000 : 5000;
const QUIET_MS = 10_000;
const SETTLE_MS = 10_000;
const RSS_SLACK = 0.1;
const HANDLER = `${ROOT}test/fixtures/abuse.js`;
const SERVER_OPTIONS = { workers: Number(values.workers), requestTimeout: 500, workerHeapMb: 64 };

const { DEFAULTS } = await import(`${ROOT}dist/src/index.js`);

/** Phase lengths: the kinds share what the baseline and the mixed phase leave. */
function durations() {
  const kinds = PHASES.filter((p) => p !== 'mixed');
  // Short: the non-readers get 1.5 s, several episodes each: whether one hangs the server is a race.
  if (SHORT) return { baseline: 500, kind: 500, nonreader: 1500, mixed: PHASES.includes('mixed') ? 2000 : 0 };
  const total = SECONDS * 1000;
  const baseline = Math.max(1000, total * 0.04);
  const mixed = PHASES.includes('mixed') ? total * 0.2 : 0;
  const kind = Math.max(1000, (total - baseline - mixed) / Math.max(1, kinds.length));
  return { baseline, kind, nonreader: kind, mixed };
}

// ---- the server process -----------------------------------------------------------------------

class ServerProcess {
  static async start() {
    const server = new ServerProcess();
    await server.#ready;
    return server;
  }

  #ready;
  #nextId = 0;
  #waiting = new Map();
  stderrTail = '';
  /** Watchdog reports: { at (ms, driver clock), stallMs, stack, hot }. */
  watchdog = [];

  constructor() {
    this.child = spawn(process.execPath, ['--expose-gc', `${ROOT}test/soak/abuse-server.mjs`, HANDLER], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
    this.exited.then((how) => {
      for (const { reject } of this.#waiting.values()) reject(new Error(`the server process exited (${how.code ?? how.signal})`));
      this.#waiting.clear();
    });
    this.child.stdout.setEncoding('utf8').on('data', (text) => this.#stderr(text));
    let partial = '';
    this.child.stderr.setEncoding('utf8').on('data', (text) => {
      partial += text;
      let end;
      while ((end = partial.indexOf('\n')) !== -1) {
        const line = partial.slice(0, end);
        partial = partial.slice(end + 1);
        if (line.startsWith('ABUSE-WATCHDOG ')) this.watchdog.push({ at: performance.now(), ...JSON.parse(line.slice(15)) });
        else this.#stderr(`${line}\n`);
      }
    });
    this.#ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the server process did not start within 10 s')), 10_000);
      this.child.on('message', (message) => {
        if (message.type === 'ready') {
          clearTimeout(timer);
          resolve();
        } else if (message.type === 'answer') {
          const waiter = this.#waiting.get(message.id);
          this.#waiting.delete(message.id);
          if (message.answer?.error) waiter?.reject(new Error(`server: ${message.answer.error}`));
          else waiter?.resolve(message.answer);
        }
      });
      this.exited.then(({ code, signal }) => reject(new Error(`the server process exited (${code ?? signal}) before it was ready:\n${this.stderrTail}`)));
    });
  }

  #stderr(text) {
    this.stderrTail = (this.stderrTail + text).slice(-4000);
    process.stderr.write(text.replace(/^(?=.)/gm, '[server] '));
  }

  get running() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Asks the server; rejects after `timeoutMs` ("no answer"), or when it exits. */
  ask(what, extra = {}, timeoutMs = STUCK_MS) {
    return new Promise((resolve, reject) => {
      if (!this.running) return reject(new Error('the server process is not running'));
      const id = this.#nextId++;
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        const error = new Error(`the server did not answer "${what}" within ${timeoutMs} ms`);
        error.noAnswer = true;
        reject(error);
      }, timeoutMs);
      this.#waiting.set(id, {
        resolve: (answer) => {
          clearTimeout(timer);
          resolve(answer);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.child.send({ type: 'ask', id, what, ...extra }, (error) => error && this.#waiting.get(id)?.reject(error));
    });
  }

  async kill() {
    if (this.running) this.child.kill('SIGKILL');
    await Promise.race([this.exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
  }

  /** Closes the IPC channel (the server exits) and waits, killing it after 5 s. */
  async stop() {
    if (this.running && this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

// ---- the driver's threads ---------------------------------------------------------------------

/** A worker thread and its next message of a given type, each wait bounded. */
function startThread(file, workerData) {
  const worker = new Worker(new URL(file, import.meta.url), { workerData });
  const inbox = [];
  const waiting = [];
  let failed = null;
  const deliver = () => {
    for (let i = 0; i < waiting.length; i++) {
      const w = waiting[i];
      const at = inbox.findIndex((m) => m.type === w.type);
      if (at !== -1) {
        waiting.splice(i--, 1);
        clearTimeout(w.timer);
        w.resolve(inbox.splice(at, 1)[0]);
      } else if (failed) {
        waiting.splice(i--, 1);
        clearTimeout(w.timer);
        w.reject(failed);
      }
    }
  };
  worker.on('message', (message) => {
    inbox.push(message);
    deliver();
  });
  worker.on('error', (error) => {
    failed = new Error(`${file} failed: ${error.stack ?? error}`);
    deliver();
  });
  worker.on('exit', () => {
    failed ??= new Error(`${file} exited`);
    deliver();
  });
  return {
    worker,
    post: (message) => worker.postMessage(message),
    next: (type, timeoutMs) =>
      new Promise((resolve, reject) => {
        const w = { type, resolve, reject };
        w.timer = setTimeout(() => {
          waiting.splice(waiting.indexOf(w), 1);
          reject(new Error(`${file}: no "${type}" within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.push(w);
        deliver();
      }),
  };
}

// ---- the run ----------------------------------------------------------------------------------

const started = performance.now();
const elapsed = () => ((performance.now() - started) / 1000).toFixed(1).padStart(6);
const log = (text) => console.log(`[${elapsed()} s] ${text}`);

const report = {
  ok: false,
  config: { seconds: SHORT ? null : SECONDS, short: SHORT, seed: SEED, phases: PHASES, mixed: MIXED, probeMaxMs: PROBE_MAX_MS, freshMs: FRESH_MS, server: SERVER_OPTIONS },
  /** The code measured: the checkout's commit (and whether it had changes). */
  commit: commitOf(),
  /** The machine's 1-minute load average at the start and the end, beside its core count: figures from a busy machine read differently. */
  machine: { cores: availableParallelism(), loadStart: +loadavg()[0].toFixed(2), loadEnd: null },
  phases: [],
  probe: null,
  resources: {},
  targets: [],
  restarts: 0,
  error: null,
};

let server = null;
let port = 0;
let current = '(start)';
let probe;
let abusers;
/** The current server's { beforeListen, beforeAbuse } measurements (a new server after a stuck phase has its own). */
let baselines = {};

function commitOf() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head} (with uncommitted changes)` : head;
  } catch {
    return null;
  }
}

function wait(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls the server until it holds only the probe's connection and nothing queued; false after QUIET_MS. */
async function quiet() {
  const deadline = performance.now() + QUIET_MS;
  let last;
  for (;;) {
    last = await server.ask('ping');
    if (last.connections <= 1 && last.queuedRequests === 0 && last.requestsInFlight <= 1) return { ok: true, last };
    if (performance.now() > deadline) return { ok: false, last };
    await wait(50);
  }
}

/** Measures until the descriptor and thread counts equal `target`'s, or SETTLE_MS has passed. */
async function settle(target) {
  const from = performance.now();
  let m;
  do {
    m = await server.ask('measure', {}, 15_000);
    if (m.fds === target.fds && m.threads.count === target.threads.count) break;
  } while (performance.now() - from < SETTLE_MS);
  return { ...m, settleMs: Math.round(performance.now() - from) };
}

/**
 * Keeps asking the server something cheap (noting its RSS, queued and in-flight requests); resolves
 * { stuck, probe } when an answer takes STUCK_MS (with the probe's state then), { exited } when it exits.
 */
function watch(signal) {
  return new Promise((resolve) => {
    (async () => {
      while (!signal.stop) {
        try {
          const { rss, queuedRequests, requestsInFlight } = await server.ask('ping');
          signal.rssPeak = Math.max(signal.rssPeak, rss);
          signal.queuedPeak = Math.max(signal.queuedPeak, queuedRequests);
          signal.inFlightPeak = Math.max(signal.inFlightPeak, requestsInFlight);
        } catch (error) {
          if (signal.stop) return;
          const at = performance.now();
          resolve(error.noAnswer ? { stuck: error.message, at, probe: await probeStatus() } : { exited: error.message, at });
          return;
        }
        await wait(250);
      }
    })();
  });
}

async function startServer() {
  server = await ServerProcess.start();
  const beforeListen = await server.ask('measure', {}, 15_000);
  ({ port } = await server.ask('listen', { options: SERVER_OPTIONS }, 15_000));
  probe.post({ type: 'connect', port });
  await probe.next('connected', 10_000);
  abusers.post({ type: 'warmup', port, durationMs: 0, mode: 'short', seed: SEED });
  const warm = await abusers.next('done', 60_000);
  const problems = Object.entries(warm.result.kinds.warmup?.problems ?? {}).map(([p]) => p);
  if (warm.result.fresh.failed) problems.push(...warm.result.fresh.failures);
  if (problems.length) throw new Error(`the warm-up failed: ${problems.join('; ')}`);
  if (!(await quiet()).ok) throw new Error('the server did not become quiet after the warm-up');
  log(`server pid ${server.child.pid} listening on 127.0.0.1:${port}; before listen: ${beforeListen.fds} fds, ${beforeListen.threads.count} threads, RSS ${mib(beforeListen.rss)}`);
  return beforeListen;
}

/** Runs one phase: the abusers, the watch on the server, then the wait for quiet and the server's counts. */
async function runPhase(name, kinds, durationMs, mode) {
  current = name;
  const phase = { name, kinds, durationMs: Math.round(durationMs), problems: [], episodes: {}, fresh: null, server: null, watchdog: [], stuck: null, crashed: null };
  report.phases.push(phase);
  const from = performance.now();
  await server.ask('phase');
  probe.post({ type: 'phase', name });
  abusers.post({ type: 'run', kinds, port, durationMs, mode, seed: SEED + report.phases.length });
  const signal = { stop: false, rssPeak: 0, queuedPeak: 0, inFlightPeak: 0 };
  const deadline = durationMs + 60_000;
  const done = abusers.next('done', deadline).then(
    (m) => ({ done: m.result }),
    (error) => ({ late: error.message }),
  );
  const outcome = await Promise.race([done, watch(signal)]);
  let trouble = outcome.stuck ?? outcome.exited ?? outcome.late;
  if (trouble) {
    abusers.post({ type: 'abort' });
    const aborted = await Promise.race([done, wait(15_000).then(() => ({}))]);
    Object.assign(phase, summarizeAbuse(aborted.done));
  } else {
    Object.assign(phase, summarizeAbuse(outcome.done));
    try {
      const q = await quiet();
      if (!q.ok) phase.problems.push(problem('quiet', `still ${q.last.connections - 1} abusive connection(s), ${q.last.requestsInFlight} request(s) in flight, ${q.last.queuedRequests} queued ${QUIET_MS / 1000} s after the phase`));
      phase.server = await server.ask('counts');
    } catch (error) {
      trouble = error.message;
      if (error.noAnswer) outcome.stuck = error.message;
      else outcome.exited = error.message;
    }
  }
  signal.stop = true;
  phase.rssPeakMiB = +(signal.rssPeak / 1048576).toFixed(1);
  phase.queuedPeak = signal.queuedPeak;
  phase.inFlightPeak = signal.inFlightPeak;
  phase.ms = Math.round(performance.now() - from);
  if (trouble) {
    probe.post({ type: 'phase', name: '(restart)' });
    // The watchdog reports a stall at 2 s; give it time to profile and print.
    if (outcome.stuck && !server.watchdog.some((w) => w.at >= from)) await Promise.race([server.exited, wait(4000)]);
    const status = outcome.probe ?? (await probeStatus());
    const wasRunning = server.running;
    await server.kill();
    const probeState = status ? `; the probe then had ${status.outstanding} request(s) waiting, the oldest for ${status.oldestMs} ms` : '';
    const when = ` (${Math.round((outcome.at ?? performance.now()) - from)} ms into the phase)`;
    if (outcome.stuck) phase.stuck = `${trouble}${when}${wasRunning ? ' — killed' : ''}${probeState}`;
    else if (outcome.exited) phase.crashed = `${trouble}; its stderr ended: ${server.stderrTail.slice(-600) || '(nothing)'}`;
    else phase.problems.push(problem('episodes', trouble));
  }
  // sinceMs: when the stall began, in ms into the phase (the report comes stallMs after that).
  phase.watchdog = server.watchdog.filter((w) => w.at >= from).map(({ at, ...w }) => ({ sinceMs: Math.round(at - from - w.stallMs), ...w }));
  const seen = await probeSnapshot(name);
  log(progressLine(phase, seen));
  for (const w of phase.watchdog) log(`  server main thread stalled from ${w.sinceMs} ms into the phase (${w.stallMs} ms when sampled); stack: ${w.stack.slice(0, 6).join(' < ')}${w.hot?.length ? `\n             hot: ${w.hot.join('\n                  ')}` : ''}`);
  if (trouble && PHASES.indexOf(name) < PHASES.length - 1) {
    report.restarts++;
    log('starting a new server for the phases left');
    baselines = { beforeListen: await startServer() };
    baselines.beforeAbuse = await server.ask('measure', {}, 15_000);
    report.resources.beforeListen = figures(baselines.beforeListen);
    report.resources.beforeAbuse = figures(baselines.beforeAbuse);
    (report.resources.restartedAfter ??= []).push(name);
  }
  return phase;
}

function summarizeAbuse(result) {
  if (!result) return { episodes: {}, fresh: { checks: 0, failed: 0, maxMs: 0, failures: [] } };
  return { episodes: result.kinds, fresh: result.fresh };
}

async function probeStatus() {
  probe.post({ type: 'status' });
  return probe.next('status', 5000).catch(() => null);
}

async function probeSnapshot(name) {
  probe.post({ type: 'snapshot', name });
  return probe.next('snapshot', 5000).catch(() => null);
}

function progressLine(phase, seen) {
  const p = seen?.summary;
  const probeText = p ? `probes ${p.answered}/${p.sent} answered (p99 ${p.p99 ?? '-'} ms, max ${p.max ?? '-'} ms${seen.outstanding ? `, ${seen.outstanding} still waiting` : ''})` : 'probe: no answer';
  const fresh = phase.fresh.checks ? `fresh ${phase.fresh.checks - phase.fresh.failed}/${phase.fresh.checks} ≤ ${phase.fresh.maxMs} ms` : 'no fresh client';
  const loop = phase.server ? `server loop max ${phase.server.loopDelay.max} ms` : '';
  const trouble = phase.stuck ? ` STUCK: ${phase.stuck}` : phase.crashed ? ` CRASHED: ${phase.crashed}` : '';
  return `${phase.name.padEnd(19)} ${probeText}; ${fresh}; ${loop}${trouble}`;
}

function figures(m) {
  const inMiB = (bytes) => +(bytes / 1048576).toFixed(1);
  return {
    fds: m.fds,
    threads: m.threads.count,
    rssMiB: inMiB(m.rss),
    heapMiB: inMiB(m.heapUsed),
    externalMiB: inMiB(m.external),
    fdKinds: m.fdKinds,
    threadNames: m.threads.names,
  };
}

/**
 * One thing a phase got wrong. `check`: 'probe' (latency, unanswered), 'fresh' (a fresh client
 * after an abusive one), 'server' (stalled, stuck, crashed), 'episodes' (an abusive client saw
 * something it should not), 'quiet' (connections left after the phase), 'semantics' (fault codes).
 */
function problem(check, text) {
  return { check, text };
}

/** Verdicts per phase, once the probe's figures are final. */
function judge(phase, probeFigures) {
  const problems = {
    push: (check, text) => phase.problems.push(problem(check, text)),
  };
  const p = probeFigures ?? { sent: 0, answered: 0, unanswered: 0, missed: 0, disconnects: 0, mismatches: [], max: null };
  phase.probe = p;
  if (p.max !== null && p.max > PROBE_MAX_MS) problems.push('probe', `probe max ${p.max} ms > ${PROBE_MAX_MS} ms (p99 ${p.p99} ms; worst at ${p.worst.map((w) => `${w.atMs} ms: ${w.ms} ms`).join(', ')} into the phase)`);
  if (p.unanswered > 0) problems.push('probe', `${p.unanswered} of ${p.sent} probes unanswered`);
  if (p.missed > 0 || p.disconnects > 0) problems.push('probe', `the probe's connection was lost ${p.disconnects} time(s); ${p.missed} probe(s) could not be sent`);
  if (p.mismatches.length) problems.push('probe', `probe replies out of order: ${p.mismatches.join('; ')}`);
  if (phase.fresh.failed) problems.push('fresh', `${phase.fresh.failed} of ${phase.fresh.checks} fresh clients not answered within ${FRESH_MS} ms: ${phase.fresh.failures.join('; ')}`);
  for (const [kind, k] of Object.entries(phase.episodes)) for (const [text, n] of Object.entries(k.problems)) problems.push('episodes', `${kind}: ${text}${n > 1 ? ` (${n}×)` : ''}`);
  for (const kind of phase.kinds) if (!phase.episodes[kind]?.episodes) problems.push('episodes', `${kind}: no episode ran`);
  for (const w of phase.watchdog) problems.push('server', `the server's main thread stalled from ${w.sinceMs} ms into the phase (${w.stallMs} ms when sampled; stack: ${w.stack.slice(0, 4).join(' < ')})`);
  if (phase.stuck) problems.push('server', `STUCK: ${phase.stuck}`);
  if (phase.crashed) problems.push('server', `CRASHED: ${phase.crashed}`);
  const s = phase.server;
  if (s) {
    const deaths = Object.entries(s.log)
      .filter(([line]) => line.includes('worker died'))
      .reduce((sum, [, n]) => sum + n, 0);
    phase.workerDeaths = deaths;
    const failures = Object.entries(s.failures)
      .map(([code, n]) => `${code} ×${n}`)
      .join(', ');
    const expect = { 'throw-nonerror': 'ERR_HANDLER_FAILED', hang: 'ERR_REQUEST_TIMEOUT' }[phase.name];
    if (expect) {
      const wrong = Object.keys(s.failures).filter((code) => code !== expect);
      if (deaths > 0 || wrong.length > 0) {
        const samples = wrong.map((code) => `${code}: ${(s.samples[code] ?? []).join(' | ')}`).join('; ');
        problems.push('semantics', `expected every failure to be ${expect} with no worker death; got ${failures || 'no failure'} and ${deaths} worker death(s)${samples ? ` (${samples})` : ''}`);
      }
    }
  }
  phase.ok = phase.problems.length === 0;
}

async function main() {
  const d = durations();
  const hardDeadline = SHORT ? 120_000 : SECONDS * 1000 + 180_000;
  const timer = setTimeout(() => {
    report.error = `the soak did not finish within ${hardDeadline / 1000} s (in phase ${current})`;
    finish();
  }, hardDeadline);

  probe = startThread('./abuse-probe.mjs', { intervalMs: 10 });
  abusers = startThread('./abuse-clients.mjs', { nice: Number(values['abuser-nice']), maxFrameBytes: DEFAULTS.maxFrameBytes, freshMs: FRESH_MS });
  await abusers.next('ready', 10_000);
  log(
    `abuse soak: ${SHORT ? 'short' : `${SECONDS} s`}, phases ${PHASES.join(', ')}; ThreadingTCPServer ${JSON.stringify(SERVER_OPTIONS)}; ` +
      `targets: probe max ≤ ${PROBE_MAX_MS} ms, no probe unanswered, fresh client ≤ ${FRESH_MS} ms, RSS within ${RSS_SLACK * 100} %, every fd and thread back`,
  );
  baselines = { beforeListen: await startServer() };
  report.resources.beforeListen = figures(baselines.beforeListen);

  await runPhase('baseline', [], d.baseline, SHORT ? 'short' : 'soak');
  baselines.beforeAbuse = await server.ask('measure', {}, 15_000);
  report.resources.beforeAbuse = figures(baselines.beforeAbuse);
  log(`before the abuse: ${baselines.beforeAbuse.fds} fds, ${baselines.beforeAbuse.threads.count} threads, RSS ${mib(baselines.beforeAbuse.rss)}`);

  for (const name of PHASES) {
    const mixed = name === 'mixed';
    const ms = mixed ? d.mixed : name.startsWith('nonreader') ? d.nonreader : d.kind;
    await runPhase(name, mixed ? MIXED : [name], ms, mixed ? 'mixed' : SHORT ? 'short' : 'soak');
  }
  current = '(after the abuse)';

  if (server.running) {
    const q = await quiet().catch((error) => ({ ok: false, error }));
    const afterAbuse = await settle(baselines.beforeAbuse);
    report.resources.afterAbuse = { ...figures(afterAbuse), settleMs: afterAbuse.settleMs, quiet: q.ok };
    log(`after the abuse (server open): ${afterAbuse.fds} fds, ${afterAbuse.threads.count} threads, RSS ${mib(afterAbuse.rss)} (waited ${afterAbuse.settleMs} ms)`);
  }
  probe.post({ type: 'finish', graceMs: 3000 });
  const probed = await probe.next('result', 10_000);
  report.probe = probed.total;
  report.probePhases = probed.phases;

  if (server.running) {
    current = '(close)';
    try {
      const closed = await server.ask('close', {}, 20_000);
      const afterClose = await settle(baselines.beforeListen);
      report.resources.afterClose = { ...figures(afterClose), closeMs: closed.ms, settleMs: afterClose.settleMs };
      log(`after close (${closed.ms} ms): ${afterClose.fds} fds, ${afterClose.threads.count} threads, RSS ${mib(afterClose.rss)} (waited ${afterClose.settleMs} ms)`);
    } catch (error) {
      report.resources.closeError = error.message;
    }
    await server.stop();
  }
  clearTimeout(timer);
  finish();
}

function targetsOf(resources) {
  const t = [];
  const add = (name, ok, detail) => t.push({ name, ok, detail });
  const probeTotal = report.probe;
  if (probeTotal) {
    add(`probe max ≤ ${PROBE_MAX_MS} ms`, probeTotal.max !== null && probeTotal.max <= PROBE_MAX_MS, `p50 ${probeTotal.p50} ms, p99 ${probeTotal.p99} ms, max ${probeTotal.max} ms over ${probeTotal.answered} probes`);
    add('no probe unanswered', probeTotal.unanswered === 0 && probeTotal.missed === 0, `${probeTotal.unanswered} unanswered of ${probeTotal.sent}, ${probeTotal.missed} not sent (connection lost ${probeTotal.disconnects}×)`);
  } else add('probe figures', false, 'the probe did not report');
  const failing = report.phases.filter((p) => !p.ok).map((p) => p.name);
  add('every phase passes', failing.length === 0, failing.length ? `failing: ${failing.join(', ')}` : `${report.phases.length} phases`);
  const { beforeListen, beforeAbuse, afterAbuse, afterClose } = resources;
  const rss = (after) => `${after.rssMiB} MiB vs ${beforeAbuse.rssMiB} MiB (${after.rssMiB >= beforeAbuse.rssMiB ? '+' : ''}${(100 * (after.rssMiB / beforeAbuse.rssMiB - 1)).toFixed(1)} %)`;
  if (afterAbuse && beforeAbuse) {
    add('after the abuse: fds back', afterAbuse.fds === beforeAbuse.fds, `${afterAbuse.fds} vs ${beforeAbuse.fds}${diff(beforeAbuse.fdKinds, afterAbuse.fdKinds)}`);
    add('after the abuse: threads back', afterAbuse.threads === beforeAbuse.threads, `${afterAbuse.threads} vs ${beforeAbuse.threads}${diff(beforeAbuse.threadNames, afterAbuse.threadNames)}`);
    add(`after the abuse: RSS within ${RSS_SLACK * 100} %`, afterAbuse.rssMiB <= beforeAbuse.rssMiB * (1 + RSS_SLACK), rss(afterAbuse));
  } else add('after the abuse', false, 'no figures: the server was not running');
  if (afterClose && beforeListen) {
    add('after close: fds back', afterClose.fds === beforeListen.fds, `${afterClose.fds} vs ${beforeListen.fds} before listen${diff(beforeListen.fdKinds, afterClose.fdKinds)}`);
    add('after close: threads back', afterClose.threads === beforeListen.threads, `${afterClose.threads} vs ${beforeListen.threads} before listen${diff(beforeListen.threadNames, afterClose.threadNames)}`);
    add(`after close: RSS within ${RSS_SLACK * 100} %`, afterClose.rssMiB <= beforeAbuse.rssMiB * (1 + RSS_SLACK), rss(afterClose));
  } else add('after close', false, resources.closeError ?? 'no figures: the server was not running');
  return t;
}

/** " (+2 socket, −1 pipe)": how two { kind: count } maps differ. */
function diff(before = {}, after = {}) {
  const parts = [];
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const d = (after[key] ?? 0) - (before[key] ?? 0);
    if (d) parts.push(`${d > 0 ? '+' : '−'}${Math.abs(d)} ${key}`);
  }
  return parts.length ? ` (${parts.join(', ')})` : '';
}

let finished = false;
function finish() {
  if (finished) return;
  finished = true;
  report.machine.loadEnd = +loadavg()[0].toFixed(2);
  for (const phase of report.phases) judge(phase, report.probePhases?.[phase.name]);
  report.targets = targetsOf(report.resources);
  if (report.error) report.targets.push({ name: 'finished in time', ok: false, detail: report.error });
  report.ok = report.targets.every((t) => t.ok);
  printReport();
  if (values.json) console.log(`ABUSE-RESULT ${JSON.stringify(report)}`);
  server?.child.kill('SIGKILL');
  process.exit(report.ok ? 0 : 1);
}

function printReport() {
  const rows = [['phase', 'probes', 'unans', 'p50 ms', 'p99 ms', 'max ms', 'fresh', 'fresh max', 'srv loop max', 'RSS peak', 'deaths', 'verdict']];
  for (const p of report.phases) {
    const q = p.probe;
    rows.push([
      p.name,
      String(q.sent),
      String(q.unanswered + q.missed),
      String(q.p50 ?? '-'),
      String(q.p99 ?? '-'),
      String(q.max ?? '-'),
      `${p.fresh.checks - p.fresh.failed}/${p.fresh.checks}`,
      p.fresh.checks ? `${p.fresh.maxMs} ms` : '-',
      p.server ? `${p.server.loopDelay.max} ms` : '-',
      p.rssPeakMiB ? `${p.rssPeakMiB} MiB` : '-',
      String(p.workerDeaths ?? '-'),
      p.ok ? 'ok' : p.stuck ? 'STUCK' : p.crashed ? 'CRASHED' : 'FAIL',
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  console.log('');
  for (const row of rows) console.log(row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '));
  for (const p of report.phases.filter((phase) => !phase.ok)) {
    console.log(`\n${p.name}:`);
    for (const { check, text } of p.problems) console.log(`  - [${check}] ${text}`);
  }
  console.log('\nper phase: what the abusive clients saw (episodes — outcomes), and what the server counted');
  for (const p of report.phases) {
    console.log(`  ${p.name}:`);
    for (const [kind, k] of Object.entries(p.episodes)) {
      const outcomes = Object.entries(k.outcomes)
        .map(([o, n]) => `${o} ×${n}`)
        .join('; ');
      console.log(`    ${kind}: ${k.episodes} — ${outcomes || '(none)'}`);
    }
    if (p.server) {
      console.log(`    server: queued requests peak ${p.queuedPeak}, in flight peak ${p.inFlightPeak}, event-loop delay p99 ${p.server.loopDelay.p99} ms, max ${p.server.loopDelay.max} ms`);
      if (Object.keys(p.server.failures).length) console.log(`    server handleError: ${JSON.stringify(p.server.failures)}`);
      if (Object.keys(p.server.log).length) console.log(`    server log: ${JSON.stringify(p.server.log)}`);
    } else console.log('    server: no figures (it was killed, or exited)');
  }
  const r = report.resources;
  console.log('\nserver process           fds  threads  RSS MiB  main heap MiB  main external MiB');
  for (const [label, m] of [
    ['before listen', r.beforeListen],
    ['before the abuse', r.beforeAbuse],
    ['after the abuse (open)', r.afterAbuse],
    ['after close', r.afterClose],
  ]) {
    if (m) console.log(`${label.padEnd(24)} ${String(m.fds).padStart(4)}  ${String(m.threads).padStart(7)}  ${String(m.rssMiB).padStart(7)}  ${String(m.heapMiB).padStart(13)}  ${String(m.externalMiB).padStart(17)}`);
    else console.log(`${label.padEnd(24)}    -        -        -`);
  }
  if (report.restarts) console.log(`(a new server was started after ${r.restartedAfter.join(', ')}: the figures are the last server's)`);
  const { cores, loadStart, loadEnd } = report.machine;
  console.log(`\ncommit ${report.commit ?? '(unknown)'}; machine: ${cores} cores, 1-minute load average ${loadStart} at the start, ${loadEnd} at the end`);
  for (const t of report.targets) console.log(`${t.ok ? 'PASS' : 'FAIL'}  ${t.name}: ${t.detail}`);
  console.log(report.ok ? '\nABUSE OK: every target met' : '\nABUSE FAILED: see the targets above');
}

process.on('exit', () => server?.child.kill('SIGKILL'));

if (ensureFileLimit(2048, new URL(import.meta.url).pathname)) {
  main().catch((error) => {
    report.error = `${error.stack ?? error}`;
    console.error(`sockserv soak: ${report.error}`);
    finish();
  });
}
