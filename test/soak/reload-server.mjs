// The server side of `npm run soak:reload`: a ThreadingTCPServer (from dist/) on 127.0.0.1:0
// serving test/fixtures/version-1.js, with the fixtures' run ledger in handlerData. Over IPC it
// tells its parent { type: 'listening', port }, and answers:
//   { type: 'reload', id, handler }  → { type: 'answer', id, answer: { version, ms } | { error } }
//   { type: 'ask', id }              → { type: 'answer', id, answer: { threads, rss, heapUsed, stats, twice, ids, loopDelayMax } }
//                                      (twice: the request ids the ledger saw run more than once, of those below `ids`)
//   { type: 'stop' }                 → closes gracefully and exits.

import { readFileSync } from 'node:fs';
import { ThreadingTCPServer, silentLogger } from '../../dist/src/index.js';

const [handler, optionsJson] = process.argv.slice(2);
// The fixtures' ledger (test/fixtures/version-1.js): runs of ids below a quarter of its words.
const ledger = new SharedArrayBuffer(4 * (1 << 24));
const runs = new Int32Array(ledger);
const IDS = runs.length >> 2;
const server = new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, handler, {
  logger: silentLogger,
  handlerData: { ledger },
  ...JSON.parse(optionsJson),
});
const { port } = await server.listen();
process.send({ type: 'listening', port });

function threads() {
  return Number(/^Threads:\s+(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
}

process.on('message', async (message) => {
  if (message.type === 'stop') {
    await server.close();
    process.disconnect();
    return;
  }
  if (message.type === 'reload') {
    const started = performance.now();
    try {
      const { version } = await server.reload(message.handler);
      process.send({ type: 'answer', id: message.id, answer: { version, ms: performance.now() - started } });
    } catch (error) {
      process.send({ type: 'answer', id: message.id, answer: { error: `${error.code}: ${error.message}` } });
    }
    return;
  }
  if (message.type !== 'ask') return;
  globalThis.gc?.();
  const twice = [];
  for (let id = 1; id < IDS; id++) if (Atomics.load(runs, id) > 1) twice.push(id);
  const { eventLoopDelay, requestDurations: _durations, ...stats } = server.stats();
  process.send({
    type: 'answer',
    id: message.id,
    answer: { threads: threads(), rss: process.memoryUsage().rss, heapUsed: process.memoryUsage().heapUsed, stats, twice, ids: IDS, loopDelayMax: eventLoopDelay.max },
  });
});
