// Rooms (issue 20): connections that talk to each other — join, leave, broadcast, sendTo from any
// handler — end to end on real sockets and real worker threads. Byte counts are exact; waits are
// conditions with deadlines (Peer.until*, waitUntil), never sleeps.

import { threadId } from 'node:worker_threads';
import {
  BaseRequestHandler,
  ErrorCodes,
  type ServerOptions,
  SockservError,
  TCPServer,
  ThreadingTCPServer,
  ThreadingUDPServer,
  UDPServer,
} from '../src/index.js';
import { Cli, killAll } from './helpers/cli-process.js';
import { fixture } from './helpers/client.js';
import { Peer, Registry, captureLogger, lengthFrame, parseLengthFrames, waitUntil } from './helpers/net.js';
import { createSocket } from 'node:dgram';

const registry = new Registry();
afterEach(async () => {
  killAll();
  await registry.cleanup();
});

type Server = typeof TCPServer;

async function start(options: ServerOptions = {}, Server: Server = ThreadingTCPServer, handler = 'rooms') {
  const { logger, entries } = captureLogger();
  const server = registry.server(new Server({ host: '127.0.0.1', port: 0 }, fixture(handler), { workers: 2, logger, ...options }));
  const { port } = await server.listen();
  return { server, port, entries };
}

/** Connects a peer and joins `room` (waits for "joined"). */
async function member(port: number, room = 'r'): Promise<Peer> {
  const peer = await registry.peer(port);
  peer.write(`join ${room}\n`);
  await peer.untilLines(1);
  expect(peer.lines).toEqual([`joined ${room}`]);
  return peer;
}

async function idOf(peer: Peer, skip: number): Promise<string> {
  peer.write('id\n');
  return (await peer.untilLines(skip + 1))[skip]!;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe.each([
  ['pool', ThreadingTCPServer],
  ['inline', TCPServer],
] as const)('%s server', (_kind, Server) => {
  test('broadcast reaches every member (the sender too); exceptSelf leaves the sender out; clientId is stable per connection', async () => {
    const { server, port } = await start({}, Server);
    const a = await member(port);
    const b = await member(port);
    a.write('id\nid\n');
    const [, idA, again] = await a.untilLines(3);
    expect(again).toBe(idA);
    const idB = await idOf(b, 1);
    expect(idB).not.toBe(idA);
    expect(server.members('r').sort()).toEqual([idA, idB].sort());
    expect(server.rooms()).toEqual(['r']);

    a.write('say r to all\nsayx r not to a\necho end\n');
    await a.untilLines(5);
    await b.untilLines(4);
    expect(a.text).toBe(`joined r\n${idA}\n${idA}\nto all\necho end\n`);
    expect(b.text).toBe(`joined r\n${idB}\nto all\nnot to a\n`);
  });

  test('sendTo reaches one connection; a gone client rejects ERR_NO_SUCH_CLIENT (handler and server)', async () => {
    const { server, port } = await start({}, Server);
    const a = await registry.peer(port);
    const b = await registry.peer(port);
    const idB = await idOf(b, 0);
    a.write(`to ${idB} psst\n`);
    await b.untilLines(2);
    expect(b.lines).toEqual([idB, 'psst']);
    expect(await a.untilLines(1)).toEqual(['sent']);

    b.socket.destroy();
    await waitUntil(() => server.connectionCount === 1, 'b is gone');
    a.write(`to ${idB} anyone?\nto nosuchnode.1 x\n`);
    expect(await a.untilLines(3)).toEqual(['sent', 'ERROR ERR_NO_SUCH_CLIENT', 'ERROR ERR_NO_SUCH_CLIENT']);
    await expect(server.sendTo(idB, 'x')).rejects.toMatchObject({ code: ErrorCodes.NO_SUCH_CLIENT });
    expect(b.lines).toEqual([idB, 'psst']);
  });

  test('leave and close end membership', async () => {
    const { server, port } = await start({}, Server);
    const a = await member(port);
    const b = await member(port);
    const c = await member(port);
    const idC = await idOf(c, 1);
    a.write('leave r\n');
    expect(await a.untilLines(2)).toEqual(['joined r', 'left r']);
    b.socket.destroy();
    await waitUntil(() => server.members('r').length === 1, 'only c is left in r');
    expect(server.members('r')).toEqual([idC]);
    await server.broadcast('r', 'only c');
    await c.untilLines(3);
    a.write('echo end\n');
    expect(await a.untilLines(3)).toEqual(['joined r', 'left r', 'echo end']);
    expect(c.lines).toEqual(['joined r', idC, 'only c']);
    c.write('leave r\n');
    await c.untilLines(4);
    expect(server.rooms()).toEqual([]);
    expect(server.stats().rooms).toMatchObject({ rooms: 0, memberships: 0 });
  });

  test('sessions (StreamRequestHandler) get pushes as raw bytes, after what they wrote before', async () => {
    const { server, port } = await start({}, Server, 'rooms-session');
    const a = await member(port);
    const b = await member(port);
    a.write('say r hello\n');
    await b.untilBytes('joined r\nhello'.length);
    a.write('wsay r A B\n'); // a writes "A", then broadcasts "B": a gets them in that order
    await a.untilBytes('joined r\nhelloAB'.length);
    await b.untilBytes('joined r\nhelloB'.length);
    await server.broadcast('r', Buffer.from([0, 1, 2]));
    await a.untilBytes('joined r\nhelloAB'.length + 3);
    await b.untilBytes('joined r\nhelloB'.length + 3);
    expect(a.received).toEqual(Buffer.concat([Buffer.from('joined r\nhelloAB'), Buffer.from([0, 1, 2])]));
    expect(b.received).toEqual(Buffer.concat([Buffer.from('joined r\nhelloB'), Buffer.from([0, 1, 2])]));
    b.write('id\n');
    await b.untilBytes('joined r\nhelloB'.length + 4);
    const idB = b.received.subarray('joined r\nhelloB'.length + 3).toString().trim();
    expect(server.members('r')).toContain(idB);
    a.write(`to ${idB} direct\n`);
    await b.until(() => b.text.endsWith('direct'), 'the sendTo');
  });
});

test('several senders on different workers: each member gets every sender\'s messages once, in order', async () => {
  const { port } = await start({ workers: 3 });
  const SENDERS = 3;
  const MESSAGES = 300;
  const senders = await Promise.all(range(SENDERS).map(() => member(port)));
  const listeners = await Promise.all(range(2).map(() => member(port)));
  senders.forEach((peer, s) => peer.write(range(MESSAGES).map((i) => `tsay r m ${s} ${i}\n`).join('')));
  const threads = new Set<string>();
  for (const peer of [...senders, ...listeners]) {
    const lines = await peer.untilLines(1 + SENDERS * MESSAGES);
    expect(lines.length).toBe(1 + SENDERS * MESSAGES);
    const next = range(SENDERS).map(() => 0);
    for (const line of lines.slice(1)) {
      const [m, s, i, thread] = line.split(' ');
      expect(m).toBe('m');
      expect(Number(i)).toBe(next[Number(s)]); // once, in the order sent
      next[Number(s)]!++;
      threads.add(thread!);
    }
    expect(next).toEqual(range(SENDERS).map(() => MESSAGES));
  }
  expect(threads.size).toBeGreaterThan(1); // the senders' handlers ran on different workers
});

test('a push never splits a reply: pipelined replies interleaved with pushes, byte for byte (length framing)', async () => {
  const { port } = await start({ framing: 'length' });
  const peer = await registry.peer(port);
  const sender = await registry.peer(port);
  peer.write(lengthFrame('join r'));
  await peer.untilBytes(4 + 'joined r'.length);
  const requests = range(40).map((i) => `echo ${i} ${'e'.repeat(40_000 + i)}`);
  const PUSHES = 400;
  const PUSH = 3000;
  sender.write(lengthFrame(`burst r ${PUSHES} ${PUSH}`));
  await peer.untilBytes(4 + 'joined r'.length + 4 + PUSH); // the first push is out: the replies follow amid the rest
  peer.write(Buffer.concat(requests.map((r) => lengthFrame(r))));
  const expected = 4 + 'joined r'.length + requests.reduce((n, r) => n + 4 + r.length, 0) + PUSHES * (4 + PUSH);
  await peer.untilBytes(expected);
  await sender.untilBytes(4 + `done ${PUSHES}`.length);
  const { frames, rest } = parseLengthFrames(peer.received);
  expect(peer.received.length).toBe(expected);
  expect(rest.length).toBe(0);
  expect(frames[0]!.toString()).toBe('joined r');
  const push = 'x'.repeat(PUSH);
  const replies: string[] = [];
  let pushes = 0;
  let switches = 0;
  let last = '';
  for (const frame of frames.slice(1)) {
    const text = frame.toString();
    const kind = text === push ? 'push' : 'reply';
    if (kind === 'push') pushes++;
    else replies.push(text);
    if (last !== '' && kind !== last) switches++;
    last = kind;
  }
  expect(pushes).toBe(PUSHES);
  expect(replies).toEqual(requests); // every reply whole, in request order
  expect(switches).toBeGreaterThan(0);
});

test('RESP: pushes are RESP3 pushes (>3 message room data, >2 message data), between whole replies', async () => {
  const { port } = await start({ framing: 'resp' }, ThreadingTCPServer, 'rooms-resp');
  const a = await registry.peer(port);
  const b = await registry.peer(port);
  a.write('*2\r\n$4\r\nJOIN\r\n$1\r\nr\r\n');
  b.write('*2\r\n$4\r\nJOIN\r\n$1\r\nr\r\n*1\r\n$2\r\nID\r\n');
  await a.untilBytes(5);
  await b.untilBytes(5 + 4 + 2);
  const idB = b.text.split('\r\n')[2]!;
  const bBefore = b.received.length;
  const payload = 'p'.repeat(1000);
  const echo = `*2\r\n$4\r\nECHO\r\n$${payload.length}\r\n${payload}\r\n`;
  a.write(echo.repeat(20) + '*3\r\n$3\r\nSAY\r\n$1\r\nr\r\n$2\r\nhi\r\n' + echo.repeat(20) + `*3\r\n$2\r\nTO\r\n$${idB.length}\r\n${idB}\r\n$3\r\nyou\r\n`);
  const reply = `$${payload.length}\r\n${payload}\r\n`;
  const broadcast = '>3\r\n$7\r\nmessage\r\n$1\r\nr\r\n$2\r\nhi\r\n';
  const expectedA = '+OK\r\n' + reply.repeat(20) + broadcast + '+OK\r\n' + reply.repeat(20) + '+OK\r\n';
  await a.untilBytes(expectedA.length);
  expect(a.text).toBe(expectedA); // the sender's own push comes before its SAY's reply, never inside a reply
  const expectedB = broadcast + '>2\r\n$7\r\nmessage\r\n$3\r\nyou\r\n';
  await b.untilBytes(bBefore + expectedB.length);
  expect(b.received.subarray(bBefore).toString()).toBe(expectedB);
});

test('a member that does not read is closed past maxPushBytes; the sender and the other members go on', async () => {
  // The sender's broadcasts are not paced by the members: a burst reaches the main thread a ring
  // (1 MiB) at a time, so the limit must leave a reading member that much slack.
  const maxPushBytes = 4 * 1024 * 1024;
  const { server, port, entries } = await start({ maxPushBytes, pushSoftLimit: maxPushBytes });
  const slow = await member(port);
  const fast = await member(port);
  const sender = await member(port);
  slow.socket.pause(); // reads nothing more: the kernel's buffers fill, then the server's
  const COUNT = 6000;
  const SIZE = 4096;
  sender.write(`burst r ${COUNT} ${SIZE}\n`);
  const expected = 'joined r\n'.length + COUNT * (SIZE + 1);
  await fast.untilBytes(expected);
  await sender.untilBytes(expected + `done ${COUNT}\n`.length);
  expect(fast.received.length).toBe(expected);
  expect(sender.received.subarray(-`done ${COUNT}\n`.length).toString()).toBe(`done ${COUNT}\n`);
  await waitUntil(() => slow.socket.destroyed || slow.closed || server.members('r').length === 2, 'the slow member is gone');
  await waitUntil(() => entries.some((e) => e.context.code === ErrorCodes.PUSH_BUFFER_OVERFLOW), 'the log line');
  const line = entries.find((e) => e.context.code === ErrorCodes.PUSH_BUFFER_OVERFLOW)!;
  expect(line.context).toMatchObject({ closed: 1, maxPushBytes });
  // Bounded: it was cut as its unsent bytes passed the limit, by at most one message.
  const first = line.context.first as { unsentBytes: number; limit: string };
  expect(first.limit).toBe('maxPushBytes');
  expect(first.unsentBytes).toBeGreaterThan(maxPushBytes);
  expect(first.unsentBytes).toBeLessThanOrEqual(maxPushBytes + SIZE + 1);
  expect(server.stats().rooms.pushDisconnects).toBe(1);
  expect(server.members('r').length).toBe(2);
});

test('the soft limit: a member past pushSoftLimit for pushSoftSeconds is closed', async () => {
  // maxPushBytes far above what 200 ms of pushes queue: only the soft limit can close it.
  const { server, port, entries } = await start({ pushSoftLimit: 64 * 1024, pushSoftSeconds: 0.2, maxPushBytes: 256 * 1024 * 1024 }, TCPServer);
  const slow = await member(port);
  slow.socket.pause();
  const started = Date.now();
  // Inline: each server.broadcast is queued at once. Keep pushing, 16 KiB a millisecond (a pace,
  // not a wait: about 3 MiB over the 200 ms), until the member is cut.
  while (server.members('r').length === 1 && Date.now() - started < 10_000) {
    await server.broadcast('r', 'y'.repeat(16 * 1024));
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  expect(server.members('r')).toEqual([]);
  expect(Date.now() - started).toBeGreaterThanOrEqual(200);
  await waitUntil(() => entries.some((e) => e.context.code === ErrorCodes.PUSH_BUFFER_OVERFLOW), 'the log line');
  expect((entries.find((e) => e.context.code === ErrorCodes.PUSH_BUFFER_OVERFLOW)!.context.first as { limit: string }).limit).toBe('pushSoftLimit');
});

test('a worker\'s death keeps membership (it lives on the main thread)', async () => {
  const { server, port } = await start({ workers: 1, onHandlerError: 'reply' });
  const a = await member(port);
  const idA = await idOf(a, 1);
  a.write('exit\n'); // kills the only worker — the one that ran the join
  await a.untilLines(3);
  expect(a.lines[2]).toBe('ERROR ERR_WORKER_DIED');
  expect(server.members('r')).toEqual([idA]);
  const b = await registry.peer(port);
  b.write('say r after the death\n');
  await a.untilLines(4);
  expect(a.lines[3]).toBe('after the death');
});

test('a closing server delivers what was queued before the connection ends', async () => {
  const { server, port } = await start({}, TCPServer);
  const a = await member(port);
  const COUNT = 200;
  const message = 'z'.repeat(10_000);
  for (let i = 0; i < COUNT; i++) void server.broadcast('r', message);
  const closing = server.close();
  const received = await a.untilClosed();
  await closing;
  expect(received.length).toBe('joined r\n'.length + COUNT * (message.length + 1));
});

test('server.broadcast and server.sendTo from the main thread; handlers made by hand have no rooms', async () => {
  class Echo extends BaseRequestHandler {
    override async handle() {
      const line = this.request.toString();
      if (line === 'join') await this.join('news');
      return `${line} ${this.clientId} ${threadId}`;
    }
  }
  const { logger } = captureLogger();
  const server = registry.server(new TCPServer({ port: 0 }, Echo, { logger }));
  const { port } = await server.listen();
  const peer = await registry.peer(port);
  peer.write('join\n');
  const [line] = await peer.untilLines(1);
  const id = line!.split(' ')[1]!;
  expect(line).toBe(`join ${id} ${threadId}`);
  expect(server.members('news')).toEqual([id]);
  await server.broadcast('news', 'extra');
  await server.sendTo(id, Buffer.from('just you'));
  expect(await peer.untilLines(3)).toEqual([line, 'extra', 'just you']);
  await expect(server.broadcast('', 'x')).rejects.toMatchObject({ code: ErrorCodes.BAD_OPTION });
  await expect(server.sendTo(id, 42 as unknown as string)).rejects.toMatchObject({ code: ErrorCodes.BAD_OPTION });

  const byHand = new Echo(Buffer.from('x'), ['127.0.0.1', 1], server.options as never);
  expect(byHand.clientId).toBe('');
  await expect(byHand.join('news')).rejects.toBeInstanceOf(SockservError);
  await expect(byHand.broadcast('news', 'x')).rejects.toMatchObject({ code: ErrorCodes.UNSUPPORTED });
});

test.each([
  ['pool', ThreadingUDPServer],
  ['inline', UDPServer],
] as const)('%s UDP: a datagram has no client id and cannot join (ERR_UNSUPPORTED)', async (_kind, Server) => {
  const { port } = await start({}, Server as unknown as Server);
  const socket = createSocket('udp4');
  const replies: string[] = [];
  socket.on('message', (message) => replies.push(message.toString()));
  socket.send('id', port, '127.0.0.1');
  socket.send('join r', port, '127.0.0.1');
  try {
    await waitUntil(() => replies.length === 2, 'two replies');
  } finally {
    socket.close();
  }
  expect(replies.sort()).toEqual(['', 'ERROR ERR_UNSUPPORTED'].sort());
});

test('sockserv serve --processes 2 without --pubsub refuses rooms (ERR_PUBSUB_REQUIRED), logged once', async () => {
  const cli = new Cli(['serve', fixture('rooms'), '--port', '0', '--processes', '2', '--workers', '1']);
  const port = await cli.port();
  const peer = await registry.peer(port);
  peer.write('join r\nsay r x\nto a.1 x\necho still here\n');
  expect(await peer.untilLines(4)).toEqual(['ERROR ERR_PUBSUB_REQUIRED', 'ERROR ERR_PUBSUB_REQUIRED', 'ERROR ERR_PUBSUB_REQUIRED', 'echo still here']);
  await cli.until(() => cli.stderr.includes('rooms need pubsub'), 'the log line');
  expect(cli.stderr.match(/rooms need pubsub/g)!.length).toBe(1);
  cli.child.kill('SIGTERM');
  expect(await cli.exit()).toBe(0);
});
