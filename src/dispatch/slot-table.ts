// Owns the main thread's table of the requests a channel carries: slot allocation, each slot's
// generation, and the shared `states` word per slot (channel-protocol.ts).
//
// Invariant: a slot is freed once, by the first outcome carrying its current ref (slot and
// generation) — or by takeAll() after the worker is gone. An outcome with a stale ref finds
// nothing. The main thread writes −ref (queued) before a request is published; only the worker
// writes the ref there (STARTED), so `started(entry)` is true exactly when the worker began that
// request; revoke() takes back one not started (compare-exchange, so exactly one side wins).

import { REVOKED, nextGeneration, queuedState, refOf, slotOf } from './channel-protocol.js';

/** What a channel knows of a request it carries. */
export interface SlotEntry<C> {
  conn: C;
  seq: number;
  request: Buffer;
  /** Its slot and generation while a channel carries it (0 otherwise). */
  ref: number;
  /** Failed by the watchdog while its async handler still awaited: its late outcome is only an acknowledgement. */
  abandoned: boolean;
  /** The request's cost class key (its command), for learning what requests cost. */
  key: number;
  /** Predicted handler milliseconds when it was sent, and whether that made it urgent (cheap). */
  est: number;
  urgent: boolean;
  /** Sent as a suspect (scheduler.ts, the bulkhead): its kind killed a worker recently; and in which epoch of the suspects (suspects.ts). */
  suspect: boolean;
  suspectEpoch?: number;
  /** Already run once on a worker that died (idempotent handlers get one more run). */
  retried?: boolean;
}

export class SlotTable<C> {
  readonly #states: Int32Array;
  readonly #startedAt: Float64Array;
  readonly #entries: Array<SlotEntry<C> | undefined>;
  readonly #generations: Uint32Array;
  readonly #free: number[];
  #used = 0;

  constructor(states: SharedArrayBuffer, startedAt: SharedArrayBuffer, slots: number) {
    this.#states = new Int32Array(states);
    this.#startedAt = new Float64Array(startedAt);
    this.#entries = new Array(slots);
    this.#generations = new Uint32Array(slots);
    this.#free = Array.from({ length: slots }, (_, i) => slots - 1 - i);
  }

  get used(): number {
    return this.#used;
  }

  get full(): boolean {
    return this.#free.length === 0;
  }

  /** Gives `entry` a slot (its next generation) and marks it queued; returns its ref, or 0 when full. */
  take(entry: SlotEntry<C>): number {
    const slot = this.#free.pop();
    if (slot === undefined) return 0;
    const generation = (this.#generations[slot] = nextGeneration(this.#generations[slot]!));
    const ref = refOf(slot, generation);
    entry.ref = ref;
    this.#entries[slot] = entry;
    Atomics.store(this.#states, slot, queuedState(ref));
    this.#used++;
    return ref;
  }

  /** The entry `ref` names, if it is still the slot's current request. */
  entry(ref: number): SlotEntry<C> | undefined {
    const entry = this.#entries[slotOf(ref)];
    return entry !== undefined && entry.ref === ref ? entry : undefined;
  }

  /** Frees the slot of `ref` if it still holds that request; returns the entry, or undefined (stale). */
  free(ref: number): SlotEntry<C> | undefined {
    const slot = slotOf(ref);
    const entry = this.#entries[slot];
    if (entry === undefined || entry.ref !== ref) return undefined;
    this.#entries[slot] = undefined;
    this.#free.push(slot);
    this.#used--;
    return entry;
  }

  /**
   * Takes back a request the worker has not started: true (and its slot is freed) if it never
   * will; false if the worker started it first.
   */
  revoke(entry: SlotEntry<C>): boolean {
    const slot = slotOf(entry.ref);
    if (Atomics.compareExchange(this.#states, slot, queuedState(entry.ref), REVOKED) !== queuedState(entry.ref)) return false;
    this.free(entry.ref);
    return true;
  }

  /** Whether this entry's request waits to start (neither started nor revoked). */
  waiting(entry: SlotEntry<C>): boolean {
    return Atomics.load(this.#states, slotOf(entry.ref)) === queuedState(entry.ref);
  }

  /** Whether the worker has started this entry's request. */
  started(entry: SlotEntry<C>): boolean {
    return Atomics.load(this.#states, slotOf(entry.ref)) === entry.ref;
  }

  /** Epoch ms at which the worker started this entry's request (valid once started()). */
  startedAt(entry: SlotEntry<C>): number {
    return this.#startedAt[slotOf(entry.ref)]!;
  }

  /** Every entry outstanding now (for a scan; the table is not changed). */
  *outstanding(): Generator<SlotEntry<C>> {
    // Stops once it has met every slot in use: slots are reused last-freed first, so those in use
    // sit low in the table, and a scan (steal, the watchdog) costs what is outstanding, not 8,192.
    const entries = this.#entries;
    let left = this.#used;
    for (let slot = 0; left > 0 && slot < entries.length; slot++) {
      const entry = entries[slot];
      if (entry === undefined) continue;
      left--;
      yield entry;
    }
  }

  /** Frees every slot (the worker is gone); returns what they held, split by whether it started. */
  takeAll(): { started: Array<SlotEntry<C>>; queued: Array<SlotEntry<C>> } {
    const started: Array<SlotEntry<C>> = [];
    const queued: Array<SlotEntry<C>> = [];
    for (const entry of [...this.outstanding()]) {
      (this.started(entry) ? started : queued).push(entry);
      this.free(entry.ref);
    }
    return { started, queued };
  }
}
