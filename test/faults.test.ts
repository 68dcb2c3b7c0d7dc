// Fault injection on ThreadingTCPServer (2 workers): every way a handler, a worker or a client
// can go wrong, each injected while 10 bystander connections × 50 requests run. Every test
// asserts that the fault stays with the connection (or worker) it came from: the bystanders get
// every reply — counted exactly, checked byte for byte — and the server keeps serving new
// connections afterwards.

import { BroadcastChannel } from 'node:worker_threads';
import type { Socket } from 'node:net';
import {
  type ClientAddress,
  encodeCommand,
  type ServerOptions,
  silentLogger,
  type SockservError,
  ThreadingTCPServer,
} from '../src/index.js';
import { type Codec, LENGTH_CODEC, LINE_CODEC, RESP_CODEC, startBystanders } from './helpers/bystanders.js';
import { fixture } from './helpers/client.js';
import { captureLogger, type LogEntry, lengthFrame, prng, Registry, sleep, waitUntil } from './helpers/net.js';

const registry = new Registry();
const channels: BroadcastChannel[] = [];
afterEach(async () => {
  for (const channel of channels.splice(0)) channel.close();
  await registry.cleanup();
});

const BYSTANDERS = 10;
const REQUESTS = 50;

/** ThreadingTCPServer that records handleError calls and the server side of every connection. */
class FaultServer extends ThreadingTCPServer {
  readonly failures: SockservError[] = [];
  /** Server-side sockets by the client's port. */
  readonly sockets = new Map<number, Socket>();
  override verifyRequest(socket: Socket, clientAddress: ClientAddress): boolean {
    this.sockets.set(clientAddress[1], socket);
    return true;
  }
  override handleError(_socket: Socket | null, _clientAddress: ClientAddress, error: SockservError): void {
    this.failures.push(error);
  }
}

async function start(options: ServerOptions = {}): Promise<{ server: FaultServer; port: number; entries: LogEntry[] }> {
  const { logger, entries } = captureLogger();
  const server = registry.server(new FaultServer({ host: '127.0.0.1', port: 0 }, fixture('fault-modes'), { workers: 2, logger, ...options }));
  const { port } = await server.listen();
  return { server, port, entries };
}

/** A fresh connection is served: the server survived the fault. */
async function assertStillServing(port: number, codec: Codec = LINE_CODEC): Promise<void> {
  const peer = await registry.peer(port);
  peer.write(codec.request('fresh'));
  const expected = codec.reply('fresh');
  await peer.until(() => peer.bytes >= expected.length, 'a reply on a fresh connection');
  expect(peer.received.toString('latin1')).toBe(expected.toString('latin1'));
}

/** Resolves with the first message on a new BroadcastChannel named `name`. */
function listen(name: string): Promise<{ event: string; threadId: number }> {
  const channel = new BroadcastChannel(name);
  channels.push(channel);
  return new Promise((resolve) => {
    channel.onmessage = (event) => resolve((event as MessageEvent).data as { event: string; threadId: number });
  });
}

const codes = (entries: LogEntry[]) => entries.map((e) => e.context.code).filter((c) => c !== undefined);

describe('handler faults', () => {
  test.each([
    ['throws (sync)', 'throw', 'fault-modes: thrown'],
    ['rejects (async)', 'reject', 'fault-modes: rejected'],
  ])('a handler that %s: its connection gets the replies before it, then EOF; bystanders get every reply', async (_how, request, message) => {
    const { server, port } = await start();
    const others = await startBystanders(port, registry);
    const faulty = await registry.peer(port);
    faulty.write(`a\n${request}\nb\n`);
    expect((await faulty.untilClosed()).toString()).toBe('ok a\n');
    expect(faulty.ended).toBe(true);
    expect(await others.done).toBe(BYSTANDERS * REQUESTS);
    expect(server.failures.map((f) => f.code)).toEqual(['ERR_HANDLER_FAILED']);
    expect(server.failures[0]!.message).toContain(message);
    await assertStillServing(port);
  });

  test('a handler that calls process.exit: only its request fails (ERR_WORKER_DIED); the pool gets a new worker; bystanders get every reply', async () => {
    const { server, port, entries } = await start();
    const others = await startBystanders(port, registry);
    const faulty = await registry.peer(port);
    faulty.write('a\nexit\nb\n');
    expect((await faulty.untilClosed()).toString()).toBe('ok a\n');
    expect(await others.done).toBe(BYSTANDERS * REQUESTS);
    expect(server.failures.map((f) => f.code)).toEqual(['ERR_WORKER_DIED']);
    expect(entries.some((e) => e.level === 'warn' && e.context.code === 'ERR_WORKER_DIED')).toBe(true);
    await assertStillServing(port);
  });

  test('a handler that loops for ever (requestTimeout 500): that request gets ERR_REQUEST_TIMEOUT, its worker is replaced, bystanders get every reply', async () => {
    const channel = `faults-loop-${process.pid}`;
    const { server, port, entries } = await start({ requestTimeout: 500, onHandlerError: 'reply', handlerData: { channel } });
    const looping = listen(channel);
    const others = await startBystanders(port, registry);
    const faulty = await registry.peer(port);
    faulty.write('a\nloop\nb\n');
    await faulty.untilLines(3);
    expect(faulty.lines).toEqual(['ok a', 'ERROR ERR_REQUEST_TIMEOUT', 'ok b']);
    expect(await others.done).toBe(BYSTANDERS * REQUESTS);
    expect(server.failures.map((f) => f.code)).toEqual(['ERR_REQUEST_TIMEOUT']);
    // The stuck worker was terminated: piscina reports its end and no later request runs on it.
    const { threadId: lost } = await looping;
    expect(entries.some((e) => e.level === 'warn' && e.context.code === 'ERR_WORKER_DIED')).toBe(true);
    const asking = await Promise.all(Array.from({ length: 4 }, () => registry.peer(port)));
    for (const peer of asking) peer.write('who\n'.repeat(20));
    const threads = new Set<string>();
    for (const peer of asking) for (const line of await peer.untilLines(20)) threads.add(line);
    expect(threads.size).toBeGreaterThan(0);
    expect(threads).not.toContain(`thread ${lost}`);
    // The connection that met the fault goes on being served.
    faulty.write('c\n');
    await faulty.untilLines(4);
    expect(faulty.lines[3]).toBe('ok c');
    await assertStillServing(port);
  });

  test('async handlers that never settle, one per worker (requestTimeout off): they hold only their own pool slots; bystanders and new clients get every reply', async () => {
    const { server, port } = await start({ requestTimeout: 0, shutdownTimeout: 500 });
    const stuck = await Promise.all([registry.peer(port), registry.peer(port)]);
    // One at a time, so each goes out as its own batch while a worker is idle.
    for (const peer of stuck) {
      peer.write('sleep 600000\n');
      await waitUntil(() => server.stats().requestsInFlight === stuck.indexOf(peer) + 1, 'the stuck request is in flight');
    }
    const others = await startBystanders(port, registry);
    expect(await others.done).toBe(BYSTANDERS * REQUESTS);
    await assertStillServing(port);
    expect(server.stats().requestsInFlight).toBe(2);
  });

  test('a handler that exhausts its heap (workerHeapMb 64): that request gets ERR_WORKER_DIED, bystanders get every reply', async () => {
    const channel = `faults-oom-${process.pid}`;
    const { server, port } = await start({ workerHeapMb: 64, onHandlerError: 'reply', handlerData: { channel } });
    const dying = listen(channel);
    const others = await startBystanders(port, registry);
    const faulty = await registry.peer(port);
    faulty.write('a\noom\nb\n');
    await faulty.untilLines(3);
    expect(faulty.lines).toEqual(['ok a', 'ERROR ERR_WORKER_DIED', 'ok b']);
    expect(await others.done).toBe(BYSTANDERS * REQUESTS);
    expect(server.failures.map((f) => f.code)).toEqual(['ERR_WORKER_DIED']);
    expect(server.failures[0]!.message).toMatch(/memory/i);
    expect((await dying).event).toBe('oom');
    await assertStillServing(port);
  });

  test('a worker module that fails to load: listen() rejects with ERR_HANDLER_LOAD naming the cause, nothing hangs, another server in the process serves on', async () => {
    const { port } = await start();
    const others = await startBystanders(port, registry);
    const broken = registry.server(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('broken-import'), { workers: 2, logger: silentLogger }));
    const error = (await broken.listen().then(
      () => new Error('listen() resolved'),
      (e: unknown) => e,
    )) as SockservError;
    expect(error.code).toBe('ERR_HANDLER_LOAD');
    expect(error.message).toContain('broken-import: this module fails to load');
    expect(() => broken.address).toThrow();
    await broken.close();
    expect(await others.done).toBe(BYSTANDERS * REQUESTS);
    await assertStillServing(port);
  });
});

describe('client faults', () => {
  test('a client that resets mid-request (resetAndDestroy with requests in flight and a partial one buffered): the server forgets it; bystanders get every reply', async () => {
    const { server, port, entries } = await start();
    const others = await startBystanders(port, registry);
    const rude = await registry.peer(port);
    const sent = 'sleep 200\nsleep 200\nsleep 200\npartial-no-newline';
    rude.write(sent);
    await waitUntil(() => (server.sockets.get(rude.localPort)?.bytesRead ?? 0) === sent.length, 'the server has read what the client sent');
    const serverSide = server.sockets.get(rude.localPort)!;
    rude.socket.resetAndDestroy();
    await waitUntil(() => serverSide.destroyed, 'the server side is closed');
    expect(await others.done).toBe(BYSTANDERS * REQUESTS);
    await waitUntil(() => server.stats().connections === BYSTANDERS, 'only the bystanders are left');
    expect(server.failures).toEqual([]);
    expect(entries.filter((e) => e.level === 'error')).toEqual([]);
    // The three replies that had nowhere to go were dropped, not left in flight.
    await waitUntil(() => server.stats().requestsInFlight === 0, 'nothing left in flight');
    await assertStillServing(port);
  });

  test('a client that half-closes gets every reply (a slow one and an unterminated last line included), then EOF; bystanders get every reply', async () => {
    const { server, port } = await start();
    const others = await startBystanders(port, registry);
    const half = await registry.peer(port);
    const requests = Array.from({ length: 100 }, (_, i) => `h${i}`);
    half.write(`sleep 100\n${requests.join('\n')}\ntail`);
    half.socket.end();
    const received = await half.untilClosed();
    expect(received.toString()).toBe(['slept 100', ...requests, 'tail'].map((r) => (r.startsWith('slept') ? `${r}\n` : `ok ${r}\n`)).join(''));
    expect(half.ended).toBe(true);
    expect(await others.done).toBe(BYSTANDERS * REQUESTS);
    await waitUntil(() => server.stats().connections === BYSTANDERS, 'the half-closed connection is released');
    await assertStillServing(port);
  });

  /** Random bytes with a "\n" at least every 200 bytes, none of them a request the fixture acts on. */
  function garbageLines(seed: number, bytes: number): { data: Buffer; lines: number } {
    const next = prng(seed);
    const data = Buffer.alloc(bytes);
    let lines = 0;
    let run = 0;
    for (let i = 0; i < bytes; i++) {
      let byte = Math.floor(next() * 256);
      if (run >= 199 || i === bytes - 1) byte = 0x0a;
      else if (byte === 0x0a) byte = 0x00;
      data[i] = byte;
      run = byte === 0x0a ? 0 : run + 1;
      if (byte === 0x0a) lines++;
    }
    return { data, lines };
  }

  test.each([
    [
      'line: binary garbage lines are answered, then an unterminated 64 KiB line',
      'line',
      LINE_CODEC,
      () => {
        const { data, lines } = garbageLines(7, 16 * 1024);
        return { input: Buffer.concat([data, Buffer.alloc(64 * 1024, 0xfe)]), replies: lines };
      },
      'ERR_FRAME_TOO_LONG',
    ],
    [
      'length: a valid frame, then a garbage prefix announcing 4 GiB',
      'length',
      LENGTH_CODEC,
      () => ({ input: Buffer.concat([lengthFrame('v'), Buffer.from([0xff, 0xfe, 0x00, 0x41]), Buffer.alloc(100, 0x41)]), replies: 1 }),
      'ERR_FRAME_TOO_LONG',
    ],
    [
      'resp: a valid command, then bytes that cannot start a request',
      'resp',
      RESP_CODEC,
      () => ({ input: Buffer.concat([encodeCommand(['v']), Buffer.from('+garbage\r\n\x00\x01\x02$$$\r\n')]), replies: 1 }),
      'ERR_FRAME_INVALID',
    ],
    [
      'resp: a valid command, then a bulk string announcing 99 MB',
      'resp',
      RESP_CODEC,
      () => ({ input: Buffer.concat([encodeCommand(['v']), Buffer.from('*1\r\n$99999999\r\nxyz')]), replies: 1 }),
      'ERR_FRAME_TOO_LONG',
    ],
  ] as const)('%s: replies before the bad input, the error reply, EOF; bystanders get every reply', async (_what, framing, codec, make, code) => {
    const { server, port, entries } = await start({ framing, maxFrameBytes: 1024 });
    const others = await startBystanders(port, registry, { codec });
    const bad = await registry.peer(port);
    const { input, replies } = make();
    bad.write(input);
    const received = await bad.untilClosed();
    expect(await others.done).toBe(BYSTANDERS * REQUESTS);

    const errorReply = framing === 'resp' ? `-ERR ${code}\r\n` : `ERROR ${code}`;
    if (framing === 'line') {
      const lines = received.toString('latin1').split('\n');
      expect(lines.pop()).toBe(''); // the stream ends with a newline
      expect(lines).toHaveLength(replies + 1);
      expect(lines.slice(0, replies).every((l) => l.startsWith('ok '))).toBe(true);
      expect(lines[replies]).toBe(errorReply);
    } else if (framing === 'length') {
      expect(received.toString('hex')).toBe(Buffer.concat([lengthFrame('ok v'), lengthFrame(errorReply)]).toString('hex'));
    } else {
      expect(received.toString('latin1')).toBe(Buffer.concat([RESP_CODEC.reply('v'), Buffer.from(errorReply)]).toString('latin1'));
    }
    expect(server.stats().protocolErrors).toBe(1);
    expect(entries.filter((e) => e.level === 'warn' && e.context.code === code)).toHaveLength(1);
    await assertStillServing(port, codec);
  });

  test('a slow reader (stops reading, keeps asking for 64 KiB replies): in-flight requests and unsent bytes stay bounded, bystanders get every reply, then it gets all its replies', async () => {
    const maxInFlightPerConnection = 16;
    const writeHighWaterMark = 256 * 1024;
    const replyBytes = 64 * 1024;
    const asked = 1000; // 64 MB of replies: far more than loopback socket buffers hold
    const { server, port } = await start({ maxInFlightPerConnection, writeHighWaterMark });
    const slow = await registry.peer(port);
    slow.socket.pause();
    slow.write(`big ${replyBytes}\n`.repeat(asked));
    const others = await startBystanders(port, registry);
    expect(await others.done).toBe(BYSTANDERS * REQUESTS);

    const serverSide = server.sockets.get(slow.localPort)!;
    let maxUnsent = 0;
    let maxInFlight = 0;
    for (let i = 0; i < 50; i++) {
      await sleep(10);
      maxUnsent = Math.max(maxUnsent, serverSide.writableLength);
      maxInFlight = Math.max(maxInFlight, server.stats().requestsInFlight);
    }
    const paused = server.stats();
    expect(paused.connections).toBe(BYSTANDERS + 1);
    expect(maxInFlight).toBeLessThanOrEqual(maxInFlightPerConnection);
    expect(maxUnsent).toBeLessThanOrEqual(writeHighWaterMark + (maxInFlightPerConnection + 1) * (replyBytes + 1));
    // The server stopped taking the slow client's requests instead of buffering their replies.
    expect(paused.requestsReceived - BYSTANDERS * REQUESTS).toBeLessThan(asked);
    expect(paused.requestsOk - BYSTANDERS * REQUESTS).toBeLessThan(asked);

    slow.socket.resume();
    const received = await slow.untilBytes(asked * (replyBytes + 1));
    expect(received.length).toBe(asked * (replyBytes + 1));
    expect(received.subarray(0, replyBytes + 1).equals(Buffer.concat([Buffer.alloc(replyBytes, 'x'), Buffer.from('\n')]))).toBe(true);
    expect(server.stats().requestsOk).toBe(BYSTANDERS * REQUESTS + asked);
    await assertStillServing(port);
  });

  test('a slowloris client (one byte every 100 ms, never a full request; idleTimeout 400) is closed and logged ERR_IDLE_TIMEOUT; bystanders get every reply', async () => {
    const { server, port, entries } = await start({ idleTimeout: 400 });
    // The bystanders' waves span ~1 s, so they stay active for longer than the slowloris lives.
    const others = await startBystanders(port, registry, { waves: 10, gapMs: 100 });
    const loris = await registry.peer(port);
    let sent = 0;
    while (!loris.closed && sent < 100) {
      loris.write('x');
      sent++;
      await sleep(100);
    }
    expect(loris.closed).toBe(true);
    expect(loris.bytes).toBe(0);
    expect(await others.done).toBe(BYSTANDERS * REQUESTS);
    const idle = entries.filter((e) => e.context.code === 'ERR_IDLE_TIMEOUT');
    expect(idle.length).toBeGreaterThan(0);
    expect(idle[0]).toMatchObject({ level: 'warn', context: { idleTimeout: 400 } });
    expect(server.failures).toEqual([]);
    await assertStillServing(port);
  });

  test('idleTimeout 400 closes only the idle: clients sending a request every 50 ms from the moment listen() resolves stay open, even when the server was built well before listen()', async () => {
    const { logger, entries } = captureLogger();
    const server = registry.server(
      new FaultServer({ host: '127.0.0.1', port: 0 }, fixture('fault-modes'), { workers: 2, logger, idleTimeout: 400 }),
    );
    await sleep(600); // e.g. an application that builds its server, then loads config before listening
    const { port } = await server.listen();
    const active = await startBystanders(port, registry, { count: 5, requests: 20, waves: 20, gapMs: 50 });
    const loris = await registry.peer(port);
    loris.write('x');
    expect(await active.done).toBe(5 * 20);
    for (const peer of active.peers) expect(peer.closed).toBe(false);
    await loris.untilClosed();
    expect(loris.bytes).toBe(0);
    expect(entries.some((e) => e.context.code === 'ERR_IDLE_TIMEOUT')).toBe(true);
  });

  test('maxConnections 5: the 6th connection is closed at once and logged ERR_TOO_MANY_CONNECTIONS; the first 5 keep working; a freed slot is usable', async () => {
    const { server, port, entries } = await start({ maxConnections: 5 });
    const five = await startBystanders(port, registry, { count: 5, waves: 10, gapMs: 30 });
    await waitUntil(() => server.stats().connections === 5, 'five connections are accepted');
    const sixth = await registry.peer(port);
    sixth.write('hello\n');
    const refused = await sixth.untilClosed();
    expect(refused.length).toBe(0);
    expect(await five.done).toBe(5 * REQUESTS);
    expect(server.stats().connectionsRefused).toBe(1);
    // The refusal is logged once (at most once a second, with the count).
    await waitUntil(() => codes(entries).includes('ERR_TOO_MANY_CONNECTIONS'), 'the refusal is logged');
    const logged = entries.filter((e) => e.context.code === 'ERR_TOO_MANY_CONNECTIONS');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: 'warn', context: { refused: 1, maxConnections: 5 } });
    // The five still work; closing one frees a slot for a new client.
    five.peers[0]!.write('again\n');
    await five.peers[0]!.until(() => five.peers[0]!.text.endsWith('ok again\n'), 'a reply after the refusal');
    five.peers[1]!.socket.destroy();
    await waitUntil(() => server.stats().connections === 4, 'a slot is free');
    await assertStillServing(port);
  });

  test('a client that does not read while its unsent replies pass writeBufferHardLimit, with no progress for writeStallTimeout, is disconnected (ERR_WRITE_BUFFER_OVERFLOW); bystanders get every reply', async () => {
    const writeBufferHardLimit = 1024 * 1024;
    const replyBytes = 4 * 1024 * 1024;
    const asked = 8;
    const { server, port, entries } = await start({ writeHighWaterMark: 64 * 1024, writeBufferHardLimit, writeStallTimeout: 500 });
    const hog = await registry.peer(port);
    hog.socket.pause();
    hog.write(`big ${replyBytes}\n`.repeat(asked));
    const others = await startBystanders(port, registry);
    await waitUntil(() => codes(entries).includes('ERR_WRITE_BUFFER_OVERFLOW'), 'the overflow is logged');
    const overflow = entries.find((e) => e.context.code === 'ERR_WRITE_BUFFER_OVERFLOW')!;
    expect(overflow).toMatchObject({ level: 'warn', context: { client: `127.0.0.1:${hog.localPort}` } });
    await waitUntil(() => server.sockets.get(hog.localPort)!.destroyed, 'the server side is closed');
    hog.socket.resume();
    const received = await hog.untilClosed();
    expect(received.length).toBeLessThan(asked * (replyBytes + 1));
    expect(await others.done).toBe(BYSTANDERS * REQUESTS);
    await waitUntil(() => server.stats().connections === BYSTANDERS, 'only the bystanders are left');
    await assertStillServing(port);
  });
});
