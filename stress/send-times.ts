// Owns one connection's outstanding requests, oldest first. Replies come back in request order
// (FIFO), so the reply in hand always belongs to the oldest entry. A fixed ring of two float
// arrays and a kind array (which request of a mix it was) — no object or promise per request —
// sized to the pipeline, which bounds what is outstanding.

export class SendTimes {
  /** When each request's latency starts: its send time, or its intended send time (open loop). */
  readonly #latencyFrom: Float64Array;
  /** When each request was actually written; the reply timeout counts from here. */
  readonly #sentAt: Float64Array;
  /** Which kind of request each is (an index into the run's mix; 0 without one). */
  readonly #kind: Uint16Array;
  #head = 0;
  #length = 0;

  constructor(capacity: number) {
    this.#latencyFrom = new Float64Array(capacity);
    this.#sentAt = new Float64Array(capacity);
    this.#kind = new Uint16Array(capacity);
  }

  get length(): number {
    return this.#length;
  }

  get capacity(): number {
    return this.#sentAt.length;
  }

  /** Adds the newest request. The caller keeps length below capacity. */
  push(latencyFrom: number, sentAt: number, kind = 0): void {
    let slot = this.#head + this.#length;
    if (slot >= this.#sentAt.length) slot -= this.#sentAt.length;
    this.#latencyFrom[slot] = latencyFrom;
    this.#sentAt[slot] = sentAt;
    this.#kind[slot] = kind;
    this.#length++;
  }

  /** Removes the oldest request and returns its latencyFrom. The caller checks length first. */
  shift(): number {
    const value = this.#latencyFrom[this.#head]!;
    if (++this.#head === this.#sentAt.length) this.#head = 0;
    this.#length--;
    return value;
  }

  /** The oldest request's kind (meaningless when empty): read it before shift(). */
  oldestKind(): number {
    return this.#kind[this.#head]!;
  }

  /** When the oldest request was written (meaningless when empty). */
  oldestSentAt(): number {
    return this.#sentAt[this.#head]!;
  }

  /** Empties the ring, handing each request's latencyFrom and kind to `visit`, oldest first. */
  drain(visit: (latencyFrom: number, kind: number) => void): void {
    while (this.#length > 0) {
      const kind = this.#kind[this.#head]!;
      visit(this.shift(), kind);
    }
    this.#head = 0;
  }
}
