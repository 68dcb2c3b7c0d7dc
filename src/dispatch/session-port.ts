// Owns how a session's messages travel without a MessageChannel per connection. A session (a
// StreamRequestHandler) talks to its connection through a SessionPort — the few MessagePort
// methods it uses — and this file gives two cheap ones:
//   - LocalPorts: both ends on one thread (inline servers): a message is handed over in a
//     microtask, in order, with no copy and no structured clone;
//   - ChannelSessionEnd and the channel codec: a message as a record of a worker channel's rings
//     (pooled servers), so thousands of sessions share their worker's two rings instead of owning
//     ports and tasks.
// A message is { t, ...small fields } and, for bytes, `b` (an ArrayBuffer): bytes travel raw in a
// SESSION_DATA record, anything else as JSON in a SESSION_CTRL record.

import { type MessagePort, receiveMessageOnPort } from 'node:worker_threads';
import type { SessionPort } from '../session/protocol.js';
import { BIG } from './channel-protocol.js';
import type { RingReader } from './ring.js';

export type { SessionPort };

type Listener = (message: unknown) => void;

/** One end of an in-thread pair. */
class LocalPort implements SessionPort {
  peer: LocalPort | null = null;
  #listener: Listener | null = null;
  #closed = false;

  postMessage(message: unknown): void {
    const peer = this.peer;
    if (this.#closed || peer === null) return;
    queueMicrotask(() => peer.#deliver(message));
  }

  on(_event: 'message', listener: (message: never) => void): this {
    this.#listener = listener as Listener;
    return this;
  }

  unref(): void {}

  /** Like MessagePort.close(): both ends stop delivering. */
  close(): void {
    this.#closed = true;
    if (this.peer) this.peer.#closed = true;
  }

  #deliver(message: unknown): void {
    if (!this.#closed) this.#listener?.(message);
  }
}

/** What a ChannelSessionEnd needs of the worker channel carrying it (worker-channel.ts). */
export interface SessionCarrier {
  sendSession(id: number, message: { t: string; b?: ArrayBuffer }): void;
  forgetSession(id: number): void;
}

/**
 * The main thread's end of a session carried by a channel: what SessionConnection posts becomes a
 * record for the worker; what the worker's session posts arrives here. `done` settles when the
 * handler has returned ('end'), or fails when its worker died.
 */
export class ChannelSessionEnd implements SessionPort {
  readonly id: number;
  readonly done: Promise<void>;
  readonly #channel: SessionCarrier;
  #listener: ((message: unknown) => void) | null = null;
  #resolve!: () => void;
  #reject!: (error: unknown) => void;
  #closed = false;

  constructor(channel: SessionCarrier, id: number) {
    this.#channel = channel;
    this.id = id;
    this.done = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  postMessage(message: unknown): void {
    if (!this.#closed) this.#channel.sendSession(this.id, message as { t: string; b?: ArrayBuffer });
  }

  on(_event: 'message', listener: (message: never) => void): this {
    this.#listener = listener as (message: unknown) => void;
    return this;
  }

  unref(): void {}

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#channel.forgetSession(this.id);
  }

  receive(message: unknown): void {
    if (!this.#closed) this.#listener?.(message);
    if ((message as { t: string }).t === 'end') this.#resolve();
  }

  /** The worker carrying this session died. */
  fail(error: unknown): void {
    this.#closed = true;
    this.#reject(error);
  }
}

/** Two connected in-thread ports: what one posts, the other receives, in order. */
export function localPorts(): [SessionPort, SessionPort] {
  const a = new LocalPort();
  const b = new LocalPort();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** A session message as a ring record: its kind (SESSION_DATA or SESSION_CTRL, see channel-layout) and payload. */
export function encodeSessionMessage(message: { t: string; b?: ArrayBuffer }): { data: boolean; payload: Uint8Array } {
  if (message.t === 'data' && message.b instanceof ArrayBuffer) return { data: true, payload: new Uint8Array(message.b) };
  return { data: false, payload: Buffer.from(JSON.stringify(message)) };
}

/** The message of the SESSION_DATA (`data`) or SESSION_CTRL record `reader` is on; a BIG one's bytes are the next message on `port`. */
export function readSessionMessage(reader: RingReader, data: boolean, port: MessagePort): unknown {
  if ((reader.kind & BIG) === 0) return decodeSessionMessage(data, reader.bytes, reader.start, reader.length);
  const received = receiveMessageOnPort(port);
  const bytes = received ? Buffer.from(received.message as ArrayBuffer) : Buffer.alloc(0);
  return decodeSessionMessage(data, bytes, 0, bytes.length);
}

/** The message a record carries; `bytes` is copied for SESSION_DATA (the ring's bytes are reused). */
function decodeSessionMessage(data: boolean, bytes: Buffer, start: number, length: number): unknown {
  if (data) {
    const b = new ArrayBuffer(length);
    bytes.copy(new Uint8Array(b), 0, start, start + length);
    return { t: 'data', b };
  }
  return JSON.parse(bytes.toString('utf8', start, start + length));
}
