// The bulkhead (src/dispatch/scheduler.ts): once a request of some kind has killed a worker (here:
// stopped past requestTimeout), requests of that kind may hold at most all workers but one, so the
// others are still served while they run. Before, two such requests took both workers, and a cheap
// request on another connection waited until the watchdog had stopped one of them.

import { ThreadingTCPServer } from '../src/index.js';
import { fixture } from './helpers/client.js';
import { captureLogger, Registry, waitUntil } from './helpers/net.js';

const registry = new Registry();
afterEach(() => registry.cleanup());

test('two requests of a kind that killed a worker never hold both workers: a cheap request is answered while the first still runs', async () => {
  const { logger } = captureLogger();
  const server = registry.server(
    new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('adversity'), { workers: 2, logger, requestTimeout: 500, onHandlerError: 'reply' }),
  );
  const { port } = await server.listen();
  // HASH kills a worker once: busy for 5 s, stopped past requestTimeout.
  const first = await registry.peer(port);
  first.write('hash 5000\n');
  expect((await first.untilLines(1))[0]).toBe('ERROR ERR_REQUEST_TIMEOUT');
  // Both workers serve again: the spare took the stopped one's place (two channels with a thread).
  await waitUntil(() => server.stats().pool!.workerTids.length === 2, 'two workers serving');
  // Two more HASH 5000 at once, then a cheap request on a third connection.
  const [a, b, cheap] = await Promise.all([registry.peer(port), registry.peer(port), registry.peer(port)]);
  a.write('hash 5000\n');
  b.write('hash 5000\n');
  await new Promise((resolve) => setImmediate(resolve));
  cheap.write('who\n');
  await cheap.untilLines(1);
  // The cheap reply came while neither suspect request had been stopped yet: one worker was kept free.
  expect({ cheap: cheap.lines[0]!.startsWith('thread '), a: a.lines.length, b: b.lines.length }).toEqual({ cheap: true, a: 0, b: 0 });
  // And the two suspect requests ran one after the other, each stopped past requestTimeout.
  expect([(await a.untilLines(1))[0], (await b.untilLines(1))[0]]).toEqual(['ERROR ERR_REQUEST_TIMEOUT', 'ERROR ERR_REQUEST_TIMEOUT']);
}, 30_000);
