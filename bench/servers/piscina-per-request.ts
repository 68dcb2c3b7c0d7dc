// The naive way to put handlers on threads: a node:net server that calls piscina's pool.run()
// once per line (minThreads = maxThreads = cores) and writes the replies back in request order.
//   node dist/bench/servers/piscina-per-request.js --work ping [--workers N]

import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { Piscina } from 'piscina';
import { isWorkName } from '../work.js';
import { announce, exitOnStop } from './lifecycle.js';
import { listenLocal } from './line-server.js';

const { values } = parseArgs({
  options: {
    work: { type: 'string', default: 'ping' },
    workers: { type: 'string', default: String(availableParallelism()) },
    host: { type: 'string', default: '127.0.0.1' },
  },
});
const work = values.work;
if (!isWorkName(work)) throw new Error(`unknown --work ${work}`);
const threads = Number(values.workers);
const pool = new Piscina({
  filename: new URL('./piscina-task.js', import.meta.url).href,
  minThreads: threads,
  maxThreads: threads,
  idleTimeout: Number.MAX_SAFE_INTEGER,
  workerData: { work },
});
exitOnStop(() => pool.destroy());

const server = createServer({ noDelay: true }, (socket) => {
  /** Replies in request order; null until its task finishes. */
  const order: Array<{ reply: string | null }> = [];
  let pending = '';
  const flush = (): void => {
    let out = '';
    while (order.length > 0 && order[0]!.reply !== null) out += order.shift()!.reply + '\n';
    if (out.length > 0 && !socket.destroyed) socket.write(out, 'latin1');
  };
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    const data = pending + chunk;
    let start = 0;
    let newline = data.indexOf('\n');
    while (newline !== -1) {
      const slot: { reply: string | null } = { reply: null };
      order.push(slot);
      pool.run(data.slice(start, newline)).then(
        (reply: string) => {
          slot.reply = reply;
          flush();
        },
        () => socket.destroy(),
      );
      start = newline + 1;
      newline = data.indexOf('\n', start);
    }
    pending = data.slice(start);
  });
  socket.on('error', () => socket.destroy());
});
announce(values.host, await listenLocal(server, values.host));
