// The server side of the soak runners: a ThreadingTCPServer (from dist/) on 127.0.0.1:0 serving
// the handler module given as argv[2] with the options (JSON) in argv[3]. It tells its parent
// { type: 'listening', port } over IPC, answers { type: 'ask', id } with its open descriptors,
// open-files limit, memory (heap measured after a full GC: run it with --expose-gc),
// server.stats() and the client-memory budget's total, and closes gracefully on { type: 'stop' }.

import { readdirSync, readFileSync } from 'node:fs';
import { ThreadingTCPServer, silentLogger } from '../../dist/src/index.js';
import { coreOf } from '../../dist/src/server/core.js';

const [handler, optionsJson] = process.argv.slice(2);
const server = new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, handler, { logger: silentLogger, ...JSON.parse(optionsJson) });
const { port } = await server.listen();
process.send({ type: 'listening', port });

function fileLimit() {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  return Number(line.split(/\s{2,}/)[1]);
}

process.on('message', async (message) => {
  if (message.type === 'stop') {
    await server.close();
    process.disconnect();
    return;
  }
  if (message.type !== 'ask') return;
  for (let i = 0; i < 3; i++) {
    globalThis.gc?.();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const { rss, heapUsed } = process.memoryUsage();
  const { eventLoopDelay: _delay, ...stats } = server.stats();
  process.send({
    type: 'answer',
    id: message.id,
    // clientMemory: the bytes the maxClientMemory budget counts now (its running total).
    answer: { fds: readdirSync('/proc/self/fd').length, fileLimit: fileLimit(), rss, heapUsed, stats, clientMemory: coreOf(server).memory.total },
  });
});
