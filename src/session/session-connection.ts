// Owns the main-thread side of one session: it bridges the socket and the session port of the
// thread running the connection's StreamRequestHandler (a worker channel's records, or an
// in-thread pair for inline servers). Reads go to the handler as buffers, within a credit window: past readHighWaterMark bytes forwarded and not acknowledged,
// the socket is paused here, whatever the handler's thread is doing; the handler's writes go to
// the socket and each is acknowledged back once the socket has flushed it to the kernel (the
// handler's write() waits while its unacknowledged bytes pass the write window; a handler that
// does not await its writes and passes writeBufferHardLimit is disconnected). When the handler
// ends — or its worker dies — the connection is closed cleanly (a lingering close, through
// shutdownRequest). The bytes it holds are reported to the server's memory budget. Once its
// socket is destroyed (by us, the budget, an error or user code), nothing more is written to it:
// the handler's bytes are dropped until 'close' tells the handler the connection is gone. Rooms
// (src/rooms/) push messages to it with push(): raw bytes, written between the handler's writes.

import type { Socket } from 'node:net';
import type { ConnectionHost } from '../connection.js';
import { ErrorCodes, SockservError, fromErrorInfo } from '../errors.js';
import type { ClientAddress } from '../handler.js';
import type { RoomMember } from '../rooms/registry.js';
import { type SessionPort, type ToHandler, type ToServer, ownBuffer } from './protocol.js';

export class SessionConnection implements RoomMember {
  readonly socket: Socket;
  readonly clientAddress: ClientAddress;
  /** Its name in rooms (the handler's `this.clientId`). */
  readonly clientId: string;
  /** Pushes reach a session as raw bytes. */
  readonly rawPushes = true;
  /** Unsent bytes past which the handler's writes cut the client: writeBufferHardLimit, or maxPushBytes once rooms push to it. */
  #writeLimit: number;
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
  #closed = false;

  constructor(socket: Socket, clientAddress: ClientAddress, host: ConnectionHost) {
    this.socket = socket;
    this.clientAddress = clientAddress;
    this.#host = host;
    this.lastActive = host.clock;
    this.#window = host.options.readHighWaterMark;
    this.#writeLimit = host.options.writeBufferHardLimit;
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
  }

  /** Bytes held for this client: unsent output, and input forwarded to the handler and not yet consumed. */
  get memoryBytes(): number {
    return this.socket.writableLength + Math.max(0, this.#unacked);
  }

  /**
   * A message from a room broadcast or sendTo: written to the socket as it is, between the
   * handler's writes (each reaches the socket whole). Returns the bytes now waiting to be sent,
   * or -1 once the connection takes no more output.
   */
  push(message: Buffer): number {
    if (this.#closed || this.socket.destroyed || this.socket.writableEnded) return -1;
    this.#writeLimit = Math.max(this.#host.options.writeBufferHardLimit, this.#host.options.maxPushBytes);
    this.#host.counters.bytesOut += message.length;
    this.socket.write(message);
    this.#host.memory.note(this);
    return this.socket.writableLength;
  }

  /** The memory budget closes this connection (ERR_CLIENT_MEMORY; the budget logs it). */
  evict(): void {
    this.socket.destroy();
  }

  #receive(message: ToServer): void {
    switch (message.t) {
      case 'data': {
        if (this.#closed || this.socket.destroyed) return; // the write would only fail; 'close' is coming
        const bytes = Buffer.from(message.b);
        this.#host.counters.bytesOut += bytes.length;
        this.lastActive = this.#host.clock;
        const n = bytes.length;
        // Acknowledged once flushed to the kernel: the handler's write window moves with the
        // client. Acks are gathered to a quarter of the window, so small writes cost no message.
        // The callback never writes: an error (a destroyed socket) just ends it.
        this.socket.write(bytes, (err) => {
          if (err) return;
          this.#flushedSinceAck += n;
          if (this.#flushedSinceAck >= this.#host.options.writeHighWaterMark / 4) {
            this.#send({ t: 'wack', n: this.#flushedSinceAck });
            this.#flushedSinceAck = 0;
          }
        });
        if (this.socket.writableLength > this.#writeLimit) {
          // Only a handler that does not await its writes gets here (awaited ones wait for acks).
          this.#host.logger.warn(
            { code: ErrorCodes.WRITE_BUFFER_OVERFLOW, client: this.clientAddress.join(':') },
            'disconnecting a client that does not read',
          );
          this.socket.destroy();
          return;
        }
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
    const host = this.#host;
    host.requestFinished();
    if (!this.#closed) {
      host.hooks.run('shutdownRequest', this.clientAddress, () => host.shutdownRequest(this.socket), () => this.socket.destroy(), undefined);
    }
  }

  #onClose(): void {
    this.#closed = true;
    this.#host.memory.forget(this);
    if (!this.#handlerDone) this.#send({ t: 'closed' });
    this.#host.connectionClosed(this);
  }

  #send(message: ToHandler, transfer?: ArrayBuffer[]): void {
    if (!this.#handlerDone) this.#port.postMessage(message, transfer);
  }
}
