// Owns the handler side of a session's byte stream: the unread bytes from the client (bounded by
// the main thread's credit window; consumption is acknowledged back) and the writes to the
// client (coalesced into one message until the handler waits for input, or the loop turn ends;
// write() resolves only while the bytes written
// and not yet acknowledged as flushed to the kernel are within the write window, so a loop of
// awaited writes runs at the client's pace). After the connection closed, write() throws, as a
// write to a closed socket raises in Python. rfile, wfile and the socket-like `request` of
// StreamRequestHandler are views of this.

import { ErrorCodes, type ErrorInfo, SockservError } from '../errors.js';
import { ByteQueue } from '../framing/byte-queue.js';
import { type SessionLimits, type SessionPort, type ToHandler, type ToServer, ownBuffer } from './protocol.js';

const RESOLVED = Promise.resolve();
/** The write window until the main thread announces the server's writeHighWaterMark (DEFAULTS'). */
const DEFAULT_WRITE_WINDOW = 256 * 1024;

interface WriteWaiter {
  resolve: () => void;
  reject: (error: Error) => void;
}

export class SessionChannel {
  readonly limits: SessionLimits;
  readonly #port: SessionPort;
  readonly #unread = new ByteQueue();
  /** The client sent FIN, or the connection is gone. */
  #eof = false;
  #closed = false;
  #ended = false;
  /** Bytes consumed since the last acknowledgement. */
  #consumedSinceAck = 0;
  #wakeReader: (() => void) | null = null;
  /** Bytes written (posted or queued) and not yet acknowledged as flushed to the kernel. */
  #unackedOut = 0;
  #writeWindow = DEFAULT_WRITE_WINDOW;
  #writeWaiters: WriteWaiter[] = [];
  #outgoing: Uint8Array[] = [];
  #outgoingBytes = 0;
  #flushQueued = false;

  constructor(port: SessionPort, limits: SessionLimits) {
    this.#port = port;
    this.limits = limits;
    port.on('message', (message: ToHandler) => this.#receive(message));
  }

  /** Bytes received and not yet read. */
  get buffered(): number {
    return this.#unread.length;
  }

  /** The client sent FIN or the connection is gone: no more bytes will arrive. */
  get eofReceived(): boolean {
    return this.#eof;
  }

  /** Offset of `byte` in the unread bytes at or after `from`, or -1. */
  indexOf(byte: number, from: number): number {
    return this.#unread.indexOf(byte, from);
  }

  /** Removes up to `n` unread bytes. */
  take(n: number): Buffer {
    const out = this.#unread.take(Math.min(n, this.#unread.length));
    this.#consumedSinceAck += out.length;
    if (this.#consumedSinceAck >= this.limits.readHighWaterMark / 4) this.#ack(false);
    return Buffer.from(out); // a copy: the queue's buffer may be reused
  }

  /** Resolves when more bytes arrive or the stream ends. */
  waitForData(): Promise<void> {
    if (this.#outgoingBytes > 0) this.#flush(); // replies to what was read go out before waiting for more
    if (this.#eof) return RESOLVED;
    // The reader needs more than it has. If the bytes it holds already fill the window, ask for
    // more (its own limit, maxFrameBytes, still applies). Consumption is acknowledged in quarters
    // of the window (take()): the main thread pauses only at a whole window, so a conversation of
    // small lines costs no acknowledgement per line.
    const more = this.#unread.length >= this.limits.readHighWaterMark / 2;
    if (more || this.#consumedSinceAck >= this.limits.readHighWaterMark / 4) this.#ack(more);
    return new Promise((resolve) => {
      this.#wakeReader = resolve;
    });
  }

  /**
   * Queues bytes for the client; resolves once the bytes not yet flushed to the kernel are within
   * the write window. Rejects with ERR_CONNECTION_CLOSED once the connection is gone.
   */
  write(data: string | Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError());
    if (this.#ended) return RESOLVED; // handle() returned: nothing more is sent
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    if (bytes.byteLength === 0) return RESOLVED;
    this.#outgoing.push(bytes);
    this.#outgoingBytes += bytes.byteLength;
    this.#unackedOut += bytes.byteLength;
    if (this.#unackedOut <= this.#writeWindow) {
      // Gathered until the handler waits for input or this loop turn ends: a pipelined burst of
      // lines answered one by one leaves as one message and one socket write.
      if (!this.#flushQueued) {
        this.#flushQueued = true;
        setImmediate(this.#flushLater);
      }
      return RESOLVED;
    }
    this.#flush();
    return new Promise((resolve, reject) => this.#writeWaiters.push({ resolve, reject }));
  }

  /** Sends what is queued, then tells the main thread the session is over. */
  end(error: ErrorInfo | null): void {
    if (this.#ended) return;
    this.#flush();
    this.#post({ t: 'end', error });
    this.#ended = true;
    // Not port.close(): messages still queued would be dropped. The main thread closes its end on
    // 'end', which closes this one; unref so a finished session never keeps a thread alive.
    this.#port.unref();
    for (const waiter of this.#writeWaiters.splice(0)) waiter.resolve();
  }

  /** Sends the writes gathered so far now (a room call goes after them: src/session/run-session.ts). */
  flushWrites(): void {
    this.#flush();
  }

  tooLong(what: string): SockservError {
    return new SockservError(ErrorCodes.FRAME_TOO_LONG, `${what} exceeds maxFrameBytes (${this.limits.maxFrameBytes})`);
  }

  readonly #flushLater = () => {
    this.#flushQueued = false;
    this.#flush();
  };

  #flush(): void {
    if (this.#outgoingBytes === 0 || this.#ended) return;
    const bytes = Buffer.concat(this.#outgoing, this.#outgoingBytes);
    this.#outgoing = [];
    this.#outgoingBytes = 0;
    const b = ownBuffer(bytes);
    this.#port.postMessage({ t: 'data', b } satisfies ToServer, [b]);
  }

  #receive(message: ToHandler): void {
    switch (message.t) {
      case 'data':
        this.#unread.push(Buffer.from(message.b));
        break;
      case 'eof':
        this.#eof = true;
        break;
      case 'closed':
        this.#eof = true;
        this.#closed = true;
        this.#outgoing = [];
        this.#outgoingBytes = 0;
        for (const waiter of this.#writeWaiters.splice(0)) waiter.reject(this.#closedError());
        break;
      case 'wwin':
        this.#writeWindow = message.n;
        this.#wakeWriters();
        return;
      case 'wack':
        this.#unackedOut -= message.n;
        this.#wakeWriters();
        return;
    }
    const wake = this.#wakeReader;
    this.#wakeReader = null;
    wake?.();
  }

  #wakeWriters(): void {
    if (this.#unackedOut > this.#writeWindow || this.#writeWaiters.length === 0) return;
    for (const waiter of this.#writeWaiters.splice(0)) waiter.resolve();
  }

  #closedError(): SockservError {
    return new SockservError(ErrorCodes.CONNECTION_CLOSED, 'the connection is closed: the client is gone');
  }

  #ack(more: boolean): void {
    if (this.#consumedSinceAck === 0 && !more) return;
    this.#post({ t: 'ack', n: this.#consumedSinceAck, more });
    this.#consumedSinceAck = 0;
  }

  #post(message: ToServer): void {
    if (!this.#ended) this.#port.postMessage(message);
  }
}
