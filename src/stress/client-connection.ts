// Owns one load connection: connecting (and reconnecting), writing requests in batches, framing
// the replies and matching each to the oldest outstanding request (replies are FIFO), and turning
// socket trouble into per-request outcomes. The hot path is one 'data' event: one clock read, the
// framer's indexOf loop, one histogram record per reply, then one write to refill the pipeline.
// There are no per-request timers or promises: the run sweeps timeouts with expire().

import { connect, type Socket } from 'node:net';
import { classifyError } from './error-kinds.js';
import type { RequestSender } from './load-pattern.js';
import type { ErrorKind, StressFraming } from './options.js';
import type { Recorder } from './recorder.js';
import { createReplyFramer, type ReplyFramer } from './reply-framer.js';
import type { RequestBatch } from './request-wire.js';
import { SendTimes } from './send-times.js';

/** What a connection reports to the run that owns it. */
export interface ConnectionOwner {
  readonly recorder: Recorder;
  /** The connection is established and may send. */
  opened(connection: ClientConnection, now: number): void;
  /** Replies came back and freed slots. */
  fill(connection: ClientConnection, now: number): void;
  /** The socket is gone. `wasOpen` is false when the connection attempt itself failed. */
  closed(connection: ClientConnection, wasOpen: boolean, now: number): void;
}

export interface ConnectionConfig {
  host: string;
  port: number;
  framing: StressFraming;
  /** The request body, for expectReply and the raw framing's reply size. */
  payload: Buffer;
  batch: RequestBatch;
  /** Most requests outstanding at once. */
  pipeline: number;
  expectReply: ((reply: Buffer, request: Buffer) => boolean) | undefined;
}

type State = 'idle' | 'connecting' | 'open' | 'closed';

export class ClientConnection implements RequestSender {
  readonly #config: ConnectionConfig;
  readonly #owner: ConnectionOwner;
  readonly #recorder: Recorder;
  readonly #times: SendTimes;
  readonly #framer: ReplyFramer;
  #socket: Socket | undefined;
  #state: State = 'idle';
  /** When the current connection attempt started (for the connect timeout). */
  #connectStartedAt = 0;
  /** The first error the current socket reported; its outstanding requests fail with this kind. */
  #errorKind: ErrorKind | undefined;
  /** The clock reading of the chunk being framed, shared by all replies in it. */
  #now = 0;

  constructor(config: ConnectionConfig, owner: ConnectionOwner) {
    this.#config = config;
    this.#owner = owner;
    this.#recorder = owner.recorder;
    this.#times = new SendTimes(config.pipeline);
    this.#framer = createReplyFramer(config.framing, config.payload.length, config.expectReply !== undefined, this.#onReply);
  }

  get isOpen(): boolean {
    return this.#state === 'open';
  }

  get isConnecting(): boolean {
    return this.#state === 'connecting';
  }

  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.#times.length;
  }

  get free(): number {
    return this.#state === 'open' ? this.#times.capacity - this.#times.length : 0;
  }

  /** Opens a new socket (the previous one, if any, must be closed). */
  connect(now: number): void {
    this.#state = 'connecting';
    this.#connectStartedAt = now;
    this.#errorKind = undefined;
    this.#framer.reset();
    const socket = connect({ host: this.#config.host, port: this.#config.port, noDelay: true });
    this.#socket = socket;
    // Events of a socket that was replaced are ignored.
    socket.on('connect', () => {
      if (socket !== this.#socket) return;
      this.#state = 'open';
      this.#owner.opened(this, performance.now());
    });
    socket.on('data', (chunk: Buffer) => {
      if (socket === this.#socket) this.#onData(chunk);
    });
    socket.on('error', (error: Error) => {
      if (socket === this.#socket) this.#errorKind ??= classifyError(error);
    });
    socket.on('close', () => {
      if (socket === this.#socket) this.#onClose(this.#errorKind, performance.now());
    });
  }

  send(count: number, now: number, base: number, firstIndex: number, interval: number): void {
    const socket = this.#socket!;
    const times = this.#times;
    const measureStart = this.#recorder.measureStart;
    let measured = 0;
    for (let j = 0; j < count; j++) {
      const latencyFrom = base + (firstIndex + j) * interval;
      if (latencyFrom >= measureStart) measured++;
      times.push(latencyFrom, now);
    }
    const batch = this.#config.batch;
    this.#recorder.sent(measured * batch.requestBytes);
    if (count <= batch.copies) {
      socket.write(batch.view(count));
      return;
    }
    socket.cork();
    for (let left = count; left > 0; left -= batch.copies) socket.write(batch.view(Math.min(left, batch.copies)));
    socket.uncork();
  }

  /**
   * Enforces the timeout: a connect that takes too long fails the attempt; an oldest request
   * unanswered for too long fails every outstanding request (later replies could not be matched)
   * and the connection is replaced.
   */
  expire(now: number, timeoutMs: number): void {
    if (this.#state === 'connecting' && now - this.#connectStartedAt >= timeoutMs) {
      this.#onClose('timeout', now);
    } else if (this.#state === 'open' && this.#times.length > 0 && now - this.#times.oldestSentAt() >= timeoutMs) {
      this.#onClose('timeout', now);
    }
  }

  /** Closes without counting anything (the run is over). */
  destroy(): void {
    this.#state = 'closed';
    const socket = this.#socket;
    this.#socket = undefined;
    socket?.destroy();
  }

  #onData(chunk: Buffer): void {
    const now = performance.now();
    this.#now = now;
    const recorder = this.#recorder;
    recorder.advance(now);
    recorder.received(chunk.length, now);
    try {
      this.#framer.push(chunk);
    } catch {
      // Only a reply too large to keep for expectReply gets here: its connection is given up.
      this.#onClose('badReply', now);
      return;
    }
    if (this.#state === 'open' && this.#times.length < this.#times.capacity) this.#owner.fill(this, now);
  }

  #onReply = (reply: Buffer): void => {
    const recorder = this.#recorder;
    if (this.#times.length === 0) {
      // More replies than requests: the server is not answering one reply per request.
      recorder.requestError('badReply', this.#now);
      return;
    }
    const latencyFrom = this.#times.shift();
    if (this.#config.expectReply !== undefined && !this.#replyIsGood(reply)) {
      recorder.requestError('badReply', latencyFrom);
    } else {
      recorder.reply(latencyFrom, this.#now);
    }
  };

  /** expectReply's verdict; a check that throws rejects the reply. */
  #replyIsGood(reply: Buffer): boolean {
    try {
      return Boolean(this.#config.expectReply!(reply, this.#config.payload));
    } catch {
      return false;
    }
  }

  /** The socket ended (or is being given up on, with `kind`): settle what is outstanding, tell the owner. */
  #onClose(kind: ErrorKind | undefined, now: number): void {
    const wasOpen = this.#state === 'open';
    if (this.#state === 'closed' || this.#state === 'idle') return;
    this.#state = 'closed';
    const socket = this.#socket;
    this.#socket = undefined;
    socket?.destroy();
    const recorder = this.#recorder;
    recorder.advance(now);
    if (wasOpen) {
      // Closed by the peer with requests outstanding counts as a reset.
      const failure = kind ?? 'reset';
      this.#times.drain((latencyFrom) => recorder.requestError(failure, latencyFrom));
    } else {
      recorder.connectionError(kind ?? 'other', now);
    }
    this.#owner.closed(this, wasOpen, now);
  }
}
