// Owns the bytes of a reply that is still arriving, kept across chunks only when replies are
// inspected (expectReply): the reply framers add each partial piece and take the whole at its end.

/** A kept (inspected) reply may grow to this before the connection is failed. */
export const MAX_KEPT_REPLY_BYTES = 64 * 1024 * 1024;

export class PendingBytes {
  parts: Buffer[] = [];
  bytes = 0;

  add(part: Buffer): void {
    if (part.length === 0) return;
    this.bytes += part.length;
    if (this.bytes > MAX_KEPT_REPLY_BYTES) throw new RangeError(`reply longer than ${MAX_KEPT_REPLY_BYTES} bytes`);
    this.parts.push(part);
  }

  /** The pending bytes followed by `tail`, as one buffer; then empty. */
  take(tail: Buffer): Buffer {
    if (this.parts.length === 0) return tail;
    this.parts.push(tail);
    const whole = Buffer.concat(this.parts, this.bytes + tail.length);
    this.parts = [];
    this.bytes = 0;
    return whole;
  }

  clear(): void {
    this.parts = [];
    this.bytes = 0;
  }
}
