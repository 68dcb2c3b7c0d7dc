// Owns delimiter framing: requests end with a fixed byte sequence (which is not part of the
// request); replies are written with the same delimiter appended. Line framing is this with "\n"
// and a trailing "\r" stripped, so CRLF clients work unchanged.

import { ErrorCodes, SockservError } from '../errors.js';
import { ByteQueue } from './byte-queue.js';
import type { Framer, FramerLimits } from './framer.js';

/** Requests end with a fixed byte sequence (`framing: 'delimiter:HEX'` or `{ delimiter }`); replies get it appended. */
export class DelimiterFramer implements Framer {
  readonly #queue: ByteQueue;
  readonly #delimiter: Buffer;
  readonly #single: number; // the delimiter byte when it is one byte long (fast path), else -1
  readonly #maxFrameBytes: number;
  readonly #stripCR: boolean;
  /** Queue offset where the next search starts: bytes before it are known delimiter-free. */
  #scanned = 0;

  constructor(delimiter: Uint8Array, limits: FramerLimits, options: { stripCR?: boolean } = {}) {
    if (delimiter.length === 0) throw new RangeError('delimiter must not be empty');
    this.#delimiter = Buffer.from(delimiter);
    this.#single = delimiter.length === 1 ? delimiter[0]! : -1;
    this.#maxFrameBytes = limits.maxFrameBytes;
    this.#stripCR = options.stripCR ?? false;
    // Room for the longest frame, its CR and delimiter: next() refuses anything longer.
    this.#queue = new ByteQueue(limits.maxFrameBytes + 1 + delimiter.length);
  }

  get bufferedBytes(): number {
    return this.#queue.length;
  }

  push(chunk: Buffer): void {
    this.#queue.push(chunk);
  }

  next(): Buffer | undefined {
    const queue = this.#queue;
    const at = queue.indexOf(this.#single >= 0 ? this.#single : this.#delimiter, this.#scanned);
    if (at === -1) {
      // Allow for a CR (or a partial delimiter) that the next read completes.
      const slack = (this.#stripCR ? 1 : 0) + this.#delimiter.length - 1;
      if (queue.length > this.#maxFrameBytes + slack) throw this.#tooLong(queue.length);
      this.#scanned = Math.max(0, queue.length - (this.#delimiter.length - 1));
      return undefined;
    }
    this.#scanned = 0;
    let frameLength = at;
    const frame = queue.take(at);
    queue.skip(this.#delimiter.length);
    if (this.#stripCR && frameLength > 0 && frame[frameLength - 1] === 0x0d) frameLength--;
    if (frameLength > this.#maxFrameBytes) throw this.#tooLong(frameLength);
    return frameLength === frame.length ? frame : frame.subarray(0, frameLength);
  }

  end(): Buffer | undefined {
    if (this.#queue.length === 0) return undefined;
    let last = this.#queue.takeAll();
    if (this.#stripCR && last[last.length - 1] === 0x0d) last = last.subarray(0, last.length - 1);
    this.#scanned = 0;
    // next() tolerates a few bytes past the limit (a CR or a partial delimiter may follow); at
    // end of input none can, so the last request obeys the limit exactly.
    if (last.length > this.#maxFrameBytes) throw this.#tooLong(last.length);
    return last;
  }

  encode(reply: Uint8Array, out: Uint8Array[]): void {
    out.push(reply, this.#delimiter);
  }

  #tooLong(seen: number): SockservError {
    return new SockservError(
      ErrorCodes.FRAME_TOO_LONG,
      `request of at least ${seen} bytes exceeds maxFrameBytes (${this.#maxFrameBytes})`,
    );
  }
}

/** `framing: 'line'` (the default): requests end with "\n" (a "\r" before it is dropped); replies get "\n" appended. */
export class LineFramer extends DelimiterFramer {
  constructor(limits: FramerLimits) {
    super(NEWLINE, limits, { stripCR: true });
  }
}

const NEWLINE = Buffer.from('\n');
