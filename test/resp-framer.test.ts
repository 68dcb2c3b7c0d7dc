// RespFramer, parseCommand and the RESP reply encoders, fed raw bytes directly.

import {
  ErrorCodes,
  RespFramer,
  SockservError,
  encodeCommand,
  parseCommand,
  resolveFraming,
  respArray,
  respBulk,
  respError,
  respInteger,
  respNullBulk,
  respSimple,
} from '../src/index.js';
import { INLINE_MAX_BYTES } from '../src/resp/framer.js';

const LIMITS = { maxFrameBytes: 1024 * 1024 };

/** Pushes each chunk and collects every frame the framer returns after it. */
function frames(chunks: Array<string | Buffer>, framer = new RespFramer(LIMITS)): Buffer[] {
  const out: Buffer[] = [];
  for (const chunk of chunks) {
    framer.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
    for (let frame = framer.next(); frame !== undefined; frame = framer.next()) out.push(frame);
  }
  return out;
}

/** Each frame decoded to its arguments as latin1 strings. */
function commands(chunks: Array<string | Buffer>, framer?: RespFramer): string[][] {
  return frames(chunks, framer).map((frame) => parseCommand(frame).map((arg) => arg.toString('latin1')));
}

function byteByByte(data: string): string[] {
  return [...Buffer.from(data, 'latin1')].map((b) => String.fromCharCode(b));
}

function expectCode(fn: () => unknown, code: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(SockservError);
  expect((thrown as SockservError).code).toBe(code);
}

const PIPELINE_PARTS = [
  '*1\r\n$4\r\nPING\r\n',
  '*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n',
  'PING\r\n',
  '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n',
];
const PIPELINE = PIPELINE_PARTS.join('');
const PIPELINE_ARGS = [['PING'], ['ECHO', 'hi'], ['PING'], ['SET', 'k', 'value']];

describe('RespFramer', () => {
  test('pipelined commands in one chunk, multibulk and inline', () => {
    expect(commands([PIPELINE])).toEqual(PIPELINE_ARGS);
  });

  test('a multibulk frame is the command bytes as received; an inline one is rewritten to that form', () => {
    const [multibulk, inline] = frames(['*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nECHO hi\r\n']);
    expect(multibulk!.toString('latin1')).toBe('*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n');
    expect(inline!.toString('latin1')).toBe('*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n');
  });

  test('fed byte by byte: nothing until a command is complete, then exactly it', () => {
    const framer = new RespFramer(LIMITS);
    const got: string[][] = [];
    const ends = PIPELINE_PARTS.map((_, i) => PIPELINE_PARTS.slice(0, i + 1).join('').length);
    for (const [i, byte] of byteByByte(PIPELINE).entries()) {
      const before = got.length;
      got.push(...commands([byte], framer));
      const completes = ends.includes(i + 1);
      expect(got.length - before).toBe(completes ? 1 : 0);
    }
    expect(got).toEqual(PIPELINE_ARGS);
    expect(framer.bufferedBytes).toBe(0);
  });

  test('chunks split anywhere, including inside headers and CRLFs, give the same commands', () => {
    const data = Buffer.from(PIPELINE, 'latin1');
    for (let cut = 1; cut < data.length; cut++) {
      expect(commands([data.subarray(0, cut), data.subarray(cut)])).toEqual(PIPELINE_ARGS);
    }
  });

  test('inline commands: LF or CRLF, whitespace runs, quotes and escapes, blank lines skipped', () => {
    const got = commands([
      'PING\r\n',
      'ping\n',
      '\r\n   \t \r\n',
      '  ECHO   "hello world"  \r\n',
      `SET k 'it\\'s'\r\n`,
      'ECHO "\\x41\\n\\t\\"q\\""\r\n',
      'ECHO ""\r\n',
    ]);
    expect(got).toEqual([['PING'], ['ping'], ['ECHO', 'hello world'], ['SET', 'k', "it's"], ['ECHO', 'A\n\t"q"'], ['ECHO', '']]);
  });

  test('an inline command arriving byte by byte', () => {
    expect(commands(byteByByte('ECHO "a b" c\r\n'))).toEqual([['ECHO', 'a b', 'c']]);
  });

  test('empty bulk strings', () => {
    expect(commands(['*3\r\n$4\r\nECHO\r\n$0\r\n\r\n$0\r\n\r\n'])).toEqual([['ECHO', '', '']]);
  });

  test('bulk strings are binary-safe: CRLF, NUL and high bytes inside', () => {
    const body = Buffer.from([0x0d, 0x0a, 0x00, 0xff, 0x2a, 0x0d, 0x0a, 0x24]); // "\r\n\0\xff*\r\n$"
    const request = Buffer.concat([Buffer.from(`*2\r\n$4\r\nECHO\r\n$${body.length}\r\n`), body, Buffer.from('\r\n')]);
    for (const chunks of [[request], [...request].map((b) => Buffer.from([b]))]) {
      const [frame, ...rest] = frames(chunks);
      expect(rest).toHaveLength(0);
      const args = parseCommand(frame!);
      expect(args[0]!.toString()).toBe('ECHO');
      expect(args[1]).toEqual(body);
    }
  });

  test('*0 and the null array *-1 are no command, as in Redis', () => {
    expect(commands(['*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n'])).toEqual([['PING']]);
  });

  test('commands before a malformed one are returned, then it throws ERR_FRAME_INVALID', () => {
    const framer = new RespFramer(LIMITS);
    framer.push(Buffer.from('*1\r\n$4\r\nPING\r\n*1\r\n+PING\r\n'));
    expect(parseCommand(framer.next()!).map(String)).toEqual(['PING']);
    expectCode(() => framer.next(), ErrorCodes.FRAME_INVALID);
  });

  test.each([
    ['a bulk string where a command should start', '$4\r\nPING\r\n'],
    ['a simple string where a command should start', '+PING\r\n'],
    ['an error where a command should start', '-ERR x\r\n'],
    ['an integer where a command should start', ':1\r\n'],
    ['an array element that is not a bulk string', '*1\r\n+PING\r\n'],
    ['an array element that is an integer', '*2\r\n$4\r\nECHO\r\n:1\r\n'],
    ['a non-numeric count', '*x\r\n'],
    ['a count with trailing junk', '*1x\r\n'],
    ['an empty count', '*\r\n'],
    ['a non-numeric bulk length', '*1\r\n$abc\r\n'],
    ['an empty bulk length', '*1\r\n$\r\n'],
    ['a negative count other than null', '*-2\r\n'],
    ['a count of minus zero', '*-0\r\n'],
    ['a null bulk as an argument', '*1\r\n$-1\r\n'],
    ['a negative bulk length', '*1\r\n$-5\r\n'],
    ['a count of 16 digits', '*1234567890123456\r\n'],
    ['a count header ending in LF only', '*1\n$4\r\nPING\r\n'],
    ['a count header ending in CR and another byte', '*1\rx'],
    ['a bulk header ending in LF only', '*1\r\n$4\nPING\r\n'],
    ['a bulk body longer than announced', '*1\r\n$4\r\nPINGG\r\n'],
    ['a bulk body not followed by CRLF', '*1\r\n$4\r\nPING\n\r'],
    ['unbalanced double quotes inline', 'ECHO "abc\r\n'],
    ['unbalanced single quotes inline', "ECHO 'abc\r\n"],
    ['text right after a closing quote inline', 'ECHO "a"b\r\n'],
  ])('%s → ERR_FRAME_INVALID, whole or byte by byte', (_name, input) => {
    expectCode(() => frames([input]), ErrorCodes.FRAME_INVALID);
    expectCode(() => frames(byteByByte(input)), ErrorCodes.FRAME_INVALID);
  });

  describe('maxFrameBytes', () => {
    const small = { maxFrameBytes: 64 };

    test('a command of exactly maxFrameBytes is accepted; one byte more is refused', () => {
      // *2\r\n$4\r\nECHO\r\n$N\r\n<N>\r\n is 4 + 10 + 5 + N + 2 bytes (N of two digits).
      const command = (n: number) => `*2\r\n$4\r\nECHO\r\n$${n}\r\n${'x'.repeat(n)}\r\n`;
      expect(command(43)).toHaveLength(64);
      expect(frames([command(43)], new RespFramer(small))[0]!.length).toBe(64);
      expectCode(() => frames([command(44)], new RespFramer(small)), ErrorCodes.FRAME_TOO_LONG);
    });

    test('a declared bulk length past the limit is refused as soon as its header arrives', () => {
      const framer = new RespFramer(small);
      framer.push(Buffer.from('*2\r\n$4\r\nECHO\r\n$100\r'));
      expect(framer.next()).toBeUndefined();
      framer.push(Buffer.from('\n'));
      expectCode(() => framer.next(), ErrorCodes.FRAME_TOO_LONG);
    });

    test('a count that cannot fit is refused at once', () => {
      expectCode(() => frames(['*20\r\n'], new RespFramer(small)), ErrorCodes.FRAME_TOO_LONG);
    });

    test('an inline command without an end of line is refused once it passes the limit', () => {
      const framer = new RespFramer(small);
      framer.push(Buffer.from('E'.repeat(64)));
      expect(framer.next()).toBeUndefined();
      framer.push(Buffer.from('\r')); // may still be the CR of a 64-byte line
      expect(framer.next()).toBeUndefined();
      framer.push(Buffer.from('E'));
      expectCode(() => framer.next(), ErrorCodes.FRAME_TOO_LONG);
    });

    test('the limit is per command: pipelined commands may add up to more', () => {
      const command = '*2\r\n$4\r\nECHO\r\n$30\r\n' + 'y'.repeat(30) + '\r\n';
      expect(frames([command.repeat(10)], new RespFramer(small))).toHaveLength(10);
    });
  });

  // Inline commands are capped at INLINE_MAX_BYTES (64 KiB, as Redis): the inline case is the longest allowed line.
  const MiB = 1024 * 1024;
  test.each([
    ['1 MiB bulk string', Buffer.from(`*2\r\n$4\r\nECHO\r\n$${MiB}\r\n`), MiB],
    ['64 KiB inline command', Buffer.from('ECHO '), INLINE_MAX_BYTES - 5],
  ])('a %s arriving one byte per push costs linear time', (_name, head, size) => {
    const request = Buffer.concat([head, Buffer.alloc(size, 0x61), Buffer.from('\r\n')]);
    const framer = new RespFramer({ maxFrameBytes: 2 * MiB });
    const started = performance.now();
    const got: Buffer[] = [];
    for (let i = 0; i < request.length; i++) {
      framer.push(request.subarray(i, i + 1));
      const frame = framer.next();
      if (frame !== undefined) got.push(frame); // (no expect() per byte: a million of them take minutes)
    }
    const elapsed = performance.now() - started;
    expect(got).toHaveLength(1);
    expect(parseCommand(got[0]!)[1]!.length).toBe(size);
    // Linear work is well under a second here; a quadratic re-scan would take hours.
    expect(elapsed).toBeLessThan(10_000);
  });

  describe('inline commands are capped at 64 KiB (PROTO_INLINE_MAX_SIZE) whatever maxFrameBytes is', () => {
    const roomy = { maxFrameBytes: 4 * MiB };

    test('a line of exactly 64 KiB is a command', () => {
      const line = 'ECHO ' + 'b'.repeat(INLINE_MAX_BYTES - 5);
      const [frame] = frames([line + '\r\n'], new RespFramer(roomy));
      expect(parseCommand(frame!)[1]!.length).toBe(INLINE_MAX_BYTES - 5);
    });

    test('one byte more is ERR_FRAME_TOO_LONG, with or without its end of line', () => {
      const line = 'ECHO ' + 'b'.repeat(INLINE_MAX_BYTES - 4);
      expectCode(() => frames([line + '\r\n'], new RespFramer(roomy)), ErrorCodes.FRAME_TOO_LONG);
      const framer = new RespFramer(roomy);
      framer.push(Buffer.from(line + 'bb')); // no LF yet: refused once past 64 KiB + a CR
      expectCode(() => framer.next(), ErrorCodes.FRAME_TOO_LONG);
    });

    test('a 1 MiB inline command of `a a a …` is refused before it is split, not turned into a 3.7 MiB frame', () => {
      const framer = new RespFramer(roomy);
      const started = performance.now();
      framer.push(Buffer.from('a '.repeat(MiB / 2)));
      expectCode(() => framer.next(), ErrorCodes.FRAME_TOO_LONG);
      expect(performance.now() - started).toBeLessThan(1000); // no splitting happened (it took 400+ ms)
    });
  });

  test('a command cut short by the end of input is dropped', () => {
    const framer = new RespFramer(LIMITS);
    framer.push(Buffer.from('*1\r\n$4\r\nPI'));
    expect(framer.next()).toBeUndefined();
    expect(framer.bufferedBytes).toBe(10);
    expect(framer.end()).toBeUndefined();
  });

  test('encode writes the reply unchanged', () => {
    const reply = respSimple('OK');
    const out: Uint8Array[] = [];
    new RespFramer(LIMITS).encode(reply, out);
    expect(out).toEqual([reply]);
    expect(out[0]).toBe(reply);
  });

  test("framing: 'resp' resolves to RespFramer", () => {
    const framing = resolveFraming('resp');
    expect(framing.name).toBe('resp');
    expect(framing.create(LIMITS)).toBeInstanceOf(RespFramer);
  });
});

describe('parseCommand', () => {
  test('round-trips encodeCommand, arguments as views into the frame', () => {
    const frame = encodeCommand(['SET', 'key', Buffer.from([0, 13, 10]), '']);
    const args = parseCommand(frame);
    expect(args.map((a) => [...a])).toEqual([[...Buffer.from('SET')], [...Buffer.from('key')], [0, 13, 10], []]);
    expect(args[1]!.buffer).toBe(frame.buffer);
  });

  test.each([
    ['a line', 'PING'],
    ['a short bulk', '*1\r\n$5\r\nPING\r\n'],
    ['trailing bytes', '*1\r\n$4\r\nPING\r\nx'],
    ['a missing argument', '*2\r\n$4\r\nPING\r\n'],
  ])('refuses %s with ERR_FRAME_INVALID', (_name, input) => {
    expectCode(() => parseCommand(Buffer.from(input)), ErrorCodes.FRAME_INVALID);
  });
});

describe('RESP reply encoders', () => {
  test.each([
    ['simple string', respSimple('OK'), '+OK\r\n'],
    ['simple string with CR/LF', respSimple('a\r\nb'), '+a  b\r\n'],
    ['error', respError('ERR nope'), '-ERR nope\r\n'],
    ['integer', respInteger(-42), ':-42\r\n'],
    ['bigint', respInteger(2n ** 64n), ':18446744073709551616\r\n'],
    ['bulk string', respBulk('héllo'), '$6\r\nh\xc3\xa9llo\r\n'],
    ['empty bulk string', respBulk(''), '$0\r\n\r\n'],
    ['binary bulk string', respBulk(Buffer.from('a\r\nb')), '$4\r\na\r\nb\r\n'],
    ['null bulk', respNullBulk(), '$-1\r\n'],
    ['empty array', respArray([]), '*0\r\n'],
    ['nested array', respArray([respInteger(1), respArray([respBulk('x')]), respNullBulk()]), '*3\r\n:1\r\n*1\r\n$1\r\nx\r\n$-1\r\n'],
    ['command', encodeCommand(['ECHO', 'hi']), '*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n'],
  ])('%s', (_name, encoded, wire) => {
    expect(encoded.toString('latin1')).toBe(wire);
  });

  test('respInteger refuses a non-integer', () => {
    expect(() => respInteger(1.5)).toThrow(RangeError);
  });
});
