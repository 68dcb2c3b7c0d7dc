// Owns the worker's outbound path: outcome records (REPLY / NO_REPLY / ERROR, and sessions'
// records) into the reply ring, big payloads by transfer, and when the main thread is woken.
//
// Invariants: one outcome per ref — the caller writes a request's outcome once (an async run's
// only if RunQueue.settled() said it was still ours). Records keep the order they were written
// in: when the ring is full they wait here, and everything written after waits behind them — the
// loop starts no new run while any wait (that is the backpressure), and retries on its own turn.
// The thread never blocks on the ring: async handlers and sessions keep running.
//
// Waking the main thread costs both threads a system call, so outcomes are published at once but
// announced (the doorbell rung) only when it matters: before a run that is not predicted cheap (a
// reply never waits behind a slow handler), when the queue runs dry, and at most WAKE_AFTER_MS
// after the oldest unannounced one.

import type { MessagePort } from 'node:worker_threads';
import { BIG, CHANNEL_SIZES } from '../src/dispatch/channel-protocol.js';
import { TO_MAIN, ring } from '../src/dispatch/doorbell.js';
import { Fifo } from '../src/dispatch/fifo.js';
import type { RingWriter } from '../src/dispatch/ring.js';

/** Cheap outcomes are announced together, but never held longer than this. */
const WAKE_AFTER_MS = 0.05;

interface Waiting {
  kind: number;
  ref: number;
  micros: number;
  bytes: Uint8Array | null;
}

export class OutcomeWriter {
  readonly #ring: RingWriter;
  readonly #ctl: Int32Array;
  readonly #port: MessagePort;
  readonly #waiting = new Fifo<Waiting>();
  /** performance.now() of the oldest outcome published without waking the main thread, or -1. */
  #unannouncedSince = -1;

  constructor(ring: RingWriter, ctl: Int32Array, port: MessagePort) {
    this.#ring = ring;
    this.#ctl = ctl;
    this.#port = port;
  }

  /** Records wait for room in the ring: start no run until flush() has written them. */
  get blocked(): boolean {
    return !this.#waiting.empty;
  }

  /** Appends a record (published by the next publish or announce). `micros` rides in the conn word. */
  write(kind: number, ref: number, bytes: Uint8Array | null, micros: number): void {
    if (!this.#waiting.empty || !this.#write(kind, ref, bytes, micros)) this.#waiting.push({ kind, ref, micros, bytes });
  }

  /** Writes a record into the ring now, or nothing (false) when records wait or the ring has no room. */
  writeNow(kind: number, ref: number, bytes: Uint8Array | null, conn: number): boolean {
    return this.#waiting.empty && this.#write(kind, ref, bytes, conn);
  }

  /** Writes what waited, as far as the ring has room; true when nothing waits any more. */
  flush(): boolean {
    for (let next = this.#waiting.peek(); next !== undefined; next = this.#waiting.peek()) {
      if (!this.#write(next.kind, next.ref, next.bytes, next.micros)) break;
      this.#waiting.shift();
    }
    this.announce();
    return this.#waiting.empty;
  }

  /** Publishes without waking, unless the oldest unannounced outcome has waited WAKE_AFTER_MS. */
  publish(now: number): void {
    if (!this.#ring.publish()) return;
    if (this.#unannouncedSince < 0) this.#unannouncedSince = now;
    else if (now - this.#unannouncedSince > WAKE_AFTER_MS) this.announce();
  }

  /** Publishes and wakes the main thread if it sleeps. */
  announce(): void {
    this.#ring.publish();
    this.#unannouncedSince = -1;
    ring(this.#ctl, TO_MAIN);
  }

  /** Published outcomes not announced yet (before a long run they are). */
  get unannounced(): boolean {
    return this.#unannouncedSince >= 0 || this.#ring.pending;
  }

  #write(kind: number, ref: number, bytes: Uint8Array | null, micros: number): boolean {
    if (bytes === null || bytes.byteLength <= CHANNEL_SIZES.maxRecordBytes) return this.#ring.write(kind, ref, micros, bytes);
    if (!this.#ring.write(kind | BIG, ref, micros, null)) return false;
    // Posted when its record is written, not before: the main thread takes port messages in the order of BIG records.
    const copy = new ArrayBuffer(bytes.byteLength);
    new Uint8Array(copy).set(bytes);
    this.#port.postMessage(copy, [copy]);
    return true;
  }
}
