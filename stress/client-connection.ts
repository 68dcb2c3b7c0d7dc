// Owns one load connection: connecting (and reconnecting), writing requests in batches, framing
// the replies and matching each to the oldest outstanding request (replies are FIFO), and turning
// socket trouble into per-request outcomes. The hot path is one 'data' event: one clock read, the
// framer's indexOf loop, one histogram record per reply, then one write to refill the pipeline.
// There are no per-request timers or promises: the run sweeps timeouts with expire().
//
// In one-shot mode (`--new-connection`) the connection is a slot instead: sending a request opens
// a new socket and writes the request at once (net.Socket queues it until connected), so the
// request's latency includes the connect; its reply closes the socket and frees the slot for the
// next. The load patterns drive both modes alike — `free` is what differs.

import { connect, type Socket } from 'node:net';
import { classifyError } from './error-kinds.js';
import type { RequestSender } from './load-pattern.js';
import type { ErrorKind, StressFraming } from './options.js';
import type { Recorder } from './recorder.js';
import { createReplyFramer, type ReplyFramer } from './reply-framer.js';
import type { RequestSchedule } from './request-schedule.js';
import { SendTimes } from './send-times.js';

/** What a connection reports to the run that owns it. */
export interface ConnectionOwner {
  readonly recorder: Recorder;
  /** The connection is established and may send. */
  opened(connection: ClientConnection, now: number): void;
  /** Replies came back and freed slots (one-shot: the slot is free for a new connection). */
  fill(connection: ClientConnection, now: number): void;
  /**
   * The socket is gone. `wasOpen` is false when the connection attempt itself failed. One-shot:
   * called only when the socket is lost before its reply; the slot is free again when `wasOpen`.
   */
  closed(connection: ClientConnection, wasOpen: boolean, now: number): void;
}

export interface ConnectionConfig {
  host: string;
  port: number;
  framing: StressFraming;
  /** What to send, in which order; shared by every connection of the run. */
  schedule: RequestSchedule;
  /** Most requests outstanding at once. */
  pipeline: number;
  expectReply: ((reply: Buffer, request: Buffer) => boolean) | undefined;
  /** One request per connection (pipeline 1). */
  oneShot: boolean;
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
    const payloads = config.schedule.payloads;
    const sizes = new Set(payloads.map((payload) => payload.length));
    const replyBytes = sizes.size === 1 ? payloads[0]!.length : () => payloads[this.#times.length > 0 ? this.#times.oldestKind() : 0]!.length;
    this.#framer = createReplyFramer(config.framing, replyBytes, config.expectReply !== undefined, this.#onReply);
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

  /** Can still send, now or later: open or connecting; one-shot, also an idle slot. */
  get alive(): boolean {
    const state = this.#state;
    return state === 'open' || state === 'connecting' || (this.#config.oneShot && state === 'idle');
  }

  get free(): number {
    if (this.#config.oneShot) return this.#state === 'idle' ? 1 : 0;
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
      if (!this.#config.oneShot) this.#owner.opened(this, performance.now());
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
    const times = this.#times;
    const schedule = this.#config.schedule;
    const wireBytes = schedule.wireBytes;
    const measureStart = this.#recorder.measureStart;
    const start = schedule.claim(count);
    let measuredBytes = 0;
    for (let j = 0; j < count; j++) {
      const latencyFrom = base + (firstIndex + j) * interval;
      const kind = schedule.kindAt(start + j);
      if (latencyFrom >= measureStart) measuredBytes += wireBytes[kind]!;
      times.push(latencyFrom, now, kind);
    }
    this.#recorder.sent(measuredBytes);
    if (this.#config.oneShot) this.connect(now);
    schedule.write(this.#socket!, start, count);
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
      // A reply too large to keep for expectReply, or bytes that are not RESP: the connection is given up.
      this.#onClose('badReply', now);
      return;
    }
    if (this.#state !== 'open' || this.#times.length >= this.#times.capacity) return;
    if (this.#config.oneShot) this.#endShot();
    this.#owner.fill(this, now);
  }

  /** One-shot: the reply is in, so the socket is closed by the client and the slot is free. */
  #endShot(): void {
    const socket = this.#socket;
    this.#socket = undefined;
    this.#state = 'idle';
    socket?.destroy();
  }

  #onReply = (reply: Buffer): void => {
    const recorder = this.#recorder;
    if (this.#times.length === 0) {
      // More replies than requests: the server is not answering one reply per request.
      recorder.requestError('badReply', this.#now);
      return;
    }
    const kind = this.#times.oldestKind();
    const latencyFrom = this.#times.shift();
    if (this.#config.expectReply !== undefined && !this.#replyIsGood(reply, kind)) {
      recorder.requestError('badReply', latencyFrom, kind);
    } else {
      recorder.reply(latencyFrom, this.#now, kind);
    }
  };

  /** expectReply's verdict on a reply to a request of `kind`; a check that throws rejects the reply. */
  #replyIsGood(reply: Buffer, kind: number): boolean {
    try {
      return Boolean(this.#config.expectReply!(reply, this.#config.schedule.payloads[kind]!));
    } catch {
      return false;
    }
  }

  /** The socket ended (or is being given up on, with `kind`): settle what is outstanding, tell the owner. */
  #onClose(kind: ErrorKind | undefined, now: number): void {
    const wasOpen = this.#state === 'open';
    if (this.#state === 'closed' || this.#state === 'idle') return;
    const oneShot = this.#config.oneShot;
    // A one-shot slot whose socket broke after connecting is free again; a failed attempt retires it.
    this.#state = oneShot && wasOpen ? 'idle' : 'closed';
    const socket = this.#socket;
    this.#socket = undefined;
    socket?.destroy();
    const recorder = this.#recorder;
    recorder.advance(now);
    if (wasOpen || oneShot) {
      // Closed by the peer with requests outstanding counts as a reset. One-shot: the request
      // was sent with the connect, so a failed attempt fails that request.
      const failure = kind ?? (wasOpen ? 'reset' : 'other');
      this.#times.drain((latencyFrom, requestKind) => recorder.requestError(failure, latencyFrom, requestKind));
    } else {
      recorder.connectionError(kind ?? 'other', now);
    }
    this.#owner.closed(this, wasOpen, now);
  }
}
