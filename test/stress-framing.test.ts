// The stress client's wire format fed bytes directly: requests as encoded, and reply framers given
// the same replies whole, byte by byte, and split at every position — incomplete is not an error.

import { createReplyFramer } from '../src/stress/reply-framer.js';
import { RequestBatch, encodeRequest } from '../src/stress/request-wire.js';
import { SendTimes } from '../src/stress/send-times.js';
import { parseTarget, isLoopbackAddress } from '../src/stress/target.js';

function frame(framing: 'line' | 'length' | 'raw', size: number, keep: boolean, chunks: Buffer[]): string[] {
  const replies: string[] = [];
  const framer = createReplyFramer(framing, size, keep, (reply) => replies.push(reply.toString('hex')));
  for (const chunk of chunks) framer.push(chunk);
  return replies;
}

function splits(wire: Buffer): Buffer[][] {
  const ways: Buffer[][] = [[wire], [...wire].map((byte) => Buffer.from([byte]))];
  for (let at = 1; at < wire.length; at++) ways.push([wire.subarray(0, at), wire.subarray(at)]);
  return ways;
}

describe('request encoding', () => {
  test('line appends \\n, length prefixes a 32-bit big-endian count, raw is unchanged', () => {
    expect(encodeRequest(Buffer.from('ab'), 'line').toString('hex')).toBe('61620a');
    expect(encodeRequest(Buffer.from('ab'), 'length').toString('hex')).toBe('000000026162');
    expect(encodeRequest(Buffer.from('ab'), 'raw').toString('hex')).toBe('6162');
  });

  test('a batch view holds k back-to-back requests', () => {
    const batch = new RequestBatch(Buffer.from('x\n'), 3);
    expect(batch.copies).toBe(3);
    expect(batch.view(2).toString()).toBe('x\nx\n');
    expect(batch.view(2)).toBe(batch.view(2));
  });
});

describe('reply framers', () => {
  test('line: replies end at \\n, a \\r before it is dropped, empty replies count', () => {
    const wire = Buffer.from('6f6b0a0a6869210d0a', 'hex'); // "ok\n" "\n" "hi!\r\n"
    for (const chunks of splits(wire)) {
      expect(frame('line', 2, true, chunks)).toEqual(['6f6b', '', '686921']);
      expect(frame('line', 2, false, chunks)).toHaveLength(3);
    }
  });

  test('length: header and body may arrive in any pieces; a zero-length reply is a reply', () => {
    const wire = Buffer.from('000000026f6b' + '00000000' + '00000003686921', 'hex');
    for (const chunks of splits(wire)) {
      expect(frame('length', 2, true, chunks)).toEqual(['6f6b', '', '686921']);
      expect(frame('length', 2, false, chunks)).toHaveLength(3);
    }
  });

  test('raw: every request-length bytes are one reply, however they are read', () => {
    const wire = Buffer.from('616263646566676869', 'hex'); // abc def ghi
    for (const chunks of splits(wire)) {
      expect(frame('raw', 3, true, chunks)).toEqual(['616263', '646566', '676869']);
      expect(frame('raw', 3, false, chunks)).toHaveLength(3);
    }
    expect(frame('raw', 3, false, [Buffer.from('abcd')])).toHaveLength(1);
  });

  test('reset forgets a partial reply', () => {
    const replies: string[] = [];
    const framer = createReplyFramer('length', 1, true, (reply) => replies.push(reply.toString()));
    framer.push(Buffer.from('0000000568', 'hex'));
    framer.reset();
    framer.push(Buffer.from('0000000161', 'hex'));
    expect(replies).toEqual(['a']);
  });
});

describe('send times', () => {
  test('a ring that returns the oldest first across wrap-around', () => {
    const times = new SendTimes(3);
    times.push(1, 10);
    times.push(2, 20);
    expect(times.shift()).toBe(1);
    times.push(3, 30);
    times.push(4, 40);
    expect(times.length).toBe(3);
    expect(times.oldestSentAt()).toBe(20);
    const drained: number[] = [];
    times.drain((value) => drained.push(value));
    expect(drained).toEqual([2, 3, 4]);
    expect(times.length).toBe(0);
  });
});

describe('target', () => {
  test('parses HOST:PORT, [IPv6]:PORT and a bare port', () => {
    expect(parseTarget('127.0.0.1:8001')).toEqual({ host: '127.0.0.1', port: 8001 });
    expect(parseTarget('localhost:1')).toEqual({ host: 'localhost', port: 1 });
    expect(parseTarget('[::1]:9000')).toEqual({ host: '::1', port: 9000 });
    expect(parseTarget('8001')).toEqual({ host: '127.0.0.1', port: 8001 });
    for (const bad of ['127.0.0.1', '127.0.0.1:0', '127.0.0.1:70000', ':80', '::1:80', 'host:x']) {
      expect(() => parseTarget(bad)).toThrow(RangeError);
    }
  });

  test('loopback is 127.0.0.0/8 and ::1 only', () => {
    for (const address of ['127.0.0.1', '127.255.0.9', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) {
      expect(isLoopbackAddress(address)).toBe(true);
    }
    for (const address of ['10.0.0.1', '128.0.0.1', '0.0.0.0', '::', '::2', '::ffff:10.0.0.1', 'localhost']) {
      expect(isLoopbackAddress(address)).toBe(false);
    }
  });
});
