// Owns telling replies apart in the received byte stream, one framer per connection. Framers call
// `onReply` once per complete reply, in order; "incomplete" is just state kept for the next chunk.
// When nobody inspects replies (no expectReply) they only count them — no slicing, no copying —
// which is what lets one client core keep up with a fast server.

import type { StressFraming } from './options.js';
import { MAX_KEPT_REPLY_BYTES, PendingBytes } from './pending-bytes.js';
import type { ReplyFramer, ReplySink } from './reply-sink.js';
import { RespReplyFramer } from './resp-reply-framer.js';

export type { ReplyFramer, ReplySink };

/**
 * @param requestBytes a raw reply's size: the payload length, or (a mix of payloads of different
 *   lengths) a function giving the size of the next reply — that of the oldest outstanding request.
 * @param keepBytes hand each reply's bytes to onReply (needed by expectReply); else pass EMPTY.
 */
export function createReplyFramer(
  framing: StressFraming,
  requestBytes: number | (() => number),
  keepBytes: boolean,
  onReply: ReplySink,
): ReplyFramer {
  switch (framing) {
    case 'line':
      return new LineReplyFramer(keepBytes, onReply);
    case 'length':
      return new LengthReplyFramer(keepBytes, onReply);
    case 'raw':
      return typeof requestBytes === 'number'
        ? new RawReplyFramer(requestBytes, keepBytes, onReply)
        : new MixedRawReplyFramer(requestBytes, keepBytes, onReply);
    case 'resp':
      return new RespReplyFramer(keepBytes, onReply);
  }
}

/** A reply ends at "\n"; the "\n" and a "\r" right before it are not part of it. */
class LineReplyFramer implements ReplyFramer {
  readonly #pending = new PendingBytes();

  constructor(
    readonly keepBytes: boolean,
    readonly onReply: ReplySink,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    let end = chunk.indexOf(NEWLINE_BYTE, 0);
    if (!this.keepBytes) {
      while (end !== -1) {
        this.onReply(EMPTY);
        end = chunk.indexOf(NEWLINE_BYTE, end + 1);
      }
      return;
    }
    while (end !== -1) {
      let reply = this.#pending.take(chunk.subarray(start, end));
      if (reply.length > 0 && reply[reply.length - 1] === CR_BYTE) reply = reply.subarray(0, reply.length - 1);
      this.onReply(reply);
      start = end + 1;
      end = chunk.indexOf(NEWLINE_BYTE, start);
    }
    if (start < chunk.length) this.#pending.add(chunk.subarray(start));
  }

  reset(): void {
    this.#pending.clear();
  }
}

/** A reply is a 32-bit big-endian byte count, then that many bytes. */
class LengthReplyFramer implements ReplyFramer {
  readonly #pending = new PendingBytes();
  readonly #header = Buffer.alloc(4);
  #headerBytes = 0;
  /** Body bytes still to come for the current reply; -1 while reading a header. */
  #bodyLeft = -1;

  constructor(
    readonly keepBytes: boolean,
    readonly onReply: ReplySink,
  ) {}

  push(chunk: Buffer): void {
    let at = 0;
    const end = chunk.length;
    while (at < end) {
      if (this.#bodyLeft < 0) {
        if (this.#headerBytes === 0 && end - at >= 4) {
          this.#bodyLeft = chunk.readUInt32BE(at);
          at += 4;
        } else {
          const take = Math.min(4 - this.#headerBytes, end - at);
          chunk.copy(this.#header, this.#headerBytes, at, at + take);
          this.#headerBytes += take;
          at += take;
          if (this.#headerBytes < 4) return;
          this.#headerBytes = 0;
          this.#bodyLeft = this.#header.readUInt32BE(0);
        }
        if (this.keepBytes && this.#bodyLeft > MAX_KEPT_REPLY_BYTES) {
          throw new RangeError(`reply length ${this.#bodyLeft} exceeds ${MAX_KEPT_REPLY_BYTES} bytes`);
        }
      }
      const take = Math.min(this.#bodyLeft, end - at);
      this.#bodyLeft -= take;
      if (this.#bodyLeft > 0) {
        if (this.keepBytes) this.#pending.add(chunk.subarray(at, at + take));
        return;
      }
      this.onReply(this.keepBytes ? this.#pending.take(chunk.subarray(at, at + take)) : EMPTY);
      at += take;
      this.#bodyLeft = -1;
    }
  }

  reset(): void {
    this.#pending.clear();
    this.#headerBytes = 0;
    this.#bodyLeft = -1;
  }
}

/** Raw framing has no boundaries, so the rule is an echo's: every `replyBytes` bytes are one reply. */
class RawReplyFramer implements ReplyFramer {
  readonly #pending = new PendingBytes();
  /** Bytes of the current reply received so far. */
  #have = 0;

  constructor(
    readonly replyBytes: number,
    readonly keepBytes: boolean,
    readonly onReply: ReplySink,
  ) {}

  push(chunk: Buffer): void {
    const size = this.replyBytes;
    if (!this.keepBytes) {
      const total = this.#have + chunk.length;
      const complete = Math.floor(total / size);
      this.#have = total - complete * size;
      for (let i = 0; i < complete; i++) this.onReply(EMPTY);
      return;
    }
    let at = 0;
    while (chunk.length - at >= size - this.#have) {
      const take = size - this.#have;
      this.onReply(this.#pending.take(chunk.subarray(at, at + take)));
      at += take;
      this.#have = 0;
    }
    if (at < chunk.length) {
      this.#pending.add(chunk.subarray(at));
      this.#have += chunk.length - at;
    }
  }

  reset(): void {
    this.#pending.clear();
    this.#have = 0;
  }
}

/** Raw framing over a mix of payload lengths: each reply is as long as its own request. */
class MixedRawReplyFramer implements ReplyFramer {
  readonly #pending = new PendingBytes();
  /** Bytes of the current reply received so far. */
  #have = 0;

  constructor(
    readonly nextSize: () => number,
    readonly keepBytes: boolean,
    readonly onReply: ReplySink,
  ) {}

  push(chunk: Buffer): void {
    let at = 0;
    for (let size = this.nextSize(); chunk.length - at >= size - this.#have; size = this.nextSize()) {
      const take = size - this.#have;
      this.onReply(this.keepBytes ? this.#pending.take(chunk.subarray(at, at + take)) : EMPTY);
      at += take;
      this.#have = 0;
    }
    if (at < chunk.length) {
      if (this.keepBytes) this.#pending.add(chunk.subarray(at));
      this.#have += chunk.length - at;
    }
  }

  reset(): void {
    this.#pending.clear();
    this.#have = 0;
  }
}

const NEWLINE_BYTE = 0x0a;
const CR_BYTE = 0x0d;
const EMPTY = Buffer.alloc(0);
