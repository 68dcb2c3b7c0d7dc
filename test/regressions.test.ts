// Bugs found in review, each pinned by the scenario that showed it: an async handler rejecting
// within its batch's turn must fail only its own request (no re-run of the batch); reading that
// paused on the connection's own unsent replies must resume without a socket 'drain'; an async
// handler on the main thread that never settles must time out.

import { TCPServer, ThreadingTCPServer, silentLogger } from '../src/index.js';
import { fixture } from './helpers/client.js';
import { Registry } from './helpers/net.js';

const registry = new Registry();
afterEach(() => registry.cleanup());

function counter(): { counter: SharedArrayBuffer; runs: () => number } {
  const counter = new SharedArrayBuffer(4);
  return { counter, runs: () => Atomics.load(new Int32Array(counter), 0) };
}

test('pool: an async handler that rejects at once fails only its request, and no request runs twice', async () => {
  const { counter: shared, runs } = counter();
  const server = registry.server(
    new ThreadingTCPServer({ port: 0 }, fixture('counted'), {
      workers: 2,
      onHandlerError: 'reply',
      handlerData: { counter: shared },
      logger: silentLogger,
    }),
  );
  const { port } = await server.listen();
  const peer = await registry.peer(port);
  peer.write('a\nb\nbad\nc\n');
  expect(await peer.untilLines(4)).toEqual(['ok a', 'ok b', 'ERROR ERR_HANDLER_FAILED', 'ok c']);
  expect(runs()).toBe(4);
});

test('inline: with a writeHighWaterMark under the socket buffer, pipelined replies all arrive', async () => {
  // A synchronous handler: every request of the read is dispatched in one pass, so reading
  // pauses on the replies it queued itself, and only the flush can resume it.
  const server = registry.server(new TCPServer({ port: 0 }, fixture('upper'), { writeHighWaterMark: 1024, logger: silentLogger }));
  const { port } = await server.listen();
  const peer = await registry.peer(port);
  const line = 'x'.repeat(600);
  peer.write(`${line}\n`.repeat(10));
  expect(await peer.untilLines(10)).toEqual(Array.from({ length: 10 }, () => line.toUpperCase()));
});

test('inline: an async handler that never settles fails with ERR_REQUEST_TIMEOUT and the connection goes on', async () => {
  const { counter: shared } = counter();
  const server = registry.server(
    new TCPServer({ port: 0 }, fixture('counted'), {
      requestTimeout: 200,
      onHandlerError: 'reply',
      handlerData: { counter: shared },
      logger: silentLogger,
    }),
  );
  const { port } = await server.listen();
  const peer = await registry.peer(port);
  peer.write('hang\nafter\n');
  expect(await peer.untilLines(2)).toEqual(['ERROR ERR_REQUEST_TIMEOUT', 'ok after']);
  expect(server.stats().requestsInFlight).toBe(0);
});
