// Owns the wire format of one pool task: many requests packed into one buffer going to a worker,
// and their replies packed into one buffer coming back. One task per batch (not per request) is
// what makes the pool cheap: piscina's ~50 µs of main-thread cost is paid once per batch, and
// the two buffers are transferred, not cloned.

import type { ErrorInfo } from '../errors.js';
import type { ClientAddress, ServerInfo } from '../handler.js';
import type { HandlerRef } from '../handler-module.js';

export interface BatchTask {
  handler: HandlerRef;
  server: ServerInfo;
  /** All request bytes, back to back. */
  data: Uint8Array;
  /** Two entries per request: the end offset of its bytes in `data`, and its index in `peers`. */
  meta: Uint32Array;
  /** The distinct client addresses of this batch. */
  peers: ClientAddress[];
  /** Where requests still awaiting when the batch returns report later (see LateReply). */
  late: { channel: string; batch: number };
}

/**
 * The outcome of a request whose async handler was still awaiting when its batch returned: the
 * batch (and with it the worker) is not held hostage by a slow or stuck handler; the outcome
 * follows on a BroadcastChannel.
 */
export interface LateReply {
  batch: number;
  index: number;
  reply: Uint8Array | null;
  error: ErrorInfo | null;
}

/** Reply status codes in BatchResult.ends: a value >= 0 is the reply's end offset. */
export const NO_REPLY = -1;
export const FAILED = -2;
/** Still awaiting when the batch returned: the outcome comes as a LateReply. */
export const LATE = -3;

export interface BatchResult {
  /** All reply bytes, back to back. */
  data: Uint8Array;
  /** Per request: end offset of its reply in `data`, NO_REPLY, FAILED, or LATE. */
  ends: Int32Array;
  /** One entry per FAILED request, in request order. */
  errors: ErrorInfo[];
  /** Milliseconds of synchronous (CPU) work the batch took in the worker; drives the adaptive batch size. */
  elapsedMs: number;
}

/** Packs requests on the main thread. */
export class BatchBuilder {
  readonly #frames: Buffer[] = [];
  readonly #peers: ClientAddress[] = [];
  readonly #peerIndex = new Map<ClientAddress, number>();
  readonly #peerOf: number[] = [];
  #bytes = 0;

  get count(): number {
    return this.#frames.length;
  }

  get bytes(): number {
    return this.#bytes;
  }

  add(frame: Buffer, peer: ClientAddress): void {
    let index = this.#peerIndex.get(peer);
    if (index === undefined) {
      index = this.#peers.length;
      this.#peers.push(peer);
      this.#peerIndex.set(peer, index);
    }
    this.#frames.push(frame);
    this.#peerOf.push(index);
    this.#bytes += frame.length;
  }

  build(
    handler: HandlerRef,
    server: ServerInfo,
    late: { channel: string; batch: number },
  ): { task: BatchTask; transferList: ArrayBuffer[] } {
    // allocUnsafeSlow: a pooled Buffer shares its ArrayBuffer and could not be transferred.
    const data = Buffer.allocUnsafeSlow(this.#bytes);
    const meta = new Uint32Array(this.#frames.length * 2);
    let offset = 0;
    for (let i = 0; i < this.#frames.length; i++) {
      const frame = this.#frames[i]!;
      frame.copy(data, offset);
      offset += frame.length;
      meta[2 * i] = offset;
      meta[2 * i + 1] = this.#peerOf[i]!;
    }
    return {
      task: { handler, server, data, meta, peers: this.#peers, late },
      transferList: [data.buffer as ArrayBuffer, meta.buffer],
    };
  }
}

/** Packs replies in the worker. */
export class ReplyPacker {
  readonly #replies: Array<Buffer | null | undefined>;
  readonly #errors: Array<ErrorInfo | undefined>;
  /** 1 once the request's outcome is known. */
  readonly #settled: Uint8Array;

  constructor(count: number) {
    this.#replies = new Array(count);
    this.#errors = new Array(count);
    this.#settled = new Uint8Array(count);
  }

  reply(index: number, reply: Buffer | null): void {
    this.#replies[index] = reply;
    this.#settled[index] = 1;
  }

  fail(index: number, error: ErrorInfo): void {
    this.#errors[index] = error;
    this.#settled[index] = 1;
  }

  settled(index: number): boolean {
    return this.#settled[index] === 1;
  }

  build(elapsedMs: number): BatchResult {
    const count = this.#replies.length;
    let total = 0;
    for (const reply of this.#replies) if (reply) total += reply.length;
    const data = Buffer.allocUnsafeSlow(total);
    const ends = new Int32Array(count);
    const errors: ErrorInfo[] = [];
    let offset = 0;
    for (let i = 0; i < count; i++) {
      if (this.#settled[i] === 0) {
        ends[i] = LATE;
        continue;
      }
      const error = this.#errors[i];
      if (error !== undefined) {
        ends[i] = FAILED;
        errors.push(error);
        continue;
      }
      const reply = this.#replies[i];
      if (!reply) {
        ends[i] = NO_REPLY;
        continue;
      }
      reply.copy(data, offset);
      offset += reply.length;
      ends[i] = offset;
    }
    return { data, ends, errors, elapsedMs };
  }
}

/** Iterates the requests of a task inside the worker, as zero-copy views. */
export function requestAt(task: BatchTask, index: number): { request: Buffer; peer: ClientAddress } {
  const start = index === 0 ? 0 : task.meta[2 * index - 2]!;
  const end = task.meta[2 * index]!;
  return {
    request: Buffer.from(task.data.buffer, task.data.byteOffset + start, end - start),
    peer: task.peers[task.meta[2 * index + 1]!]!,
  };
}
