// node:cluster baseline: one worker process per core, each running the hand-written line server;
// the primary distributes connections (round-robin) and announces once every worker listens.
//   node dist/bench/servers/cluster.js --work pbkdf2 [--workers N]

import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { isWorkName } from '../work.js';
import { announce, exitOnStop } from './lifecycle.js';
import { createLineServer, listenLocal } from './line-server.js';

const { values } = parseArgs({
  options: {
    work: { type: 'string', default: 'pbkdf2' },
    workers: { type: 'string', default: String(availableParallelism()) },
    host: { type: 'string', default: '127.0.0.1' },
  },
});
const work = values.work;
if (!isWorkName(work)) throw new Error(`unknown --work ${work}`);

if (cluster.isPrimary) {
  const count = Number(values.workers);
  const ports: number[] = [];
  exitOnStop(() => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGKILL');
  });
  cluster.on('listening', (_worker, address) => {
    ports.push(address.port);
    if (ports.length === count) announce(values.host, ports[0]!);
  });
  cluster.on('exit', (worker, code, signal) => {
    process.stderr.write(`cluster worker ${worker.process.pid} exited (${signal ?? code})\n`);
  });
  // Workers must not read the harness's stdin pipe; they leave when the primary disconnects.
  cluster.setupPrimary({ stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  for (let i = 0; i < count; i++) cluster.fork();
} else {
  // Port 0 in a cluster worker: the primary binds one random port and every worker shares it.
  await listenLocal(createLineServer(work), values.host);
}
