// Owns "order": replies to one connection leave in request order even when its requests finish
// out of order on different workers. Requests get consecutive sequence numbers; a finished one
// waits in a fixed ring (sized to maxInFlightPerConnection) until every earlier one is released.

import type { SockservError } from './errors.js';
import type { Reply } from './run-handler.js';

/** Receives outcomes in request order. */
export type ReleaseFn = (reply: Reply, error: SockservError | undefined) => void;

export class ReplyOrder {
  readonly #capacity: number;
  readonly #done: Uint8Array;
  readonly #replies: Array<Reply>;
  readonly #errors: Array<SockservError | undefined>;
  /** Sequence number the next request gets. */
  #nextSeq = 0;
  /** Sequence number of the oldest request whose outcome has not been released. */
  #nextRelease = 0;

  constructor(capacity: number) {
    this.#capacity = capacity;
    this.#done = new Uint8Array(capacity);
    this.#replies = new Array(capacity).fill(null);
    this.#errors = new Array(capacity);
  }

  /** Requests dispatched and not yet released. */
  get inFlight(): number {
    return this.#nextSeq - this.#nextRelease;
  }

  get full(): boolean {
    return this.inFlight >= this.#capacity;
  }

  /** Takes a sequence number for a new request. The caller checks `full` first. */
  begin(): number {
    return this.#nextSeq++;
  }

  /** Records an outcome, then releases every outcome that is now next in line. */
  complete(seq: number, reply: Reply, error: SockservError | undefined, release: ReleaseFn): void {
    if (seq !== this.#nextRelease) {
      const slot = seq % this.#capacity;
      this.#done[slot] = 1;
      this.#replies[slot] = reply;
      this.#errors[slot] = error;
      return;
    }
    release(reply, error);
    this.#nextRelease++;
    for (;;) {
      const slot = this.#nextRelease % this.#capacity;
      if (this.#done[slot] === 0) return;
      const stored = this.#replies[slot]!;
      const storedError = this.#errors[slot];
      this.#done[slot] = 0;
      this.#replies[slot] = null;
      this.#errors[slot] = undefined;
      this.#nextRelease++;
      release(stored, storedError);
    }
  }
}
