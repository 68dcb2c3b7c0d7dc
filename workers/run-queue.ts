// Owns what a worker's channel loop has read and not yet run: two queues — requests predicted
// cheap (URGENT) run before the rest — and, per connection, its order.
//
// Invariants:
//   - A connection has at most one ordered request running or awaiting. While an ordered
//     connection's async handler awaits, its later requests are held here (still QUEUED in shared
//     memory, so a death re-dispatches them), and they run first, in order, once it settles.
//   - A cheap request never overtakes an earlier request of its own connection.
//   - Cheap requests overtake the rest for at most NORMAL_WAIT_MS (aging): a request that has
//     waited that long runs before every cheap one that arrived after it. A steady stream of cheap
//     requests would otherwise starve it for as long as the stream lasts (an async handler's
//     request behind 30,000 cheap ones waited for all of them). It never runs before a cheap
//     request that arrived before it — those are older, of its connection or not — so order holds.
//   - Consumed entries are dropped at once (fifo.ts): a queue that never empties holds only what waits.

import type { ClientAddress } from '../src/handler.js';
import { Fifo } from '../src/dispatch/fifo.js';

/** A request read from the ring, waiting to run; `conn` is -1 when its connection needs no order. */
export interface Queued {
  ref: number;
  conn: number;
  request: Buffer;
  peer: ClientAddress;
  /** The connection's client id (its handler's `this.clientId`). */
  clientId: string;
  urgent: boolean;
  /** Predicted to run under SHORT_RUN_MS (channel-protocol.ts): a held wake may wait over it. */
  short: boolean;
  /**
   * Set by RunQueue.add: its arrival number on this queue, and — if queued in the non-cheap queue
   * — when it arrived (performance.now() in whole ms). Both are int32 and compared by wrapping
   * difference: they stay small integers (no boxed number per request) and never overflow.
   */
  n: number;
  at: number;
}

/** How long cheap requests may keep overtaking a request that is not (aging). */
export const NORMAL_WAIT_MS = 10;

export class RunQueue {
  readonly #urgent = new Fifo<Queued>();
  readonly #normal = new Fifo<Queued>();
  /** Held requests of connections whose async run settled: they go before anything else, in order. */
  readonly #resumed = new Fifo<Queued>();
  /** Per ordered connection: its requests in #normal, which its later cheap ones must not overtake. */
  readonly #normalPending = new Map<number, number>();
  /** Ordered connections with an async run awaiting, and the requests held behind it. */
  readonly #busy = new Map<number, Queued[]>();
  /** The async runs awaiting, by ref: the connection each holds (-1: none). */
  readonly #awaiting = new Map<number, number>();
  /** Entries in #normal of busy connections: next() sets them aside when it reaches them (kept as a count: O(1) per run). */
  #setAside = 0;
  /** Arrival numbers: entries are numbered as added, so their age order across the queues is known (int32, wrapping: only queued entries, a few thousand apart, are compared). */
  #arrivals = 0;

  /** Requests waiting to run (held ones excluded). */
  get size(): number {
    return this.#urgent.length + this.#normal.length + this.#resumed.length;
  }

  /** Of size, those that will run without waiting for an async run (a busy connection's are set aside when reached). */
  get runnable(): number {
    return this.size - this.#setAside;
  }

  /** `now`: the time of arrival (the loop's performance.now() ms). */
  add(entry: Queued, now: number): void {
    const conn = entry.conn;
    entry.n = this.#arrivals = (this.#arrivals + 1) | 0;
    const behind = conn >= 0 ? this.#normalPending.get(conn) : undefined;
    if (entry.urgent && behind === undefined) {
      this.#urgent.push(entry);
      return;
    }
    entry.at = now | 0;
    this.#normal.push(entry);
    if (conn >= 0) {
      this.#normalPending.set(conn, (behind ?? 0) + 1);
      if (this.#busy.has(conn)) this.#setAside++;
    }
  }

  /**
   * The next request that may run now, or undefined; requests of a busy connection are held on the
   * way. `now`: the loop's clock (performance.now() ms), which aging compares with arrival times.
   */
  next(now: number): Queued | undefined {
    for (;;) {
      let entry = this.#resumed.shift() ?? (this.#aged(now) ? undefined : this.#urgent.shift());
      if (entry === undefined) {
        entry = this.#normal.shift();
        if (entry === undefined) return undefined;
        if (entry.conn >= 0) {
          const left = this.#normalPending.get(entry.conn)! - 1;
          if (left === 0) this.#normalPending.delete(entry.conn);
          else this.#normalPending.set(entry.conn, left);
          if (this.#busy.has(entry.conn)) this.#setAside--;
        }
      }
      const held = entry.conn >= 0 ? this.#busy.get(entry.conn) : undefined;
      if (held === undefined) return entry;
      held.push(entry);
    }
  }

  /** The oldest request that is not cheap goes before the cheap ones: it arrived before all of them, and has waited NORMAL_WAIT_MS. */
  #aged(now: number): boolean {
    const normal = this.#normal.peek();
    if (normal === undefined) return false;
    const urgent = this.#urgent.peek();
    if (urgent === undefined || ((urgent.n - normal.n) | 0) < 0) return false;
    return (((now | 0) - normal.at) | 0) >= NORMAL_WAIT_MS;
  }

  /** `entry`'s handler returned a promise: its connection waits until settled(entry.ref). */
  awaiting(entry: Queued): void {
    this.#awaiting.set(entry.ref, entry.conn);
    if (entry.conn >= 0) {
      this.#busy.set(entry.conn, []);
      this.#setAside += this.#normalPending.get(entry.conn) ?? 0;
    }
  }

  /** Whether request `ref` is an async run still awaited here. */
  isAwaiting(ref: number): boolean {
    return this.#awaiting.has(ref);
  }

  /**
   * Async run `ref` settled, or was abandoned: its connection's held requests go first. False if
   * `ref` was not awaiting (already settled or abandoned: its outcome must not be written).
   */
  settled(ref: number): boolean {
    const conn = this.#awaiting.get(ref);
    if (conn === undefined) return false;
    this.#awaiting.delete(ref);
    if (conn < 0) return true;
    const held = this.#busy.get(conn);
    this.#busy.delete(conn);
    if (held !== undefined) this.#setAside -= this.#normalPending.get(conn) ?? 0;
    if (held !== undefined && held.length > 0) {
      // Ahead of every queue: they are older than anything of theirs still queued. Resumed entries
      // of other connections are already there; order between connections does not matter.
      for (const entry of held) this.#resumed.push(entry);
    }
    return true;
  }
}
