// The stress client's wire format fed bytes directly: requests as encoded (and laid out in a mix's
// weighted order), and reply framers given the same replies whole, byte by byte, and split at
// every position — incomplete is not an error.

import type { Socket } from 'node:net';
import { parseMixFile, parseMixSpec } from '../stress/mix-spec.js';
import { createReplyFramer } from '../stress/reply-framer.js';
import { RequestSchedule, weightedOrder } from '../stress/request-schedule.js';
import { encodeRequest } from '../stress/request-wire.js';
import { SendTimes } from '../stress/send-times.js';
import { parseTarget, isLoopbackAddress } from '../stress/target.js';

function frame(framing: 'line' | 'length' | 'raw' | 'resp', size: number | (() => number), keep: boolean, chunks: Buffer[]): string[] {
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

  test('resp sends the words as an array of bulk strings', () => {
    expect(encodeRequest(Buffer.from('PING'), 'resp').toString()).toBe('*1\r\n$4\r\nPING\r\n');
    expect(encodeRequest(Buffer.from('  SET k\tvalue '), 'resp').toString()).toBe('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n');
  });
});

/** Captures what a schedule writes: each write's text, and whether it was corked. */
function recordingSocket(): { socket: Socket; writes: string[] } {
  const writes: string[] = [];
  let corked = false;
  const socket = {
    write: (data: Buffer) => writes.push((corked ? '+' : '') + data.toString()),
    cork: () => (corked = true),
    uncork: () => (corked = false),
  } as unknown as Socket;
  return { socket, writes };
}

describe('request schedule', () => {
  test('smooth weighted round-robin: weights reduced by their gcd, the rare kind spread out', () => {
    expect(weightedOrder([1])).toEqual([0]);
    expect(weightedOrder([2, 1])).toEqual([0, 1, 0]);
    expect(weightedOrder([990, 10])).toEqual(weightedOrder([99, 1]));
    const order = weightedOrder([99, 1]);
    expect(order).toHaveLength(100);
    expect(order.filter((kind) => kind === 1)).toHaveLength(1);
    expect(weightedOrder([5, 3, 2]).join('')).toBe('0120010210');
    expect(() => weightedOrder([100_000, 1])).toThrow(/weights add up/);
  });

  test('one kind: k requests are one cached view, the cursor stays at 0', () => {
    const schedule = new RequestSchedule([{ payload: Buffer.from('x'), weight: 7 }], 'line', 3);
    const { socket, writes } = recordingSocket();
    expect(schedule.period).toBe(1);
    expect(schedule.claim(2)).toBe(0);
    schedule.write(socket, 0, 2);
    expect(schedule.claim(3)).toBe(0);
    schedule.write(socket, 0, 3);
    expect(writes).toEqual(['x\nx\n', 'x\nx\nx\n']);
    expect(schedule.kindAt(12345)).toBe(0);
  });

  test('a mix claims consecutive stretches of one order and writes them, wrapping with corked writes', () => {
    const schedule = new RequestSchedule(
      [
        { payload: Buffer.from('a'), weight: 2 },
        { payload: Buffer.from('bb'), weight: 1 },
      ],
      'line',
      1,
    );
    const { socket, writes } = recordingSocket();
    expect(schedule.period).toBe(3);
    expect(schedule.wireBytes).toEqual([2, 3]);
    const sent: string[] = [];
    for (const count of [2, 2, 4, 1]) {
      const start = schedule.claim(count);
      for (let j = 0; j < count; j++) sent.push(String(schedule.kindAt(start + j)));
      schedule.write(socket, start, count);
    }
    expect(sent.join('')).toBe('010010010');
    expect(writes.join('|')).toBe('a\nbb\n|+a\n|+a\n|+bb\na\n|+a\nbb\n|a\n');
  });
});

describe('mix specs', () => {
  test('--mix: PAYLOAD:WEIGHT, comma-separated, split at the last colon', () => {
    expect(parseMixSpec('PING:99,HASH x:1,a:b:2').map((e) => [e.payload.toString(), e.weight])).toEqual([
      ['PING', 99],
      ['HASH x', 1],
      ['a:b', 2],
    ]);
    for (const bad of ['PING', 'PING:0', 'PING:x', ':3', 'PING:1,', 'PING:1.5']) expect(() => parseMixSpec(bad)).toThrow(RangeError);
  });

  test('--mix-file: WEIGHT then tab or spaces then PAYLOAD, comments and blank lines skipped', () => {
    const entries = parseMixFile('# cheap and heavy\n99\tPING\r\n\n1   HASH a b, c\n');
    expect(entries.map((e) => [e.weight, e.payload.toString()])).toEqual([
      [99, 'PING'],
      [1, 'HASH a b, c'],
    ]);
    expect(() => parseMixFile('PING 99\n')).toThrow(/line 1/);
    expect(() => parseMixFile('99\n')).toThrow(/line 1/);
    expect(() => parseMixFile('# nothing\n')).toThrow(/no entries/);
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

  test('raw over a mix: each reply is as long as its own request', () => {
    const sizes = [2, 3, 1];
    for (const chunks of splits(Buffer.from('abcdef'))) {
      const seen: string[] = [];
      const framer = createReplyFramer('raw', () => sizes[seen.length]!, true, (reply) => seen.push(reply.toString()));
      for (const chunk of chunks) framer.push(chunk);
      expect(seen).toEqual(['ab', 'cde', 'f']);
    }
  });

  test('resp: every value type, nested arrays, nulls, and bulk bodies holding CRLF, in any pieces', () => {
    const values = [
      '+PONG\r\n',
      '-ERR unknown command\r\n',
      ':1000\r\n',
      '$5\r\na\r\nbc\r\n',
      '$0\r\n\r\n',
      '$-1\r\n',
      '*-1\r\n',
      '*0\r\n',
      '*2\r\n*2\r\n$1\r\nx\r\n:2\r\n+OK\r\n',
      '%1\r\n+k\r\n*1\r\n_\r\n',
    ];
    const wire = Buffer.from(values.join(''));
    for (const chunks of splits(wire)) {
      expect(frame('resp', 0, true, chunks).map((hex) => Buffer.from(hex, 'hex').toString())).toEqual(values);
      expect(frame('resp', 0, false, chunks)).toHaveLength(values.length);
    }
  });

  test('resp: a byte that starts no RESP value is a bad reply', () => {
    expect(() => frame('resp', 0, false, [Buffer.from('+OK\r\nHTTP/1.1 200 OK\r\n')])).toThrow(/not a RESP reply/);
    expect(() => frame('resp', 0, false, [Buffer.from('$x\r\n')])).toThrow(/bad RESP length/);
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
