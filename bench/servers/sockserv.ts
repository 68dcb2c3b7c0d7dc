// The sockserv servers under test, one process with one listener per --listen MODE:HANDLER, in
// order: MODE is `pool` (ThreadingTCPServer) or `inline` (TCPServer), HANDLER a module of
// bench/handlers (echo-session is a StreamRequestHandler: framing does not apply to it;
// broadcast uses rooms).
// SIGUSR2 prints `stats [server.stats() per listener]` as one JSON line.
//   node dist/bench/servers/sockserv.js --listen pool:ping [--workers N] [--inline-below-micros US]
//   node dist/bench/servers/sockserv.js --listen pool:pbkdf2 --listen inline:ping

import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { type BaseServer, TCPServer, ThreadingTCPServer } from 'sockserv';
import { announce, exitOnStop } from './lifecycle.js';

const { values } = parseArgs({
  options: {
    listen: { type: 'string', multiple: true },
    workers: { type: 'string', default: String(availableParallelism()) },
    host: { type: 'string', default: '127.0.0.1' },
    'inline-below-micros': { type: 'string', default: '0' },
  },
});
const servers: BaseServer[] = [];
exitOnStop(() => Promise.all(servers.map((server) => server.close())));
process.on('SIGUSR2', () => {
  process.stdout.write(`stats ${JSON.stringify(servers.map((server) => server.stats()))}\n`);
});

for (const spec of values.listen ?? ['pool:ping']) {
  const [mode, handler] = spec.split(':');
  if ((mode !== 'pool' && mode !== 'inline') || !/^(ping|pbkdf2|echo|mixed|echo-session|broadcast)$/.test(handler ?? '')) {
    throw new Error(`--listen wants pool|inline:ping|pbkdf2|echo|mixed|echo-session|broadcast (got ${spec})`);
  }
  const module = new URL(`../handlers/${handler}.js`, import.meta.url);
  const address = { host: values.host, port: 0 };
  const options = {
    framing: 'line' as const,
    workers: Number(values.workers),
    shutdownTimeout: 1000,
    inlineBelowMicros: Number(values['inline-below-micros']),
    // Scenario 4 holds 10,000 idle connections and then measures load on top of them: the
    // default maxConnections (10,000) would refuse the load connections, as it should.
    maxConnections: 20_000,
  };
  const server = mode === 'pool' ? new ThreadingTCPServer(address, module, options) : new TCPServer(address, module, options);
  servers.push(server);
  const { port } = await server.listen();
  announce(values.host, port);
}
