// The pool's streaming channels (src/dispatch/pool.ts, worker-channel.ts, workers/channel-loop.ts)
// on real sockets and real workers: each request runs at most once when a worker dies, a handler
// overruns requestTimeout or an async handler rejects at once, finished replies are delivered, one connection's requests run in order
// (async ones included), frames bigger than a ring record take the transfer path, and a pool shared
// with sessions keeps serving requests. Runs are counted in shared memory by test/fixtures/ledger.js.

import {
  type ClientAddress,
  type ServerOptions,
  silentLogger,
  type SockservError,
  ThreadingTCPServer,
  WorkerPool,
} from '../src/index.js';
import { fixture } from './helpers/client.js';
import { type Peer, Registry } from './helpers/net.js';
import type { Socket } from 'node:net';

const registry = new Registry();
afterEach(() => registry.cleanup());

const RUNS = 0;
const LOG = 4096;

class LedgerServer extends ThreadingTCPServer {
  readonly failures: SockservError[] = [];
  override handleError(_socket: Socket | null, _client: ClientAddress, error: SockservError): void {
    this.failures.push(error);
  }
}

async function start(options: ServerOptions = {}, handler = 'ledger') {
  const ledger = new SharedArrayBuffer(4 * 65536);
  const server = registry.server(
    new LedgerServer({ host: '127.0.0.1', port: 0 }, fixture(handler), { workers: 2, logger: silentLogger, handlerData: { ledger }, ...options }),
  );
  const { port } = await server.listen();
  const words = new Int32Array(ledger);
  return {
    server,
    port,
    runs: (id: number) => Atomics.load(words, RUNS + id),
    /** The run log: +id at a start, -id at an end, in the order they happened. */
    log: () => Array.from(words.subarray(LOG + 1, LOG + 1 + Atomics.load(words, LOG))),
  };
}

function lines(peer: Peer): string[] {
  const text = peer.received.toString();
  return text.split('\n').slice(0, -1);
}

async function replies(peer: Peer, count: number): Promise<string[]> {
  await peer.until(() => lines(peer).length >= count, `${count} replies`);
  return lines(peer);
}

describe('at most once', () => {
  test('a worker dying on request 101 of 200 pipelined: 1–100 answered, 101 fails, 102–200 run once elsewhere', async () => {
    const { server, port, runs } = await start({ onHandlerError: 'reply' });
    const bystander = await registry.peer(port);
    const peer = await registry.peer(port);
    const requests = Array.from({ length: 200 }, (_, i) => `${i + 1} ${i + 1 === 101 ? 'exit' : 'fast'}\n`);
    bystander.write(Array.from({ length: 200 }, (_, i) => `${1001 + i} fast\n`).join(''));
    peer.write(requests.join(''));
    const got = await replies(peer, 200);
    const expected = requests.map((_, i) => (i + 1 === 101 ? 'ERROR ERR_WORKER_DIED' : `${i + 1} ok`));
    expect(got).toEqual(expected);
    expect(await replies(bystander, 200)).toEqual(Array.from({ length: 200 }, (_, i) => `${1001 + i} ok`));
    for (let id = 1; id <= 200; id++) expect([id, runs(id)]).toEqual([id, 1]);
    for (let id = 1001; id <= 1200; id++) expect([id, runs(id)]).toEqual([id, 1]);
    expect(server.failures.map((f) => f.code)).toEqual(['ERR_WORKER_DIED']);
  });

  test("with onHandlerError 'close', requests after the one that killed its worker never run", async () => {
    const { port, runs } = await start();
    const peer = await registry.peer(port);
    const requests = Array.from({ length: 200 }, (_, i) => `${i + 1} ${i + 1 === 101 ? 'exit' : 'fast'}\n`);
    peer.write(requests.join(''));
    await peer.until(() => peer.closed, 'the connection to close');
    expect(lines(peer)).toEqual(Array.from({ length: 100 }, (_, i) => `${i + 1} ok`));
    for (let id = 1; id <= 101; id++) expect([id, runs(id)]).toEqual([id, 1]);
    for (let id = 102; id <= 200; id++) expect([id, runs(id)]).toEqual([id, 0]);
  });

  test('a synchronous handler past requestTimeout fails alone; its worker is replaced; nothing runs twice', async () => {
    const { server, port, runs } = await start({ onHandlerError: 'reply', requestTimeout: 300 });
    const peer = await registry.peer(port);
    peer.write('1 fast\n2 loop\n3 fast\n4 spin 5\n');
    expect(await replies(peer, 4)).toEqual(['1 ok', 'ERROR ERR_REQUEST_TIMEOUT', '3 ok', '4 ok']);
    for (const id of [1, 2, 3, 4]) expect(runs(id)).toBe(1);
    expect(server.failures.map((f) => f.code)).toEqual(['ERR_REQUEST_TIMEOUT']);
    const after = await registry.peer(port);
    after.write('5 fast\n6 fast\n');
    expect(await replies(after, 2)).toEqual(['5 ok', '6 ok']);
  });

  test('an async handler past requestTimeout fails alone and its connection goes on, in order', async () => {
    const { port, runs, log } = await start({ onHandlerError: 'reply', requestTimeout: 300 });
    const peer = await registry.peer(port);
    peer.write('1 hang\n2 fast\n3 sleep 10\n');
    expect(await replies(peer, 3)).toEqual(['ERROR ERR_REQUEST_TIMEOUT', '2 ok', '3 ok']);
    for (const id of [1, 2, 3]) expect(runs(id)).toBe(1);
    expect(log()).toEqual([1, 2, -2, 3, -3]);
  });

  test('an async handler that rejects at once fails only its request, and no request runs twice', async () => {
    const counter = new SharedArrayBuffer(4);
    const server = registry.server(
      new ThreadingTCPServer({ port: 0 }, fixture('counted'), {
        workers: 2,
        onHandlerError: 'reply',
        handlerData: { counter },
        logger: silentLogger,
      }),
    );
    const { port } = await server.listen();
    const peer = await registry.peer(port);
    peer.write('a\nb\nbad\nc\n');
    expect(await peer.untilLines(4)).toEqual(['ok a', 'ok b', 'ERROR ERR_HANDLER_FAILED', 'ok c']);
    expect(Atomics.load(new Int32Array(counter), 0)).toBe(4);
  });
});

describe('the watchdog and a full ring never wedge a worker', () => {
  test('async requests abandoned past requestTimeout free their slots: the worker keeps serving', async () => {
    // One worker, two late async handlers: before the fix their slots and queued-work share were
    // never given back, and the worker refused every later request.
    const server = registry.server(
      new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('sleep'), { workers: 1, logger: silentLogger, requestTimeout: 100, onHandlerError: 'reply' }),
    );
    const { port } = await server.listen();
    const slow = [await registry.peer(port), await registry.peer(port)];
    for (const peer of slow) peer.write('300 late\n'); // settles after 300 ms: past the timeout, but it settles
    for (const peer of slow) expect(await replies(peer, 1)).toEqual(['ERROR ERR_REQUEST_TIMEOUT']);
    const next = await registry.peer(port);
    next.write('hello\n');
    expect(await replies(next, 1)).toEqual(['hello']);
    await next.until(() => server.stats().requestsInFlight === 0, 'nothing left in flight');
  });

  test('a request ring filled while its worker is stuck: the watchdog still stops it, and every request is answered', async () => {
    const { port, runs } = await start({ workers: 1, requestTimeout: 1000, onHandlerError: 'reply' });
    const warm = await registry.peer(port);
    warm.write(Array.from({ length: 200 }, (_, i) => `${i + 1} fast\n`).join('')); // learn that "fast" is cheap
    await replies(warm, 200);
    const stuck = await registry.peer(port);
    stuck.write('300 loop\n');
    await stuck.until(() => runs(300) === 1, 'the loop to start');
    const pad = 'x'.repeat(16 * 1024);
    const big: Peer[] = [];
    for (let c = 0; c < 2; c++) {
      const peer = await registry.peer(port);
      peer.write(Array.from({ length: 100 }, (_, i) => `${1000 + c * 100 + i} fast ${pad}\n`).join('')); // 1.6 MB: more than the 1 MiB ring
      big.push(peer);
    }
    const late = await registry.peer(port);
    late.write(`2000 fast ${pad}\n`);
    expect(await replies(stuck, 1)).toEqual(['ERROR ERR_REQUEST_TIMEOUT']);
    expect(await replies(late, 1)).toEqual(['2000 ok']);
    for (const [c, peer] of big.entries()) {
      expect(await replies(peer, 100)).toEqual(Array.from({ length: 100 }, (_, i) => `${1000 + c * 100 + i} ok`));
    }
    for (let id = 1000; id < 1200; id++) expect([id, runs(id)]).toEqual([id, 1]);
  });
});

describe('idempotent handlers (opt-in retry)', () => {
  test('a request running when its worker died runs once more elsewhere; the others once', async () => {
    const { server, port, runs } = await start({ onHandlerError: 'reply' }, 'ledger-idempotent');
    const peer = await registry.peer(port);
    peer.write('1 fast\n2 exit-once\n3 fast\n');
    expect(await replies(peer, 3)).toEqual(['1 ok', '2 ok', '3 ok']);
    expect([runs(1), runs(2), runs(3)]).toEqual([1, 2, 1]);
    expect(server.failures).toEqual([]);
  });

  test('at most one more run: a request that kills every worker it runs on fails after its second', async () => {
    const { server, port, runs } = await start({ onHandlerError: 'reply' }, 'ledger-idempotent');
    const peer = await registry.peer(port);
    peer.write('1 exit\n2 fast\n');
    expect(await replies(peer, 2)).toEqual(['ERROR ERR_WORKER_DIED', '2 ok']);
    expect([runs(1), runs(2)]).toEqual([2, 1]);
    expect(server.failures.map((f) => f.code)).toEqual(['ERR_WORKER_DIED']);
  });

  test('not by default: the same request on a plain handler runs once and fails', async () => {
    const { port, runs } = await start({ onHandlerError: 'reply' });
    const peer = await registry.peer(port);
    peer.write('1 exit-once\n2 fast\n');
    expect(await replies(peer, 2)).toEqual(['ERROR ERR_WORKER_DIED', '2 ok']);
    expect([runs(1), runs(2)]).toEqual([1, 1]);
  });
});

describe('one connection, in order', () => {
  test('pipelined slow and fast requests, sync and async, run one after another in request order', async () => {
    const { port, log } = await start();
    const peer = await registry.peer(port);
    const other = await registry.peer(port);
    const ops = ['spin 30', 'fast', 'sleep 30', 'fast', 'spin 10', 'sleep 5', 'fast', 'fast', 'sleep 20', 'fast'];
    other.write(Array.from({ length: 50 }, (_, i) => `${501 + i} fast\n`).join(''));
    peer.write(ops.map((op, i) => `${i + 1} ${op}\n`).join(''));
    expect(await replies(peer, ops.length)).toEqual(ops.map((_, i) => `${i + 1} ok`));
    await replies(other, 50);
    const mine = log().filter((id) => Math.abs(id) <= ops.length);
    expect(mine).toEqual(ops.flatMap((_, i) => [i + 1, -(i + 1)]));
  });

  test("pipelining 'parallel': replies still leave in request order", async () => {
    const { port } = await start({ pipelining: 'parallel' });
    const peer = await registry.peer(port);
    const ops = ['sleep 40', 'fast', 'spin 20', 'sleep 5', 'fast', 'fast'];
    peer.write(ops.map((op, i) => `${i + 1} ${op}\n`).join(''));
    expect(await replies(peer, ops.length)).toEqual(ops.map((_, i) => `${i + 1} ok`));
  });

  test('a connection queuing many heavy requests does not hold back another connection', async () => {
    const { port } = await start({ pipelining: 'parallel' });
    const heavy = await registry.peer(port);
    heavy.write(Array.from({ length: 60 }, (_, i) => `${i + 1} spin 20\n`).join(''));
    await heavy.until(() => lines(heavy).length >= 1, 'the first heavy reply');
    const light = await registry.peer(port);
    light.write('999 fast\n');
    await light.until(() => lines(light).length >= 1, 'the light reply');
    // Round-robin and a small per-worker credit: the light request waited behind a few heavy
    // ones, not behind the whole queue.
    expect(lines(heavy).length).toBeLessThan(30);
    expect(lines(light)).toEqual(['999 ok']);
  });
});

describe('frames bigger than a ring record', () => {
  test('a 300 KiB request and a 2 MiB reply cross intact', async () => {
    const { port } = await start({ framing: 'line', maxFrameBytes: 4 * 1024 * 1024 });
    const peer = await registry.peer(port);
    const padding = 'p'.repeat(300 * 1024);
    peer.write(`1 fast ${padding}\n2 big ${2 * 1024 * 1024}\n3 fast\n`);
    const total = '1 ok\n'.length + 2 * 1024 * 1024 + 1 + '3 ok\n'.length;
    await peer.until(() => peer.bytes >= total, 'every reply byte');
    expect(peer.bytes).toBe(total);
    const text = peer.received.toString();
    expect(text.startsWith('1 ok\nxxx')).toBe(true);
    expect(text.endsWith('xxx\n3 ok\n')).toBe(true);
  });
});

describe('a pool shared by a request server and a session server', () => {
  test('sessions holding every worker do not starve requests', async () => {
    const pool = registry.server(new WorkerPool({ workers: 2 }));
    const ledger = new SharedArrayBuffer(4 * 65536);
    const requests = registry.server(
      new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('ledger'), { pool, logger: silentLogger, handlerData: { ledger } }),
    );
    const sessions = registry.server(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('chat-session'), { pool, logger: silentLogger }));
    const { port: sessionPort } = await sessions.listen();
    const { port } = await requests.listen();
    const talkers: Peer[] = [];
    for (let i = 0; i < 6; i++) {
      const talker = await registry.peer(sessionPort);
      talker.write(`hi ${i}\n`);
      talkers.push(talker);
    }
    for (const [i, talker] of talkers.entries()) await talker.until(() => talker.received.toString().includes(`1:hi ${i}`), `session ${i} answer`);
    const peer = await registry.peer(port);
    peer.write('1 fast\n2 sleep 5\n3 fast\n');
    expect(await replies(peer, 3)).toEqual(['1 ok', '2 ok', '3 ok']);
  });
});
