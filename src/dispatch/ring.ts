// Owns the byte ring of a worker channel: a single-producer, single-consumer queue of records in a
// SharedArrayBuffer, one thread writing and one reading, no locks.
//
// Invariant: the writer makes plain stores, then publishes with one Atomics.store of its write
// position (release); the reader reads only below its Atomics.load of that position (acquire), and
// a record's bytes stay valid until the reader's release() gives their space back.
// A record is a 16-byte header
// (payload length, kind, slot, connection) and its payload, 4-byte aligned, never split across the
// end of the ring (a wrap marker sends the reader back to the start), so a reader sees every
// payload as one contiguous view. The writer publishes many records with one Atomics.store — the
// natural batching of one loop turn — and the reader frees their space with another.
//
// ringbuf.js (a wait-free SPSC ring) was the candidate to reuse; it moves typed elements, not
// records, so a header and its payload would be two pushes the reader could see half of, and it
// cannot hand out contiguous payloads or publish a batch at once. This is the ~100 lines we need.

const HEADER_BYTES = 16;
/** Written in a header's length word: the rest of the ring is unused, continue at 0. */
const WRAP = 0xffffffff;
/** Bytes the writer leaves free so that write === read always means empty. */
const GAP = 4;

function recordBytes(payloadBytes: number): number {
  return HEADER_BYTES + ((payloadBytes + 3) & ~3);
}

export class RingWriter {
  readonly #ctl: Int32Array;
  readonly #writeWord: number;
  readonly #readWord: number;
  readonly #bytes: Buffer;
  readonly #words: Uint32Array;
  readonly #capacity: number;
  /** Where the next record goes; published to #writeWord by publish(). */
  #w: number;
  #published: number;

  constructor(ring: SharedArrayBuffer, ctl: Int32Array, writeWord: number, readWord: number) {
    this.#ctl = ctl;
    this.#writeWord = writeWord;
    this.#readWord = readWord;
    this.#bytes = Buffer.from(ring);
    this.#words = new Uint32Array(ring);
    this.#capacity = ring.byteLength;
    this.#w = this.#published = Atomics.load(ctl, writeWord);
  }

  /** Largest payload that fits in an empty ring. */
  get maxPayload(): number {
    return this.#capacity - HEADER_BYTES - GAP;
  }

  /** Records written since the last publish(). */
  get pending(): boolean {
    return this.#w !== this.#published;
  }

  /**
   * Appends a record; false when the reader has not freed enough room (nothing is written then).
   * `payload` may be null for a record without one.
   */
  write(kind: number, slot: number, conn: number, payload: Uint8Array | null): boolean {
    const length = payload === null ? 0 : payload.byteLength;
    const size = recordBytes(length);
    const r = Atomics.load(this.#ctl, this.#readWord);
    let at = this.#w;
    if (at >= r) {
      const tail = this.#capacity - at - (r === 0 ? GAP : 0);
      if (tail < size) {
        if (r - GAP < size) return false;
        this.#words[at >>> 2] = WRAP; // at < capacity and aligned: the marker always fits
        at = 0;
      }
    } else if (r - at - GAP < size) {
      return false;
    }
    const words = this.#words;
    const word = at >>> 2;
    words[word] = length;
    words[word + 1] = kind;
    words[word + 2] = slot;
    words[word + 3] = conn;
    if (length > 0) this.#bytes.set(payload!, at + HEADER_BYTES);
    at += size;
    this.#w = at === this.#capacity ? 0 : at;
    return true;
  }

  /** Makes every record written so far visible to the reader; true if there was any. */
  publish(): boolean {
    if (this.#w === this.#published) return false;
    this.#published = this.#w;
    Atomics.store(this.#ctl, this.#writeWord, this.#w);
    return true;
  }
}

export class RingReader {
  readonly #ctl: Int32Array;
  readonly #writeWord: number;
  readonly #readWord: number;
  readonly #words: Uint32Array;
  readonly #capacity: number;
  /** The ring as bytes: a record's payload is bytes[start, start + length). */
  readonly bytes: Buffer;
  #r: number;
  /** The writer's published end, as last loaded. */
  #end: number;
  // The record last returned by next():
  kind = 0;
  slot = 0;
  conn = 0;
  start = 0;
  length = 0;

  constructor(ring: SharedArrayBuffer, ctl: Int32Array, writeWord: number, readWord: number) {
    this.#ctl = ctl;
    this.#writeWord = writeWord;
    this.#readWord = readWord;
    this.#words = new Uint32Array(ring);
    this.bytes = Buffer.from(ring);
    this.#capacity = ring.byteLength;
    this.#r = Atomics.load(ctl, readWord);
    this.#end = this.#r;
  }

  /** True if the writer has published records not read yet (loads the writer's position). */
  poll(): boolean {
    if (this.#r === this.#end) this.#end = Atomics.load(this.#ctl, this.#writeWord);
    return this.#r !== this.#end;
  }

  /** The writer's published position as last loaded: pass to Atomics.waitAsync as the value to wait on. */
  get seenEnd(): number {
    return this.#end;
  }

  /**
   * Reads the next published record into kind/slot/conn/start/length; false when none is left.
   * Its payload stays valid until release().
   */
  next(): boolean {
    if (this.#r === this.#end && !this.poll()) return false;
    let at = this.#r;
    let word = at >>> 2;
    if (this.#words[word] === WRAP) {
      at = 0;
      word = 0;
    }
    const length = this.#words[word]!;
    this.length = length;
    this.kind = this.#words[word + 1]!;
    this.slot = this.#words[word + 2]!;
    this.conn = this.#words[word + 3]!;
    this.start = at + HEADER_BYTES;
    at += recordBytes(length);
    this.#r = at === this.#capacity ? 0 : at;
    return true;
  }

  /** Gives the space of every record read so far back to the writer. */
  release(): void {
    Atomics.store(this.#ctl, this.#readWord, this.#r);
  }
}
