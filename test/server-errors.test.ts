// What goes wrong stays with the connection it came from: failing handlers (thrown, rejected,
// a worker that exits, an inline async handler that never settles), oversized frames, refused
// connections. Handler modules that cannot load fail listen() with a stable code instead of hanging.

import type { Socket } from 'node:net';
import {
  type ClientAddress,
  type ServerOptions,
  silentLogger,
  type SockservError,
  TCPServer,
  ThreadingTCPServer,
} from '../src/index.js';
import { fixture } from './helpers/client.js';
import { captureLogger, lengthFrame, type Peer, Registry, waitUntil } from './helpers/net.js';

const registry = new Registry();
afterEach(() => registry.cleanup());

interface Failure {
  socket: Socket;
  clientAddress: ClientAddress;
  error: SockservError;
}

/** Each server kind, with handleError overridden to record its calls. */
class RecordingTCPServer extends TCPServer {
  readonly failures: Failure[] = [];
  override handleError(socket: Socket, clientAddress: ClientAddress, error: SockservError): void {
    this.failures.push({ socket, clientAddress, error });
  }
}

class RecordingThreadingTCPServer extends ThreadingTCPServer {
  readonly failures: Failure[] = [];
  override handleError(socket: Socket, clientAddress: ClientAddress, error: SockservError): void {
    this.failures.push({ socket, clientAddress, error });
  }
}

const KINDS = [
  ['ThreadingTCPServer', RecordingThreadingTCPServer],
  ['TCPServer', RecordingTCPServer],
] as const;

type Recording = RecordingTCPServer | RecordingThreadingTCPServer;

async function start(
  Server: (typeof KINDS)[number][1],
  handler: string,
  options: ServerOptions = {},
): Promise<{ server: Recording; port: number }> {
  const server = registry.server(new Server({ host: '127.0.0.1', port: 0 }, fixture(handler), { workers: 2, logger: silentLogger, ...options }));
  const { port } = await server.listen();
  return { server, port };
}

/** Opens `count` connections that each send `requests` lines; resolves when all replies are in. */
async function bystanders(port: number, count: number, requests: number): Promise<{ peers: Peer[]; done: Promise<number> }> {
  const peers = await Promise.all(Array.from({ length: count }, () => registry.peer(port)));
  peers.forEach((peer, c) => peer.write(Array.from({ length: requests }, (_, i) => `by${c}-${i}\n`).join('')));
  const done = Promise.all(
    peers.map(async (peer, c) => {
      const lines = await peer.untilLines(requests);
      expect(lines).toEqual(Array.from({ length: requests }, (_, i) => `ok by${c}-${i}`));
      return lines.length;
    }),
  ).then((counts) => counts.reduce((a, b) => a + b, 0));
  done.catch(() => {}); // awaited by the test; this only keeps an early failure from going unhandled
  return { peers, done };
}

describe.each(KINDS)('%s', (_name, Server) => {
  test.each([
    ['throws (sync)', 'throw-now', 'thrown by throw-now'],
    ['rejects (async)', 'reject-later', 'rejected reject-later'],
  ])(
    "a handler that %s: handleError is called; onHandlerError 'close' sends the replies before it, then EOF; 20 other connections get every reply",
    async (_how, input, message) => {
      const { server, port } = await start(Server, 'faulty');
      const failing = await registry.peer(port);
      const others = await bystanders(port, 20, 30);
      failing.write(`a\nb\n${input}\nc\nd\n`);
      const received = await failing.untilClosed();
      expect(received.toString()).toBe('ok a\nok b\n');
      expect(failing.ended).toBe(true);

      expect(await others.done).toBe(20 * 30);

      expect(server.failures).toHaveLength(1);
      const [failure] = server.failures;
      expect(failure!.error.code).toBe('ERR_HANDLER_FAILED');
      expect(failure!.error.message).toContain(message);
      expect(failure!.clientAddress).toEqual(['127.0.0.1', failing.localPort]);
      expect(failure!.socket.remotePort).toBe(failing.localPort);
      expect(server.stats().requestsFailed).toBe(1);
      // The bystanders are still connected and still served.
      others.peers[0]!.write('again\n');
      await others.peers[0]!.untilLines(31);
      expect(others.peers[0]!.lines[30]).toBe('ok again');
    },
  );

  test("a client still pipelining when its handler fails: after EOF and the client's close, the server releases the connection", async () => {
    // shutdownTimeout only bounds cleanup if the connection leaks.
    const { server, port } = await start(Server, 'faulty', { shutdownTimeout: 500 });
    const peer = await registry.peer(port);
    let n = 0;
    const timer = setInterval(() => {
      if (peer.ended || peer.closed || n >= 500) return;
      peer.write(n === 5 ? 'reject-now\n' : `r${n}\n`);
      n++;
    }, 2);
    try {
      const received = await peer.untilClosed();
      expect(received.toString()).toBe('ok r0\nok r1\nok r2\nok r3\nok r4\n');
      await waitUntil(() => server.stats().connections === 0, 'the server has released the failed connection', 1_500);
    } finally {
      clearInterval(timer);
    }
  });

  test("onHandlerError 'reply': the client gets ERROR ERR_HANDLER_FAILED for each failure and the connection goes on", async () => {
    const { server, port } = await start(Server, 'faulty', { onHandlerError: 'reply' });
    const peer = await registry.peer(port);
    peer.write('a\nthrow-1\nb\nreject-2\nc\n');
    await peer.untilLines(5);
    expect(peer.text).toBe('ok a\nERROR ERR_HANDLER_FAILED\nok b\nERROR ERR_HANDLER_FAILED\nok c\n');
    peer.write('d\n');
    await peer.untilLines(6);
    expect(peer.lines[5]).toBe('ok d');
    expect(peer.ended).toBe(false);
    expect(server.failures.map((f) => f.error.code)).toEqual(['ERR_HANDLER_FAILED', 'ERR_HANDLER_FAILED']);
    expect(server.failures.map((f) => f.error.message)).toEqual([
      expect.stringContaining('thrown by throw-1'),
      expect.stringContaining('rejected reject-2'),
    ]);
    const stats = server.stats();
    expect(stats.requestsFailed).toBe(2);
    expect(stats.requestsOk).toBe(4);
  });

  test('an overridden errorReply() is what the client gets', async () => {
    // Both kinds share one constructor signature; the cast only lets TypeScript extend the union.
    class Custom extends (Server as typeof RecordingTCPServer) {
      override errorReply(error: SockservError): string {
        return `-ERR ${error.code.toLowerCase()}`;
      }
    }
    const server = registry.server(
      new Custom({ host: '127.0.0.1', port: 0 }, fixture('faulty'), { workers: 2, logger: silentLogger, onHandlerError: 'reply' }),
    );
    const { port } = await server.listen();
    const peer = await registry.peer(port);
    peer.write('throw\nx\n');
    await peer.untilLines(2);
    expect(peer.text).toBe('-ERR err_handler_failed\nok x\n');
  });

  test('an oversized line (maxFrameBytes 16): earlier replies, then ERROR ERR_FRAME_TOO_LONG, then EOF; others unaffected', async () => {
    const { logger, entries } = captureLogger();
    const { server, port } = await start(Server, 'faulty', { maxFrameBytes: 16, logger });
    const bad = await registry.peer(port);
    const others = await bystanders(port, 5, 20);
    bad.write(`a\nb\n${'x'.repeat(40)}\nc\n`);
    const received = await bad.untilClosed();
    expect(received.toString()).toBe('ok a\nok b\nERROR ERR_FRAME_TOO_LONG\n');
    expect(await others.done).toBe(5 * 20);
    expect(server.stats().protocolErrors).toBe(1);
    expect(entries.some((e) => e.level === 'warn' && e.context.code === 'ERR_FRAME_TOO_LONG')).toBe(true);
    // The server goes on serving new connections.
    const after = await registry.peer(port);
    after.write('fresh\n');
    await after.untilLines(1);
    expect(after.text).toBe('ok fresh\n');
  });

  test('an unterminated line that outgrows maxFrameBytes across reads is refused the same way', async () => {
    const { port } = await start(Server, 'faulty', { maxFrameBytes: 16 });
    const bad = await registry.peer(port);
    bad.write('a\n');
    await bad.untilLines(1);
    for (let i = 0; i < 5 && !bad.closed; i++) bad.write('yyyyyyyy');
    const received = await bad.untilClosed();
    expect(received.toString()).toBe('ok a\nERROR ERR_FRAME_TOO_LONG\n');
  });

  test('an oversized length prefix: the error reply is length-framed too, then EOF', async () => {
    const { port } = await start(Server, 'faulty', { maxFrameBytes: 16, framing: 'length' });
    const bad = await registry.peer(port);
    bad.write(Buffer.concat([lengthFrame('a'), Buffer.from([0, 0, 0x10, 0])]));
    const received = await bad.untilClosed();
    expect(received.toString('hex')).toBe(Buffer.concat([lengthFrame('ok a'), lengthFrame('ERROR ERR_FRAME_TOO_LONG')]).toString('hex'));
  });

  test('verifyRequest returning false refuses the connection: close, no reply', async () => {
    class Picky extends (Server as typeof RecordingTCPServer) {
      seen = 0;
      override verifyRequest(): boolean {
        return this.seen++ % 2 === 1; // refuse the 1st, accept the 2nd
      }
    }
    const server = registry.server(new Picky({ host: '127.0.0.1', port: 0 }, fixture('faulty'), { workers: 2, logger: silentLogger }));
    const { port } = await server.listen();
    const refused = await registry.peer(port);
    refused.write('hello\n');
    const received = await refused.untilClosed();
    expect(received.length).toBe(0);
    await waitUntil(() => server.stats().connectionsRefused === 1, 'the refusal is counted');

    const accepted = await registry.peer(port);
    accepted.write('hello\n');
    await accepted.untilLines(1);
    expect(accepted.text).toBe('ok hello\n');
    expect(server.stats().connectionsTotal).toBe(1);
    expect(server.stats().requestsReceived).toBe(1);
  });

  test.each([
    ['a missing module', 'ERR_HANDLER_LOAD', 'does-not-exist', {}],
    ['a module that throws on import', 'ERR_HANDLER_LOAD', 'broken-import', {}],
    ['a default export that is not a class', 'ERR_HANDLER_INVALID', 'not-a-class', {}],
    ['an export that is an object with handle()', 'ERR_HANDLER_INVALID', 'not-a-class', { exportName: 'handler' }],
    ['an export name the module lacks', 'ERR_HANDLER_INVALID', 'upper', { exportName: 'Nope' }],
    ['a class that does not extend BaseRequestHandler', 'ERR_HANDLER_INVALID', 'not-extending', {}],
  ] as const)('%s: listen() rejects with %s and nothing listens', async (_what, code, handler, options) => {
    const server = registry.server(new Server({ host: '127.0.0.1', port: 0 }, fixture(handler), { workers: 2, logger: silentLogger, ...options }));
    await expect(server.listen()).rejects.toMatchObject({ code });
    expect(() => server.address).toThrow();
    // A second listen() gives the same answer instead of hanging; close() and serveForever() settle.
    await expect(server.listen()).rejects.toMatchObject({ code });
    await expect(server.serveForever()).rejects.toMatchObject({ code });
    await server.close();
  });

  test('a class that does not extend a handler class: the message names the class, its file, and what to extend', async () => {
    const server = registry.server(new Server({ host: '127.0.0.1', port: 0 }, fixture('not-extending'), { workers: 2, logger: silentLogger }));
    const error = (await server.listen().catch((e: unknown) => e)) as SockservError;
    expect(error.code).toBe('ERR_HANDLER_INVALID');
    expect(error.message).toContain('class Shout');
    expect(error.message).toContain(fixture('not-extending'));
    expect(error.message).toContain('extends BaseRequestHandler');
    expect(error.message).not.toContain('\n');
  });

  test('a port already in use: listen() rejects with EADDRINUSE and close() settles', async () => {
    const { port } = await start(Server, 'upper');
    const second = registry.server(new Server({ host: '127.0.0.1', port }, fixture('upper'), { workers: 2, logger: silentLogger }));
    await expect(second.listen()).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await second.close();
  });
});

describe('ThreadingTCPServer worker death', () => {
  test('a handler that calls process.exit(1): its connection gets the replies before it then EOF; others are served; the server keeps serving', async () => {
    const { logger, entries } = captureLogger();
    const server = registry.server(
      new RecordingThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('exit'), { workers: 2, logger }),
    );
    const { port } = await server.listen();
    const dying = await registry.peer(port);
    const others = await bystanders(port, 10, 30);
    dying.write('a\nb\nexit\nc\n');
    const received = await dying.untilClosed();
    expect(received.toString()).toBe('ok a\nok b\n');
    expect(await others.done).toBe(10 * 30);

    expect(server.failures.map((f) => f.error.code)).toEqual(['ERR_WORKER_DIED']);
    expect(server.failures[0]!.clientAddress).toEqual(['127.0.0.1', dying.localPort]);

    // New connections are served, by a full pool again.
    const fresh = await registry.peer(port);
    fresh.write(Array.from({ length: 50 }, (_, i) => `after-${i}\n`).join(''));
    await fresh.untilLines(50);
    expect(fresh.lines).toEqual(Array.from({ length: 50 }, (_, i) => `ok after-${i}`));
    expect(server.stats().workers).toBe(2);
    expect(entries.filter((e) => e.level === 'error' && e.context.code !== 'ERR_WORKER_DIED')).toEqual([]);
  });

  test("with onHandlerError 'reply' the killing request gets ERROR ERR_WORKER_DIED and the connection goes on", async () => {
    const server = registry.server(
      new RecordingThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('exit'), {
        workers: 2,
        logger: silentLogger,
        onHandlerError: 'reply',
      }),
    );
    const { port } = await server.listen();
    const peer = await registry.peer(port);
    peer.write('a\nexit\nb\n');
    await peer.untilLines(3);
    expect(peer.text).toBe('ok a\nERROR ERR_WORKER_DIED\nok b\n');
    peer.write('exit\nc\n');
    await peer.untilLines(5);
    expect(peer.lines.slice(3)).toEqual(['ERROR ERR_WORKER_DIED', 'ok c']);
    expect(server.failures.map((f) => f.error.code)).toEqual(['ERR_WORKER_DIED', 'ERR_WORKER_DIED']);
  });

  test('a handler class (not a module) is refused: ERR_BAD_OPTION from listen(), close() settles', async () => {
    class Inline {
      handle() {
        return 'x';
      }
    }
    const server = registry.server(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, Inline as never, { workers: 1, logger: silentLogger }));
    await expect(server.listen()).rejects.toMatchObject({ code: 'ERR_BAD_OPTION' });
    await server.close();
  });

  test('a pool option that is not a WorkerPool is refused: ERR_BAD_OPTION from listen(), close() settles', async () => {
    const pool = { workers: 1, close: async () => {} };
    const server = registry.server(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('echo'), { pool, logger: silentLogger }));
    await expect(server.listen()).rejects.toMatchObject({ code: 'ERR_BAD_OPTION', message: expect.stringContaining('WorkerPool') });
    await server.close();
  });
});

describe('TCPServer given a class', () => {
  test('a class that does not extend a handler class: listen() rejects with ERR_HANDLER_INVALID naming it', async () => {
    class Shout {
      handle() {
        return 'x';
      }
    }
    const server = registry.server(new TCPServer({ host: '127.0.0.1', port: 0 }, Shout as never, { logger: silentLogger }));
    await expect(server.listen()).rejects.toMatchObject({ code: 'ERR_HANDLER_INVALID', message: expect.stringMatching(/class Shout .*extends BaseRequestHandler/) });
    await server.close();
  });

  test('a class with setup(), handle() and finish() of its own (another copy of sockserv, say) serves', async () => {
    class Duck {
      constructor(readonly request: Buffer) {}
      setup() {}
      handle() {
        return `duck ${this.request.toString()}`;
      }
      finish() {}
    }
    const server = registry.server(new TCPServer({ host: '127.0.0.1', port: 0 }, Duck as never, { logger: silentLogger }));
    const { port } = await server.listen();
    const peer = await registry.peer(port);
    peer.write('a\n');
    expect(await peer.untilLines(1)).toEqual(['duck a']);
  });
});

describe('TCPServer (inline) request timeout', () => {
  test('an async handler that never settles fails with ERR_REQUEST_TIMEOUT and the connection goes on', async () => {
    const server = registry.server(
      new TCPServer({ port: 0 }, fixture('counted'), {
        requestTimeout: 200,
        onHandlerError: 'reply',
        handlerData: { counter: new SharedArrayBuffer(4) },
        logger: silentLogger,
      }),
    );
    const { port } = await server.listen();
    const peer = await registry.peer(port);
    peer.write('hang\nafter\n');
    expect(await peer.untilLines(2)).toEqual(['ERROR ERR_REQUEST_TIMEOUT', 'ok after']);
    expect(server.stats().requestsInFlight).toBe(0);
  });
});
