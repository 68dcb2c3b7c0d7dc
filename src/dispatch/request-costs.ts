// Owns what the pool knows of request costs: how long a handler ran for requests of each kind,
// learned from the run times workers report with every outcome. A request's kind is its command —
// the first word of a line, or the first bulk string of a RESP array ("PING", "GET", "HASH") — so
// one connection can mix cheap and heavy commands and each is still predicted right. Kinds share
// a small table by hash: a collision only blurs two estimates, never a limit.
//
// The scheduler (scheduler.ts) uses the predictions: requests predicted cheap go first and do not
// queue behind heavy work (a worker runs a heavy request that has waited 10 ms before cheap ones
// that came after it: workers/run-queue.ts); heavy ones are metered to each worker by their
// predicted time.

const TABLE_SIZE = 256;
/** How far one run moves its kind's estimate (and the overall one). */
const KIND_SMOOTHING = 0.3;
const OVERALL_SMOOTHING = 0.05;
/** Bytes of a command that name it. */
const KEY_BYTES = 16;

const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;
const STAR = 0x2a;
const DOLLAR = 0x24;

export class RequestCosts {
  readonly #table = new Float64Array(TABLE_SIZE).fill(Number.NaN);
  /** Smoothed milliseconds over every kind: the prediction for a kind not seen yet. */
  #overall: number;

  /** `initialMs`: what an unmeasured request is assumed to cost. */
  constructor(initialMs: number) {
    this.#overall = initialMs;
  }

  /** The kind of a request: a 32-bit hash of its command word (the cost table uses its low bits). */
  keyOf(frame: Buffer): number {
    let at = 0;
    const end = frame.length;
    if (end > 0 && frame[0] === STAR) {
      // RESP array: skip "*N\r\n", then a "$N\r\n" bulk header; the command follows.
      at = skipLine(frame, 0);
      if (at < end && frame[at] === DOLLAR) at = skipLine(frame, at);
    }
    let hash = 0x811c9dc5;
    for (let i = 0; i < KEY_BYTES && at < end; i++, at++) {
      let byte = frame[at]!;
      if (byte === SPACE || byte === CR || byte === LF) break;
      if (byte >= 0x61 && byte <= 0x7a) byte &= 0xdf; // commands are case-insensitive: fold to upper case
      hash = Math.imul(hash ^ byte, 0x01000193);
    }
    return hash ^ (hash >>> 16); // an int32 (a small integer in V8, never a heap number)
  }

  /** Predicted handler milliseconds for a request of kind `key`. */
  estimate(key: number): number {
    const known = this.#table[key & (TABLE_SIZE - 1)]!;
    return Number.isNaN(known) ? this.#overall : known;
  }

  /** A request of kind `key` ran for `ms`. */
  learn(key: number, ms: number): void {
    const bucket = key & (TABLE_SIZE - 1);
    const known = this.#table[bucket]!;
    this.#table[bucket] = Number.isNaN(known) ? ms : known + KIND_SMOOTHING * (ms - known);
    this.#overall += OVERALL_SMOOTHING * (ms - this.#overall);
  }
}

function skipLine(frame: Buffer, from: number): number {
  const lf = frame.indexOf(LF, from);
  return lf < 0 ? frame.length : lf + 1;
}
