// Owns the file-like and socket-like views a StreamRequestHandler uses, with Python's names:
// rfile.readline() / read(n) / `for await (const line of rfile)`, wfile.write(), and
// request.recv(n) / sendall(data). All reads are async (the bytes arrive from the main thread);
// writes resolve once the bytes are within the connection's write window (not yet flushed to the
// kernel: at most writeHighWaterMark), so they wait while the client is not reading; after the
// connection closed they throw ERR_CONNECTION_CLOSED, as Python's sendall raises.

import type { SessionChannel } from './channel.js';

const NEWLINE = 0x0a;

/** A StreamRequestHandler's `rfile`: Python's file-like read side of the connection, async. */
export class SessionReader implements AsyncIterable<Buffer> {
  readonly #channel: SessionChannel;

  /** @internal A session's handler gets these from sockserv; the channel is the session's end in this thread. */
  constructor(channel: SessionChannel) {
    this.#channel = channel;
  }

  /**
   * The next line, including its "\n"; the last line may lack one; empty at EOF. With `size`,
   * at most `size` bytes (Python's readline(size)). Without it, a line longer than maxFrameBytes
   * throws ERR_FRAME_TOO_LONG rather than buffering without bound.
   */
  async readline(size = -1): Promise<Buffer> {
    const channel = this.#channel;
    const limit = size >= 0 ? size : channel.limits.maxFrameBytes;
    let scanned = 0;
    for (;;) {
      const newline = channel.indexOf(NEWLINE, scanned);
      if (newline !== -1 && newline < limit) return channel.take(newline + 1);
      if (channel.buffered >= limit) {
        if (size >= 0) return channel.take(size);
        throw channel.tooLong('a line');
      }
      if (channel.eofReceived) return channel.take(channel.buffered);
      scanned = channel.buffered;
      await channel.waitForData();
    }
  }

  /**
   * Up to `size` bytes, waiting until that many arrived or EOF (Python's BufferedReader.read).
   * Without `size`, everything to EOF (at most maxFrameBytes).
   */
  async read(size = -1): Promise<Buffer> {
    const channel = this.#channel;
    const want = size >= 0 ? size : channel.limits.maxFrameBytes + 1;
    while (channel.buffered < want && !channel.eofReceived) await channel.waitForData();
    if (size < 0 && channel.buffered > channel.limits.maxFrameBytes) throw channel.tooLong('read() to EOF');
    return channel.take(want);
  }

  /** Whatever is available (at least one byte), up to `size`; empty at EOF (socket.recv). */
  async recv(size: number): Promise<Buffer> {
    const channel = this.#channel;
    while (channel.buffered === 0 && !channel.eofReceived) await channel.waitForData();
    return channel.take(size);
  }

  /** `for await (const line of this.rfile)`: each line with its "\n", until EOF. */
  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    // Hand-written rather than an async generator: a line already buffered costs one resolved
    // promise, not a generator step and two awaits.
    const toResult = (line: Buffer): IteratorResult<Buffer> => (line.length > 0 ? { value: line, done: false } : { value: undefined, done: true });
    return {
      next: () => {
        const line = this.#bufferedLine();
        return line !== null ? Promise.resolve(toResult(line)) : this.readline().then(toResult);
      },
      return: () => Promise.resolve({ value: undefined, done: true }),
    };
  }

  /** The next complete line if it is already buffered (the common case when lines are pipelined), else null. */
  #bufferedLine(): Buffer | null {
    const channel = this.#channel;
    const newline = channel.indexOf(NEWLINE, 0);
    return newline !== -1 && newline < channel.limits.maxFrameBytes ? channel.take(newline + 1) : null;
  }
}

/** A StreamRequestHandler's `wfile`: the write side; await each write (it waits while the client is not reading, and throws ERR_CONNECTION_CLOSED once the connection is gone). */
export class SessionWriter {
  readonly #channel: SessionChannel;

  /** @internal A session's handler gets these from sockserv; the channel is the session's end in this thread. */
  constructor(channel: SessionChannel) {
    this.#channel = channel;
  }

  /** Queues bytes for the client. Await it: it waits while the client is not reading; it throws ERR_CONNECTION_CLOSED once the connection is gone. */
  write(data: string | Uint8Array): Promise<void> {
    return this.#channel.write(data);
  }

  /** Present for Python parity: writes are sent at the end of the current microtask anyway. */
  flush(): Promise<void> {
    return Promise.resolve();
  }
}

/** The socket-like `request` of a StreamRequestHandler (Python's self.request / self.connection). */
export class SessionSocket {
  readonly #reader: SessionReader;
  readonly #writer: SessionWriter;

  constructor(reader: SessionReader, writer: SessionWriter) {
    this.#reader = reader;
    this.#writer = writer;
  }

  /** Up to `bufsize` bytes as soon as any are available; empty when the client closed. */
  recv(bufsize: number): Promise<Buffer> {
    return this.#reader.recv(bufsize);
  }

  /** Sends all of `data` (waits while the client is not reading; throws ERR_CONNECTION_CLOSED once the connection is gone). */
  sendall(data: string | Uint8Array): Promise<void> {
    return this.#writer.write(data);
  }

  /** Like sendall; resolves with the byte count, as socket.send returns it. */
  async send(data: string | Uint8Array): Promise<number> {
    await this.#writer.write(data);
    return typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
  }
}
