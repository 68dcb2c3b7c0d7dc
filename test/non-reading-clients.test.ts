// Clients that do not read their replies (issue 16, item 1), on ThreadingTCPServer with 2 real
// workers over real sockets. A client pipelines 200 requests for 256 KiB each, never reads, then
// closes, resets or half-closes — at several moments: right away, while its backlog builds, and
// after the server disconnected it (writeBufferHardLimit passed and no progress for
// writeStallTimeout: at once, or after 250 ms); two such clients at a time, so that some are cut
// while their replies still come back. Whatever they do, the server's event loop keeps turning, a
// fresh client is answered within 3 s, and their connections are released.
//
// The defect: a connection whose socket was destroyed stayed 'open' until 'close'; any pump()
// in between — a reply coming back, a shutdown's drain — armed a flush wait on the destroyed
// socket (whose writableNeedDrain reads false), the empty write failed on the next tick, and its
// callback pumped again: a nextTick loop in which the event loop never turned, so 'close' never
// came and nothing else was served. Under the clients above that is a race (the reply must come
// back in the same loop turn as the cut); the last test makes it certain: the socket is destroyed
// under a connection that waits on its backlog, and a shutdown pumps it in the same turn. Before
// the fix that test hung every time (the loop watchdog killed the file with the stack:
// #waitForSocketFlush ← #dispatchBuffered ← pump, scheduled by #waitForSocketFlush).

import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { type ClientAddress, type ServerOptions, ThreadingTCPServer } from '../src/index.js';
import { fixture } from './helpers/client.js';
import { captureLogger, type LogEntry, type Peer, Registry, waitUntil } from './helpers/net.js';

const registry = new Registry();
afterEach(() => registry.cleanup());

const KiB = 1024;
const REPLY = 256 * KiB;
const PIPELINED = 200;
const HOGS = 2;
/** Within this, after each round of abusive clients, a fresh client must have its reply. */
const FRESH_REPLY_MS = 3000;

/** ThreadingTCPServer that keeps the server side of each connection, by the client's port. */
class WatchedServer extends ThreadingTCPServer {
  readonly sockets = new Map<number, Socket>();
  override verifyRequest(socket: Socket, clientAddress: ClientAddress): boolean {
    this.sockets.set(clientAddress[1], socket);
    return true;
  }
}

async function start(options: ServerOptions = {}): Promise<{ server: WatchedServer; port: number; entries: LogEntry[] }> {
  const { logger, entries } = captureLogger();
  const server = registry.server(new WatchedServer({ host: '127.0.0.1', port: 0 }, fixture('big-reply'), { workers: 2, logger, ...options }));
  const { port } = await server.listen();
  return { server, port, entries };
}

/** A fresh connection is answered within FRESH_REPLY_MS, and the event loop never stalled that long. */
async function assertServing(server: WatchedServer, port: number, what: string): Promise<void> {
  const started = performance.now();
  const fresh = await registry.peer(port);
  fresh.write(`fresh after ${what}\n`);
  await fresh.until(() => fresh.text === `ok fresh after ${what}\n`, `a fresh client's reply after ${what}`, FRESH_REPLY_MS);
  expect(performance.now() - started).toBeLessThan(FRESH_REPLY_MS);
  expect(server.stats().eventLoopDelay.max).toBeLessThan(FRESH_REPLY_MS);
  fresh.socket.destroy();
}

type Exit = 'closes' | 'resets' | 'half-closes';

function leave(hog: Peer, how: Exit): void {
  if (how === 'closes') hog.socket.destroy();
  else if (how === 'resets') hog.socket.resetAndDestroy();
  else hog.socket.end();
}

const overflows = (entries: LogEntry[]) => entries.filter((e) => e.context.code === 'ERR_WRITE_BUFFER_OVERFLOW').length;

interface Moment {
  server: WatchedServer;
  entries: LogEntry[];
  answeredBefore: number;
  overflowsBefore: number;
}

describe.each([0, 250])('writeStallTimeout %i: clients that pipeline 200 × BIG 262144 and never read', (writeStallTimeout) => {
  // When they leave: conditions on the server's state, not delays.
  const moments: Array<[string, (m: Moment) => boolean]> = [
    ['as soon as they have sent them', () => true],
    ['once 16 replies (4 MiB) were answered', (m) => m.server.stats().requestsOk - m.answeredBefore >= 16],
    ['once 64 replies (16 MiB) were answered', (m) => m.server.stats().requestsOk - m.answeredBefore >= 64],
    ['after the server disconnected one (writeBufferHardLimit)', (m) => overflows(m.entries) > m.overflowsBefore],
  ];

  test.each<Exit>(['closes', 'resets', 'half-closes'])(`then %s, ${HOGS} at a time, at ${moments.length} moments: each time a fresh client is answered within 3 s and their connections are released`, async (how) => {
    const { server, port, entries } = await start({ writeStallTimeout });
    for (const [moment, ready] of moments) {
      const state: Moment = { server, entries, answeredBefore: server.stats().requestsOk, overflowsBefore: overflows(entries) };
      const hogs = await Promise.all(Array.from({ length: HOGS }, () => registry.peer(port)));
      for (const hog of hogs) {
        hog.socket.pause(); // never reads: replies pile up in the kernel, then in the server
        hog.write(`BIG ${REPLY}\n`.repeat(PIPELINED));
      }
      await waitUntil(() => ready(state) || hogs.some((hog) => hog.closed), `the moment: ${moment}`);
      for (const hog of hogs) leave(hog, how);
      await assertServing(server, port, `clients that ${how} ${moment}`);
      await waitUntil(() => server.stats().connections === 0, `their connections to be released (${how} ${moment})`);
    }
  }, 60_000);
});

test('a connection whose socket is destroyed under it while it waits on its backlog is cut at once: a shutdown in the same turn does not spin, and completes', async () => {
  // 16 in flight at most: 4 MiB of replies, under writeBufferHardLimit, so the connection stays
  // open, paused on its socket's backlog, with every reply written and more requests buffered.
  const { server, port } = await start({ maxInFlightPerConnection: 16 });
  const hog = await registry.peer(port);
  hog.socket.pause();
  hog.write(`BIG ${REPLY}\n`.repeat(PIPELINED));
  await waitUntil(() => server.sockets.has(hog.localPort), 'the server to accept the hog');
  const socket = server.sockets.get(hog.localPort)!;
  await waitUntil(
    () => server.stats().requestsInFlight === 0 && socket.writableLength >= 256 * KiB,
    'every reply in flight answered, and the socket backlogged past writeHighWaterMark',
  );
  // As an error (ECONNRESET) or user code in a hook would: the connection gets no event for it.
  socket.destroy();
  const closed = server.close(); // drains every connection: pumps this one in the same turn
  await waitUntil(() => server.stats().connections === 0, 'the cut connection to be released');
  await closed;
  expect(server.stats().eventLoopDelay.max).toBeLessThan(FRESH_REPLY_MS);
});
