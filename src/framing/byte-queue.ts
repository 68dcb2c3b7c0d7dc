// Owns the bytes a connection has read but not yet framed. The unconsumed bytes are always one
// contiguous region: a read that starts on a frame boundary is used in place (zero copy); a read
// that continues a partial frame is appended to a growable buffer whose capacity doubles. Each
// byte is copied at most a constant number of times, so a 10 MiB line arriving one byte per read
// costs linear time, and framers can search with Buffer#indexOf from where they last stopped.
// Doubling stops at the framer's `capacityLimit` (the largest frame it can hold, maxFrameBytes
// and a few bytes): a frame just under 1 MiB holds 1 MiB, not the 2 MiB of the next doubling —
// the memory a client can make the server hold is what its frames need (issue #10).

const MIN_CAPACITY = 4096;

/** A connection's unframed bytes, for writing framers: push() reads, then take()/skip() frames off the front. */
export class ByteQueue {
  /** Holds the queued bytes in [start, end). */
  #buf: Buffer = Buffer.alloc(0);
  #start = 0;
  #end = 0;
  /** True when #buf is our own allocation, so bytes past #end may be written. */
  #owned = false;
  readonly #capacityLimit: number;

  /** `capacityLimit`: doubling never grows the buffer past this (a larger push still fits exactly). */
  constructor(capacityLimit = Infinity) {
    this.#capacityLimit = capacityLimit;
  }

  /** Bytes queued. */
  get length(): number {
    return this.#end - this.#start;
  }

  /** Bytes of the buffer the queue holds (what it costs in memory; ≥ length). */
  get capacity(): number {
    return this.#buf.length;
  }

  /** Appends a read (kept as is when the queue is empty: no copy). */
  push(chunk: Buffer): void {
    const n = chunk.length;
    if (n === 0) return;
    if (this.#start === this.#end) {
      this.#buf = chunk;
      this.#start = 0;
      this.#end = n;
      this.#owned = false;
      return;
    }
    if (!this.#owned || this.#end + n > this.#buf.length) {
      const queued = this.#end - this.#start;
      const needed = queued + n;
      const grown = Buffer.allocUnsafe(Math.max(needed, Math.min(Math.max(MIN_CAPACITY, 2 * needed), this.#capacityLimit)));
      this.#buf.copy(grown, 0, this.#start, this.#end);
      this.#buf = grown;
      this.#start = 0;
      this.#end = queued;
      this.#owned = true;
    }
    chunk.copy(this.#buf, this.#end);
    this.#end += n;
  }

  /** Removes and returns the first `n` bytes as a view (valid until the caller drops it). */
  take(n: number): Buffer {
    const out = this.#buf.subarray(this.#start, this.#start + n);
    this.skip(n);
    return out;
  }

  /** Drops the first `n` bytes. */
  skip(n: number): void {
    this.#start += n;
    if (this.#start === this.#end) {
      // Empty: forget the buffer so handed-out views are the only references to it.
      this.#buf = Buffer.alloc(0);
      this.#start = this.#end = 0;
      this.#owned = false;
    }
  }

  /** Removes and returns everything queued. */
  takeAll(): Buffer {
    return this.take(this.length);
  }

  /** Reads a big-endian uint32 at queue offset `at` without consuming it. */
  peekUInt32BE(at = 0): number {
    return this.#buf.readUInt32BE(this.#start + at);
  }

  /** The byte at queue offset `i` (not consumed). */
  byteAt(i: number): number {
    return this.#buf[this.#start + i]!;
  }

  /** Queue offset of the first `needle` at or after queue offset `from`, or -1. */
  indexOf(needle: Buffer | number, from: number): number {
    // Search only the queued region: past #end an owned buffer holds stale bytes.
    const region = this.#end === this.#buf.length ? this.#buf : this.#buf.subarray(0, this.#end);
    const hit = region.indexOf(needle, this.#start + from);
    return hit === -1 ? -1 : hit - this.#start;
  }
}
