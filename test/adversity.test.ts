// Regression tests for the dispatch core under adversity (issue 16), end to end on real sockets
// and real worker threads: each failed on the code before the core's split (the commit message of
// the test says which, and how). The unit-level ones (ABANDON order, refs with generations, the
// doorbell, freed queue entries) live in channel-units.test.ts and the protocol's model test.

import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TCPServer, ThreadingTCPServer, type ServerOptions } from '../src/index.js';
import { fixture } from './helpers/client.js';
import { captureLogger, Registry, waitUntil } from './helpers/net.js';

const registry = new Registry();
const failFile = join(tmpdir(), `sockserv-adversity-fail-${process.pid}`);
afterEach(async () => {
  rmSync(failFile, { force: true });
  await registry.cleanup();
});

async function start(options: ServerOptions = {}, Server: typeof TCPServer = ThreadingTCPServer) {
  const { logger, entries } = captureLogger();
  const server = registry.server(new Server({ host: '127.0.0.1', port: 0 }, fixture('adversity'), { workers: 2, logger, onHandlerError: 'reply', ...options }));
  const { port } = await server.listen();
  const deaths = () => entries.filter((e) => e.message?.includes('worker died')).length;
  return { server, port, entries, deaths };
}

/** Sends each line on its own connection, all at once; resolves with the replies in order. */
async function concurrently(port: number, lines: string[]): Promise<string[]> {
  const peers = await Promise.all(lines.map(() => registry.peer(port)));
  peers.forEach((peer, i) => peer.write(`${lines[i]}\n`));
  return Promise.all(peers.map((peer) => peer.untilLines(1).then((got) => got[0]!)));
}

const NON_ERRORS = ['null-proto', '42', 'undefined', 'symbol', 'proxy', 'badError'];

describe('a handler that throws something that is not an Error', () => {
  test('pool: every kind is ERR_HANDLER_FAILED on its own connection; no worker dies or is replaced', async () => {
    const { port, deaths } = await start();
    const before = new Set(await concurrently(port, ['hash 30', 'hash 30', 'hash 30', 'hash 30']));
    const peer = await registry.peer(port);
    for (const kind of NON_ERRORS) peer.write(`throw ${kind}\n`);
    peer.write('who\n');
    const lines = await peer.untilLines(NON_ERRORS.length + 1);
    expect(lines.slice(0, NON_ERRORS.length)).toEqual(NON_ERRORS.map(() => 'ERROR ERR_HANDLER_FAILED'));
    expect(lines[NON_ERRORS.length]).toMatch(/^thread \d+$/);
    expect(deaths()).toBe(0);
    const after = new Set(await concurrently(port, ['hash 30', 'hash 30', 'hash 30', 'hash 30']));
    expect([...after].sort()).toEqual([...before].sort()); // the same two threads: none replaced
  });

  test('inline TCPServer: every kind is ERR_HANDLER_FAILED, and the server goes on', async () => {
    const { port } = await start({}, TCPServer);
    const peer = await registry.peer(port);
    for (const kind of NON_ERRORS) peer.write(`throw ${kind}\n`);
    peer.write('who\n');
    const lines = await peer.untilLines(NON_ERRORS.length + 1);
    expect(lines).toEqual([...NON_ERRORS.map(() => 'ERROR ERR_HANDLER_FAILED'), 'thread 0']);
  });
});

test('after a worker dies, its replacement carries a channel: heavy work spreads over two threads again', async () => {
  const { port, deaths } = await start();
  const before = new Set(await concurrently(port, ['hash 40', 'hash 40', 'hash 40', 'hash 40', 'hash 40', 'hash 40']));
  expect(before.size).toBe(2);
  const victim = await registry.peer(port);
  victim.write('exit\n');
  expect((await victim.untilLines(1))[0]).toBe('ERROR ERR_WORKER_DIED');
  await waitUntil(() => deaths() === 1, 'the death is logged');
  // The replacement channel waits for the new thread: until then one thread serves everything,
  // so ask again until both answer (a deadline, not a round count: a thread boots in hundreds of
  // ms on a loaded 2-core machine).
  let after = new Set<string>();
  for (const deadline = Date.now() + 15_000; Date.now() < deadline && after.size < 2; ) {
    after = new Set(await concurrently(port, ['hash 40', 'hash 40', 'hash 40', 'hash 40', 'hash 40', 'hash 40']));
  }
  expect(after.size).toBe(2);
  const survivors = [...before].filter((thread) => after.has(thread));
  expect(survivors).toHaveLength(1); // one survivor, one new thread: not the survivor twice
}, 30_000);

test('a worker turns its event loop under sustained load: an async reply does not wait for the queue to empty', async () => {
  const { port } = await start({ workers: 1 });
  // Teach the scheduler that "spin" is cheap (urgent: it fills the worker's queue, up to 1024).
  const warm = await registry.peer(port);
  for (let i = 0; i < 200; i++) warm.write('spin 20\n');
  await warm.untilLines(200);
  const flooders = await Promise.all(Array.from({ length: 16 }, () => registry.peer(port)));
  const PER = 2000;
  const burst = Buffer.from('spin 20\n'.repeat(PER));
  for (const peer of flooders) peer.write(burst);
  const asker = await registry.peer(port);
  await waitUntil(() => flooders.reduce((n, p) => n + p.lines.length, 0) >= 500, 'the flood is being served');
  asker.write('sleep 5\n');
  await asker.untilLines(1);
  const served = flooders.reduce((n, p) => n + p.lines.length, 0);
  // 32,000 cheap runs are queued or on the way; the timer reply got through long before the end.
  expect(served).toBeLessThan((16 * PER) / 2);
  await Promise.all(flooders.map((peer) => peer.untilLines(PER)));
}, 30_000);

test('when no worker can load the handler any more, requests fail at once with ERR_HANDLER_LOAD instead of waiting for ever', async () => {
  // No spare thread: the replacement is a new thread, booted after the fixture stopped loading.
  const { port, entries } = await start({ workers: 1, spareWorkers: 0 });
  writeFileSync(failFile, 'x'); // a replacement worker will not load the fixture
  const victim = await registry.peer(port);
  victim.write('exit\n');
  expect((await victim.untilLines(1))[0]).toBe('ERROR ERR_WORKER_DIED');
  await waitUntil(() => entries.some((e) => e.message === 'a worker could not load the handler'), 'the load failure is logged');
  const later = await registry.peer(port);
  later.write('who\nwho\n');
  expect(await later.untilLines(2, 3000)).toEqual(['ERROR ERR_HANDLER_LOAD', 'ERROR ERR_HANDLER_LOAD']);
}, 30_000);

test('the inline lane keeps one connection in order: its next request waits for its async inline run', async () => {
  const { logger, entries } = captureLogger();
  const server = registry.server(
    new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('adversity'), { workers: 1, logger: { ...logger, debug: logger.debug }, inlineBelowMicros: 200 }),
  );
  const { port } = await server.listen();
  const warm = await registry.peer(port);
  let sent = 0;
  await waitUntil(() => {
    if (entries.some((e) => e.message === 'cheap requests now run on the main thread')) return true;
    for (let i = 0; i < 50; i++) warm.write(`span 0 w${sent++}\n`);
    return false;
  }, 'the inline lane switches on');
  const peer = await registry.peer(port);
  peer.write('span 40 a\nspan 0 b\nspan 0 c\n');
  const lines = await peer.untilLines(3);
  const spans = lines.map((line) => line.split(' '));
  expect(spans.map((s) => s[0])).toEqual(['a', 'b', 'c']);
  expect(Number(spans[1]![1])).toBeGreaterThanOrEqual(Number(spans[0]![2])); // b started after a ended
  expect(Number(spans[2]![1])).toBeGreaterThanOrEqual(Number(spans[1]![2]));
}, 30_000);

function threads(): number {
  return Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
}

test('closing right after a worker death waits for the booting replacement and leaves no thread', async () => {
  const baseline = threads();
  for (let round = 0; round < 5; round++) {
    const { logger } = captureLogger();
    const server = new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('adversity'), { workers: 2, logger, onHandlerError: 'reply' });
    const { port } = await server.listen();
    const victim = await registry.peer(port);
    victim.write('exit\n');
    await victim.untilLines(1);
    await server.close(); // the replacement is booting now
  }
  // The process is alive (an abort would have ended this test run), and every thread is gone.
  await waitUntil(() => threads() <= baseline, `threads back to ${baseline} (now ${threads()})`);
}, 60_000);
