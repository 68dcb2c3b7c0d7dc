// npm run soak:c10k — C10K: one sockserv server process (ThreadingTCPServer, 2 workers) holds
// 10,000 concurrent connections from this process; every connection exchanges ROUNDS rounds of
// PIPELINE pipelined requests, and every reply is checked (exact bytes, in order). Prints a summary
// — connections, requests, errors, server RSS per connection — and exits 1 on any loss or error,
// 2 if the open-files limit is too low. Bounded: the whole run must finish within 5 minutes.
//
//   node test/soak/c10k.mjs [--connections N] [--rounds R] [--pipeline P]

import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import { deadline, ensureFileLimit, fileLimits, mib, startServerProcess } from './common.mjs';

const { values } = parseArgs({
  options: { connections: { type: 'string' }, rounds: { type: 'string' }, pipeline: { type: 'string' } },
});
const CONNECTIONS = Number(values.connections ?? 10_000);
const ROUNDS = Number(values.rounds ?? 4);
const PIPELINE = Number(values.pipeline ?? 5);
/** Connections opened at once while ramping up. */
const RAMP = 500;
/** Descriptors each side needs beyond the connections (pipes, epoll, workers, stdio). */
const SPARE = 256;

class Client {
  constructor(socket, id) {
    this.socket = socket;
    this.id = id;
    this.text = '';
    this.replies = [];
    this.waiter = null;
    this.closed = false;
    this.error = null;
    socket.setEncoding('utf8');
    socket.on('data', (s) => {
      this.text += s;
      let nl;
      while ((nl = this.text.indexOf('\n')) !== -1) {
        this.replies.push(this.text.slice(0, nl));
        this.text = this.text.slice(nl + 1);
      }
      this.wake();
    });
    socket.on('error', (error) => {
      this.error = error;
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  wake() {
    const waiter = this.waiter;
    if (waiter && (this.replies.length >= waiter.count || this.closed)) {
      this.waiter = null;
      waiter.resolve();
    }
  }

  /** Sends one round of pipelined requests; resolves with [good, bad, lost]. */
  async round(r) {
    const requests = Array.from({ length: PIPELINE }, (_, k) => `c${this.id}-r${r}-${k}`);
    const before = this.replies.length;
    const arrived = new Promise((resolve) => {
      this.waiter = { count: before + PIPELINE, resolve };
    });
    this.wake();
    this.socket.write(requests.map((q) => `${q}\n`).join(''));
    await arrived;
    let good = 0;
    let bad = 0;
    for (let k = 0; k < PIPELINE; k++) {
      const reply = this.replies[before + k];
      if (reply === `ok ${requests[k]}`) good++;
      else if (reply !== undefined) bad++;
    }
    return [good, bad, PIPELINE - good - bad];
  }
}

function open(port, id) {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => resolve(new Client(socket, id)));
    socket.once('error', (error) => resolve(error));
  });
}

async function main() {
  deadline(300_000, 'the C10K soak');
  const limits = fileLimits();
  const started = Date.now();
  const server = await startServerProcess({
    handler: 'test/fixtures/fault-modes.js',
    options: { workers: 2 },
    fileLimit: Math.min(limits.hard, Math.max(20_000, CONNECTIONS + SPARE)),
  });
  const summary = { connections: CONNECTIONS, rounds: ROUNDS, pipeline: PIPELINE, ok: false };
  let failure = null;
  try {
    const baseline = await server.ask('baseline');
    console.log(`server: pid ${server.child.pid}, port ${server.port}, open-files limit ${baseline.fileLimit}, RSS ${mib(baseline.rss)}`);
    if (baseline.fileLimit < CONNECTIONS + SPARE) throw new Error(`the server's open-files limit ${baseline.fileLimit} is below ${CONNECTIONS + SPARE}`);

    const clients = [];
    let connectErrors = 0;
    for (let i = 0; i < CONNECTIONS; i += RAMP) {
      const opened = await Promise.all(Array.from({ length: Math.min(RAMP, CONNECTIONS - i) }, (_, k) => open(server.port, i + k)));
      for (const c of opened) {
        if (c instanceof Client) clients.push(c);
        else connectErrors++;
      }
    }
    const held = await server.ask('held');
    console.log(`opened ${clients.length} connections (${connectErrors} failed) in ${((Date.now() - started) / 1000).toFixed(1)} s; server sees ${held.stats.connections}`);

    let good = 0;
    let bad = 0;
    let lost = 0;
    const exchangeStart = Date.now();
    for (let r = 0; r < ROUNDS; r++) {
      const results = await Promise.all(clients.map((c) => c.round(r)));
      for (const [g, b, l] of results) {
        good += g;
        bad += b;
        lost += l;
      }
    }
    const exchangeSec = (Date.now() - exchangeStart) / 1000;
    const peak = await server.ask('peak');
    const stillOpen = clients.filter((c) => !c.closed).length;

    for (const c of clients) c.socket.end();
    await Promise.all(clients.map((c) => (c.closed ? null : new Promise((resolve) => c.socket.once('close', resolve)))));
    let after = await server.ask('after');
    for (let i = 0; i < 50 && after.stats.connections > 0; i++) after = await server.ask('after');

    const expected = CONNECTIONS * ROUNDS * PIPELINE;
    Object.assign(summary, {
      requests: good,
      expected,
      errors: { connect: connectErrors, badReply: bad, lost, closedEarly: CONNECTIONS - connectErrors - stillOpen },
      serverConnectionsHeld: held.stats.connections,
      serverConnectionsAfter: after.stats.connections,
      serverRequestsOk: peak.stats.requestsOk,
      serverRefused: peak.stats.connectionsRefused,
      rps: Math.round(good / exchangeSec),
      serverRssBaselineMiB: +(baseline.rss / 1048576).toFixed(1),
      serverRssHeldMiB: +(peak.rss / 1048576).toFixed(1),
      serverRssPerConnectionKiB: +((peak.rss - baseline.rss) / CONNECTIONS / 1024).toFixed(1),
      serverHeapPerConnectionKiB: +((peak.heapUsed - baseline.heapUsed) / CONNECTIONS / 1024).toFixed(2),
      serverFdsHeld: peak.fds,
      serverFdsAfter: after.fds,
      seconds: +((Date.now() - started) / 1000).toFixed(1),
    });
    summary.ok =
      connectErrors === 0 &&
      held.stats.connections === CONNECTIONS &&
      good === expected &&
      bad === 0 &&
      lost === 0 &&
      stillOpen === CONNECTIONS &&
      after.stats.connections === 0;
  } catch (error) {
    failure = error;
  } finally {
    await server.stop();
  }
  console.log(JSON.stringify(summary, null, 2));
  if (failure) console.error(`sockserv soak: ${failure.stack ?? failure}`);
  console.log(
    summary.ok
      ? `C10K OK: ${summary.connections} concurrent connections, ${summary.requests} requests, 0 errors, ${summary.serverRssPerConnectionKiB} KiB server RSS per connection`
      : 'C10K FAILED: see the summary above',
  );
  process.exit(summary.ok && !failure ? 0 : 1);
}

if (ensureFileLimit(CONNECTIONS + SPARE, new URL(import.meta.url).pathname)) await main();
