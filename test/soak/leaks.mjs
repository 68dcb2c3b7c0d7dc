// npm run soak:leaks — 10,000 connections against one sockserv server process, each opening,
// sending requests and resetting abruptly (resetAndDestroy): some with a request still running
// in a worker, some with a partial request buffered, some after their reply, some at once. Then
// the server's open descriptors, connections, in-flight requests and heap (after a full GC) must
// be back at their baseline. Prints a summary; exits 1 on a leak, 2 if the open-files limit is too
// low. Bounded: the whole run must finish within 5 minutes.
//
//   node test/soak/leaks.mjs [--connections N] [--concurrent C]

import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import { deadline, ensureFileLimit, fileLimits, mib, sleep, startServerProcess } from './common.mjs';

const { values } = parseArgs({ options: { connections: { type: 'string' }, concurrent: { type: 'string' } } });
const CONNECTIONS = Number(values.connections ?? 10_000);
const CONCURRENT = Number(values.concurrent ?? 200);
const WARMUP = 1_000;
/** Heap growth allowed after a full GC: 10,000 retained connections would hold far more. */
const HEAP_SLACK = 8 * 1024 * 1024;

function rudeClient(port, i) {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let done = false;
    const finish = (how) => {
      if (done) return;
      done = true;
      if (!socket.destroyed) socket.resetAndDestroy();
      resolve(how);
    };
    socket.on('error', () => finish('error'));
    socket.on('close', () => finish('closed'));
    socket.on('connect', () => {
      switch (i % 4) {
        case 0:
          socket.write('sleep 50\nsleep 50\n', () => setImmediate(() => finish('reset in flight')));
          break;
        case 1:
          socket.write('partial-without-newline', () => setImmediate(() => finish('reset partial')));
          break;
        case 2:
          socket.write('hello\n');
          socket.once('data', () => finish('reset after reply'));
          break;
        default:
          finish('reset at once');
      }
    });
  });
}

async function churn(port, count, tally) {
  for (let start = 0; start < count; start += CONCURRENT) {
    const outcomes = await Promise.all(Array.from({ length: Math.min(CONCURRENT, count - start) }, (_, k) => rudeClient(port, start + k)));
    for (const how of outcomes) tally[how] = (tally[how] ?? 0) + 1;
  }
}

async function quiet(server) {
  for (let i = 0; i < 200; i++) {
    const answer = await server.ask('quiet');
    const { connections, requestsInFlight, queuedRequests } = answer.stats;
    if (connections === 0 && requestsInFlight === 0 && queuedRequests === 0) return answer;
    await sleep(50);
  }
  return server.ask('quiet');
}

async function main() {
  deadline(300_000, 'the leak soak');
  const started = Date.now();
  const server = await startServerProcess({
    handler: 'test/fixtures/fault-modes.js',
    options: { workers: 2 },
    fileLimit: Math.min(fileLimits().hard, 20_000),
  });
  const summary = { connections: CONNECTIONS, ok: false };
  let failure = null;
  try {
    await churn(server.port, WARMUP, {});
    const before = await quiet(server);
    console.log(`server: pid ${server.child.pid}, baseline after ${WARMUP} warm-up connections: ${before.fds} fds, heap ${mib(before.heapUsed)}, RSS ${mib(before.rss)}`);
    const tally = {};
    await churn(server.port, CONNECTIONS, tally);
    let after = await quiet(server);
    for (let i = 0; i < 50 && after.fds > before.fds; i++) {
      await sleep(100);
      after = await server.ask('after');
    }
    const seen = after.stats.connectionsTotal - before.stats.connectionsTotal;
    Object.assign(summary, {
      clientOutcomes: tally,
      serverSawConnections: seen,
      serverRefused: after.stats.connectionsRefused,
      serverConnectionsAfter: after.stats.connections,
      serverInFlightAfter: after.stats.requestsInFlight,
      serverFds: { before: before.fds, after: after.fds },
      serverHeapMiB: { before: +(before.heapUsed / 1048576).toFixed(1), after: +(after.heapUsed / 1048576).toFixed(1) },
      serverRssMiB: { before: +(before.rss / 1048576).toFixed(1), after: +(after.rss / 1048576).toFixed(1) },
      seconds: +((Date.now() - started) / 1000).toFixed(1),
    });
    summary.ok =
      seen === CONNECTIONS &&
      after.stats.connections === 0 &&
      after.stats.requestsInFlight === 0 &&
      after.fds <= before.fds &&
      after.heapUsed - before.heapUsed < HEAP_SLACK;
  } catch (error) {
    failure = error;
  } finally {
    await server.stop();
  }
  console.log(JSON.stringify(summary, null, 2));
  if (failure) console.error(`sockserv soak: ${failure.stack ?? failure}`);
  console.log(summary.ok && !failure ? `LEAKS OK: ${CONNECTIONS} abrupt resets left nothing behind` : 'LEAKS FAILED: see the summary above');
  process.exit(summary.ok && !failure ? 0 : 1);
}

if (ensureFileLimit(CONCURRENT * 2 + 256, new URL(import.meta.url).pathname)) await main();
