// Owns what the pool's scheduler (pool.ts) keeps per connection — its requests not yet sent to a
// worker, how many are out, which worker's channel holds them (one connection's requests stay on
// one worker, in order) — and the FIFO lanes connections wait in, round-robin.

import type { RequestSink } from './dispatcher.js';
import type { SlotEntry, WorkerChannel } from './worker-channel.js';

/** A connection as the scheduler sees it. */
export interface ConnQueue {
  /** Names the connection in its channel records (the worker orders and addresses by it). */
  readonly id: number;
  readonly sink: RequestSink;
  /** Requests not yet written to a channel, oldest first from `head`. */
  pending: Array<SlotEntry<ConnQueue>>;
  head: number;
  /** In a ready lane (has pending requests and may send them). */
  ready: boolean;
  /** Waiting for room on `channel` (its requests there must stay on it to keep their order). */
  parked: boolean;
  /** Requests written to channels whose outcome has not come back. */
  outstanding: number;
  /** The channel holding them: while `outstanding` > 0, in order, the next go there too. */
  channel: WorkerChannel<ConnQueue> | null;
  /**
   * The channel that last ran this connection's requests, and the PEER number that introduced it
   * there: an idle connection goes back to it while it has room (its worker still knows the peer).
   */
  peerOf: WorkerChannel<ConnQueue> | null;
  peerNumber: number;
}

/** A FIFO of connections, consumed from `head`. */
export class Lane {
  items: ConnQueue[] = [];
  head = 0;
  get empty(): boolean {
    return this.head === this.items.length;
  }
  compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
