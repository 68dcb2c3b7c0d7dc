// Owns "order": replies to one connection leave in request order even when its requests finish
// out of order on different workers. Requests get consecutive sequence numbers; a finished one
// waits in a ring until every earlier one is released. The ring starts small and doubles up to
// maxInFlightPerConnection, so ten thousand quiet connections cost little memory.

import type { SockservError } from './errors.js';
import type { Reply } from './reply.js';

/** Receives outcomes in request order. */
export type ReleaseFn = (reply: Reply, error: SockservError | undefined) => void;

const INITIAL_CAPACITY = 4;

interface Finished {
  reply: Reply;
  error: SockservError | undefined;
}

export class ReplyOrder {
  readonly #limit: number;
  /** Finished outcomes waiting for an earlier one, at seq % ring.length; undefined = not finished. */
  #ring: Array<Finished | undefined>;
  /** Sequence number the next request gets. */
  #nextSeq = 0;
  /** Sequence number of the oldest request whose outcome has not been released. */
  #nextRelease = 0;

  constructor(limit: number) {
    this.#limit = limit;
    this.#ring = new Array(Math.min(INITIAL_CAPACITY, limit));
  }

  /** Requests dispatched and not yet released. */
  get inFlight(): number {
    return this.#nextSeq - this.#nextRelease;
  }

  get full(): boolean {
    return this.inFlight >= this.#limit;
  }

  /** Takes a sequence number for a new request. The caller checks `full` first. */
  begin(): number {
    if (this.inFlight === this.#ring.length) this.#grow();
    return this.#nextSeq++;
  }

  /** Records an outcome, then releases every outcome that is now next in line. */
  complete(seq: number, reply: Reply, error: SockservError | undefined, release: ReleaseFn): void {
    if (seq !== this.#nextRelease) {
      this.#ring[seq % this.#ring.length] = { reply, error };
      return;
    }
    this.#nextRelease++;
    release(reply, error);
    const ring = this.#ring;
    for (;;) {
      const slot = this.#nextRelease % ring.length;
      const finished = ring[slot];
      if (finished === undefined) return;
      ring[slot] = undefined;
      this.#nextRelease++;
      release(finished.reply, finished.error);
    }
  }

  #grow(): void {
    const old = this.#ring;
    const ring: Array<Finished | undefined> = new Array(Math.min(old.length * 2, this.#limit));
    for (let seq = this.#nextRelease; seq < this.#nextSeq; seq++) ring[seq % ring.length] = old[seq % old.length];
    this.#ring = ring;
  }
}
