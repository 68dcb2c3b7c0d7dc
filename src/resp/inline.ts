// Owns splitting an inline RESP command (`SET k "hello world"`, what telnet and nc users type)
// into its arguments: a port of Redis's sdssplitargs, quoting and escapes included.

import { invalid } from './syntax.js';

/**
 * Splits an inline command line as Redis does (sdssplitargs): arguments are separated by
 * whitespace; "double quotes" allow \n \r \t \b \a \xHH and \<any> escapes, 'single quotes' allow
 * \' only; a closing quote must be followed by whitespace or the end of the line.
 */
export function splitInline(line: Buffer): Buffer[] {
  const args: Buffer[] = [];
  const n = line.length;
  let p = 0;
  for (;;) {
    while (p < n && isSpace(line[p]!)) p++;
    if (p === n) return args;
    const quote = line[p]!;
    if (quote !== 0x22 && quote !== 0x27) {
      // Unquoted: a zero-copy slice up to the next whitespace. A quote inside ends nothing (a"b).
      const start = p;
      while (p < n && !isSpace(line[p]!) && line[p] !== 0x22 && line[p] !== 0x27) p++;
      if (p === n || isSpace(line[p]!)) {
        args.push(line.subarray(start, p));
        continue;
      }
      // A quote right after unquoted text starts a quoted part of the same argument, as in Redis.
      args.push(Buffer.concat([line.subarray(start, p), readQuoted()]));
      continue;
    }
    args.push(readQuoted());
  }

  /** Reads a quoted part starting at line[p] (and any text glued after it); advances p. */
  function readQuoted(): Buffer {
    const bytes: number[] = [];
    const quote = line[p++]!;
    for (;;) {
      if (p >= n) throw invalid('unbalanced quotes in an inline command');
      const c = line[p]!;
      if (quote === 0x22 && c === 0x5c /* \ */ && p + 1 < n) {
        const e = line[p + 1]!;
        if (e === 0x78 /* x */ && p + 3 < n && isHex(line[p + 2]!) && isHex(line[p + 3]!)) {
          bytes.push(parseInt(String.fromCharCode(line[p + 2]!, line[p + 3]!), 16));
          p += 4;
          continue;
        }
        bytes.push(ESCAPES.get(e) ?? e);
        p += 2;
        continue;
      }
      if (quote === 0x27 && c === 0x5c && line[p + 1] === 0x27) {
        bytes.push(0x27);
        p += 2;
        continue;
      }
      if (c === quote) {
        p++;
        if (p < n && !isSpace(line[p]!)) throw invalid('a closing quote must be followed by a space in an inline command');
        return Buffer.from(bytes);
      }
      bytes.push(c);
      p++;
    }
  }
}

const ESCAPES = new Map<number, number>([
  [0x6e /* n */, 0x0a],
  [0x72 /* r */, 0x0d],
  [0x74 /* t */, 0x09],
  [0x62 /* b */, 0x08],
  [0x61 /* a */, 0x07],
]);

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d); // space \t \n \v \f \r
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}
