// Owns raw framing: each read from the socket is one request, as in the classic
// `data = conn.recv(1024)` loop. A read longer than maxFrameBytes is split into maxFrameBytes
// pieces (recv(n) returns at most n bytes) rather than refused. Replies are written as they are.

import type { Framer, FramerLimits } from './framer.js';

/** `framing: 'raw'`: each read is one request (at most maxFrameBytes); replies are written as they are. */
export class RawFramer implements Framer {
  readonly #reads: Buffer[] = [];
  #head = 0;
  #buffered = 0;
  readonly #maxFrameBytes: number;

  constructor(limits: FramerLimits) {
    this.#maxFrameBytes = limits.maxFrameBytes;
  }

  get bufferedBytes(): number {
    return this.#buffered;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#reads.push(chunk);
    this.#buffered += chunk.length;
  }

  next(): Buffer | undefined {
    if (this.#head === this.#reads.length) {
      this.#reads.length = 0;
      this.#head = 0;
      return undefined;
    }
    const read = this.#reads[this.#head]!;
    if (read.length > this.#maxFrameBytes) {
      this.#reads[this.#head] = read.subarray(this.#maxFrameBytes);
      this.#buffered -= this.#maxFrameBytes;
      return read.subarray(0, this.#maxFrameBytes);
    }
    this.#reads[this.#head++] = EMPTY;
    this.#buffered -= read.length;
    return read;
  }

  end(): Buffer | undefined {
    return undefined;
  }

  encode(reply: Uint8Array, out: Uint8Array[]): void {
    out.push(reply);
  }
}

const EMPTY = Buffer.alloc(0);
