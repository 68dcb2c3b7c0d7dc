// Review finding: the watchdog (src/dispatch/watchdog.ts) stops a worker only when Ctl.RUNNING
// names the overdue request, and RUNNING is set only around the synchronous part of a run
// (workers/channel-loop.ts #run). An async handler whose continuation — code after an `await` —
// holds the thread (a loop, execSync, Atomics.wait, a long synchronous parse) is taken for "async,
// awaiting, its thread is fine": it is abandoned, never stopped. Its ABANDON is never read, and
// every request queued on that worker never starts, so it is never overdue either: it waits for as
// long as the continuation runs (here 20 s; for ever for a real loop). requestTimeout is the only
// guard a pooled server has against a stuck handler, and here it does not bound the wait.

import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ThreadingTCPServer } from '../src/index.js';
import { captureLogger, Registry } from './helpers/net.js';

const registry = new Registry();
const handlerFile = join(tmpdir(), `sockserv-review-stuck-${process.pid}.mjs`);
afterAll(async () => {
  await registry.cleanup();
  rmSync(handlerFile, { force: true });
});

test('an async handler whose continuation holds the thread: a request queued behind it is answered within a few requestTimeouts', async () => {
  const sockserv = new URL('../dist/src/index.js', import.meta.url).href;
  writeFileSync(
    handlerFile,
    `import { BaseRequestHandler } from ${JSON.stringify(sockserv)};
export default class StallAfterAwait extends BaseRequestHandler {
  async handle() {
    const text = this.request.toString();
    if (text === 'stall') {
      await new Promise((resolve) => setTimeout(resolve, 5));
      const until = Date.now() + 20000;
      while (Date.now() < until); // the continuation holds the thread
      return 'stalled';
    }
    return 'ok ' + text;
  }
}
`,
  );
  const { logger } = captureLogger();
  const server = registry.server(
    new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, handlerFile, { workers: 1, requestTimeout: 300, onHandlerError: 'reply', logger }),
  );
  const { port } = await server.listen();
  const a = await registry.peer(port);
  const b = await registry.peer(port);
  a.write('stall\n');
  await new Promise((resolve) => setTimeout(resolve, 50));
  b.write('ping\n');
  expect((await a.untilLines(1, 3000))[0]).toBe('ERROR ERR_REQUEST_TIMEOUT'); // abandoned: this part works
  // B's request never started, so it is never overdue, and the thread is never stopped. Expected:
  // the worker is stopped (and replaced) and B is answered, or B fails with a timeout — within
  // 3 s, ten requestTimeouts. Today B waits the whole 20 s of the continuation.
  const started = Date.now();
  const got = await b.untilLines(1, 5000).catch(() => [`nothing after ${Date.now() - started} ms`]);
  expect(got[0]).toMatch(/^(ok ping|ERROR ERR_REQUEST_TIMEOUT)$/);
}, 30_000);
