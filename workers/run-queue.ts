// Owns what a worker's channel loop has read and not yet run: two queues — requests predicted
// cheap (URGENT) run before the rest — and, per connection, its order.
//
// Invariant: a connection has at most one ordered request running or awaiting. While an ordered
// connection's async handler awaits, its later requests are held here (still QUEUED in shared
// memory, so a death re-dispatches them), and they run first, in order, once it settles. A cheap
// request never overtakes an earlier request of its own connection. Consumed entries are dropped
// at once (fifo.ts), so a queue that never empties holds only what waits.

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
}

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

  /** Requests waiting to run (held ones excluded). */
  get size(): number {
    return this.#urgent.length + this.#normal.length + this.#resumed.length;
  }

  /** Of size, those that will run without waiting for an async run (a busy connection's are set aside when reached). */
  get runnable(): number {
    return this.size - this.#setAside;
  }

  add(entry: Queued): void {
    const conn = entry.conn;
    const behind = conn >= 0 ? this.#normalPending.get(conn) : undefined;
    if (entry.urgent && behind === undefined) {
      this.#urgent.push(entry);
      return;
    }
    this.#normal.push(entry);
    if (conn >= 0) {
      this.#normalPending.set(conn, (behind ?? 0) + 1);
      if (this.#busy.has(conn)) this.#setAside++;
    }
  }

  /** The next request that may run now, or undefined; requests of a busy connection are held on the way. */
  next(): Queued | undefined {
    for (;;) {
      let entry = this.#resumed.shift() ?? this.#urgent.shift();
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
