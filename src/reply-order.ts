// Owns "order": replies to one connection leave in request order even when its requests finish
// out of order on different workers. Requests get consecutive sequence numbers; a finished one
// waits in a ring until every earlier one is released. The ring starts small and doubles up to
// maxInFlightPerConnection, so ten thousand quiet connections cost little memory.
//
// Each slot also carries what its request's connection needs back at release: the request's
// size (the connection's in-flight bytes) and when it was framed (its latency, while request
// durations are recorded). They live beside the outcome, in one typed array allocated on the
// first request, so a connection keeps no second ring of its own.

import type { SockservError } from './errors.js';
import type { Reply } from './reply.js';

/**
 * Receives outcomes in request order, with what begin() was given for that request: its size in
 * bytes and when it was framed (performance.now(), or -1 when not stamped).
 */
export type ReleaseFn = (reply: Reply, error: SockservError | undefined, bytes: number, framedAt: number) => void;

const INITIAL_CAPACITY = 4;

interface Finished {
  reply: Reply;
  error: SockservError | undefined;
}

export class ReplyOrder {
  readonly #limit: number;
  /** Finished outcomes waiting for an earlier one, at seq % ring.length; undefined = not finished. */
  #ring: Array<Finished | undefined>;
  /** Per slot (seq % ring.length): [2 × slot] the request's bytes, [2 × slot + 1] when it was framed. */
  #requests: Float64Array | null = null;
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

  /**
   * Takes a sequence number for a new request of `bytes` framed at `framedAt` (-1: not stamped);
   * both come back with its outcome. The caller checks `full` first.
   */
  begin(bytes: number, framedAt: number): number {
    if (this.inFlight === this.#ring.length) this.#grow();
    const requests = (this.#requests ??= new Float64Array(this.#ring.length * 2));
    const seq = this.#nextSeq++;
    const at = (seq % this.#ring.length) * 2;
    requests[at] = bytes;
    requests[at + 1] = framedAt;
    return seq;
  }

  /** Records an outcome, then releases every outcome that is now next in line. */
  complete(seq: number, reply: Reply, error: SockservError | undefined, release: ReleaseFn): void {
    if (seq !== this.#nextRelease) {
      this.#ring[seq % this.#ring.length] = { reply, error };
      return;
    }
    // Ring and requests are read afresh after each release: it may start requests (and grow them).
    let at = (seq % this.#ring.length) * 2;
    this.#nextRelease++;
    release(reply, error, this.#requests![at]!, this.#requests![at + 1]!);
    for (;;) {
      const ring = this.#ring;
      const slot = this.#nextRelease % ring.length;
      const finished = ring[slot];
      if (finished === undefined) return;
      ring[slot] = undefined;
      at = slot * 2;
      this.#nextRelease++;
      release(finished.reply, finished.error, this.#requests![at]!, this.#requests![at + 1]!);
    }
  }

  #grow(): void {
    const old = this.#ring;
    const ring: Array<Finished | undefined> = new Array(Math.min(old.length * 2, this.#limit));
    const oldRequests = this.#requests;
    const requests = oldRequests === null ? null : new Float64Array(ring.length * 2);
    for (let seq = this.#nextRelease; seq < this.#nextSeq; seq++) {
      const to = seq % ring.length;
      const from = seq % old.length;
      ring[to] = old[from];
      if (requests !== null) {
        requests[to * 2] = oldRequests![from * 2]!;
        requests[to * 2 + 1] = oldRequests![from * 2 + 1]!;
      }
    }
    this.#ring = ring;
    this.#requests = requests;
  }
}
