// Owns which request goes next, and its bytes. A run sends one or more kinds of request (a mix) in
// a fixed order: a smooth weighted round-robin over the kinds (weights reduced by their gcd), so
// `PING:99,HASH:1` sends one HASH in every 100 requests, spread out rather than bunched, and the
// first N requests of every run are the same N. The order is one cursor shared by all connections.
//
// The hot path allocates nothing per request: every kind is framed once, and the order is laid
// out as back-to-back framed requests in one buffer (the period repeated until it covers a
// pipeline, within MAX_BATCH_BYTES), so sending k requests is a write of one cached view — or a
// few corked writes when the k wrap around the end of the buffer.

import type { Socket } from 'node:net';
import { type StressFraming, encodeRequest } from './request-wire.js';

/** The laid-out order stops repeating at this size. */
const MAX_BATCH_BYTES = 256 * 1024;
/** Longest period (sum of the reduced weights) and largest laid-out period, in bytes. */
const MAX_PERIOD = 100_000;
const MAX_PERIOD_BYTES = 64 * 1024 * 1024;

export interface ScheduleKind {
  payload: Buffer;
  weight: number;
}

export class RequestSchedule {
  /** Each kind's payload (what expectReply is given as the request). */
  readonly payloads: readonly Buffer[];
  /** Each kind's framed size in bytes. */
  readonly wireBytes: readonly number[];
  /** Requests in one round of the order (the sum of the reduced weights). */
  readonly period: number;
  /** Kind of each laid-out request: the order, repeated. */
  readonly #kinds: Uint16Array;
  /** Byte offset of each laid-out request, and the buffer's length at the end. */
  readonly #offsets: Float64Array;
  readonly #buffer: Buffer;
  /** views[k]: the first k laid-out requests (the common case: one kind, cursor always 0). */
  readonly #views: Array<Buffer | undefined>;
  #cursor = 0;

  /** @param pipeline the most requests one send takes (the layout covers at least that many). */
  constructor(kinds: readonly ScheduleKind[], framing: StressFraming, pipeline: number) {
    if (kinds.length === 0 || kinds.length > 0xffff) throw new RangeError('stress: a schedule needs 1 to 65535 kinds');
    const framed = kinds.map((kind) => encodeRequest(kind.payload, framing));
    this.payloads = kinds.map((kind) => kind.payload);
    this.wireBytes = framed.map((request) => request.length);
    const order = weightedOrder(kinds.map((kind) => kind.weight));
    this.period = order.length;
    let periodBytes = 0;
    for (const kind of order) periodBytes += framed[kind]!.length;
    if (periodBytes > MAX_PERIOD_BYTES) {
      throw new RangeError(`stress: one round of the mix is ${periodBytes} bytes, over ${MAX_PERIOD_BYTES}: use smaller weights`);
    }
    const rounds = Math.max(1, Math.min(Math.ceil(pipeline / order.length), Math.floor(MAX_BATCH_BYTES / Math.max(1, periodBytes))));
    const slots = order.length * rounds;
    this.#kinds = new Uint16Array(slots);
    this.#offsets = new Float64Array(slots + 1);
    this.#buffer = Buffer.allocUnsafe(periodBytes * rounds);
    let at = 0;
    for (let i = 0; i < slots; i++) {
      const kind = order[i % order.length]!;
      this.#kinds[i] = kind;
      this.#offsets[i] = at;
      at += framed[kind]!.copy(this.#buffer, at);
    }
    this.#offsets[slots] = at;
    this.#views = new Array<Buffer | undefined>(slots + 1);
  }

  /** Takes the next `count` requests of the order; returns the first one's index (for kindAt and write). */
  claim(count: number): number {
    const start = this.#cursor;
    this.#cursor = (start + count) % this.period;
    return start;
  }

  /** The kind of request `index` of the order (any index >= 0). */
  kindAt(index: number): number {
    const kinds = this.#kinds;
    return index < kinds.length ? kinds[index]! : kinds[index % this.period]!;
  }

  /** Writes requests start .. start+count-1 (start < period) to `socket`. */
  write(socket: Socket, start: number, count: number): void {
    const slots = this.#kinds.length;
    if (start + count <= slots) {
      socket.write(this.#view(start, count));
      return;
    }
    socket.cork();
    let at = start;
    for (let left = count; left > 0; ) {
      const n = Math.min(left, slots - at);
      socket.write(this.#view(at, n));
      left -= n;
      at = 0; // slots is a whole number of periods: the order goes on from the buffer's start
    }
    socket.uncork();
  }

  #view(start: number, count: number): Buffer {
    if (start === 0) return (this.#views[count] ??= this.#buffer.subarray(0, this.#offsets[count]));
    return this.#buffer.subarray(this.#offsets[start], this.#offsets[start + count]);
  }
}

/**
 * One period of a smooth weighted round-robin (nginx's): each step every kind gains its weight,
 * the kind with the most (the first on ties) is chosen and loses the total. Weights are reduced by
 * their gcd first, so 990:10 has the period 100 of 99:1.
 */
export function weightedOrder(weights: readonly number[]): number[] {
  const divisor = weights.reduce((g, w) => gcd(g, w), 0);
  const reduced = weights.map((w) => w / divisor);
  const total = reduced.reduce((sum, w) => sum + w, 0);
  if (total > MAX_PERIOD) throw new RangeError(`stress: the mix's weights add up to ${total} after reducing, over ${MAX_PERIOD}`);
  const current = new Float64Array(reduced.length);
  const order: number[] = [];
  for (let step = 0; step < total; step++) {
    let best = 0;
    for (let k = 0; k < reduced.length; k++) {
      current[k]! += reduced[k]!;
      if (current[k]! > current[best]!) best = k;
    }
    current[best]! -= total;
    order.push(best);
  }
  return order;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}
