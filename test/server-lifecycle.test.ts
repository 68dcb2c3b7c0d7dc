// The server lifecycle: graceful shutdown (no reply lost, new connections refused, prompt
// completion), shutdownTimeout, serveForever/close/await using, the real address for port 0,
// half-closing clients, and backpressure against a client that stops reading.

import type { Socket } from 'node:net';
import {
  type BaseServer,
  type ClientAddress,
  type ServerOptions,
  silentLogger,
  TCPServer,
  ThreadingTCPServer,
} from '../src/index.js';
import { exchange, fixture } from './helpers/client.js';
import { captureLogger, Peer, Registry, sleep, waitUntil } from './helpers/net.js';

const registry = new Registry();
afterEach(() => registry.cleanup());

const KINDS = [
  ['ThreadingTCPServer', ThreadingTCPServer],
  ['TCPServer', TCPServer],
] as const;

type Kind = (typeof KINDS)[number][1];

async function start(Server: Kind, handler: string, options: ServerOptions = {}): Promise<{ server: BaseServer; port: number }> {
  const server = registry.server(new Server({ host: '127.0.0.1', port: 0 }, fixture(handler), { workers: 2, logger: silentLogger, ...options }));
  const { port } = await server.listen();
  return { server, port };
}

/** A client that writes one "<ms> <id>-<n>" request every `everyMs` until told to hold or it sees EOF. */
class Writer {
  readonly sent: string[] = [];
  holding = false;
  readonly #timer: NodeJS.Timeout;
  constructor(
    readonly peer: Peer,
    readonly id: string,
    ms: number,
    everyMs: number,
  ) {
    this.#timer = setInterval(() => {
      if (this.holding || peer.ended || peer.closed || this.sent.length >= 400) return;
      const request = `${ms} ${id}-${this.sent.length}`;
      this.sent.push(request);
      peer.write(`${request}\n`);
    }, everyMs);
  }
  stop(): void {
    clearInterval(this.#timer);
  }
}

describe.each(KINDS)('%s shutdown', (_name, Server) => {
  test('10 clients pipelining into a ~100 ms handler: shutdown() mid-stream loses no reply, then EOF; new connections are refused', async () => {
    // shutdownTimeout is well above the ~1 s this drain needs, so no cut happens before the replies.
    const { server, port } = await start(Server, 'sleep', { shutdownTimeout: 2_500 });
    const peers = await Promise.all(Array.from({ length: 10 }, () => registry.peer(port)));
    const writers = peers.map((peer, c) => new Writer(peer, `c${c}`, 100, 15));
    try {
      // Let the stream run, then hold the writers until the server has read all they sent, so
      // "sent before shutdown" and "received before shutdown" are the same requests.
      await sleep(60);
      for (const w of writers) w.holding = true;
      const total = () => writers.reduce((n, w) => n + w.sent.length, 0);
      await waitUntil(() => server.stats().requestsReceived === total(), 'the server has read every request sent so far');
      const before = writers.map((w) => [...w.sent]);
      expect(server.stats().requestsInFlight).toBeGreaterThan(0);

      const shutdown = server.shutdown();
      for (const w of writers) w.holding = false; // they go on writing after shutdown started

      await expect(Peer.connect(port, registry)).rejects.toMatchObject({ code: 'ECONNREFUSED' });

      const received = await Promise.all(peers.map((peer) => peer.untilClosed()));
      received.forEach((bytes, c) => {
        expect(bytes.toString()).toBe(before[c]!.map((r) => `${r.split(' ')[1]}\n`).join(''));
      });
      for (const peer of peers) expect(peer.ended).toBe(true);
      await shutdown;
      expect(server.stats().connections).toBe(0);
      await expect(Peer.connect(port, registry)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    } finally {
      for (const w of writers) w.stop();
    }
  });

  test('shutdown() finishes once the in-flight replies are flushed, without waiting for shutdownTimeout, though clients keep writing', async () => {
    const { logger, entries } = captureLogger();
    const { server, port } = await start(Server, 'sleep', { shutdownTimeout: 2_000, logger });
    const peers = await Promise.all(Array.from({ length: 3 }, () => registry.peer(port)));
    const writers = peers.map((peer, c) => new Writer(peer, `w${c}`, 50, 10));
    try {
      await waitUntil(() => server.stats().requestsReceived >= 6, 'a few requests are in');
      await server.shutdown();
      // Every connection ended and closed because its work was done — none was cut.
      expect(entries.filter((e) => e.context.code === 'ERR_SHUTDOWN_TIMEOUT')).toEqual([]);
      expect(server.stats().connections).toBe(0);
      for (const peer of peers) {
        await peer.untilClosed();
        expect(peer.ended).toBe(true);
      }
    } finally {
      for (const w of writers) w.stop();
    }
  });

  test('an idle connection is ended at once by shutdown(); the client sees EOF', async () => {
    const { server, port } = await start(Server, 'upper');
    const peer = await registry.peer(port);
    peer.write('hi\n');
    await peer.untilLines(1);
    await server.shutdown();
    const received = await peer.untilClosed();
    expect(received.toString()).toBe('HI\n');
    expect(peer.ended).toBe(true);
  });

  test(
    'shutdownTimeout cuts a handler that never finishes; shutdown resolves and logs ERR_SHUTDOWN_TIMEOUT',
    async () => {
      const { logger, entries } = captureLogger();
      const { server, port } = await start(Server, 'sleep', { shutdownTimeout: 300, logger });
      const peer = await registry.peer(port);
      peer.write('0 first\n');
      await peer.untilLines(1);
      peer.write('hang\n');
      await waitUntil(() => server.stats().requestsReceived === 2, 'the hanging request is in');
      // The test's own timeout (well under the 10 s default) shows the option is what ended the wait.
      await server.shutdown();
      const received = await peer.untilClosed();
      expect(received.toString()).toBe('first\n');
      const cut = entries.filter((e) => e.context.code === 'ERR_SHUTDOWN_TIMEOUT');
      expect(cut).toHaveLength(1);
      expect(cut[0]!.level).toBe('warn');
      expect(cut[0]!.context).toMatchObject({ connections: 1, requestsCut: 1 });
      expect(server.stats().connections).toBe(0);
      await server.close(); // releases a worker still running the never-ending handler
    },
    8_000,
  );
});

describe.each(KINDS)('%s lifecycle', (_name, Server) => {
  test('serveForever() resolves after shutdown(), not before', async () => {
    const server = registry.server(new Server({ host: '127.0.0.1', port: 0 }, fixture('upper'), { workers: 2, logger: silentLogger }));
    let served = false;
    const forever = server.serveForever().then(() => {
      served = true;
    });
    const { port } = await server.listen(); // the same start serveForever() began
    const reply = await exchange(port, ['x\n']);
    expect(reply.toString()).toBe('X\n');
    expect(served).toBe(false);
    await server.shutdown();
    await forever;
    expect(served).toBe(true);
    // Once stopped, serveForever() returns at once.
    await server.serveForever();
  });

  test('close() of a server that never listened resolves; listen() then rejects ERR_SERVER_CLOSED', async () => {
    const server = new Server({ host: '127.0.0.1', port: 0 }, fixture('upper'), { workers: 2, logger: silentLogger });
    await server.close();
    await server.close();
    await server.shutdown();
    await expect(server.listen()).rejects.toMatchObject({ code: 'ERR_SERVER_CLOSED' });
    expect(() => server.address).toThrow();
  });

  test('close() while listen() is still starting: both settle, nothing is left listening', async () => {
    const server = new Server({ host: '127.0.0.1', port: 0 }, fixture('upper'), { workers: 2, logger: silentLogger });
    const listening = server.listen();
    const closing = server.close();
    const outcome = await listening.then(
      (address) => address.port,
      () => 0,
    );
    await closing;
    if (outcome > 0) await expect(Peer.connect(outcome, registry)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await expect(server.listen()).rejects.toMatchObject({ code: 'ERR_SERVER_CLOSED' });
  });

  test('await using closes the server at the end of the block', async () => {
    let port = 0;
    {
      await using server = new Server({ host: '127.0.0.1', port: 0 }, fixture('upper'), { workers: 2, logger: silentLogger });
      ({ port } = await server.listen());
      expect((await exchange(port, ['inside\n'])).toString()).toBe('INSIDE\n');
    }
    await expect(Peer.connect(port, registry)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  test('address is the real port when 0 was asked; the tuple form works too', async () => {
    const server = registry.server(new Server(['127.0.0.1', 0], fixture('upper'), { workers: 2, logger: silentLogger }));
    expect(() => server.address).toThrow(expect.objectContaining({ code: 'ERR_BAD_OPTION' }));
    const bound = await server.listen();
    expect(bound.port).toBeGreaterThan(0);
    expect(server.address).toEqual(bound);
    expect(server.address).toMatchObject({ host: '127.0.0.1', family: 'IPv4', scheme: 'tcp' });
    expect((await exchange(server.address.port, ['p\n'])).toString()).toBe('P\n');
  });

  test('a half-closing client (end() right after writing) gets every reply, including an unterminated last line, then EOF', async () => {
    const { port } = await start(Server, 'jitter');
    const requests = Array.from({ length: 100 }, (_, i) => `half-${i}`);
    const reply = await exchange(port, [requests.map((r) => `${r}\n`).join('') + 'tail']);
    expect(reply.toString()).toBe([...requests, 'tail'].map((r) => `${r}\n`).join(''));
  });

  test('a client that half-closes with nothing sent gets EOF and the server forgets it', async () => {
    const { server, port } = await start(Server, 'upper');
    expect((await exchange(port, [])).length).toBe(0);
    await waitUntil(() => server.stats().connections === 0, 'the connection is gone');
  });
});

describe('backpressure', () => {
  test('a client that writes 5000 requests and does not read for 1 s: in-flight and unsent output stay bounded; then all 5000 replies arrive in order', async () => {
    const replyBytes = 4096;
    const maxInFlightPerConnection = 32;
    const writeHighWaterMark = 64 * 1024;
    const serverSockets: Socket[] = [];
    class Watched extends ThreadingTCPServer {
      override verifyRequest(socket: Socket, _address: ClientAddress): boolean {
        serverSockets.push(socket);
        return true;
      }
    }
    const server = registry.server(
      new Watched({ host: '127.0.0.1', port: 0 }, fixture('padded'), {
        workers: 2,
        logger: silentLogger,
        maxInFlightPerConnection,
        writeHighWaterMark,
        handlerData: { replyBytes },
      }),
    );
    const { port } = await server.listen();
    const peer = await registry.peer(port);
    peer.socket.pause();
    const requests = Array.from({ length: 5000 }, (_, i) => `req-${String(i).padStart(5, '0')}`);
    peer.write(requests.map((r) => `${r}\n`).join(''));

    let maxInFlight = 0;
    let maxUnsent = 0;
    for (let i = 0; i < 100; i++) {
      await sleep(10);
      maxInFlight = Math.max(maxInFlight, server.stats().requestsInFlight);
      for (const socket of serverSockets) maxUnsent = Math.max(maxUnsent, socket.writableLength);
    }
    const duringPause = server.stats();
    expect(serverSockets).toHaveLength(1);
    expect(maxInFlight).toBeGreaterThan(0);
    expect(maxInFlight).toBeLessThanOrEqual(maxInFlightPerConnection);
    // The server stopped taking requests from a client that does not read…
    expect(duringPause.requestsReceived).toBeLessThan(requests.length);
    expect(duringPause.requestsOk).toBeLessThan(requests.length);
    // …and holds at most a high-water mark plus one window of in-flight replies, not 20 MiB.
    expect(maxUnsent).toBeLessThanOrEqual(writeHighWaterMark + (maxInFlightPerConnection + 1) * replyBytes);
    expect(duringPause.connections).toBe(1);

    peer.socket.resume();
    const received = await peer.untilBytes(requests.length * (replyBytes + 1));
    expect(received.length).toBe(requests.length * (replyBytes + 1));
    for (let i = 0; i < requests.length; i++) {
      const line = received.subarray(i * (replyBytes + 1), (i + 1) * (replyBytes + 1)).toString();
      if (line !== `${requests[i]}${'.'.repeat(replyBytes - requests[i]!.length)}\n`) {
        throw new Error(`reply ${i} is wrong: ${JSON.stringify(line.slice(0, 40))}…`);
      }
    }
    expect(server.stats().requestsOk).toBe(requests.length);
  });

  test('inline: with a writeHighWaterMark under the socket buffer, pipelined replies all arrive', async () => {
    // A synchronous handler: every request of the read is dispatched in one pass, so reading
    // pauses on the replies it queued itself, and only the flush can resume it (no socket 'drain').
    const server = registry.server(new TCPServer({ port: 0 }, fixture('upper'), { writeHighWaterMark: 1024, logger: silentLogger }));
    const { port } = await server.listen();
    const peer = await registry.peer(port);
    const line = 'x'.repeat(600);
    peer.write(`${line}\n`.repeat(10));
    expect(await peer.untilLines(10)).toEqual(Array.from({ length: 10 }, () => line.toUpperCase()));
  });
});
