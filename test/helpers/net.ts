// Test helpers for server tests, part two (./client.ts says where the line is): a raw TCP peer
// for connections a test keeps open, that records everything it receives; waits that fail
// loudly (with what was received so far) instead of hanging; a registry that closes every
// server and socket after each test; a capturing logger; length-prefix codecs.

import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import type { Logger } from '../../src/index.js';

/** How long a wait may take before the test fails with a description (not a timing assertion). */
export const WAIT_MS = 15_000;

/** A client connection that records every byte it receives and how it ended. */
export class Peer {
  readonly socket: Socket;
  /** The client's own port, kept because socket.localPort is cleared once the socket closes. */
  readonly localPort: number;
  readonly chunks: Buffer[] = [];
  bytes = 0;
  /** The peer sent FIN. */
  ended = false;
  closed = false;
  error: Error | undefined;
  readonly #waiters = new Set<() => void>();

  constructor(socket: Socket) {
    this.socket = socket;
    this.localPort = socket.localPort ?? 0;
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.bytes += chunk.length;
      this.#wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.#wake();
    });
    socket.on('error', (error) => {
      this.error = error;
      this.#wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
  }

  static connect(port: number, registry?: Registry): Promise<Peer> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1' });
      registry?.socket(socket);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new Peer(socket));
      });
    });
  }

  get received(): Buffer {
    if (this.chunks.length > 1) {
      const all = Buffer.concat(this.chunks);
      this.chunks.length = 0;
      this.chunks.push(all);
    }
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  get text(): string {
    return this.received.toString();
  }

  /** Complete '\n'-terminated lines received so far. */
  get lines(): string[] {
    const text = this.text;
    const end = text.lastIndexOf('\n');
    return end === -1 ? [] : text.slice(0, end).split('\n');
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Resolves once `done()` holds; rejects if the connection closes first or after WAIT_MS. */
  until(done: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (done()) {
          finish();
          resolve();
        } else if (this.closed) {
          finish();
          reject(new Error(`connection closed before ${what}; received ${describe(this.received)}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out waiting for ${what}; received ${describe(this.received)}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
    });
  }

  untilLines(count: number, timeoutMs?: number): Promise<string[]> {
    return this.until(() => this.lines.length >= count, `${count} lines`, timeoutMs).then(() => this.lines);
  }

  untilBytes(count: number): Promise<Buffer> {
    return this.until(() => this.bytes >= count, `${count} bytes`).then(() => this.received);
  }

  /** Waits for the socket to close (EOF from the server, or a reset); returns all bytes received. */
  async untilClosed(timeoutMs = WAIT_MS): Promise<Buffer> {
    // A client socket auto-ends its side when the server's FIN arrives, so 'close' follows EOF.
    await new Promise<void>((resolve, reject) => {
      if (this.closed) return resolve();
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out waiting for close; received ${describe(this.received)}`));
      }, timeoutMs);
      const check = () => {
        if (!this.closed) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
    });
    return this.received;
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}

function describe(buf: Buffer): string {
  const text = buf.toString('latin1');
  return text.length > 300 ? `${buf.length} bytes ending ${JSON.stringify(text.slice(-300))}` : JSON.stringify(text);
}

/** Anything with an async close (servers) plus raw sockets; all are released by cleanup(). */
export class Registry {
  readonly #closables: Array<{ close(): Promise<unknown> }> = [];
  readonly #sockets: Socket[] = [];

  server<T extends { close(): Promise<unknown> }>(server: T): T {
    this.#closables.push(server);
    return server;
  }

  socket(socket: Socket): Socket {
    this.#sockets.push(socket);
    return socket;
  }

  async peer(port: number): Promise<Peer> {
    return Peer.connect(port, this);
  }

  async cleanup(): Promise<void> {
    for (const socket of this.#sockets.splice(0)) socket.destroy();
    const closing = this.#closables.splice(0).map((s) => s.close().catch(() => {}));
    await Promise.all(closing);
  }
}

/** Polls `condition` every few ms until it holds; fails with `what` after WAIT_MS. */
export async function waitUntil(condition: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(5);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  context: Record<string, unknown>;
  message: string | undefined;
}

/** A logger that records every call, for tests that assert on what was logged. */
export function captureLogger(): { logger: Logger; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at =
    (level: LogEntry['level']) =>
    (context: object | string, message?: string): void => {
      if (typeof context === 'string') entries.push({ level, context: {}, message: context });
      else entries.push({ level, context: context as Record<string, unknown>, message });
    };
  const logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } as Logger;
  return { logger, entries };
}

/** One length-prefixed frame: a 32-bit big-endian byte count, then the bytes. */
export function lengthFrame(payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length, 0);
  return Buffer.concat([header, body]);
}

/** Splits a byte stream into length-prefixed frames; `rest` is an incomplete tail. */
export function parseLengthFrames(stream: Buffer): { frames: Buffer[]; rest: Buffer } {
  const frames: Buffer[] = [];
  let at = 0;
  while (stream.length - at >= 4) {
    const length = stream.readUInt32BE(at);
    if (stream.length - at - 4 < length) break;
    frames.push(stream.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return { frames, rest: stream.subarray(at) };
}

/** A small deterministic PRNG (mulberry32), so failures replay. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A plain node:net server on 127.0.0.1:0 (a peer for client-side tests): `accepted()` counts its connections; `close()` also destroys them. */
export async function rawServer(onSocket: (socket: Socket) => void): Promise<{ port: number; accepted(): number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer({ noDelay: true }, (socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
