// Owns telling RESP replies apart for the stress client: a reply is one whole RESP value — a
// simple string, error, integer or bulk string, or an array (aggregate) of them, nested to any
// depth; RESP3's scalar and aggregate types are understood too. A state machine over the bytes
// as they come: no reply is parsed twice, a bulk body is skipped by its length, not scanned.
// A type byte it does not know means the stream cannot be framed: push() throws (a bad reply).

import { PendingBytes } from './pending-bytes.js';
import type { ReplyFramer, ReplySink } from './reply-sink.js';

/** A header line (type byte to CRLF) longer than this is not RESP. */
const MAX_HEADER_BYTES = 64 * 1024;
const EMPTY = Buffer.alloc(0);

export class RespReplyFramer implements ReplyFramer {
  readonly #pending = new PendingBytes();
  /** Values still needed to complete the current reply (0 between replies). */
  #needed = 0;
  /** Bytes of bulk body + CRLF still to skip; 0 while reading header lines. */
  #bulkLeft = 0;
  /** A header line cut by the end of a chunk. */
  #header: Buffer[] = [];
  #headerBytes = 0;

  constructor(
    readonly keepBytes: boolean,
    readonly onReply: ReplySink,
  ) {}

  push(chunk: Buffer): void {
    let at = 0;
    let replyStart = 0;
    const end = chunk.length;
    while (at < end) {
      if (this.#needed === 0) {
        this.#needed = 1;
        replyStart = at;
      }
      if (this.#bulkLeft > 0) {
        const take = Math.min(this.#bulkLeft, end - at);
        this.#bulkLeft -= take;
        at += take;
        if (this.#bulkLeft > 0) break;
        this.#needed--;
      } else {
        const newline = chunk.indexOf(0x0a, at);
        if (newline === -1) {
          this.#keepHeader(chunk.subarray(at));
          at = end;
          break;
        }
        const line = this.#headerBytes > 0 ? this.#takeHeader(chunk.subarray(at, newline)) : chunk.subarray(at, newline);
        at = newline + 1;
        this.#onHeader(line);
      }
      if (this.#needed === 0) {
        this.onReply(this.keepBytes ? this.#pending.take(chunk.subarray(replyStart, at)) : EMPTY);
      }
    }
    if (this.#needed > 0 && this.keepBytes) this.#pending.add(chunk.subarray(replyStart, end));
  }

  reset(): void {
    this.#pending.clear();
    this.#needed = 0;
    this.#bulkLeft = 0;
    this.#header = [];
    this.#headerBytes = 0;
  }

  /** One header line (without its "\n"): a complete value, or the start of a bulk or aggregate. */
  #onHeader(line: Buffer): void {
    const type = line[0];
    switch (type) {
      case 0x2b: // + simple string
      case 0x2d: // - error
      case 0x3a: // : integer
      case 0x5f: // _ null
      case 0x2c: // , double
      case 0x23: // # boolean
      case 0x28: // ( big number
        this.#needed--;
        return;
      case 0x24: // $ bulk string
      case 0x21: // ! bulk error
      case 0x3d: {
        // = verbatim string
        const length = count(line);
        if (length < 0) this.#needed--;
        else this.#bulkLeft = length + 2;
        return;
      }
      case 0x2a: // * array
      case 0x7e: // ~ set
      case 0x3e: // > push
      case 0x25: {
        // % map: two values per entry
        const n = count(line);
        this.#needed += (n > 0 ? (type === 0x25 ? 2 * n : n) : 0) - 1;
        return;
      }
      default:
        throw new RangeError(`not a RESP reply (type byte ${type === undefined ? 'missing' : `0x${type.toString(16)}`})`);
    }
  }

  #keepHeader(part: Buffer): void {
    this.#headerBytes += part.length;
    if (this.#headerBytes > MAX_HEADER_BYTES) throw new RangeError('RESP header line too long');
    this.#header.push(Buffer.from(part));
  }

  #takeHeader(tail: Buffer): Buffer {
    this.#header.push(tail);
    const line = Buffer.concat(this.#header);
    this.#header = [];
    this.#headerBytes = 0;
    return line;
  }
}

/** The length or count after the type byte ("\r" ignored); -1 for RESP's null. Throws when not a number. */
function count(line: Buffer): number {
  let endAt = line.length;
  if (endAt > 1 && line[endAt - 1] === 0x0d) endAt--;
  const text = line.toString('latin1', 1, endAt);
  if (!/^-?\d{1,15}$/.test(text)) throw new RangeError(`bad RESP length "${text}"`);
  return Number(text);
}
