// Owns the worker's outbound path: outcome records (REPLY / NO_REPLY / ERROR, and sessions'
// records) into the reply ring, big payloads by transfer, and when the main thread is woken.
//
// Invariants: one outcome per ref — the caller writes a request's outcome once (an async run's
// only if RunQueue.settled() said it was still ours). Records keep the order they were written
// in: when the ring is full they wait here, and everything written after waits behind them — the
// loop starts no new run while any wait (that is the backpressure), and retries on its own turn.
// The thread never blocks on the ring: async handlers and sessions keep running.
//
// Outcomes are published as each run ends and announced (the doorbell rung) before the next run
// starts and when the queue runs dry: a finished reply never waits behind a run, however cheap
// that run was predicted. Ringing costs a system call only when the main thread sleeps, and the
// first ring clears its flag (doorbell.ts), so a burst of cheap runs wakes it once.

import type { MessagePort } from 'node:worker_threads';
import { BIG, Ctl } from '../src/dispatch/channel-protocol.js';
import { TO_MAIN, ring } from '../src/dispatch/doorbell.js';
import { Fifo } from '../src/dispatch/fifo.js';
import type { RingWriter } from '../src/dispatch/ring.js';

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
  /** Payloads above this take the transfer path (the channel's size, from its control words). */
  readonly #maxRecordBytes: number;
  /** Outcomes published since the main thread was last rung. */
  #unannounced = false;

  constructor(ring: RingWriter, ctl: Int32Array, port: MessagePort) {
    this.#ring = ring;
    this.#ctl = ctl;
    this.#port = port;
    this.#maxRecordBytes = Atomics.load(ctl, Ctl.MAX_RECORD);
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

  /** Publishes what was written, without waking: if this thread dies now, the main thread still finds it. */
  publish(): void {
    if (this.#ring.publish()) this.#unannounced = true;
  }

  /** Publishes and wakes the main thread if it sleeps. */
  announce(): void {
    this.#ring.publish();
    this.#unannounced = false;
    ring(this.#ctl, TO_MAIN);
  }

  /** Outcomes written or published and not announced yet. */
  get unannounced(): boolean {
    return this.#unannounced || this.#ring.pending;
  }

  #write(kind: number, ref: number, bytes: Uint8Array | null, micros: number): boolean {
    if (bytes === null || bytes.byteLength <= this.#maxRecordBytes) return this.#ring.write(kind, ref, micros, bytes);
    if (!this.#ring.write(kind | BIG, ref, micros, null)) return false;
    // Posted when its record is written, not before: the main thread takes port messages in the order of BIG records.
    const copy = new ArrayBuffer(bytes.byteLength);
    new Uint8Array(copy).set(bytes);
    this.#port.postMessage(copy, [copy]);
    return true;
  }
}
