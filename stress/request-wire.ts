// Owns the bytes one request puts on the wire: the payload plus its framing. Every request of a
// kind is the same bytes, so each kind is framed once, up front (request-schedule.ts lays them out).

/** How requests are framed on the wire, and so how replies are told apart. */
export type StressFraming = 'line' | 'length' | 'raw' | 'resp';

/** One request as sent: the payload plus its framing. */
export function encodeRequest(payload: Buffer, framing: StressFraming): Buffer {
  switch (framing) {
    case 'line':
      return Buffer.concat([payload, NEWLINE]);
    case 'length': {
      const header = Buffer.allocUnsafe(4);
      header.writeUInt32BE(payload.length, 0);
      return Buffer.concat([header, payload]);
    }
    case 'raw':
      return Buffer.from(payload);
    case 'resp':
      return encodeRespCommand(payload);
  }
}

/**
 * The payload's words (split on runs of spaces and tabs, as redis-cli splits a typed line) as a
 * RESP array of bulk strings, the form every RESP server accepts: `GET k` → `*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`.
 */
function encodeRespCommand(payload: Buffer): Buffer {
  const words: Buffer[] = [];
  let start = -1;
  for (let i = 0; i <= payload.length; i++) {
    const blank = i === payload.length || payload[i] === 0x20 || payload[i] === 0x09;
    if (blank && start >= 0) {
      words.push(payload.subarray(start, i));
      start = -1;
    } else if (!blank && start < 0) {
      start = i;
    }
  }
  const parts: Buffer[] = [Buffer.from(`*${words.length}\r\n`)];
  for (const word of words) parts.push(Buffer.from(`$${word.length}\r\n`), word, CRLF);
  return Buffer.concat(parts);
}

const NEWLINE = Buffer.from('\n');
const CRLF = Buffer.from('\r\n');
