// npm run soak:crash [-- --rounds N --clients C --requests R]: the pool's at-most-once guarantee
// under random faults. Each round, C clients pipeline R requests each at a 2-worker
// ThreadingTCPServer running test/fixtures/ledger.js (which counts every run in shared memory);
// about 1 % of them kill their worker (process.exit) and 0.5 % loop until requestTimeout (200 ms)
// stops the worker. Then, for every request: its reply came in request order; a request answered
// "ok" ran exactly once; a failed one (ERR_WORKER_DIED / ERR_REQUEST_TIMEOUT) ran at most once;
// no request ran twice. Bounded: loopback only, a fixed number of requests, a deadline per round.

import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import { ROOT } from './common.mjs';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '5' }, clients: { type: 'string', default: '10' }, requests: { type: 'string', default: '400' } },
});
const rounds = Number(values.rounds);
const clients = Number(values.clients);
const perClient = Number(values.requests);
if (clients * perClient >= 4096) throw new Error('clients × requests must stay under 4096 (the ledger holds 4095 ids)');

const { ThreadingTCPServer, silentLogger } = await import(`${ROOT}dist/src/index.js`);
const fixture = `${ROOT}test/fixtures/ledger.js`;
const DEADLINE_MS = 60_000;

function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function client(port, ids, ops) {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no replies after ${DEADLINE_MS} ms (${text.split('\n').length - 1} of ${ids.length})`)), DEADLINE_MS);
    socket.on('connect', () => socket.write(ids.map((id, i) => `${id} ${ops[i]}\n`).join('')));
    socket.on('data', (chunk) => {
      text += chunk;
      if (text.split('\n').length - 1 >= ids.length) {
        clearTimeout(timer);
        socket.destroy();
        resolve(text.split('\n').slice(0, ids.length));
      }
    });
    socket.on('error', reject);
  });
}

let failures = 0;
for (let round = 1; round <= rounds; round++) {
  const ledger = new SharedArrayBuffer(4 * 65536);
  const runs = new Int32Array(ledger);
  const server = new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture, {
    workers: 2,
    requestTimeout: 200,
    onHandlerError: 'reply',
    logger: silentLogger,
    handlerData: { ledger },
  });
  const { port } = await server.listen();
  const next = random(round);
  const plans = Array.from({ length: clients }, (_, c) => {
    const ids = Array.from({ length: perClient }, (_, i) => 1 + c * perClient + i);
    const ops = ids.map(() => {
      const r = next();
      return r < 0.01 ? 'exit' : r < 0.015 ? 'loop' : r < 0.1 ? 'sleep 1' : 'fast';
    });
    return { ids, ops };
  });
  const started = Date.now();
  const replies = await Promise.all(plans.map(({ ids, ops }) => client(port, ids, ops)));
  await server.close();
  let ok = 0;
  let failed = 0;
  const problems = [];
  plans.forEach(({ ids }, c) => {
    ids.forEach((id, i) => {
      const reply = replies[c][i];
      const ran = Atomics.load(runs, id);
      if (reply === `${id} ok`) {
        ok++;
        if (ran !== 1) problems.push(`request ${id} answered ok but ran ${ran} times`);
      } else if (reply === 'ERROR ERR_WORKER_DIED' || reply === 'ERROR ERR_REQUEST_TIMEOUT') {
        failed++;
        if (ran > 1) problems.push(`request ${id} failed (${reply}) and ran ${ran} times`);
      } else {
        problems.push(`request ${id}: unexpected reply ${JSON.stringify(reply)} in position ${i}`);
      }
    });
  });
  failures += problems.length;
  console.log(
    `round ${round}: ${clients} × ${perClient} requests in ${Date.now() - started} ms — ${ok} ok, ${failed} failed by a fault, ` +
      `${problems.length === 0 ? 'none ran twice, every reply in order' : `${problems.length} PROBLEMS:\n  ${problems.slice(0, 10).join('\n  ')}`}`,
  );
}
process.exit(failures === 0 ? 0 : 1);
