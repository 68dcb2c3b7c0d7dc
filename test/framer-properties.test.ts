// Property tests (fast-check) for every framer:
//   1. any split of any sequence of valid frames into chunks — drained after every chunk or only
//      now and then, as a connection under backpressure does — yields the same frames; frames
//      are views, so they are checked only after all input was pushed (a framer must not
//      overwrite a frame it handed out);
//   2. arbitrary bytes never crash a framer: the only thing thrown is a SockservError with one
//      of the framing codes, every frame respects maxFrameBytes, and whether the input is refused
//      does not depend on how it was split;
//   3. linear cost: a 10 MiB request arriving one byte per read completes (line, length-prefixed,
//      RESP bulk) — no timing assertion, the jest timeout is the bound. The bytes are fed in turns
//      of the event loop (256 KiB each), as a connection's reads arrive: the suite's loop watchdog
//      fails any test that keeps the event loop from turning for 2 s, and ten million pushes in
//      one go take about that long.
// Frames are encoded into wire bytes here, independently of the framers' own encode().

import fc from 'fast-check';
import {
  DelimiterFramer,
  ErrorCodes,
  type Framer,
  LengthPrefixFramer,
  LineFramer,
  RawFramer,
  RespFramer,
  SockservError,
} from '../src/index.js';

const NUM_RUNS = 200;
const BIG = 1024 * 1024;

// ---- feeding a framer ------------------------------------------------------------------------

interface Split {
  /** Cut points (any integers; reduced modulo the wire length + 1). */
  cuts: number[];
  /** Per chunk, whether to drain next() after pushing it (cycled). */
  drain: boolean[];
  /** One byte per chunk instead. */
  bytewise: boolean;
}

const splitArb: fc.Arbitrary<Split> = fc.record({
  cuts: fc.array(fc.nat({ max: 1 << 20 }), { maxLength: 40 }),
  drain: fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
  bytewise: fc.boolean(),
});

function chunksOf(wire: Buffer, split: Split): Buffer[] {
  if (split.bytewise) return Array.from({ length: wire.length }, (_, i) => wire.subarray(i, i + 1));
  const cuts = [...new Set(split.cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts, wire.length]) {
    if (cut > from) chunks.push(wire.subarray(from, cut));
    from = Math.max(from, cut);
  }
  return chunks;
}

interface Outcome {
  frames: Buffer[];
  error: SockservError | undefined;
}

/** Pushes the chunks as a connection does, then end(); stops at the first error. */
function feed(framer: Framer, chunks: Buffer[], drain: boolean[] = [true]): Outcome {
  const frames: Buffer[] = [];
  try {
    chunks.forEach((chunk, i) => {
      framer.push(chunk);
      if (drain[i % drain.length] || i === chunks.length - 1) {
        for (let frame = framer.next(); frame !== undefined; frame = framer.next()) frames.push(frame);
      }
    });
    for (let frame = framer.next(); frame !== undefined; frame = framer.next()) frames.push(frame);
    const last = framer.end();
    if (last !== undefined) frames.push(last);
    return { frames, error: undefined };
  } catch (error) {
    if (!(error instanceof SockservError)) throw error;
    return { frames, error };
  }
}

const hex = (frames: Buffer[]) => frames.map((f) => f.toString('hex'));

// ---- the framers, each with a generator of valid frames and their wire form ------------------

interface Case {
  /** Wire bytes, and the frames a framer must yield from them. */
  wire: Buffer;
  frames: Buffer[];
}

const bytesFrom = (alphabet: number[], maxLength: number) =>
  fc.array(fc.constantFrom(...alphabet), { maxLength }).map((a) => Buffer.from(a));

/** Line frames: LF or CRLF terminated (a CR before the LF is not part of the frame); the last may be unterminated. */
const lineCase: fc.Arbitrary<Case> = fc
  .record({
    frames: fc.array(fc.record({ body: bytesFrom([0x61, 0x62, 0x0d, 0x00, 0xff, 0x20], 40), crlf: fc.boolean() }), { maxLength: 20 }),
    tail: bytesFrom([0x61, 0x0d, 0x00], 10),
  })
  .map(({ frames, tail }) => {
    const wire: Buffer[] = [];
    const expected: Buffer[] = [];
    for (const { body, crlf } of frames) {
      wire.push(body, Buffer.from(crlf ? '\r\n' : '\n'));
      expected.push(!crlf && body.at(-1) === 0x0d ? body.subarray(0, -1) : body);
    }
    wire.push(tail);
    if (tail.length > 0) expected.push(tail.at(-1) === 0x0d ? tail.subarray(0, -1) : tail);
    return { wire: Buffer.concat(wire), frames: expected };
  });

/**
 * Multi-byte delimiter frames. Bodies draw on the delimiter's own bytes so partial matches are
 * common; a body is kept only if the first delimiter in body+delimiter is the one appended.
 */
const delimiterCase: fc.Arbitrary<Case & { delimiter: Buffer }> = fc
  .uint8Array({ minLength: 2, maxLength: 4 })
  .map((d) => Buffer.from(d))
  .chain((delimiter) =>
    fc
      .array(bytesFrom([...delimiter, 0x7a], 24), { maxLength: 20 })
      .map((bodies) => bodies.filter((body) => Buffer.concat([body, delimiter]).indexOf(delimiter) === body.length))
      .chain((bodies) =>
        bytesFrom([...delimiter, 0x7a], 8)
          .filter((tail) => tail.indexOf(delimiter) === -1)
          .map((tail) => {
            // After the last delimiter the tail stands alone: with no delimiter in it, end() returns it.
            const wire = Buffer.concat([...bodies.flatMap((b) => [b, delimiter]), tail]);
            return { delimiter, wire, frames: tail.length > 0 ? [...bodies, tail] : bodies };
          }),
      ),
  );

const lengthCase: fc.Arbitrary<Case> = fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }).map((bodies) => {
  const frames = bodies.map((b) => Buffer.from(b));
  const wire = Buffer.concat(
    frames.flatMap((f) => {
      const header = Buffer.alloc(4);
      header.writeUInt32BE(f.length, 0);
      return [header, f];
    }),
  );
  return { wire, frames };
});

/** RESP requests: multibulk commands (binary args), inline commands, and no-commands (*0, *-1, blank lines). */
const respCase: fc.Arbitrary<Case> = fc
  .array(
    fc.oneof(
      fc.array(fc.uint8Array({ maxLength: 20 }), { minLength: 1, maxLength: 5 }).map((args) => ({ kind: 'multibulk' as const, args })),
      fc
        // The first byte of an inline command must not be a RESP type byte (* $ + - :).
        .array(fc.stringMatching(/^[A-Za-z0-9_.:-]{1,10}$/), { minLength: 1, maxLength: 4 })
        .filter((args) => /^[A-Za-z0-9_.]/.test(args[0]!))
        .map((args) => ({ kind: 'inline' as const, args: args.map((a) => Buffer.from(a)) })),
      fc.constantFrom('*0\r\n', '*-1\r\n', '\r\n', '\n', '   \r\n').map((text) => ({ kind: 'none' as const, text })),
    ),
    { maxLength: 15 },
  )
  .map((requests) => {
    const wire: Buffer[] = [];
    const frames: Buffer[] = [];
    for (const request of requests) {
      if (request.kind === 'none') {
        wire.push(Buffer.from(request.text));
        continue;
      }
      const canonical = multibulk(request.args.map((a) => Buffer.from(a)));
      frames.push(canonical);
      wire.push(request.kind === 'multibulk' ? canonical : Buffer.from(`${request.args.map((a) => Buffer.from(a).toString()).join(' ')}\r\n`));
    }
    return { wire: Buffer.concat(wire), frames };
  });

/** A command in canonical multibulk form, written here rather than with encodeCommand. */
function multibulk(args: Buffer[]): Buffer {
  return Buffer.concat([Buffer.from(`*${args.length}\r\n`), ...args.flatMap((a) => [Buffer.from(`$${a.length}\r\n`), a, Buffer.from('\r\n')])]);
}

// ---- 1. any split yields the same frames -----------------------------------------------------

describe('any split of valid frames yields the same frames', () => {
  test('LineFramer', () => {
    fc.assert(
      fc.property(lineCase, splitArb, ({ wire, frames }, split) => {
        const outcome = feed(new LineFramer({ maxFrameBytes: BIG }), chunksOf(wire, split), split.drain);
        expect(outcome.error).toBeUndefined();
        expect(hex(outcome.frames)).toEqual(hex(frames));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  test('DelimiterFramer with a multi-byte delimiter', () => {
    fc.assert(
      fc.property(delimiterCase, splitArb, ({ delimiter, wire, frames }, split) => {
        const outcome = feed(new DelimiterFramer(delimiter, { maxFrameBytes: BIG }), chunksOf(wire, split), split.drain);
        expect(outcome.error).toBeUndefined();
        expect(hex(outcome.frames)).toEqual(hex(frames));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  test('DelimiterFramer with "\\r\\n\\r\\n" (a delimiter that overlaps itself)', () => {
    const delimiter = Buffer.from('\r\n\r\n');
    const bodies = fc
      .array(bytesFrom([0x0d, 0x0a, 0x61], 16), { maxLength: 20 })
      .map((list) => list.filter((body) => Buffer.concat([body, delimiter]).indexOf(delimiter) === body.length));
    fc.assert(
      fc.property(bodies, splitArb, (frames, split) => {
        const wire = Buffer.concat(frames.flatMap((f) => [f, delimiter]));
        const outcome = feed(new DelimiterFramer(delimiter, { maxFrameBytes: BIG }), chunksOf(wire, split), split.drain);
        expect(outcome.error).toBeUndefined();
        expect(hex(outcome.frames)).toEqual(hex(frames));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  test('LengthPrefixFramer', () => {
    fc.assert(
      fc.property(lengthCase, splitArb, ({ wire, frames }, split) => {
        const outcome = feed(new LengthPrefixFramer({ maxFrameBytes: BIG }), chunksOf(wire, split), split.drain);
        expect(outcome.error).toBeUndefined();
        expect(hex(outcome.frames)).toEqual(hex(frames));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  test('RespFramer (multibulk, inline, and requests that are no command)', () => {
    fc.assert(
      fc.property(respCase, splitArb, ({ wire, frames }, split) => {
        const outcome = feed(new RespFramer({ maxFrameBytes: BIG }), chunksOf(wire, split), split.drain);
        expect(outcome.error).toBeUndefined();
        expect(hex(outcome.frames)).toEqual(hex(frames));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  test('RawFramer: each read is a request, split into maxFrameBytes pieces; the bytes are all there, in order', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), splitArb, fc.integer({ min: 1, max: 64 }), (bytes, split, maxFrameBytes) => {
        const wire = Buffer.from(bytes);
        const chunks = chunksOf(wire, split);
        const outcome = feed(new RawFramer({ maxFrameBytes }), chunks, split.drain);
        expect(outcome.error).toBeUndefined();
        const expected = chunks.flatMap((chunk) =>
          Array.from({ length: Math.ceil(chunk.length / maxFrameBytes) }, (_, i) => chunk.subarray(i * maxFrameBytes, (i + 1) * maxFrameBytes)),
        );
        expect(hex(outcome.frames)).toEqual(hex(expected));
        expect(Buffer.concat(outcome.frames).equals(wire)).toBe(true);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});

// ---- 2. arbitrary bytes never crash a framer -------------------------------------------------

const FRAMING_CODES: string[] = [ErrorCodes.FRAME_TOO_LONG, ErrorCodes.FRAME_INVALID];

/** Arbitrary bytes, half of the time glued from pieces of the framers' syntax to reach deep states. */
const hostileBytes: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  fc
    .array(
      fc.oneof(
        fc.constantFrom('*', '$', '+', '-', ':', '\r', '\n', '\r\n', '-1', '0', '1', '9', '15', '999999999999999999', ' ', '"', "'", '\\', '\\x4', 'a', '\x00', '\xff'),
        fc.uint8Array({ maxLength: 6 }).map((b) => Buffer.from(b).toString('latin1')),
      ),
      { maxLength: 60 },
    )
    .map((pieces) => Buffer.from(pieces.join(''), 'latin1')),
);

/**
 * The framers, each with the most a frame may be for a given maxFrameBytes. RESP refuses
 * multibulk commands by their size on the wire, but bounds an inline command by its line: the
 * canonical multibulk it is rewritten to may be up to 3.5× longer (a 1-byte argument costs 2
 * bytes of line and 7 of frame), so its bound is looser.
 */
const FRAMERS: Array<[string, (maxFrameBytes: number) => Framer, (maxFrameBytes: number) => number]> = [
  ['LineFramer', (maxFrameBytes) => new LineFramer({ maxFrameBytes }), (max) => max],
  ['DelimiterFramer ("\\r\\n\\r\\n")', (maxFrameBytes) => new DelimiterFramer(Buffer.from('\r\n\r\n'), { maxFrameBytes }), (max) => max],
  ['LengthPrefixFramer', (maxFrameBytes) => new LengthPrefixFramer({ maxFrameBytes }), (max) => max],
  ['RawFramer', (maxFrameBytes) => new RawFramer({ maxFrameBytes }), (max) => max],
  ['RespFramer', (maxFrameBytes) => new RespFramer({ maxFrameBytes }), (max) => Math.ceil(3.5 * (max + 1)) + 24],
];

const hostileCase = fc.record({ wire: hostileBytes, split: splitArb, maxFrameBytes: fc.integer({ min: 1, max: 48 }) });

describe.each(FRAMERS)('%s on arbitrary bytes', (name, make, bound) => {
  test('throws nothing but a SockservError with a framing code (ERR_FRAME_TOO_LONG, ERR_FRAME_INVALID)', () => {
    fc.assert(
      fc.property(hostileCase, ({ wire, split, maxFrameBytes }) => {
        for (const outcome of [feed(make(maxFrameBytes), [wire]), feed(make(maxFrameBytes), chunksOf(wire, split), split.drain)]) {
          if (outcome.error) expect(FRAMING_CODES).toContain(outcome.error.code);
        }
      }),
      { numRuns: NUM_RUNS * 2 },
    );
  });

  test('never yields a frame longer than maxFrameBytes (end() included)', () => {
    fc.assert(
      fc.property(hostileCase, ({ wire, split, maxFrameBytes }) => {
        for (const outcome of [feed(make(maxFrameBytes), [wire]), feed(make(maxFrameBytes), chunksOf(wire, split), split.drain)]) {
          for (const frame of outcome.frames) expect(frame.length).toBeLessThanOrEqual(bound(maxFrameBytes));
        }
      }),
      { numRuns: NUM_RUNS * 2 },
    );
  });

  test('whether the input is refused, and the frames before that, do not depend on how it was split', () => {
    fc.assert(
      fc.property(hostileCase, ({ wire, split, maxFrameBytes }) => {
        const whole = feed(make(maxFrameBytes), [wire]);
        const pieces = feed(make(maxFrameBytes), chunksOf(wire, split), split.drain);
        expect(pieces.error === undefined).toBe(whole.error === undefined);
        if (name === 'RawFramer') {
          // Each read is a request, so raw frames follow the split by design: only the bytes must agree.
          expect(Buffer.concat(pieces.frames).equals(Buffer.concat(whole.frames))).toBe(true);
        } else {
          expect(hex(pieces.frames)).toEqual(hex(whole.frames));
        }
      }),
      { numRuns: NUM_RUNS * 2 },
    );
  });

  test('nor does the code it is refused with (a client sees the same error reply however TCP segments its bytes)', () => {
    // A known case: RESP "*12345x\r\n" with maxFrameBytes 4, whole vs one byte per read.
    const examples: Array<[{ wire: Buffer; split: Split; maxFrameBytes: number }]> = [
      [{ wire: Buffer.from('*12345x\r\n'), split: { cuts: [], drain: [true], bytewise: true }, maxFrameBytes: 4 }],
    ];
    fc.assert(
      fc.property(hostileCase, ({ wire, split, maxFrameBytes }) => {
        const whole = feed(make(maxFrameBytes), [wire]);
        const pieces = feed(make(maxFrameBytes), chunksOf(wire, split), split.drain);
        expect(pieces.error?.code).toBe(whole.error?.code);
      }),
      { numRuns: NUM_RUNS * 2, examples },
    );
  });
});

// ---- 3. linear cost ----------------------------------------------------------------------------

describe('a 10 MiB request arriving one byte per read completes', () => {
  const SIZE = 10 * 1024 * 1024;

  /** Pushes `wire` one byte at a time, calling next() after each push as a connection does; a turn of the event loop every 256 KiB. */
  async function bytewise(framer: Framer, wire: Buffer): Promise<Buffer[]> {
    const frames: Buffer[] = [];
    for (let i = 0; i < wire.length; i++) {
      if (i % (256 * 1024) === 0) await new Promise(setImmediate);
      framer.push(wire.subarray(i, i + 1));
      const frame = framer.next();
      if (frame !== undefined) frames.push(frame);
    }
    return frames;
  }

  test('LineFramer: a 10 MiB line', async () => {
    const wire = Buffer.alloc(SIZE + 2, 0x61);
    wire.write('\r\n', SIZE, 'latin1');
    const frames = await bytewise(new LineFramer({ maxFrameBytes: SIZE }), wire);
    expect(frames.map((f) => f.length)).toEqual([SIZE]);
    expect(frames[0]!.every((b) => b === 0x61)).toBe(true);
  });

  test('LengthPrefixFramer: a 10 MiB frame', async () => {
    const wire = Buffer.alloc(SIZE + 4, 0x62);
    wire.writeUInt32BE(SIZE, 0);
    const frames = await bytewise(new LengthPrefixFramer({ maxFrameBytes: SIZE }), wire);
    expect(frames.map((f) => f.length)).toEqual([SIZE]);
    expect(frames[0]!.every((b) => b === 0x62)).toBe(true);
  });

  test('RespFramer: a command with a 10 MiB bulk string', async () => {
    const wire = multibulk([Buffer.from('SET'), Buffer.alloc(SIZE, 0x63)]);
    const frames = await bytewise(new RespFramer({ maxFrameBytes: wire.length }), wire);
    expect(frames).toHaveLength(1);
    expect(frames[0]!.equals(wire)).toBe(true);
  });
});
