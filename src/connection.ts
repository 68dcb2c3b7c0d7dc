// Owns one accepted connection on the main thread: its read side (socket → framer → dispatch),
// its ordering (ReplyOrder) and its output (encoded replies waiting in the write set). It is
// also where backpressure is decided: the socket is read only while the connection has room for
// more in-flight requests, its unsent output is under the high-water mark, and the dispatcher
// has room, and its in-flight request bytes are under maxInFlightBytesPerConnection. Its output
// goes to the socket through a SocketWriter (src/socket-writer.ts), which also decides when a
// client that does not read is disconnected (writeBufferHardLimit, writeStallTimeout). Anything
// that goes wrong here ends this connection only: the user's code it calls (handleError,
// errorReply, shutdownRequest, the Framer) runs guarded (src/server/hook-guard.ts). It reports
// the bytes it holds (unframed input, requests in flight, unsent output) to the server's memory
// budget, which may close it. Once it has ended, the socket belongs to the lingering close
// (src/server/lingering-close.ts): input is drained and dropped, never framed. Once its socket is
// destroyed — by us, by the memory budget, by an error, or by user code in a hook — it is 'cut':
// nothing is framed, dispatched or written any more, and nothing waits for a flush (a write to a
// destroyed socket fails on the next tick, and a wait re-armed from that failure never lets the
// event loop turn to deliver 'close': issue 16). When the server records request durations
// (metrics), it notes when each request was framed and times it at release.
// Rooms (src/rooms/) push messages to it with push(): framed as a reply, queued after its output.

import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Dispatcher, RequestSink } from './dispatch/dispatcher.js';
import { ErrorCodes, SockservError } from './errors.js';
import type { Framer } from './framing/framer.js';
import type { ClientAddress } from './handler.js';
import type { Logger } from './logger.js';
import type { ResolvedOptions } from './options.js';
import { ReplyOrder } from './reply-order.js';
import { type Reply, replyBytes } from './reply.js';
import type { RoomMember, RoomMembership } from './rooms/registry.js';
import type { HookGuard } from './server/hook-guard.js';
import type { MemoryBudget } from './server/memory-budget.js';
import type { RequestDurations, ServerCounters } from './stats.js';
import { SocketWriter } from './socket-writer.js';
import type { Flushable, WriteSet } from './write-set.js';

/** What the server needs from any of its connections (framed ones here, sessions in src/session/). */
export interface ServerConnection {
  /** Requests received and not yet answered (a session counts 1 until its handler returns). */
  readonly inFlight: number;
  /** Stop reading; finish what was received; then close. */
  drain(): void;
  /** Cut the connection now. */
  destroy(): void;
  /** The server clock (ms) when the connection last made progress: a request framed or answered. */
  readonly lastActive: number;
  /** Whether idleTimeout may close it now. */
  readonly idleCandidate: boolean;
  /** Its name in rooms (connections and sessions; not the PROXY header reader or the UDP endpoint). */
  readonly clientId?: string;
}

/** What a connection needs from its server. */
export interface ConnectionHost {
  readonly options: ResolvedOptions;
  readonly dispatcher: Dispatcher;
  readonly writeSet: WriteSet;
  readonly logger: Logger;
  readonly counters: ServerCounters;
  /** Where request durations go; null (the default) skips the clock reads. */
  readonly requestDurations: RequestDurations | null;
  /** A coarse clock (ms), advanced by the server's idle sweep: cheap to read per request. */
  readonly clock: number;
  handleError(request: Socket | null, clientAddress: ClientAddress, error: SockservError): void;
  /** Ends a connection gracefully (called once per connection). */
  shutdownRequest(request: Socket): void;
  /** Reports each finished request (handleRequest waits on it). */
  requestFinished(): void;
  errorReply(error: SockservError): string | Uint8Array | null;
  connectionClosed(connection: ServerConnection): void;
  /** Runs the hooks above (user code) guarded. */
  readonly hooks: HookGuard;
  /** maxClientMemory: where connections report the bytes they hold. */
  readonly memory: MemoryBudget;
  /** The server's rooms: each connection gets its client id there. */
  readonly rooms: RoomMembership;
}

/**
 * Where Framer.encode puts one reply's chunks before they are queued: one array for every
 * connection (not one each: idle connections are counted in KiB), emptied after each reply —
 * encoding is synchronous and a reply is queued whole before the next is encoded.
 */
const ENCODED: Uint8Array[] = [];

export class Connection implements RequestSink, Flushable, ServerConnection, RoomMember {
  readonly socket: Socket;
  readonly clientAddress: ClientAddress;
  /** Its name in rooms (handlers' `this.clientId`). */
  readonly clientId: string;
  /** Pushes are framed as replies. */
  readonly rawPushes = false;
  inWriteSet = false;
  lastActive: number;
  readonly #host: ConnectionHost;
  readonly #framer: Framer;
  readonly #order: ReplyOrder;
  /** Bytes of the requests dispatched and not yet released (each one's size comes back with its outcome). */
  #inFlightBytes = 0;
  /** Encoded replies on their way to the socket; judges a client that does not read. */
  readonly #writer: SocketWriter;
  #pumping = false;
  #paused = false;
  /** The peer sent FIN: frame what is buffered (and a trailing frame), reply, then end. */
  #readEnded = false;
  #endFramed = false;
  /** shutdown(): read no more, finish what is buffered, then end. */
  #draining = false;
  /** Every buffered frame has been dispatched (set when the framer runs dry). */
  #framesExhausted = false;
  /** Bad input: reply to what came before it, send the error reply, then end. */
  #protocolError: SockservError | null = null;
  #protocolErrorSent = false;
  /**
   * Where the connection is in its life, as ws's readyState; it only moves forward:
   * 'open' (reading, framing, dispatching — also while finishing after FIN, drain or bad input),
   * 'failing' (a request failed under onHandlerError 'close', or a hook threw: later outcomes are
   * dropped, what is queued flushes, then it ends), 'ended' (our FIN is out), 'cut' (the socket
   * was destroyed before we ended: outcomes are dropped, nothing more is written; 'close' is
   * coming), 'closed'.
   */
  #phase: 'open' | 'failing' | 'ended' | 'cut' | 'closed' = 'open';
  /** One clock reading shared by the releases of one complete() call; -1 = not read yet. */
  #releasedAt = -1;

  constructor(socket: Socket, clientAddress: ClientAddress, framer: Framer, host: ConnectionHost) {
    this.socket = socket;
    this.clientAddress = clientAddress;
    this.#framer = framer;
    this.#host = host;
    this.#order = new ReplyOrder(host.options.maxInFlightPerConnection);
    this.lastActive = host.clock;
    this.#writer = new SocketWriter(socket, host.options, { written: this.#written, stalled: this.#overflow });
    this.clientId = host.rooms.admit(this);
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
  }

  /** Closed, or closing after a failed request (onHandlerError 'close'): its later requests are not run. */
  get closed(): boolean {
    return this.#phase !== 'open';
  }

  /** Requests dispatched whose replies have not been released yet. */
  get inFlight(): number {
    return this.#order.inFlight;
  }

  /** Only a connection with nothing in flight can be idle: a slow handler is not the client's fault. */
  get idleCandidate(): boolean {
    return this.#order.inFlight === 0;
  }

  /** Stop reading; finish the requests already received, flush their replies, then end. */
  drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    this.#pauseReading();
    this.pump();
  }

  /** Cut the connection now (shutdown timeout, server close). */
  destroy(error?: Error): void {
    this.socket.destroy(error);
    this.#cut();
  }

  /** Bytes held for this client: unframed input, requests in flight, unsent output (ours and the socket's). */
  get memoryBytes(): number {
    return this.#framer.bufferedBytes + this.#inFlightBytes + this.#writer.unsentBytes;
  }

  /** The memory budget closes this connection (ERR_CLIENT_MEMORY; the budget logs it). */
  evict(): void {
    this.destroy();
  }

  /**
   * A message from a room broadcast or sendTo: framed as a reply is and queued after the output
   * already queued, so it never splits a reply. Returns the bytes now waiting to be sent to this
   * client (ours and the socket's), or -1 once it takes no more output.
   */
  push(message: Buffer): number {
    if (this.#phase === 'ended' || this.#phase === 'closed' || this.socket.destroyed) return -1;
    // Rooms have their own, larger limit (src/rooms/registry.ts): a pushed-to client may owe more.
    this.#writer.raiseHardLimit(this.#host.options.maxPushBytes);
    this.#queueReply(message);
    this.#host.memory.note(this);
    return this.#writer.unsentBytes;
  }

  /** Frames and dispatches buffered requests for as long as every limit allows. */
  pump(): void {
    if (this.#pumping || this.#phase !== 'open') return;
    if (this.socket.destroyed) {
      this.#cut(); // destroyed where no event told us (user code in a hook, an error not yet emitted)
      return;
    }
    this.#pumping = true;
    try {
      this.#dispatchBuffered();
    } finally {
      this.#pumping = false;
    }
    this.#maybeEnd();
  }

  complete(seq: number, reply: Reply, error?: SockservError): void {
    if (this.#phase === 'closed') return;
    this.#releasedAt = -1;
    this.#order.complete(seq, reply, error, this.#release);
    if (!this.#pumping) this.pump();
    if (!this.#isGone()) this.#host.memory.note(this);
  }

  flushOutput(): void {
    if (this.#isGone()) return;
    if (this.socket.destroyed) {
      this.#cut();
      return;
    }
    const writer = this.#writer;
    if (writer.queuedBytes > 0) {
      const queued = writer.queuedBytes;
      writer.flush(); // with writeStallTimeout 0, may disconnect at once (#overflow)
      this.#host.counters.bytesOut += queued - writer.queuedBytes;
      if (this.#isGone()) return;
    }
    // Reading may have paused on our unsent replies: resume once they are under the mark (else a
    // slice reaching the kernel resumes it: #written).
    if (this.#paused && writer.unsentBytes < this.#host.options.writeHighWaterMark) this.pump();
    this.#maybeEnd();
  }

  #dispatchBuffered(): void {
    const { dispatcher, options } = this.#host;
    const order = this.#order;
    const framer = this.#framer;
    const durations = this.#host.requestDurations;
    let framedAt = -1; // one clock reading for the frames of one pass: they arrived together
    // Nothing is written to the socket during this loop (replies wait for the write set), so its
    // backlog is read once; the writer's queue grows as inline replies are queued.
    const socketBacklog = this.socket.writableLength;
    const writer = this.#writer;
    while (this.#phase === 'open' && this.#protocolError === null) {
      if (order.full || this.#inFlightBytes >= options.maxInFlightBytesPerConnection) {
        this.#pauseReading(); // resumed by complete()
        return;
      }
      if (socketBacklog + writer.queuedBytes >= options.writeHighWaterMark) {
        // Resumed when a slice reaches the kernel (#written) or by flushOutput: every write the
        // writer makes has a callback, so no 'drain' is needed (which Node emits only after a
        // write() that returned false).
        this.#pauseReading();
        return;
      }
      if (!dispatcher.hasCapacity()) {
        this.#pauseReading();
        dispatcher.waitForCapacity(this);
        return;
      }
      let frame: Buffer | undefined;
      try {
        frame = framer.next();
        if (frame === undefined && this.#readEnded && !this.#endFramed) {
          this.#endFramed = true;
          frame = framer.end();
        }
      } catch (error) {
        if (!(error instanceof SockservError)) this.#host.hooks.failed('Framer.next', this.clientAddress, error, null);
        this.#onProtocolError(error);
        return;
      }
      if (frame === undefined) break;
      this.lastActive = this.#host.clock;
      this.#host.counters.requestsReceived++;
      this.#inFlightBytes += frame.length;
      if (durations !== null && framedAt < 0) framedAt = performance.now();
      const seq = order.begin(frame.length, framedAt);
      dispatcher.submit(this, seq, frame);
    }
    this.#framesExhausted = true;
    if (!this.#readEnded && !this.#draining && this.#phase === 'open' && this.#protocolError === null) this.#resumeReading();
  }

  readonly #release = (reply: Reply, error: SockservError | undefined, bytes: number, framedAt: number): void => {
    this.#inFlightBytes -= bytes;
    if (this.#phase !== 'open') return;
    const host = this.#host;
    if (host.requestDurations !== null && framedAt >= 0) this.#recordDuration(host.requestDurations, framedAt);
    this.lastActive = host.clock;
    host.requestFinished();
    if (error) {
      host.counters.requestsFailed++;
      host.hooks.run('handleError', this.clientAddress, () => host.handleError(this.socket, this.clientAddress, error), this.#failed, undefined);
      if (this.#phase !== 'open') return; // handleError threw
      if (host.options.onHandlerError === 'close') {
        this.#fail();
        return;
      }
      reply = this.#errorReply(error);
      if (this.#phase !== 'open') return; // errorReply threw
    } else {
      host.counters.requestsOk++;
    }
    if (reply !== null) this.#queueReply(reply);
  };

  /** Records one request's latency, framing to release (framedAt < 0: framed before recording started). */
  #recordDuration(durations: RequestDurations, framedAt: number): void {
    if (this.#releasedAt < 0) this.#releasedAt = performance.now();
    durations.record(this.#releasedAt - framedAt);
  }

  #queueReply(reply: Buffer): void {
    const encoded = ENCODED;
    try {
      this.#framer.encode(reply, encoded);
      for (const chunk of encoded) {
        if (!(chunk instanceof Uint8Array)) throw new TypeError(`Framer.encode pushed ${typeof chunk}, not bytes`);
      }
    } catch (err) {
      encoded.length = 0; // nothing of a reply that failed to encode goes out
      this.#host.hooks.failed('Framer.encode', this.clientAddress, err, this.#failed);
      return;
    }
    for (const chunk of encoded) this.#writer.push(chunk);
    encoded.length = 0;
    this.#host.writeSet.add(this);
  }

  /** errorReply() (user code) guarded: if it throws, the connection closes after what is queued. */
  #errorReply(error: SockservError): Buffer | null {
    const host = this.#host;
    return host.hooks.run('errorReply', this.clientAddress, () => toBuffer(host.errorReply(error)), this.#failed, null);
  }

  /** A hook failed for this connection: close it after the replies already queued. */
  readonly #failed = (): void => {
    if (this.#phase === 'open') this.#fail();
  };

  #onProtocolError(error: unknown): void {
    const failure =
      error instanceof SockservError ? error : new SockservError(ErrorCodes.FRAME_INVALID, String((error as Error)?.message ?? error));
    this.#protocolError = failure;
    this.#framesExhausted = true;
    this.#pauseReading();
    this.#host.counters.protocolErrors++;
    this.#host.logger.warn(
      { code: failure.code, client: this.clientAddress.join(':'), detail: failure.message },
      'bad input: closing the connection after replying to the requests before it',
    );
  }

  /** Read through a call: the phase may have moved in code this method called (TypeScript would narrow a field read). */
  #isGone(): boolean {
    return this.#phase === 'cut' || this.#phase === 'closed';
  }

  /**
   * The socket was destroyed before we ended it: from now on nothing is framed, dispatched or
   * written, outcomes still coming back are dropped, and its memory is no longer counted (the
   * socket's buffers go with it). 'close' follows.
   */
  #cut(): void {
    if (this.#phase !== 'open' && this.#phase !== 'failing') return;
    this.#phase = 'cut';
    this.#writer.clear();
    this.#host.memory.forget(this);
  }

  #fail(): void {
    this.#phase = 'failing';
    this.#pauseReading();
    this.#host.writeSet.add(this);
  }

  /** Unsent replies past writeBufferHardLimit made no progress for writeStallTimeout (SocketWriter). */
  readonly #overflow = (unsent: number): void => {
    const { writeBufferHardLimit, writeStallTimeout } = this.#host.options;
    const error = new SockservError(
      ErrorCodes.WRITE_BUFFER_OVERFLOW,
      `client is not reading: ${unsent} unsent bytes exceed writeBufferHardLimit (${writeBufferHardLimit}) and none reached the kernel for writeStallTimeout (${writeStallTimeout} ms)`,
    );
    this.#host.logger.warn(
      { code: error.code, client: this.clientAddress.join(':'), unsentBytes: unsent, writeStallTimeout },
      'disconnecting a client that does not read',
    );
    this.destroy();
  };

  /**
   * A slice of our replies reached the kernel: hand over the next at once (the kernel has room
   * now; waiting for the write set would leave it idle for a loop turn), resume reading, end.
   * It writes from a write callback, so what ends the chain matters: a flush writes only while
   * the socket holds less than writeHighWaterMark and something is queued, so each callback that
   * writes takes bytes off a finite queue, and a slice the kernel cannot take at once calls back
   * from the event loop; a destroyed socket is not written to, and its callbacks carry an error
   * (SocketWriter never calls this then).
   */
  readonly #written = (): void => {
    if (this.#phase !== 'open' && this.#phase !== 'failing') return;
    if (this.#writer.queuedBytes > 0 || this.#paused || this.#phase === 'failing') this.flushOutput();
  };

  /** Ends our side once everything owed to the peer has been handed to the socket. */
  #maybeEnd(): void {
    if (this.#phase === 'ended' || this.#phase === 'cut' || this.#phase === 'closed') return;
    if (this.#phase === 'failing') {
      if (this.#writer.queuedBytes === 0) this.#end();
      return;
    }
    const finishing = (this.#readEnded || this.#draining || this.#protocolError !== null) && this.#framesExhausted;
    if (!finishing || this.#order.inFlight > 0) return;
    if (this.#protocolError !== null && !this.#protocolErrorSent) {
      this.#protocolErrorSent = true;
      const reply = this.#errorReply(this.#protocolError);
      if (reply !== null && this.#phase === 'open') this.#queueReply(reply);
      if (this.#phase !== 'open') {
        if (this.#writer.queuedBytes === 0) this.#end();
        return;
      }
    }
    if (this.#writer.queuedBytes === 0) this.#end();
  }

  /** Our last reply is queued: the server ends the connection (a lingering close, by default). */
  #end(): void {
    this.#phase = 'ended';
    const host = this.#host;
    host.hooks.run('shutdownRequest', this.clientAddress, () => host.shutdownRequest(this.socket), () => this.socket.destroy(), undefined);
  }

  #pauseReading(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.socket.pause();
  }

  #resumeReading(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.socket.resume();
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#host.counters.bytesIn += chunk.length;
    if (this.#phase !== 'open' || this.#protocolError !== null) return;
    try {
      this.#framer.push(chunk);
    } catch (err) {
      this.#host.hooks.failed('Framer.push', this.clientAddress, err, this.#failed);
      return;
    }
    this.#framesExhausted = false;
    this.pump();
    if (!this.#isGone()) this.#host.memory.note(this);
  };

  readonly #onEnd = (): void => {
    if (this.#phase === 'ended' || this.#phase === 'cut' || this.#phase === 'closed') return;
    this.#readEnded = true;
    this.#framesExhausted = false;
    this.pump();
  };

  readonly #onError = (err: Error): void => {
    this.#host.logger.debug({ err, client: this.clientAddress.join(':') }, 'connection error');
    this.#cut(); // an errored socket is destroyed (net sockets auto-destroy)
  };

  readonly #onClose = (): void => {
    this.#phase = 'closed';
    this.#writer.clear();
    this.#host.memory.forget(this);
    this.#host.connectionClosed(this);
  };
}

function toBuffer(reply: string | Uint8Array | null): Buffer | null {
  return reply === null ? null : replyBytes(reply);
}
