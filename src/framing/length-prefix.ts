// Owns length-prefixed framing: each request is a 32-bit big-endian byte count followed by that
// many bytes; replies are written the same way. An oversized length is refused as soon as its
// 4-byte header arrives, before any of the body is buffered.

import { ErrorCodes, SockservError } from '../errors.js';
import { ByteQueue } from './byte-queue.js';
import type { Framer, FramerLimits } from './framer.js';

const HEADER_BYTES = 4;

/** `framing: 'length'`: a 32-bit big-endian byte count, then the bytes, both ways. */
export class LengthPrefixFramer implements Framer {
  readonly #queue: ByteQueue;
  readonly #maxFrameBytes: number;

  constructor(limits: FramerLimits) {
    this.#maxFrameBytes = limits.maxFrameBytes;
    this.#queue = new ByteQueue(HEADER_BYTES + limits.maxFrameBytes);
  }

  get bufferedBytes(): number {
    return this.#queue.length;
  }

  push(chunk: Buffer): void {
    this.#queue.push(chunk);
  }

  next(): Buffer | undefined {
    const queue = this.#queue;
    if (queue.length < HEADER_BYTES) return undefined;
    const bodyLength = queue.peekUInt32BE();
    if (bodyLength > this.#maxFrameBytes) {
      throw new SockservError(
        ErrorCodes.FRAME_TOO_LONG,
        `length prefix ${bodyLength} exceeds maxFrameBytes (${this.#maxFrameBytes})`,
      );
    }
    if (queue.length < HEADER_BYTES + bodyLength) return undefined;
    queue.skip(HEADER_BYTES);
    return queue.take(bodyLength);
  }

  /** A truncated last frame is dropped: the peer closed before sending all it announced. */
  end(): Buffer | undefined {
    return undefined;
  }

  encode(reply: Uint8Array, out: Uint8Array[]): void {
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    header.writeUInt32BE(reply.length, 0);
    out.push(header, reply);
  }
}
