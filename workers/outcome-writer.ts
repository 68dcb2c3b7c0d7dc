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
// starts and when the queue runs dry. Ringing costs a system call only when the main thread
// sleeps, and the first ring clears its flag (doorbell.ts), so a burst of cheap runs wakes it once.
//
// Wake coalescing (interrupt moderation, as a NIC's NAPI): under saturation a sleeping main thread
// woken once per heavy reply spends more of a core on wakes (a context switch each, two with the
// client's next request) than on the replies. So the wake for heavy outcomes may be held over
// the next run — they are published all the same: a main thread awake for anything else delivers
// them — only when all of these hold (mayHoldOver):
//   - none of the outcomes waiting for the wake is a cheap (URGENT) request's: those wake at once,
//     so a cheap reply never waits behind a run, whatever that run was predicted to cost;
//   - the next run is SHORT (predicted by the main thread under SHORT_RUN_MS for its command);
//   - at least HOLD_QUEUED more requests wait behind it, so the main thread, woken later, still
//     refills this worker before it runs dry (the wake is the refill signal too);
//   - the oldest outcome waiting has waited less than HOLD_MS.
// A heavy reply so waits at most HOLD_MS plus one SHORT run, and only while its worker is
// saturated. A run that overruns its prediction would delay it by as much, so the main thread
// bounds that side: while a channel carries enough for a hold, it reads the rings itself every
// HOLD_CHECK_MS (pool-dispatcher.ts). The HOLDING word tells the main thread's safety net that
// a wait which times out and finds outcomes met a hold, not a lost wake.

import type { MessagePort } from 'node:worker_threads';
import { BIG, Ctl, HOLD_QUEUED } from '../src/dispatch/channel-protocol.js';
import { TO_MAIN, ring } from '../src/dispatch/doorbell.js';
import { Fifo } from '../src/dispatch/fifo.js';
import type { RingWriter } from '../src/dispatch/ring.js';

/** The longest a heavy outcome's wake is held (ms), plus at most one SHORT run. */
const HOLD_MS = 2;

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
  /** performance.now() when the oldest run outcome not yet announced was written; -1: none. */
  #heldSince = -1;
  /** A cheap (URGENT) request's outcome waits for the wake: it may not be held. */
  #urgentHeld = false;

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

  /** publish() after a run whose outcome was just written, at `now`; `urgent`: the request was predicted cheap. */
  publishRun(urgent: boolean, now: number): void {
    this.publish();
    if (this.#heldSince < 0) this.#heldSince = now;
    if (urgent) this.#urgentHeld = true;
  }

  /** Whether the wake for what is unannounced may wait over the next run (the rules at the top). */
  mayHoldOver(nextShort: boolean, queuedBehind: number, now: number): boolean {
    const hold = nextShort && !this.#urgentHeld && this.#heldSince >= 0 && queuedBehind >= HOLD_QUEUED && now - this.#heldSince < HOLD_MS;
    if (hold) Atomics.store(this.#ctl, Ctl.HOLDING, 1);
    return hold;
  }

  /** Publishes and wakes the main thread if it sleeps. */
  announce(): void {
    this.#ring.publish();
    this.#unannounced = false;
    this.#heldSince = -1;
    this.#urgentHeld = false;
    // Ring first, then clear HOLDING: a main-thread wait that times out in between sees the bell
    // moved or the hold still set, never a silent publish (doorbell.ts counts that as a lost wake).
    ring(this.#ctl, TO_MAIN);
    Atomics.store(this.#ctl, Ctl.HOLDING, 0);
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
