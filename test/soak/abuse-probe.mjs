// The abuse soak's probe (a worker thread of test/soak/abuse.mjs, so that the abusive clients on
// other threads do not delay its clock): one connection of its own, one cheap request "p<seq>"
// every INTERVAL_MS, pipelined; each reply "ok p<seq>" is matched in order and its latency (send to
// receipt) goes into an HDR histogram (perf_hooks.createHistogram) of the phase it was sent in, and
// into the total (the soak's phases only: not "(start)" or "(restart)", the warm-ups of a server).
// A probe is unanswered if its connection dies first or it is still waiting when the run finishes
// (after `graceMs`); a tick with no connection to send on counts as missed.
//
// Messages in: { type: 'connect', port } (→ 'connected'), { type: 'phase', name },
// { type: 'snapshot', name } (→ 'snapshot'), { type: 'status' } (→ 'status'),
// { type: 'finish', graceMs } (→ 'result', then the thread ends).

import { connect } from 'node:net';
import { createHistogram, performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';

const INTERVAL_MS = workerData?.intervalMs ?? 10;

/** Per phase: counts, a histogram in microseconds, the worst latencies. */
const phases = new Map();
const total = newTally();
let phase = '(start)';
let phaseStarted = performance.now();

function newTally() {
  return { sent: 0, answered: 0, unanswered: 0, missed: 0, disconnects: 0, mismatches: [], histogram: createHistogram(), worst: [] };
}
function tally(name) {
  let t = phases.get(name);
  if (!t) phases.set(name, (t = newTally()));
  return t;
}
/** The phase's tally and the total — except for "(start)" and "(restart)" (warm-ups, no server yet): not part of the soak's figures. */
function tallies(name) {
  return name.startsWith('(') ? [tally(name)] : [tally(name), total];
}

let port;
let socket = null;
let connected = false;
let buffered = '';
/** Sent and not yet answered, oldest first: { seq, sent, phase, at } (at: ms into its phase). */
let outstanding = [];
let seq = 0;
let lastAnswer = performance.now();
let finishing = false;
let onConnected = null;
let onDrained = null;
let reopen = null;

function open() {
  reopen = null;
  if (finishing || port === undefined) return;
  const s = connect({ port, host: '127.0.0.1', noDelay: true });
  socket = s;
  s.setEncoding('latin1');
  s.on('connect', () => {
    if (socket !== s) return;
    connected = true;
    onConnected?.();
    onConnected = null;
  });
  s.on('data', (text) => {
    if (socket !== s) return;
    buffered += text;
    let end;
    while ((end = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      answered(line);
    }
  });
  s.on('error', () => {});
  s.on('close', () => {
    if (socket !== s) return;
    const wasConnected = connected;
    socket = null;
    connected = false;
    buffered = '';
    // The replies to what was outstanding will never come.
    for (const probe of outstanding) for (const t of tallies(probe.phase)) t.unanswered++;
    outstanding = [];
    if (wasConnected && !finishing) for (const t of tallies(phase)) t.disconnects++;
    onDrained?.();
    if (!finishing) reopen = setTimeout(open, 20);
  });
}

function answered(line) {
  const now = performance.now();
  const probe = outstanding.shift();
  if (!probe) return;
  const ms = now - probe.sent;
  const micros = Math.max(1, Math.round(ms * 1000));
  for (const t of tallies(probe.phase)) {
    if (line !== `ok p${probe.seq}` && t.mismatches.length < 5) t.mismatches.push(`expected "ok p${probe.seq}", got ${JSON.stringify(line.slice(0, 80))}`);
    t.answered++;
    t.histogram.record(micros);
  }
  const t = tally(probe.phase);
  if (t.worst.length < 3 || ms > t.worst[t.worst.length - 1].ms) {
    t.worst.push({ ms: +ms.toFixed(1), atMs: Math.round(probe.at) });
    t.worst.sort((a, b) => b.ms - a.ms);
    t.worst.length = Math.min(t.worst.length, 3);
  }
  lastAnswer = now;
  if (outstanding.length === 0) onDrained?.();
}

const ticker = setInterval(() => {
  if (finishing) return;
  if (!connected) {
    // "(start)" and "(restart)": no server yet, nothing to miss.
    if (!phase.startsWith('(')) for (const t of tallies(phase)) t.missed++;
    return;
  }
  const probe = { seq: seq++, sent: performance.now(), phase, at: performance.now() - phaseStarted };
  outstanding.push(probe);
  for (const t of tallies(phase)) t.sent++;
  socket.write(`p${probe.seq}\n`);
}, INTERVAL_MS);

const ms = (micros) => +(micros / 1000).toFixed(2);
function summary(t) {
  const h = t.histogram;
  const some = h.count > 0;
  return {
    sent: t.sent,
    answered: t.answered,
    unanswered: t.unanswered,
    missed: t.missed,
    disconnects: t.disconnects,
    mismatches: t.mismatches,
    p50: some ? ms(h.percentile(50)) : null,
    p99: some ? ms(h.percentile(99)) : null,
    max: some ? ms(h.max) : null,
    mean: some ? ms(h.mean) : null,
    worst: t.worst ?? [],
  };
}

parentPort.on('message', async (message) => {
  switch (message.type) {
    case 'connect':
      port = message.port;
      connected = false;
      if (socket) socket.destroy(); // its 'close' reconnects, to the new port
      else if (!reopen) open();
      await new Promise((resolve) => {
        if (connected) resolve();
        else onConnected = resolve;
      });
      parentPort.postMessage({ type: 'connected' });
      break;
    case 'phase':
      phase = message.name;
      phaseStarted = performance.now();
      break;
    case 'snapshot':
      parentPort.postMessage({ type: 'snapshot', summary: summary(tally(message.name)), outstanding: outstanding.length });
      break;
    case 'status': {
      const now = performance.now();
      parentPort.postMessage({
        type: 'status',
        connected,
        outstanding: outstanding.length,
        oldestMs: outstanding.length ? Math.round(now - outstanding[0].sent) : 0,
        lastAnswerAgoMs: Math.round(now - lastAnswer),
      });
      break;
    }
    case 'finish': {
      finishing = true;
      clearInterval(ticker);
      if (outstanding.length > 0) {
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, message.graceMs);
          onDrained = () => {
            if (outstanding.length === 0 || !socket) {
              clearTimeout(timer);
              resolve();
            }
          };
        });
      }
      for (const probe of outstanding) for (const t of tallies(probe.phase)) t.unanswered++;
      outstanding = [];
      socket?.destroy();
      parentPort.postMessage({ type: 'result', phases: Object.fromEntries([...phases].map(([name, t]) => [name, summary(t)])), total: summary(total) });
      parentPort.close();
      break;
    }
  }
});
