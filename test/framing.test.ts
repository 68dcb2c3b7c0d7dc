// Framers fed raw Buffers directly: the same byte stream must give the same frames however the
// reads split it, limits throw ERR_FRAME_TOO_LONG, and encode() writes the exact wire bytes.

import {
  ByteQueue,
  DelimiterFramer,
  type Framer,
  LengthPrefixFramer,
  LineFramer,
  RawFramer,
  resolveFraming,
  SockservError,
} from '../src/index.js';
import { lengthFrame, prng } from './helpers/net.js';

const MiB = 1024 * 1024;
const big = { maxFrameBytes: 16 * MiB };

/** Splits `stream` into chunks whose sizes cycle through `sizes`. */
function chunksOf(stream: Buffer, sizes: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < stream.length; i++) {
    const n = sizes[i % sizes.length]!;
    chunks.push(stream.subarray(at, at + n));
    at += n;
  }
  return chunks;
}

/**
 * Pushes each chunk, drains next() after every push, then calls end(). Returns the frames as
 * returned (views) and as copied at the moment they were returned, so a view that a later push
 * overwrote shows up as a difference.
 */
function run(framer: Framer, chunks: Buffer[]): { frames: Buffer[]; copies: string[]; last: Buffer | undefined } {
  const frames: Buffer[] = [];
  const copies: string[] = [];
  for (const chunk of chunks) {
    framer.push(chunk);
    for (let frame = framer.next(); frame !== undefined; frame = framer.next()) {
      frames.push(frame);
      copies.push(frame.toString('hex'));
    }
  }
  return { frames, copies, last: framer.end() };
}

function hex(frames: Buffer[]): string[] {
  return frames.map((f) => f.toString('hex'));
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

const SPLITS: Array<[string, number[]]> = [
  ['byte by byte', [1]],
  ['2-byte reads', [2]],
  ['odd sizes 1,2,3,5,7,11,13', [1, 2, 3, 5, 7, 11, 13]],
  ['primes up to 97', [17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97]],
  ['4096-byte reads', [4096]],
];

/** A deterministic mix of frames: empty ones, single bytes, binary, a few KiB long. */
function sampleFrames(count: number, seed: number, exclude: (byte: number) => boolean): Buffer[] {
  const random = prng(seed);
  const frames: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const kind = random();
    const length = kind < 0.1 ? 0 : kind < 0.2 ? 1 : kind < 0.9 ? Math.floor(random() * 40) : Math.floor(random() * 5000);
    const frame = Buffer.alloc(length);
    for (let j = 0; j < length; j++) {
      let byte = Math.floor(random() * 256);
      while (exclude(byte)) byte = Math.floor(random() * 256);
      frame[j] = byte;
    }
    frames.push(frame);
  }
  return frames;
}

describe('ByteQueue', () => {
  test('push, take, skip, length and takeAll across many chunks', () => {
    const q = new ByteQueue();
    expect(q.length).toBe(0);
    q.push(Buffer.from('hello '));
    q.push(Buffer.from('wor'));
    q.push(Buffer.alloc(0));
    q.push(Buffer.from('ld!'));
    expect(q.length).toBe(12);
    expect(q.take(5).toString()).toBe('hello');
    q.skip(1);
    expect(q.length).toBe(6);
    expect(q.byteAt(0)).toBe('w'.charCodeAt(0));
    expect(q.byteAt(5)).toBe('!'.charCodeAt(0));
    expect(q.takeAll().toString()).toBe('world!');
    expect(q.length).toBe(0);
  });

  test('with a capacity limit the buffer grows to what the frame needs, not to the next doubling past it', () => {
    const MiB = 1024 * 1024;
    const frame = MiB - 1024; // a line just under maxFrameBytes (1 MiB), in 64 KiB reads
    const fill = (q: ByteQueue) => {
      for (let sent = 0; sent < frame; sent += 64 * 1024) q.push(Buffer.alloc(Math.min(64 * 1024, frame - sent), 'a'));
      expect(q.length).toBe(frame);
      return q.capacity;
    };
    expect(fill(new ByteQueue(MiB + 2))).toBe(MiB + 2);
    expect(fill(new ByteQueue())).toBeGreaterThan(MiB + 64 * 1024); // unbounded: the doubling overshoots the frame
    // A push past the limit still fits, exactly.
    const q = new ByteQueue(100);
    q.push(Buffer.alloc(60, 'a'));
    q.push(Buffer.alloc(90, 'b'));
    expect(q.capacity).toBe(150);
    expect(q.takeAll().toString()).toBe('a'.repeat(60) + 'b'.repeat(90));
  });

  test('a read that starts on a boundary is used in place (zero copy)', () => {
    const q = new ByteQueue();
    const chunk = Buffer.from('abcdef');
    q.push(chunk);
    const view = q.take(3);
    expect(view.buffer).toBe(chunk.buffer);
    expect(view.byteOffset).toBe(chunk.byteOffset);
    expect(view.toString()).toBe('abc');
  });

  test('views handed out stay intact while more bytes are pushed and the buffer grows', () => {
    const q = new ByteQueue();
    const views: Array<[Buffer, string]> = [];
    const random = prng(7);
    let expected = '';
    let taken = '';
    for (let i = 0; i < 2000; i++) {
      const piece = Buffer.from(`${i}:${'x'.repeat(Math.floor(random() * 50))};`);
      q.push(piece);
      expected += piece.toString();
      const n = Math.floor(random() * (q.length + 1));
      const view = q.take(n);
      views.push([view, view.toString()]);
      taken += view.toString();
    }
    taken += q.takeAll().toString();
    expect(taken).toBe(expected);
    for (const [view, asTaken] of views) expect(view.toString()).toBe(asTaken);
  });

  test('indexOf searches only the queued bytes, from a queue offset', () => {
    const q = new ByteQueue();
    q.push(Buffer.from('a-b'));
    q.push(Buffer.from('-c--d'));
    expect(q.indexOf(0x2d, 0)).toBe(1);
    expect(q.indexOf(0x2d, 2)).toBe(3);
    expect(q.indexOf(Buffer.from('--'), 0)).toBe(5);
    expect(q.indexOf(Buffer.from('--'), 6)).toBe(-1);
    expect(q.indexOf(0x0a, 0)).toBe(-1);
    q.skip(2);
    // Offsets are relative to the queue's current start.
    expect(q.indexOf(0x2d, 0)).toBe(1);
    expect(q.indexOf(Buffer.from('d'), 0)).toBe(5);
  });

  test('indexOf never matches the spare capacity past the queued bytes', () => {
    // The grown buffer comes from allocUnsafe: whatever sits past the end must not be searched.
    for (let round = 0; round < 10; round++) {
      const q = new ByteQueue();
      q.push(Buffer.from('a'));
      q.push(Buffer.from('b'));
      for (let byte = 0; byte < 256; byte++) {
        if (byte === 0x61 || byte === 0x62) continue;
        expect(q.indexOf(byte, 0)).toBe(-1);
      }
      expect(q.indexOf(0x62, 0)).toBe(1);
    }
  });

  test('peekUInt32BE reads across chunk boundaries without consuming', () => {
    const q = new ByteQueue();
    q.push(Buffer.from([0x00]));
    q.push(Buffer.from([0x01, 0x02]));
    q.push(Buffer.from([0x03, 0xff]));
    expect(q.peekUInt32BE()).toBe(0x00010203);
    expect(q.peekUInt32BE(1)).toBe(0x010203ff);
    expect(q.length).toBe(5);
  });
});

describe('LineFramer', () => {
  test('many lines in one chunk', () => {
    const framer = new LineFramer(big);
    const { copies, last } = run(framer, [Buffer.from('one\ntwo\n\nthree\nfour')]);
    expect(copies).toEqual(hex([Buffer.from('one'), Buffer.from('two'), Buffer.alloc(0), Buffer.from('three')]));
    expect(last?.toString()).toBe('four');
  });

  test('CRLF and LF both end a line; only one trailing CR is stripped; inner CRs are kept', () => {
    const framer = new LineFramer(big);
    const { frames, last } = run(framer, [Buffer.from('a\r\nb\nc\r\r\nd\re\n\r\n')]);
    expect(frames.map(String)).toEqual(['a', 'b', 'c\r', 'd\re', '']);
    expect(last).toBeUndefined();
  });

  test('CR and LF split across reads', () => {
    const framer = new LineFramer(big);
    const { frames } = run(framer, [Buffer.from('abc\r'), Buffer.from('\ndef\r'), Buffer.from('\n')]);
    expect(frames.map(String)).toEqual(['abc', 'def']);
  });

  test('end() returns an unterminated trailing line (without a trailing CR), then nothing', () => {
    const framer = new LineFramer(big);
    framer.push(Buffer.from('done\npartial\r'));
    expect(framer.next()?.toString()).toBe('done');
    expect(framer.next()).toBeUndefined();
    expect(framer.end()?.toString()).toBe('partial');
    expect(framer.end()).toBeUndefined();
    expect(framer.bufferedBytes).toBe(0);
  });

  test('end() with nothing buffered returns undefined', () => {
    const framer = new LineFramer(big);
    framer.push(Buffer.from('a\n'));
    expect(framer.next()?.toString()).toBe('a');
    expect(framer.end()).toBeUndefined();
  });

  test.each(SPLITS)('the same stream %s gives identical frames', (_name, sizes) => {
    const lines = sampleFrames(400, 1, (b) => b === 0x0a || b === 0x0d);
    const stream = Buffer.concat(lines.flatMap((line, i) => [line, Buffer.from(i % 3 === 0 ? '\r\n' : '\n')]));
    const whole = run(new LineFramer(big), [stream]);
    expect(whole.copies).toEqual(hex(lines));
    const split = run(new LineFramer(big), chunksOf(stream, sizes));
    expect(split.copies).toEqual(whole.copies);
    // Every frame returned is still intact after all later pushes.
    expect(hex(split.frames)).toEqual(split.copies);
    expect(split.last).toBeUndefined();
  });

  test('bufferedBytes counts bytes not yet returned as frames', () => {
    const framer = new LineFramer(big);
    framer.push(Buffer.from('ab\ncd'));
    expect(framer.bufferedBytes).toBe(5);
    framer.next();
    expect(framer.bufferedBytes).toBe(2);
    expect(framer.next()).toBeUndefined();
    expect(framer.bufferedBytes).toBe(2);
  });

  test('a line of exactly maxFrameBytes is accepted, with LF or CRLF', () => {
    const framer = new LineFramer({ maxFrameBytes: 8 });
    const { frames } = run(framer, [Buffer.from('12345678\n'), Buffer.from('abcdefgh\r\n')]);
    expect(frames.map(String)).toEqual(['12345678', 'abcdefgh']);
  });

  test('a complete line longer than maxFrameBytes throws ERR_FRAME_TOO_LONG', () => {
    const framer = new LineFramer({ maxFrameBytes: 8 });
    framer.push(Buffer.from('ok\n123456789\nafter\n'));
    expect(framer.next()?.toString()).toBe('ok');
    expectCode(() => framer.next(), 'ERR_FRAME_TOO_LONG');
  });

  test('an unterminated line throws ERR_FRAME_TOO_LONG once it cannot fit, fed byte by byte', () => {
    const max = 8;
    const framer = new LineFramer({ maxFrameBytes: max });
    let fed = 0;
    let thrown: unknown;
    for (; fed < 100 && thrown === undefined; ) {
      framer.push(Buffer.from('x'));
      fed++;
      try {
        framer.next();
      } catch (error) {
        thrown = error;
      }
    }
    expect(thrown).toBeInstanceOf(SockservError);
    expect((thrown as SockservError).code).toBe('ERR_FRAME_TOO_LONG');
    // Not before the line is over the limit, and at most a CR's worth of slack after it.
    expect(fed).toBeGreaterThan(max);
    expect(fed).toBeLessThanOrEqual(max + 2);
  });

  test('a long line costs linear time: 4 MiB in 4096-byte reads, 64 KiB in 1-byte reads', () => {
    const line = Buffer.alloc(4 * MiB, 0x61);
    const framer = new LineFramer(big);
    const stream = Buffer.concat([line, Buffer.from('\n')]);
    const { frames } = run(framer, chunksOf(stream, [4096]));
    expect(frames).toHaveLength(1);
    expect(frames[0]!.length).toBe(4 * MiB);
    expect(frames[0]!.equals(line)).toBe(true);

    const small = Buffer.alloc(64 * 1024, 0x62);
    const oneByte = run(new LineFramer(big), chunksOf(Buffer.concat([small, Buffer.from('\r\n')]), [1]));
    expect(oneByte.frames).toHaveLength(1);
    expect(oneByte.frames[0]!.equals(small)).toBe(true);
  });

  test('encode() appends one LF and does not copy the reply', () => {
    const framer = new LineFramer(big);
    const out: Uint8Array[] = [];
    const reply = Buffer.from('HELLO');
    framer.encode(reply, out);
    framer.encode(Buffer.alloc(0), out);
    expect(out[0]).toBe(reply);
    expect(Buffer.concat(out).toString('hex')).toBe(Buffer.from('HELLO\n\n').toString('hex'));
  });
});

describe('DelimiterFramer', () => {
  const dash = Buffer.from('--');
  const crlf = Buffer.from('\r\n');

  test('many frames in one chunk, multi-byte delimiter', () => {
    const framer = new DelimiterFramer(dash, big);
    const { frames, last } = run(framer, [Buffer.from('a--bc----d-e--tail-')]);
    expect(frames.map(String)).toEqual(['a', 'bc', '', 'd-e']);
    // A partial delimiter at the end is data: end() returns it with the rest.
    expect(last?.toString()).toBe('tail-');
  });

  test('overlapping delimiter bytes split frames at the first full match', () => {
    const whole = run(new DelimiterFramer(dash, big), [Buffer.from('x---y--')]);
    expect(whole.frames.map(String)).toEqual(['x', '-y']);
    const split = run(new DelimiterFramer(dash, big), [Buffer.from('x-'), Buffer.from('-'), Buffer.from('-y-'), Buffer.from('-')]);
    expect(split.frames.map(String)).toEqual(['x', '-y']);
  });

  test('a delimiter split across chunks is found', () => {
    const framer = new DelimiterFramer(crlf, big);
    const { frames } = run(framer, [Buffer.from('first\r'), Buffer.from('\nsecond'), Buffer.from('\r'), Buffer.from('\n')]);
    expect(frames.map(String)).toEqual(['first', 'second']);
  });

  test('a three-byte delimiter split at every position', () => {
    const delimiter = Buffer.from('<|>');
    const stream = Buffer.from('alpha<|>be<ta<|>|gamma<|><|>');
    for (let cut = 1; cut < stream.length; cut++) {
      const { frames, last } = run(new DelimiterFramer(delimiter, big), [stream.subarray(0, cut), stream.subarray(cut)]);
      expect(frames.map(String)).toEqual(['alpha', 'be<ta', '|gamma', '']);
      expect(last).toBeUndefined();
    }
  });

  test('a lone CR is data with a \\r\\n delimiter; nothing is stripped', () => {
    const framer = new DelimiterFramer(crlf, big);
    const { frames, last } = run(framer, [Buffer.from('a\rb\r\nc\n\r\n\r')]);
    expect(frames.map(String)).toEqual(['a\rb', 'c\n']);
    expect(last?.toString()).toBe('\r');
  });

  test.each(SPLITS)('the same stream %s gives identical frames', (_name, sizes) => {
    // Frames may contain single '-' bytes, never two in a row and never at either end.
    const frames = sampleFrames(400, 2, (b) => b === 0x2d).map((f, i) =>
      i % 5 === 0 && f.length > 2 ? Buffer.concat([f.subarray(0, 1), Buffer.from('-'), f.subarray(1)]) : f,
    );
    const stream = Buffer.concat(frames.flatMap((f) => [f, dash]));
    const whole = run(new DelimiterFramer(dash, big), [stream]);
    expect(whole.copies).toEqual(hex(frames));
    const split = run(new DelimiterFramer(dash, big), chunksOf(stream, sizes));
    expect(split.copies).toEqual(whole.copies);
    expect(hex(split.frames)).toEqual(split.copies);
  });

  test('oversized frames throw ERR_FRAME_TOO_LONG, complete or not', () => {
    const complete = new DelimiterFramer(dash, { maxFrameBytes: 4 });
    complete.push(Buffer.from('abcd--abcde--'));
    expect(complete.next()?.toString()).toBe('abcd');
    expectCode(() => complete.next(), 'ERR_FRAME_TOO_LONG');

    const max = 4;
    const open = new DelimiterFramer(dash, { maxFrameBytes: max });
    let fed = 0;
    let thrown: unknown;
    while (fed < 100 && thrown === undefined) {
      open.push(Buffer.from('z'));
      fed++;
      try {
        open.next();
      } catch (error) {
        thrown = error;
      }
    }
    expect((thrown as SockservError).code).toBe('ERR_FRAME_TOO_LONG');
    expect(fed).toBeGreaterThan(max);
    expect(fed).toBeLessThanOrEqual(max + dash.length);
  });

  test('a frame of exactly maxFrameBytes whose delimiter arrives split is accepted', () => {
    const { frames } = run(new DelimiterFramer(dash, { maxFrameBytes: 4 }), [Buffer.from('abcd-'), Buffer.from('-wxyz-'), Buffer.from('-')]);
    expect(frames.map(String)).toEqual(['abcd', 'wxyz']);
    const line = run(new LineFramer({ maxFrameBytes: 4 }), [Buffer.from('abcd\r'), Buffer.from('\n')]);
    expect(line.frames.map(String)).toEqual(['abcd']);
  });

  test('encode() appends the delimiter bytes', () => {
    const out: Uint8Array[] = [];
    const reply = Buffer.from('ok');
    new DelimiterFramer(crlf, big).encode(reply, out);
    expect(out[0]).toBe(reply);
    expect(Buffer.concat(out).toString('hex')).toBe('6f6b0d0a');
  });

  test('an empty delimiter is refused', () => {
    expect(() => new DelimiterFramer(Buffer.alloc(0), big)).toThrow(RangeError);
  });
});

describe('LengthPrefixFramer', () => {
  test('many frames in one chunk, including an empty one and binary bytes', () => {
    const payloads = [Buffer.from('hi'), Buffer.alloc(0), Buffer.from([0, 10, 13, 255, 0]), Buffer.from('x'.repeat(300))];
    const { frames, last } = run(new LengthPrefixFramer(big), [Buffer.concat(payloads.map((p) => lengthFrame(p)))]);
    expect(hex(frames)).toEqual(hex(payloads));
    expect(last).toBeUndefined();
  });

  test.each(SPLITS)('the same stream %s gives identical frames', (_name, sizes) => {
    const payloads = sampleFrames(400, 3, () => false);
    const stream = Buffer.concat(payloads.map((p) => lengthFrame(p)));
    const whole = run(new LengthPrefixFramer(big), [stream]);
    expect(whole.copies).toEqual(hex(payloads));
    const split = run(new LengthPrefixFramer(big), chunksOf(stream, sizes));
    expect(split.copies).toEqual(whole.copies);
    expect(hex(split.frames)).toEqual(split.copies);
  });

  test('an oversized length is refused right after its 4-byte header, before any body', () => {
    const framer = new LengthPrefixFramer({ maxFrameBytes: 16 });
    framer.push(lengthFrame('sixteen bytes!!!'));
    expect(framer.next()?.toString()).toBe('sixteen bytes!!!');
    const header = Buffer.from([0, 0, 0, 17]);
    for (let i = 0; i < 3; i++) {
      framer.push(header.subarray(i, i + 1));
      expect(framer.next()).toBeUndefined();
    }
    framer.push(header.subarray(3));
    expectCode(() => framer.next(), 'ERR_FRAME_TOO_LONG');
  });

  test('a huge announced length throws at once (nothing waits for 4 GiB)', () => {
    const framer = new LengthPrefixFramer({ maxFrameBytes: MiB });
    framer.push(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    expectCode(() => framer.next(), 'ERR_FRAME_TOO_LONG');
  });

  test('a truncated last frame is dropped at end()', () => {
    const framer = new LengthPrefixFramer(big);
    framer.push(Buffer.concat([lengthFrame('whole'), lengthFrame('truncated').subarray(0, 7)]));
    expect(framer.next()?.toString()).toBe('whole');
    expect(framer.next()).toBeUndefined();
    expect(framer.bufferedBytes).toBe(7);
    expect(framer.end()).toBeUndefined();
  });

  test('a 4 MiB frame in 4096-byte reads, and 64 KiB in 1-byte reads', () => {
    const body = Buffer.alloc(4 * MiB, 0x5a);
    const { frames } = run(new LengthPrefixFramer(big), chunksOf(lengthFrame(body), [4096]));
    expect(frames).toHaveLength(1);
    expect(frames[0]!.equals(body)).toBe(true);
    const small = Buffer.alloc(64 * 1024, 0x33);
    const oneByte = run(new LengthPrefixFramer(big), chunksOf(lengthFrame(small), [1]));
    expect(oneByte.frames).toHaveLength(1);
    expect(oneByte.frames[0]!.equals(small)).toBe(true);
  });

  test('encode() writes a big-endian uint32 header, then the reply uncopied', () => {
    const out: Uint8Array[] = [];
    const reply = Buffer.from('abc');
    const framer = new LengthPrefixFramer(big);
    framer.encode(reply, out);
    framer.encode(Buffer.alloc(0), out);
    framer.encode(Buffer.alloc(258, 1), out);
    expect(out[1]).toBe(reply);
    const wire = Buffer.concat(out);
    expect(wire.subarray(0, 7).toString('hex')).toBe('00000003616263');
    expect(wire.subarray(7, 11).toString('hex')).toBe('00000000');
    expect(wire.subarray(11, 15).toString('hex')).toBe('00000102');
    expect(wire.length).toBe(15 + 258);
  });
});

describe('RawFramer', () => {
  test('each read is one request, in order', () => {
    const framer = new RawFramer(big);
    framer.push(Buffer.from('one'));
    framer.push(Buffer.from('two\nthree'));
    framer.push(Buffer.alloc(0)); // an empty read is no request
    framer.push(Buffer.from('\n'));
    expect(framer.bufferedBytes).toBe(13);
    const frames: string[] = [];
    for (let f = framer.next(); f !== undefined; f = framer.next()) frames.push(f.toString());
    expect(frames).toEqual(['one', 'two\nthree', '\n']);
    expect(framer.bufferedBytes).toBe(0);
    expect(framer.end()).toBeUndefined();
  });

  test.each(SPLITS)('reads %s come back as the same requests, concatenating to the stream', (_name, sizes) => {
    const stream = Buffer.concat(sampleFrames(100, 4, () => false));
    const chunks = chunksOf(stream, sizes);
    const { copies, frames } = run(new RawFramer(big), chunks);
    expect(copies).toEqual(hex(chunks));
    expect(Buffer.concat(frames).equals(stream)).toBe(true);
  });

  test('a read longer than maxFrameBytes is split into maxFrameBytes pieces, not refused', () => {
    const framer = new RawFramer({ maxFrameBytes: 4 });
    framer.push(Buffer.from('abcdefghij'));
    framer.push(Buffer.from('kl'));
    const frames: string[] = [];
    for (let f = framer.next(); f !== undefined; f = framer.next()) frames.push(f.toString());
    expect(frames).toEqual(['abcd', 'efgh', 'ij', 'kl']);
  });

  test('encode() writes the reply as it is', () => {
    const out: Uint8Array[] = [];
    const reply = Buffer.from([1, 2, 3]);
    new RawFramer(big).encode(reply, out);
    expect(out).toEqual([reply]);
    expect(out[0]).toBe(reply);
  });
});

describe('resolveFraming', () => {
  test('named framings', () => {
    expect(resolveFraming('line').name).toBe('line');
    expect(resolveFraming('length').name).toBe('length');
    expect(resolveFraming('raw').name).toBe('raw');
    expect(resolveFraming('line').create(big)).toBeInstanceOf(LineFramer);
    expect(resolveFraming('length').create(big)).toBeInstanceOf(LengthPrefixFramer);
    expect(resolveFraming('raw').create(big)).toBeInstanceOf(RawFramer);
  });

  test("'delimiter:0d0a' splits on CRLF and passes the limit on", () => {
    const framing = resolveFraming('delimiter:0d0a');
    expect(framing.name).toBe('delimiter:0d0a');
    const { frames, last } = run(framing.create(big), [Buffer.from('a\r\nb\nc\r'), Buffer.from('\nd')]);
    expect(frames.map(String)).toEqual(['a', 'b\nc']);
    expect(last?.toString()).toBe('d');
    const limited = framing.create({ maxFrameBytes: 2 });
    limited.push(Buffer.from('abc\r\n'));
    expectCode(() => limited.next(), 'ERR_FRAME_TOO_LONG');
  });

  test('upper-case hex and { delimiter } objects', () => {
    expect(run(resolveFraming('delimiter:2D2D').create(big), [Buffer.from('a--b--')]).frames.map(String)).toEqual(['a', 'b']);
    const fromString = resolveFraming({ delimiter: '||' });
    expect(fromString.name).toBe('delimiter:7c7c');
    expect(run(fromString.create(big), [Buffer.from('x||y||')]).frames.map(String)).toEqual(['x', 'y']);
    const fromBytes = resolveFraming({ delimiter: new Uint8Array([0]) });
    expect(fromBytes.name).toBe('delimiter:00');
    expect(run(fromBytes.create(big), [Buffer.from([1, 0, 2, 0])]).frames.map((f) => [...f])).toEqual([[1], [2]]);
  });

  test('a FramerFactory is used as it is, named after the function', () => {
    function myFramer(limits: { maxFrameBytes: number }) {
      return new RawFramer(limits);
    }
    const framing = resolveFraming(myFramer);
    expect(framing.name).toBe('myFramer');
    expect(framing.create).toBe(myFramer);
  });

  test.each([
    ['nope'],
    [''],
    ['LINE'],
    ['delimiter:'],
    ['delimiter:0'],
    ['delimiter:0d0'],
    ['delimiter:zz'],
    ['delimiter:0x0a'],
    ['delimiter:0d 0a'],
  ])('bad spec %j throws ERR_BAD_OPTION', (spec) => {
    expectCode(() => resolveFraming(spec as never), 'ERR_BAD_OPTION');
  });

  test('empty { delimiter } and non-string specs throw ERR_BAD_OPTION', () => {
    expectCode(() => resolveFraming({ delimiter: '' }), 'ERR_BAD_OPTION');
    expectCode(() => resolveFraming({ delimiter: new Uint8Array(0) }), 'ERR_BAD_OPTION');
    expectCode(() => resolveFraming(42 as never), 'ERR_BAD_OPTION');
    expectCode(() => resolveFraming(null as never), 'ERR_BAD_OPTION');
  });
});
