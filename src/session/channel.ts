// Owns the handler side of a session's byte stream: the unread bytes from the client (bounded by
// the main thread's credit window; consumption is acknowledged back) and the writes to the
// client (coalesced per microtask into one message; write() waits while the client is not
// reading). rfile, wfile and the socket-like `request` of StreamRequestHandler are views of this.

import { ErrorCodes, type ErrorInfo, SockservError } from '../errors.js';
import { ByteQueue } from '../framing/byte-queue.js';
import { type SessionLimits, type SessionPort, type ToHandler, type ToServer, ownBuffer } from './protocol.js';

const RESOLVED = Promise.resolve();

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
  #writePaused = false;
  #writeWaiters: Array<() => void> = [];
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
    if (this.#eof) return RESOLVED;
    // The reader needs more than it has: acknowledge what it consumed and, if the bytes it holds
    // already fill the window, ask for more (its own limit, maxFrameBytes, still applies).
    this.#ack(this.#unread.length >= this.limits.readHighWaterMark / 2);
    return new Promise((resolve) => {
      this.#wakeReader = resolve;
    });
  }

  /** Queues bytes for the client; resolves at once unless the client has stopped reading. */
  write(data: string | Uint8Array): Promise<void> {
    if (this.#closed || this.#ended) return RESOLVED; // the peer is gone: like a write to a closed socket, dropped
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    if (bytes.byteLength === 0) return RESOLVED;
    this.#outgoing.push(bytes);
    this.#outgoingBytes += bytes.byteLength;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(() => this.#flush());
    }
    if (!this.#writePaused) return RESOLVED;
    return new Promise((resolve) => this.#writeWaiters.push(resolve));
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
    for (const wake of this.#writeWaiters.splice(0)) wake();
  }

  tooLong(what: string): SockservError {
    return new SockservError(ErrorCodes.FRAME_TOO_LONG, `${what} exceeds maxFrameBytes (${this.limits.maxFrameBytes})`);
  }

  #flush(): void {
    this.#flushQueued = false;
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
        this.#writePaused = false;
        for (const wake of this.#writeWaiters.splice(0)) wake();
        break;
      case 'wpause':
        this.#writePaused = true;
        return;
      case 'wresume':
        this.#writePaused = false;
        for (const wake of this.#writeWaiters.splice(0)) wake();
        return;
    }
    const wake = this.#wakeReader;
    this.#wakeReader = null;
    wake?.();
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
