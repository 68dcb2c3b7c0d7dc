// Owns writing RESP2 values: the replies a Redis-protocol handler returns (simple string, error,
// integer, bulk string, null bulk, array) and the command form clients send (an array of bulk
// strings). A handler returns these bytes as they are; RespFramer.encode adds nothing to them.
//
//   respSimple('OK')          +OK\r\n
//   respError('ERR no')       -ERR no\r\n
//   respInteger(42)           :42\r\n
//   respBulk('hi')            $2\r\nhi\r\n
//   respNullBulk()            $-1\r\n
//   respArray([a, b])         *2\r\n<a><b>            (items are already-encoded replies)
//   respPush([a, b])          >2\r\n<a><b>            (RESP3 out-of-band push: what rooms send)
//   encodeCommand(['GET','k']) *2\r\n$3\r\nGET\r\n$1\r\nk\r\n

const CRLF = '\r\n';
const NULL_BULK = Buffer.from('$-1\r\n');

/** `+text\r\n`. CR and LF cannot appear in a simple string; each becomes a space. */
export function respSimple(text: string): Buffer {
  return Buffer.from(`+${oneLine(text)}${CRLF}`);
}

/**
 * `-message\r\n`. By convention the message starts with an upper-case error kind ("ERR ...",
 * "WRONGTYPE ..."), which clients show as is. CR and LF become spaces, as Redis does.
 */
export function respError(message: string): Buffer {
  return Buffer.from(`-${oneLine(message)}${CRLF}`);
}

/** `:n\r\n`; n must be an integer (a bigint for values past 2^53). */
export function respInteger(n: number | bigint): Buffer {
  if (typeof n === 'number' && !Number.isInteger(n)) throw new RangeError(`respInteger: ${n} is not an integer`);
  return Buffer.from(`:${n}${CRLF}`);
}

/** `$len\r\n<bytes>\r\n`: binary-safe. Strings are written as UTF-8. */
export function respBulk(data: string | Uint8Array): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data) : data;
  const header = `$${body.length}${CRLF}`;
  const out = Buffer.allocUnsafe(header.length + body.length + 2);
  out.write(header, 0, 'latin1');
  out.set(body, header.length);
  out.write(CRLF, header.length + body.length, 'latin1');
  return out;
}

/** `$-1\r\n`: the null bulk string (Redis's "no such key"). */
export function respNullBulk(): Buffer {
  return NULL_BULK;
}

/** `*n\r\n` followed by the items, which are already-encoded replies (nest arrays freely). */
export function respArray(items: readonly Uint8Array[]): Buffer {
  const header = Buffer.from(`*${items.length}${CRLF}`, 'latin1');
  return Buffer.concat([header, ...items]);
}

/**
 * `>n\r\n` followed by the items: a RESP3 push, data the server sends unasked (Redis's pub/sub
 * messages). Rooms send `>3 message <room> <data>` (broadcast) and `>2 message <data>` (sendTo).
 */
export function respPush(items: readonly Uint8Array[]): Buffer {
  const header = Buffer.from(`>${items.length}${CRLF}`, 'latin1');
  return Buffer.concat([header, ...items]);
}

/** A command as clients send it: an array of bulk strings. The canonical RespFramer frame. */
export function encodeCommand(args: ReadonlyArray<string | Uint8Array>): Buffer {
  return respArray(args.map(respBulk));
}

function oneLine(text: string): string {
  return /[\r\n]/.test(text) ? text.replace(/[\r\n]/g, ' ') : text;
}
