// The byte ring of a worker channel (src/dispatch/ring.ts), fed directly: the exact bytes of a
// record, publishing, padding, the wrap marker, a full ring refusing without writing, and the
// largest payload. One thread plays both sides; the rings' cross-thread use is covered by
// test/pool-channels.test.ts on real workers.

import { RingReader, RingWriter } from '../src/dispatch/ring.js';

const WRITE = 0;
const READ = 1;
const WRAP = 0xffffffff;

function ring(capacity: number) {
  const buffer = new SharedArrayBuffer(capacity);
  const ctl = new Int32Array(new SharedArrayBuffer(8));
  return {
    ctl,
    words: new Uint32Array(buffer),
    bytes: Buffer.from(buffer),
    writer: new RingWriter(buffer, ctl, WRITE, READ),
    reader: new RingReader(buffer, ctl, WRITE, READ),
  };
}

/** Reads one record, or null when none is published. */
function read(reader: RingReader): { kind: number; slot: number; conn: number; start: number; payload: string } | null {
  if (!reader.next()) return null;
  const { kind, slot, conn, start, length } = reader;
  return { kind, slot, conn, start, payload: reader.bytes.subarray(start, start + length).toString() };
}

test('a record is a 16-byte header (length, kind, slot, connection) and its payload, padded to 4 bytes', () => {
  const { ctl, words, bytes, writer } = ring(128);
  expect(writer.write(4, 7, 9, Buffer.from('abcde'))).toBe(true);
  expect(Array.from(words.subarray(0, 4))).toEqual([5, 4, 7, 9]);
  expect(bytes.subarray(16, 21).toString()).toBe('abcde');
  expect(writer.write(5, 8, 9, null)).toBe(true); // a record without payload: the header only
  expect(Array.from(words.subarray(6, 10))).toEqual([0, 5, 8, 9]); // at byte 24: 16 + 5 rounded up to 8
  expect(Atomics.load(ctl, WRITE)).toBe(0); // nothing published yet
  expect(writer.publish()).toBe(true);
  expect(Atomics.load(ctl, WRITE)).toBe(40);
  expect(writer.publish()).toBe(false); // nothing new
});

test('the reader sees records only once published, in order, and frees their space on release()', () => {
  const { ctl, writer, reader } = ring(128);
  writer.write(4, 1, 2, Buffer.from('one'));
  expect(writer.pending).toBe(true);
  expect(reader.poll()).toBe(false);
  expect(read(reader)).toBeNull();
  writer.write(4, 3, 2, Buffer.from('two'));
  writer.publish();
  expect(writer.pending).toBe(false);
  expect(reader.poll()).toBe(true);
  expect(reader.seenEnd).toBe(40);
  expect(read(reader)).toEqual({ kind: 4, slot: 1, conn: 2, start: 16, payload: 'one' });
  expect(read(reader)).toEqual({ kind: 4, slot: 3, conn: 2, start: 36, payload: 'two' });
  expect(read(reader)).toBeNull();
  expect(Atomics.load(ctl, READ)).toBe(0); // read, but not released: the writer may not reuse it yet
  reader.release();
  expect(Atomics.load(ctl, READ)).toBe(40);
});

test('a record that does not fit before the end wraps to the start behind a wrap marker, its payload contiguous', () => {
  const { words, bytes, writer, reader } = ring(128);
  const a = Buffer.alloc(40, 'a');
  const b = Buffer.alloc(40, 'b');
  const c = Buffer.alloc(40, 'c');
  expect(writer.write(4, 0, 0, a)).toBe(true); // bytes 0..56
  expect(writer.write(4, 1, 0, b)).toBe(true); // bytes 56..112
  writer.publish();
  expect(read(reader)?.payload).toBe(a.toString());
  expect(read(reader)?.payload).toBe(b.toString());
  reader.release(); // the reader is at 112; 16 bytes remain before the end, a record needs 56
  expect(writer.write(4, 2, 0, c)).toBe(true);
  writer.publish();
  expect(words[112 / 4]).toBe(WRAP);
  expect(bytes.subarray(16, 56).toString()).toBe(c.toString());
  expect(read(reader)).toEqual({ kind: 4, slot: 2, conn: 0, start: 16, payload: c.toString() });
  expect(read(reader)).toBeNull();
});

test('a full ring refuses a record and writes nothing; the space released is exactly what fits', () => {
  const { words, writer, reader } = ring(128);
  writer.write(4, 0, 0, Buffer.alloc(40, 'a')); // 0..56
  writer.write(4, 1, 0, Buffer.alloc(40, 'b')); // 56..112
  writer.publish();
  read(reader);
  read(reader);
  reader.release(); // reader at 112
  writer.write(4, 2, 0, Buffer.alloc(40, 'c')); // wraps: 0..56
  writer.publish();
  // Unreleased: 112..128 (wrap) and 0..56. Free: 56..112 minus the 4-byte gap = 52 bytes.
  const before = Array.from(words);
  expect(writer.write(4, 3, 0, Buffer.alloc(37))).toBe(false); // 16 + 40 = 56 bytes
  expect(Array.from(words)).toEqual(before);
  expect(writer.pending).toBe(false);
  expect(writer.write(4, 3, 0, Buffer.alloc(36, 'd'))).toBe(true); // 16 + 36 = 52 bytes: fits exactly
  writer.publish();
  expect(read(reader)?.slot).toBe(2);
  expect(read(reader)).toMatchObject({ slot: 3, start: 72, payload: 'd'.repeat(36) });
});

test('maxPayload is the largest payload an empty ring takes; one byte more is refused', () => {
  const big = ring(128);
  expect(big.writer.maxPayload).toBe(108);
  expect(big.writer.write(4, 0, 0, Buffer.alloc(109))).toBe(false);
  expect(big.writer.write(4, 0, 0, Buffer.alloc(108, 'x'))).toBe(true);
  big.writer.publish();
  expect(read(big.reader)?.payload).toBe('x'.repeat(108));
});
