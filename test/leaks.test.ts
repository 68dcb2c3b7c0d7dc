// Leaks: 1,000 connections that open, send requests and reset abruptly (resetAndDestroy) — some
// with a request still running in a worker, some with a partial request buffered, some after
// their reply — must leave nothing behind: the process's open file descriptors (the test and the
// server share this process, so both are counted, with every client closed), the server's
// connection and in-flight counts, and the heap return to their baseline.
// `npm run soak:leaks` runs the same check with 10,000 connections against a server in a child
// process (test/soak/leaks.mjs).

import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { type BaseServer, silentLogger, TCPServer, ThreadingTCPServer } from '../src/index.js';
import { fixture } from './helpers/client.js';
import { Registry, sleep, waitUntil } from './helpers/net.js';

const registry = new Registry();
afterEach(() => registry.cleanup());

const CONNECTIONS = 1000;
const CONCURRENT = 100;
/** Heap growth allowed after a full GC: far below what 1,000 retained connections would hold. */
const HEAP_SLACK = 8 * 1024 * 1024;

// jest runs without --expose-gc; V8 can still hand out gc() to a new context.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    await sleep(20);
    gc();
  }
  return process.memoryUsage().heapUsed;
}

/**
 * One rude client. Kinds, by index: a request still running (sleep 50) when it resets; a partial
 * request buffered; a reply received, then reset; a reset right after connecting.
 */
function rudeClient(port: number, i: number): Promise<void> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ port, host: '127.0.0.1' });
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      if (!socket.destroyed) socket.resetAndDestroy();
      resolve();
    };
    socket.on('error', finish);
    socket.on('close', finish);
    socket.on('connect', () => {
      switch (i % 4) {
        case 0:
          socket.write('sleep 50\nsleep 50\n', () => setImmediate(finish));
          break;
        case 1:
          socket.write('partial-without-newline', () => setImmediate(finish));
          break;
        case 2:
          socket.write('hello\n');
          socket.once('data', finish);
          break;
        default:
          finish();
      }
    });
  });
}

async function churn(port: number, count: number): Promise<void> {
  for (let start = 0; start < count; start += CONCURRENT) {
    await Promise.all(Array.from({ length: Math.min(CONCURRENT, count - start) }, (_, k) => rudeClient(port, start + k)));
  }
}

async function quiet(server: BaseServer): Promise<void> {
  await waitUntil(() => {
    const s = server.stats();
    return s.connections === 0 && s.requestsInFlight === 0 && s.queuedRequests === 0;
  }, 'the server has forgotten every connection');
}

describe.each([
  ['ThreadingTCPServer', ThreadingTCPServer],
  ['TCPServer', TCPServer],
] as const)('%s', (_name, Server) => {
  test(`${CONNECTIONS} connections that send a request and reset abruptly leave no descriptor, connection or heap behind`, async () => {
    const server = registry.server(new Server({ host: '127.0.0.1', port: 0 }, fixture('fault-modes'), { workers: 2, logger: silentLogger }));
    const { port } = await server.listen();
    // Warm up (JIT, buffer pools, worker caches) before taking the baseline.
    await churn(port, 200);
    await quiet(server);
    await sleep(100);
    const fdsBefore = openFds();
    const heapBefore = await settledHeap();
    const receivedBefore = server.stats().connectionsTotal;

    await churn(port, CONNECTIONS);
    await quiet(server);
    // Every connection reached the server (none was refused before being seen).
    expect(server.stats().connectionsTotal - receivedBefore).toBe(CONNECTIONS);
    expect(server.stats().connectionsRefused).toBe(0);

    // Descriptors close asynchronously after 'close'; wait (bounded) for the count to come back.
    await waitUntil(() => openFds() <= fdsBefore, `open descriptors back to ${fdsBefore} (now ${openFds()})`);
    expect(openFds()).toBeLessThanOrEqual(fdsBefore);
    const heapAfter = await settledHeap();
    expect(heapAfter - heapBefore).toBeLessThan(HEAP_SLACK);

    // And the server still serves.
    const peer = await registry.peer(port);
    peer.write('after\n');
    await peer.untilLines(1);
    expect(peer.text).toBe('ok after\n');
  });
});
