// Owns the main-thread side of one session: it bridges the socket and the session port of the
// thread running the connection's StreamRequestHandler (a worker channel's records, or an
// in-thread pair for inline servers). Reads go to the handler as buffers, within a credit window: past readHighWaterMark bytes forwarded and not acknowledged,
// the socket is paused here, whatever the handler's thread is doing; the handler's writes go to
// the socket through a SocketWriter (src/socket-writer.ts, as framed connections do) and each
// slice is acknowledged back once the kernel took it (the handler's write() waits while its
// unacknowledged bytes pass the write window; a client whose unsent bytes pass
// writeBufferHardLimit and make no progress for writeStallTimeout is disconnected). When the
// handler ends — or its worker dies — what it wrote is handed to the socket, then the connection
// is closed cleanly (a lingering close, through shutdownRequest). The bytes it holds are reported
// to the server's memory budget. Once its socket is destroyed (by us, the budget, an error or
// user code), nothing more is written to it: the handler's bytes are dropped until 'close' tells
// the handler the connection is gone. Rooms (src/rooms/) push messages to it with push(): raw
// bytes, queued between the handler's writes; they are not acknowledged to the handler (its write
// window counts its own bytes only).

import type { Socket } from 'node:net';
import type { ConnectionHost } from '../connection.js';
import { ErrorCodes, SockservError, fromErrorInfo } from '../errors.js';
import type { ClientAddress } from '../handler.js';
import type { RoomMember } from '../rooms/registry.js';
import { SocketWriter } from '../socket-writer.js';
import type { Flushable } from '../write-set.js';
import { type SessionPort, type ToHandler, type ToServer, ownBuffer } from './protocol.js';

export class SessionConnection implements Flushable, RoomMember {
  readonly socket: Socket;
  readonly clientAddress: ClientAddress;
  /** Its name in rooms (the handler's `this.clientId`). */
  readonly clientId: string;
  /** Pushes reach a session as raw bytes. */
  readonly rawPushes = true;
  inWriteSet = false;
  /** Server clock of the last byte in either direction. */
  lastActive: number;
  readonly #host: ConnectionHost;
  readonly #port: SessionPort;
  #eofSent = false;
  /** Bytes of the handler's writes flushed to the kernel and not yet acknowledged to it. */
  #flushedSinceAck = 0;
  /** Bytes forwarded to the handler and not yet acknowledged as consumed. */
  #unacked = 0;
  /** #unacked at which reading pauses: readHighWaterMark, or more while the handler asks for it. */
  #window: number;
  #readPaused = false;
  #handlerDone = false;
  /** shutdownRequest has run (after the handler returned and its bytes were handed to the socket). */
  #ended = false;
  #closed = false;
  /** The handler's bytes on their way to the socket; judges a client that does not read. */
  readonly #writer: SocketWriter;
  /**
   * What the writer holds and has not yet reported written, in order: runs of the handler's bytes
   * (positive) and of pushed bytes (negative), so that only the handler's are acknowledged to it.
   * Slices reach the kernel in the order they were queued, so the runs are consumed from the front.
   */
  #runs: number[] = [];

  constructor(socket: Socket, clientAddress: ClientAddress, host: ConnectionHost) {
    this.socket = socket;
    this.clientAddress = clientAddress;
    this.#host = host;
    this.lastActive = host.clock;
    this.#window = host.options.readHighWaterMark;
    this.#writer = new SocketWriter(socket, host.options, { written: this.#written, stalled: this.#overflow });
    this.clientId = host.rooms.admit(this);
    const { port, done } = host.dispatcher.startSession(clientAddress, this, this.clientId); // this: drain() past a reload's reloadTimeout
    this.#port = port;
    port.on('message', (message: ToServer) => this.#receive(message));
    this.#send({ t: 'wwin', n: host.options.writeHighWaterMark });
    socket.on('data', (chunk: Buffer) => {
      host.counters.bytesIn += chunk.length;
      if (this.#handlerDone) return; // lingering close: input is read and dropped
      this.lastActive = host.clock;
      const b = ownBuffer(chunk);
      this.#send({ t: 'data', b }, [b]);
      this.#unacked += chunk.length;
      if (!this.#readPaused && this.#unacked >= this.#window) {
        this.#readPaused = true;
        socket.pause();
      }
      host.memory.note(this);
    });
    socket.on('end', () => this.#sendEof());
    socket.on('error', (err) => host.logger.debug({ err, client: clientAddress.join(':') }, 'connection error'));
    socket.on('close', () => this.#onClose());
    host.counters.requestsReceived++;
    done.then(
      () => {},
      (error: unknown) => this.#handlerFailed(error),
    );
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** A session counts as one request in flight until its handler returns. */
  get inFlight(): number {
    return this.#handlerDone ? 0 : 1;
  }

  /** Idle sessions (no byte either way for idleTimeout) are cut: the handler then reads EOF. */
  get idleCandidate(): boolean {
    return true;
  }

  /**
   * Shutdown: stop reading and give the handler EOF, as if the client had half-closed, so loops
   * over rfile end by themselves; replies it still writes are delivered. Shutdown waits for the
   * handler to return (up to shutdownTimeout).
   */
  drain(): void {
    this.socket.pause();
    this.#sendEof();
  }

  #sendEof(): void {
    if (this.#eofSent) return;
    this.#eofSent = true;
    this.#send({ t: 'eof' });
  }

  destroy(): void {
    this.socket.destroy();
    this.#writer.clear();
  }

  /** Bytes held for this client: unsent output, and input forwarded to the handler and not yet consumed. */
  get memoryBytes(): number {
    return this.#writer.unsentBytes + Math.max(0, this.#unacked);
  }

  /**
   * A message from a room broadcast or sendTo: queued as it is, between the handler's writes
   * (each reaches the socket whole). Returns the bytes now waiting to be sent, or -1 once the
   * connection takes no more output.
   */
  push(message: Buffer): number {
    if (this.#closed || this.#ended || this.socket.destroyed || this.socket.writableEnded) return -1;
    if (message.length === 0) return this.#writer.unsentBytes;
    // Rooms have their own, larger limit (src/rooms/registry.ts): a pushed-to client may owe more.
    this.#writer.raiseHardLimit(this.#host.options.maxPushBytes);
    this.#addRun(-message.length);
    this.#writer.push(message);
    this.#host.writeSet.add(this);
    this.#host.memory.note(this);
    return this.#writer.unsentBytes;
  }

  /** Records `bytes` (negative: pushed) at the tail of #runs, joining a run of the same kind. */
  #addRun(bytes: number): void {
    if (bytes === 0) return;
    const runs = this.#runs;
    const last = runs.length - 1;
    if (last >= 0 && Math.sign(runs[last]!) === Math.sign(bytes)) runs[last]! += bytes;
    else runs.push(bytes);
  }

  /** Of `bytes` handed to the kernel (oldest first), how many were the handler's. */
  #handlerShare(bytes: number): number {
    const runs = this.#runs;
    let own = 0;
    let i = 0;
    while (bytes > 0 && i < runs.length) {
      const run = runs[i]!;
      const take = Math.min(Math.abs(run), bytes);
      if (run > 0) own += take;
      bytes -= take;
      const left = Math.abs(run) - take;
      if (left === 0) i++;
      else runs[i] = run > 0 ? left : -left;
    }
    if (i > 0) runs.splice(0, i);
    return own;
  }

  /** The memory budget closes this connection (ERR_CLIENT_MEMORY; the budget logs it). */
  evict(): void {
    this.destroy();
  }

  /** The write set: hand the socket what it has room for, then end if the handler is done. */
  flushOutput(): void {
    if (this.#closed || this.socket.destroyed) return;
    const writer = this.#writer;
    const queued = writer.queuedBytes;
    writer.flush(); // with writeStallTimeout 0, may disconnect at once (#overflow)
    this.#host.counters.bytesOut += queued - writer.queuedBytes;
    this.#maybeEnd();
  }

  /**
   * A slice reached the kernel: acknowledged to the handler, whose write window moves with the
   * client (acks are gathered to a quarter of the window, so small writes cost no message), and
   * the next slice is handed over at once. What ends that chain of write callbacks: each one
   * that writes takes bytes off a finite queue, a slice the kernel cannot take at once calls back
   * from the event loop, and a destroyed socket is neither written to nor calls back here.
   */
  readonly #written = (bytes: number): void => {
    if (this.#closed) return;
    this.#flushedSinceAck += this.#handlerShare(bytes);
    if (this.#flushedSinceAck >= this.#host.options.writeHighWaterMark / 4) {
      this.#send({ t: 'wack', n: this.#flushedSinceAck });
      this.#flushedSinceAck = 0;
    }
    if (this.#writer.queuedBytes > 0) this.flushOutput();
  };

  /** Unsent bytes past writeBufferHardLimit made no progress for writeStallTimeout (SocketWriter). */
  readonly #overflow = (unsent: number): void => {
    const { writeStallTimeout } = this.#host.options;
    this.#host.logger.warn(
      { code: ErrorCodes.WRITE_BUFFER_OVERFLOW, client: this.clientAddress.join(':'), unsentBytes: unsent, writeStallTimeout },
      'disconnecting a client that does not read',
    );
    this.destroy();
  };

  #receive(message: ToServer): void {
    switch (message.t) {
      case 'data': {
        if (this.#closed || this.socket.destroyed) return; // nothing more is written; 'close' is coming
        this.lastActive = this.#host.clock;
        const bytes = Buffer.from(message.b);
        this.#addRun(bytes.length);
        this.#writer.push(bytes);
        this.#host.writeSet.add(this); // written this loop turn, with whatever else the handler sent
        this.#host.memory.note(this);
        return;
      }
      case 'ack': {
        this.#unacked -= message.n;
        const base = this.#host.options.readHighWaterMark;
        this.#window = message.more ? this.#unacked + base : base;
        if (this.#readPaused && this.#unacked < this.#window && !this.#eofSent && !this.socket.destroyed) {
          this.#readPaused = false;
          this.socket.resume();
        }
        return;
      }
      case 'end':
        if (message.error) this.#report(fromErrorInfo(message.error, ErrorCodes.HANDLER_FAILED));
        else this.#host.counters.requestsOk++;
        this.#finish();
        return;
    }
  }

  /** The task itself failed: the worker died, or the handler could not be loaded. */
  #handlerFailed(error: unknown): void {
    if (this.#handlerDone) return;
    const failure =
      error instanceof SockservError
        ? error
        : new SockservError(ErrorCodes.WORKER_DIED, `the worker running this session died: ${(error as Error)?.message ?? error}`, {
            cause: error,
          });
    this.#report(failure);
    this.#finish();
  }

  #report(error: SockservError): void {
    const host = this.#host;
    host.counters.requestsFailed++;
    host.hooks.run('handleError', this.clientAddress, () => host.handleError(this.socket, this.clientAddress, error), null, undefined);
  }

  /** Python closes the connection when handle() returns: flush, FIN, then release the socket. */
  #finish(): void {
    if (this.#handlerDone) return;
    this.#handlerDone = true;
    this.#port.close();
    this.#host.requestFinished();
    this.#maybeEnd();
  }

  /** Once the handler is done and everything it wrote is with the socket: FIN after it, then the lingering close. */
  #maybeEnd(): void {
    if (!this.#handlerDone || this.#ended || this.#closed) return;
    if (this.#writer.queuedBytes > 0 && !this.socket.destroyed) return; // the last slices reaching the kernel flush the rest, then end
    this.#ended = true;
    const host = this.#host;
    host.hooks.run('shutdownRequest', this.clientAddress, () => host.shutdownRequest(this.socket), () => this.socket.destroy(), undefined);
  }

  #onClose(): void {
    this.#closed = true;
    this.#writer.clear();
    this.#host.memory.forget(this);
    if (!this.#handlerDone) this.#send({ t: 'closed' });
    this.#host.connectionClosed(this);
  }

  #send(message: ToHandler, transfer?: ArrayBuffer[]): void {
    if (!this.#handlerDone) this.#port.postMessage(message, transfer);
  }
}
