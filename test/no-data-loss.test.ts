// Issue #10, "loses no data", on real sockets with exact byte counts: a reply followed by a close
// reaches a client that keeps reading (lingering close, not a reset) — after bad input, after a
// handler failure with onHandlerError 'close', and in a drain; a session that only writes runs at
// its client's pace (write window) and stops when the client is gone; a connection paused on a
// socket backlog that never emits 'drain' resumes; the per-connection in-flight byte cap.

import { connect, type Socket } from 'node:net';
import { BroadcastChannel } from 'node:worker_threads';
import { type ClientAddress, type ServerOptions, TCPServer, ThreadingTCPServer, silentLogger } from '../src/index.js';
import { fixture } from './helpers/client.js';
import { captureLogger, Registry, waitUntil } from './helpers/net.js';

const registry = new Registry();
afterEach(() => registry.cleanup());

const MiB = 1024 * 1024;
const KINDS = [
  ['ThreadingTCPServer', ThreadingTCPServer],
  ['TCPServer', TCPServer],
] as const;

async function start(Server: (typeof KINDS)[number][1], handler: string, options: ServerOptions = {}) {
  const server = registry.server(new Server({ host: '127.0.0.1', port: 0 }, fixture(handler), { workers: 2, logger: silentLogger, ...options }));
  const { port } = await server.listen();
  return { server, port };
}

/** A raw client that counts what it receives and how the connection ended: FIN ('end') or a reset ('error'). */
class Reader {
  readonly socket: Socket;
  readonly chunks: Buffer[] = [];
  bytes = 0;
  ended = false;
  closed = false;
  error: (Error & { code?: string }) | undefined;

  constructor(socket: Socket, keep = true) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      if (keep) this.chunks.push(chunk);
      this.bytes += chunk.length;
    });
    socket.on('end', () => (this.ended = true));
    socket.on('error', (error) => (this.error = error));
    socket.on('close', () => (this.closed = true));
  }

  static open(port: number, keep = true): Promise<Reader> {
    return new Promise((resolve, reject) => {
      const socket = registry.socket(connect({ port, host: '127.0.0.1' }));
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new Reader(socket, keep));
      });
    });
  }

  get received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  async untilClosed(what: string): Promise<void> {
    await waitUntil(() => this.closed, `${what} (received ${this.bytes} bytes, error ${this.error?.code ?? 'none'})`);
  }
}

const REPLY = 4 * MiB;
const bigReply = Buffer.concat([Buffer.alloc(REPLY, 'x'), Buffer.from('\n')]);

describe.each(KINDS)('%s: lingering close', (_name, Server) => {
  test('a 4 MiB reply, then a line past maxFrameBytes: every reply byte and the exact ERROR line arrive, then FIN (no reset)', async () => {
    const { port } = await start(Server, 'fault-modes');
    const client = await Reader.open(port);
    client.socket.write(`big ${REPLY}\n`);
    client.socket.write(Buffer.alloc(3 * MiB, 'y')); // no newline: ERR_FRAME_TOO_LONG past 1 MiB; the rest stays unread
    await client.untilClosed('the server to close after the error line');
    expect(client.error).toBeUndefined();
    expect(client.ended).toBe(true);
    expect(client.bytes).toBe(REPLY + 1 + 'ERROR ERR_FRAME_TOO_LONG\n'.length);
    expect(client.received.equals(Buffer.concat([bigReply, Buffer.from('ERROR ERR_FRAME_TOO_LONG\n')]))).toBe(true);
  });

  test("a handler failure with onHandlerError 'close' behind a 4 MiB reply, with more requests unread: the reply arrives whole, then FIN", async () => {
    const { server, port } = await start(Server, 'fault-modes', { onHandlerError: 'close' });
    const client = await Reader.open(port);
    client.socket.write(`big ${REPLY}\nthrow\n`);
    client.socket.write('after\n'.repeat(300_000)); // ~1.7 MiB of pipelined requests the server never reads
    await client.untilClosed('the server to close after the failure');
    expect(client.error).toBeUndefined();
    expect(client.ended).toBe(true);
    expect(client.bytes).toBe(REPLY + 1);
    expect(client.received.equals(bigReply)).toBe(true);
    expect(server.stats().requestsFailed).toBe(1);
  });

  test('a drain (shutdown) with input unread: the replies to what was received arrive whole, then FIN', async () => {
    const { server, port } = await start(Server, 'fault-modes');
    const client = await Reader.open(port);
    client.socket.write(`sleep 300\nbig ${REPLY}\n`);
    await waitUntil(() => server.stats().requestsInFlight === 2, 'both requests in flight');
    const stopped = server.shutdown();
    client.socket.write('late\n'.repeat(300_000)); // sent during the drain: never read, never answered
    await client.untilClosed('the drain to close the connection');
    await stopped;
    expect(client.error).toBeUndefined();
    expect(client.ended).toBe(true);
    expect(client.bytes).toBe('slept 300\n'.length + REPLY + 1);
    expect(client.received.equals(Buffer.concat([Buffer.from('slept 300\n'), bigReply]))).toBe(true);
  });

  test('input that arrives after the last reply and FIN were handed to the kernel is drained, so it cannot reset away the unread reply', async () => {
    const sockets: Socket[] = [];
    class Watching extends (Server as typeof ThreadingTCPServer) {
      override verifyRequest(request: Socket, _client: ClientAddress): boolean {
        sockets.push(request);
        return true;
      }
    }
    const server = registry.server(new Watching({ host: '127.0.0.1', port: 0 }, fixture('fault-modes'), { workers: 2, logger: silentLogger }));
    const { port } = await server.listen();
    const client = await Reader.open(port);
    client.socket.pause(); // the reply waits in the kernel's buffers, unread
    const reply = 512 * 1024;
    client.socket.write(`big ${reply}
`);
    client.socket.write(Buffer.alloc(2 * MiB, 'y'));
    await waitUntil(() => sockets[0]?.writableFinished === true, 'the server to hand its last reply and FIN to the kernel');
    // Without lingering the server would now close a socket whose input is unread: a reset that
    // discards the reply bytes still in the kernel.
    client.socket.write('more\n'.repeat(100_000));
    client.socket.resume();
    await client.untilClosed('the server to close');
    expect(client.error).toBeUndefined();
    expect(client.ended).toBe(true);
    expect(client.bytes).toBe(reply + 1 + 'ERROR ERR_FRAME_TOO_LONG\n'.length);
  });

  test('a client that never sends its FIN is released after lingeringTimeout', async () => {
    const { server, port } = await start(Server, 'fault-modes', { lingeringTimeout: 200 });
    const client = await Reader.open(port);
    client.socket.on('end', () => {}); // allowHalfOpen-like: this client does not answer our FIN
    (client.socket as unknown as { allowHalfOpen: boolean }).allowHalfOpen = true;
    client.socket.write(Buffer.alloc(2 * MiB, 'y'));
    await waitUntil(() => client.ended, 'the server to half-close after ERR_FRAME_TOO_LONG');
    expect(client.received.toString()).toBe('ERROR ERR_FRAME_TOO_LONG\n');
    await waitUntil(() => server.stats().connections === 0, 'the lingering connection to be released');
  });
});

class Control {
  static #next = 0;
  readonly name = `sockserv-no-data-loss-${process.pid}-${Control.#next++}`;
  readonly events: Array<{ event: string; [key: string]: unknown }> = [];
  readonly #channel = new BroadcastChannel(this.name);

  constructor() {
    this.#channel.onmessage = (event) => this.events.push((event as MessageEvent).data);
  }

  async next(event: string): Promise<{ event: string; [key: string]: unknown }> {
    await waitUntil(() => this.events.some((e) => e.event === event), `the handler to report '${event}'`);
    return this.events.find((e) => e.event === event)!;
  }

  close(): void {
    this.#channel.close();
  }
}

describe.each(KINDS)('%s: session write window', (_name, Server) => {
  test('a session writing 64 MiB in 64 KiB chunks without sleeping to a steadily reading client delivers every byte, no overflow', async () => {
    const control = new Control();
    const total = 64 * MiB;
    const { logger, entries } = captureLogger();
    try {
      const { server, port } = await start(Server, 'fast-writer', { logger, handlerData: { channel: control.name, totalBytes: total } });
      const client = await Reader.open(port, false);
      let wrong = -1;
      client.socket.on('data', (chunk: Buffer) => {
        const base = client.bytes - chunk.length; // 'data' listeners run in order: bytes already counts this chunk
        if (wrong >= 0) return;
        for (let i = 0; i < chunk.length; i++) {
          if (chunk[i] !== (base + i) % 251) {
            wrong = base + i;
            break;
          }
        }
      });
      await client.untilClosed('the session to write everything and close');
      expect(client.error).toBeUndefined();
      expect(client.bytes).toBe(total);
      expect(wrong).toBe(-1);
      expect((await control.next('done')).written).toBe(total);
      expect(entries.filter((e) => e.context.code === 'ERR_WRITE_BUFFER_OVERFLOW')).toEqual([]);
      expect(server.stats().bytesOut).toBe(total);
    } finally {
      control.close();
    }
  });

  test('once the client is gone, write() throws ERR_CONNECTION_CLOSED and a write-only loop ends', async () => {
    const control = new Control();
    try {
      const { server, port } = await start(Server, 'fast-writer', { handlerData: { channel: control.name, totalBytes: null } });
      const client = await Reader.open(port, false);
      await waitUntil(() => client.bytes >= 4 * MiB, 'the first 4 MiB');
      client.socket.destroy();
      const stopped = await control.next('error');
      expect(stopped.code).toBe('ERR_CONNECTION_CLOSED');
      await waitUntil(() => server.stats().connections === 0, 'the session to be released');
    } finally {
      control.close();
    }
  });
});

// Inline TCPServer: there each reply is flushed by itself (8 KiB, under the socket's 16 KiB
// buffer), which is the state this needs; a pooled server flushes a batch of replies at a time.
describe('TCPServer: output backpressure', () => {
  const Server = TCPServer;
  test("writeHighWaterMark under the socket's own buffer: reading paused on the socket backlog resumes without a 'drain'", async () => {
    let serverSocket: Socket | undefined;
    class Watching extends Server {
      override verifyRequest(request: Socket, _client: ClientAddress): boolean {
        serverSocket = request;
        return true;
      }
    }
    const server = registry.server(new Watching({ host: '127.0.0.1', port: 0 }, fixture('fault-modes'), { workers: 2, logger: silentLogger, writeHighWaterMark: 1024 }));
    const { port } = await server.listen();
    const client = await Reader.open(port, false);
    client.socket.pause();
    const requests = 2000;
    const replyBytes = 8001; // "big 8000" replies 8000 bytes and "\n"
    client.socket.write(`big 8000\n`.repeat(requests));
    // The kernel buffers fill; then the server socket holds a backlog under its own high-water
    // mark (write() returned true, so Node will emit no 'drain') but over writeHighWaterMark.
    await waitUntil(
      () => serverSocket !== undefined && serverSocket.writableLength >= 1024 && !serverSocket.writableNeedDrain,
      'a backlog under the socket buffer size',
    );
    client.socket.resume();
    await waitUntil(() => client.bytes === requests * replyBytes, `all ${requests} replies (got ${client.bytes} bytes)`);
    expect(server.stats().requestsOk).toBe(requests);
  });
});

describe.each(KINDS)('%s: in-flight bytes', (_name, Server) => {
  test('maxInFlightBytesPerConnection: a connection stops dispatching at its in-flight byte cap and every reply arrives', async () => {
    const { server, port } = await start(Server, 'sleep', { maxInFlightBytesPerConnection: 64 * 1024 });
    const client = await Reader.open(port);
    const text = 'z'.repeat(20 * 1024);
    const count = 12;
    client.socket.write(`100 ${text}\n`.repeat(count));
    let peak = 0;
    await waitUntil(() => {
      peak = Math.max(peak, server.stats().requestsInFlight);
      return client.bytes === count * (text.length + 1);
    }, 'every reply');
    // 3 requests (60 KiB) are under the cap, so a 4th is dispatched; then it waits.
    expect(peak).toBeLessThanOrEqual(4);
    expect(peak).toBeGreaterThan(0);
    expect(client.received.toString()).toBe(`${text}\n`.repeat(count));
  });
});
