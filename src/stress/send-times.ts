// Owns one connection's outstanding requests, oldest first. Replies come back in request order
// (FIFO), so the reply in hand always belongs to the oldest entry. A fixed ring of two float
// arrays — no object or promise per request — sized to the pipeline, which bounds what is outstanding.

export class SendTimes {
  /** When each request's latency starts: its send time, or its intended send time (open loop). */
  readonly #latencyFrom: Float64Array;
  /** When each request was actually written; the reply timeout counts from here. */
  readonly #sentAt: Float64Array;
  #head = 0;
  #length = 0;

  constructor(capacity: number) {
    this.#latencyFrom = new Float64Array(capacity);
    this.#sentAt = new Float64Array(capacity);
  }

  get length(): number {
    return this.#length;
  }

  get capacity(): number {
    return this.#sentAt.length;
  }

  /** Adds the newest request. The caller keeps length below capacity. */
  push(latencyFrom: number, sentAt: number): void {
    let slot = this.#head + this.#length;
    if (slot >= this.#sentAt.length) slot -= this.#sentAt.length;
    this.#latencyFrom[slot] = latencyFrom;
    this.#sentAt[slot] = sentAt;
    this.#length++;
  }

  /** Removes the oldest request and returns its latencyFrom. The caller checks length first. */
  shift(): number {
    const value = this.#latencyFrom[this.#head]!;
    if (++this.#head === this.#sentAt.length) this.#head = 0;
    this.#length--;
    return value;
  }

  /** When the oldest request was written (meaningless when empty). */
  oldestSentAt(): number {
    return this.#sentAt[this.#head]!;
  }

  /** Empties the ring, handing each request's latencyFrom to `visit`, oldest first. */
  drain(visit: (latencyFrom: number) => void): void {
    while (this.#length > 0) visit(this.shift());
    this.#head = 0;
  }
}
