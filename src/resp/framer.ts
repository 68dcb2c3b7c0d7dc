// Owns RESP2 request framing (the Redis protocol) and the decoder handlers use on its frames.
//
// Requests come in two forms, as a Redis server accepts them:
//   multibulk  *2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n   an array of bulk strings (redis-cli, client libraries)
//   inline     PING\r\n  or  ECHO "hello world"\n  a line split on spaces, quotes allowed (telnet, nc)
//
// The frame: every request reaches the handler as ONE COMMAND IN CANONICAL MULTIBULK FORM
// (`*N\r\n` then N × `$len\r\n<bytes>\r\n`). A multibulk request is already that, so its frame is
// a zero-copy view of the bytes received; an inline command is rewritten to it (small and rare).
// `parseCommand(frame)` then returns the arguments as zero-copy views: it reads only the headers
// and jumps over each bulk body, so decoding costs O(arguments), not O(bytes). One form for both
// request kinds keeps handlers simple, the frame stays valid RESP (it can be logged, forwarded or
// replayed), and the pool's channel copies nothing extra. parseCommand lives in ./command.ts, the
// inline splitter in ./inline.ts.
//
// Replies are RESP already (see ./encode.ts); encode() writes them unchanged.
//
// Parsing is incremental: the framer remembers where the command being received stopped (next
// element offset, arguments left, the length of the bulk body it waits for), so a 1 MiB bulk
// string arriving a byte at a time costs O(1) per read on top of ByteQueue's linear copying.
// Header lines (`*N`, `$N`) are at most a few bytes and are re-read whole when split by a read.
//
// Limits and errors (the connection replies to what came before, then closes):
//   ERR_FRAME_TOO_LONG  the command's declared or received bytes pass maxFrameBytes — refused as
//                       soon as a header announces it, before the body is buffered; an inline
//                       command longer than 64 KiB (Redis's PROTO_INLINE_MAX_SIZE): splitting
//                       and rewriting one costs main-thread time, and `a a a …` becomes a
//                       multibulk frame ~4.5× its size, so inline is for telnet, not bulk data
//   ERR_FRAME_INVALID   a request starting with a RESP type byte other than '*' ($ + - :), an
//                       array element that is not a bulk string, a non-numeric or over-long
//                       count, a negative count other than the null array *-1, a null or
//                       negative bulk length ($-1 is not an argument; Redis refuses it too), a
//                       header or bulk body not followed by CRLF, unbalanced quotes inline.
// `*-1\r\n`, `*0\r\n` and blank inline lines are no command at all: skipped without a reply, as
// Redis does. A command cut short by the end of input is dropped (end() returns undefined).

import { ErrorCodes, SockservError } from '../errors.js';
import { ByteQueue } from '../framing/byte-queue.js';
import type { Framer, FramerLimits } from '../framing/framer.js';
import { encodeCommand } from './encode.js';
import { splitInline } from './inline.js';
import { CR, DOLLAR, LF, MAX_DIGITS, MINUS, STAR, describeByte, invalid } from './syntax.js';

/** Type bytes of RESP values that are not a request: a request starting with one is invalid. */
const NOT_A_REQUEST = new Set([DOLLAR, 0x2b /* + */, MINUS, 0x3a /* : */]);
/** The smallest element of a command, `$0\r\n\r\n`: bounds the bytes an announced count needs. */
const MIN_ELEMENT_BYTES = 6;
/** Longest inline command line, as Redis (PROTO_INLINE_MAX_SIZE): 64 KiB. */
export const INLINE_MAX_BYTES = 64 * 1024;

/** `framing: 'resp'`: Redis protocol commands (multibulk or inline), each handed over in multibulk form; read it with parseCommand(). */
export class RespFramer implements Framer {
  readonly #queue: ByteQueue;
  readonly #maxFrameBytes: number;
  /** The longest inline line: INLINE_MAX_BYTES, or maxFrameBytes when that is smaller. */
  readonly #inlineMax: number;
  /** Arguments of the current multibulk command still to come; -1 between commands. */
  #argsLeft = -1;
  /** Queue offset where parsing resumes: the next element's `$`, or the awaited bulk's body. */
  #pos = 0;
  /** Length of the bulk body starting at #pos, once its header is read; -1 while at a header. */
  #bulkLength = -1;
  /** Inline commands: queue offset up to which the line is known to hold no LF. */
  #scanned = 0;
  /** What #readHeader last parsed (it returns the offset past the header, or -1). */
  #headerValue = 0;

  constructor(limits: FramerLimits) {
    this.#maxFrameBytes = limits.maxFrameBytes;
    this.#inlineMax = Math.min(INLINE_MAX_BYTES, limits.maxFrameBytes);
    this.#queue = new ByteQueue(limits.maxFrameBytes + 2);
  }

  get bufferedBytes(): number {
    return this.#queue.length;
  }

  push(chunk: Buffer): void {
    this.#queue.push(chunk);
  }

  next(): Buffer | undefined {
    const queue = this.#queue;
    while (this.#argsLeft < 0) {
      // Between commands: the queue starts at the first byte of the next request.
      if (queue.length === 0) return undefined;
      const type = queue.byteAt(0);
      if (type !== STAR) {
        if (NOT_A_REQUEST.has(type)) {
          throw invalid(`a request must be an array of bulk strings, got type byte ${describeByte(type)}`);
        }
        const inline = this.#nextInline();
        if (inline === undefined) return undefined;
        if (inline !== null) return inline;
        continue; // a blank line
      }
      const end = this.#readHeader(0);
      if (end < 0) return undefined;
      const count = this.#headerValue;
      if (count <= 0) {
        queue.skip(end); // *0 and the null array *-1: no command
        continue;
      }
      if (end + count * MIN_ELEMENT_BYTES > this.#maxFrameBytes) {
        throw this.#tooLong(`an array of ${count} arguments needs at least ${end + count * MIN_ELEMENT_BYTES} bytes`);
      }
      this.#argsLeft = count;
      this.#pos = end;
      this.#bulkLength = -1;
    }
    while (this.#argsLeft > 0) {
      if (this.#bulkLength < 0) {
        if (this.#pos >= queue.length) return undefined;
        const type = queue.byteAt(this.#pos);
        if (type !== DOLLAR) throw invalid(`expected '$' (a bulk string argument), got ${describeByte(type)}`);
        const end = this.#readHeader(this.#pos);
        if (end < 0) return undefined;
        const length = this.#headerValue;
        if (length < 0) throw invalid('a null bulk string is not a command argument');
        if (end + length + 2 > this.#maxFrameBytes) {
          throw this.#tooLong(`a bulk string of ${length} bytes makes the command at least ${end + length + 2} bytes`);
        }
        this.#pos = end;
        this.#bulkLength = length;
      }
      const bodyEnd = this.#pos + this.#bulkLength;
      if (queue.length < bodyEnd + 2) return undefined;
      if (queue.byteAt(bodyEnd) !== CR || queue.byteAt(bodyEnd + 1) !== LF) {
        throw invalid(`a bulk string of ${this.#bulkLength} bytes is not followed by CRLF`);
      }
      this.#pos = bodyEnd + 2;
      this.#bulkLength = -1;
      this.#argsLeft--;
    }
    const frame = queue.take(this.#pos);
    this.#argsLeft = -1;
    this.#pos = 0;
    return frame;
  }

  /** RESP has no unterminated last request: a command cut short by the end of input is dropped. */
  end(): Buffer | undefined {
    return undefined;
  }

  encode(reply: Uint8Array, out: Uint8Array[]): void {
    out.push(reply);
  }

  /**
   * Reads the `*N\r\n` or `$N\r\n` header whose type byte is at queue offset `at`: sets
   * #headerValue and returns the offset past its CRLF, or -1 when the header is still incomplete.
   */
  #readHeader(at: number): number {
    const queue = this.#queue;
    const available = queue.length;
    let i = at + 1;
    let negative = false;
    if (i < available && queue.byteAt(i) === MINUS) {
      negative = true;
      i++;
    }
    const digitsStart = i;
    let value = 0;
    for (;;) {
      // Checked before the byte is looked at, so the outcome never depends on how reads split it.
      if (i > this.#maxFrameBytes) throw this.#tooLong(`a header reaches byte ${i}`);
      if (i >= available) return -1;
      const c = queue.byteAt(i);
      if (c === CR) break;
      if (c < 0x30 || c > 0x39) throw invalid(`a count or length holds ${describeByte(c)}, not a digit`);
      if (i - digitsStart === MAX_DIGITS) throw invalid(`a count or length has more than ${MAX_DIGITS} digits`);
      value = value * 10 + (c - 0x30);
      i++;
    }
    if (i === digitsStart) throw invalid('a count or length is empty');
    if (negative && value !== 1) throw invalid(`negative count or length -${value}`);
    if (i + 1 >= available) return -1; // the LF has not arrived
    if (queue.byteAt(i + 1) !== LF) throw invalid(`a header ends with CR and ${describeByte(queue.byteAt(i + 1))}, not CRLF`);
    this.#headerValue = negative ? -1 : value;
    return i + 2;
  }

  /**
   * The inline command at the head of the queue: its canonical multibulk frame, null for a blank
   * line (consumed), or undefined while the line is incomplete.
   */
  #nextInline(): Buffer | null | undefined {
    const queue = this.#queue;
    const lf = queue.indexOf(LF, this.#scanned);
    if (lf === -1) {
      // +1: the CR of a CRLF may be the last byte so far.
      if (queue.length > this.#inlineMax + 1) throw this.#inlineTooLong(`an inline command of ${queue.length} bytes has no end of line`);
      this.#scanned = queue.length;
      return undefined;
    }
    this.#scanned = 0;
    let line = queue.take(lf);
    queue.skip(1);
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    if (line.length > this.#inlineMax) throw this.#inlineTooLong(`an inline command of ${line.length} bytes`);
    const args = splitInline(line);
    return args.length === 0 ? null : encodeCommand(args);
  }

  #inlineTooLong(detail: string): SockservError {
    return new SockservError(ErrorCodes.FRAME_TOO_LONG, `${detail}: over the inline limit (${this.#inlineMax} bytes; send large commands as multibulk)`);
  }

  #tooLong(detail: string): SockservError {
    return new SockservError(ErrorCodes.FRAME_TOO_LONG, `${detail}: over maxFrameBytes (${this.#maxFrameBytes})`);
  }
}
