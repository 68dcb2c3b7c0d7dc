// StreamRequestHandler sessions — one handler per connection for its whole life — on the pooled
// ThreadingTCPServer (2 workers) and the inline TCPServer: conversations with state, rfile.read(n),
// request.recv, half-closing clients, backpressure in both directions (a handler that does not
// read, a client that does not read), many sessions at once, failures that stay with their
// session, worker death, shutdown with sessions open, and the readline length limit.

import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import { BroadcastChannel } from 'node:worker_threads';
import {
  type ClientAddress,
  DEFAULTS,
  type ServerOptions,
  silentLogger,
  type SockservError,
  TCPServer,
  ThreadingTCPServer,
} from '../src/index.js';
import { fixture } from './helpers/client.js';
import { type Peer, Registry, sleep, waitUntil } from './helpers/net.js';

const registry = new Registry();
afterEach(() => registry.cleanup());

const MiB = 1024 * 1024;

interface Failure {
  clientAddress: ClientAddress;
  error: SockservError;
}

class RecordingThreadingTCPServer extends ThreadingTCPServer {
  readonly failures: Failure[] = [];
  override handleError(_request: Socket | null, clientAddress: ClientAddress, error: SockservError): void {
    this.failures.push({ clientAddress, error });
  }
}

class RecordingTCPServer extends TCPServer {
  readonly failures: Failure[] = [];
  override handleError(_request: Socket | null, clientAddress: ClientAddress, error: SockservError): void {
    this.failures.push({ clientAddress, error });
  }
}

const KINDS = [
  ['ThreadingTCPServer', RecordingThreadingTCPServer],
  ['TCPServer', RecordingTCPServer],
] as const;

type Kind = (typeof KINDS)[number][1];
type Recording = RecordingTCPServer | RecordingThreadingTCPServer;

async function start(Server: Kind, handler: string, options: ServerOptions = {}): Promise<{ server: Recording; port: number }> {
  const server = registry.server(new Server({ host: '127.0.0.1', port: 0 }, fixture(handler), { workers: 2, logger: silentLogger, ...options }));
  const { port } = await server.listen();
  return { server, port };
}

/** Waits until `read()` stops changing (the same value over a few polls); bounded. */
async function settle(read: () => number, what: string): Promise<number> {
  let last = read();
  let steady = 0;
  for (let i = 0; i < 400 && steady < 10; i++) {
    await sleep(20);
    const now = read();
    steady = now === last ? steady + 1 : 0;
    last = now;
  }
  if (steady < 10) throw new Error(`${what} never settled (last ${last})`);
  return last;
}

/** A BroadcastChannel to talk to a fixture in whichever thread runs it. */
class Control {
  static #next = 0;
  readonly name = `sockserv-sessions-${process.pid}-${Control.#next++}`;
  readonly events: Array<{ event: string; [key: string]: unknown }> = [];
  readonly #channel = new BroadcastChannel(this.name);

  constructor() {
    this.#channel.onmessage = (event) => this.events.push((event as MessageEvent).data);
  }

  async next(event: string): Promise<{ event: string; [key: string]: unknown }> {
    await waitUntil(() => this.events.some((e) => e.event === event), `the handler to report '${event}'`);
    return this.events.find((e) => e.event === event)!;
  }

  send(message: unknown): void {
    this.#channel.postMessage(message);
  }

  /** Releases a fixture still waiting for a command, then closes the channel. */
  close(): void {
    this.#channel.postMessage({ cmd: 'stop' });
    this.#channel.close();
  }
}

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

describe.each(KINDS)('%s sessions', (name, Server) => {
  test('a multi-line conversation keeps its state across lines; EOF gets the final write, then the close', async () => {
    const { server, port } = await start(Server, 'session-tally');
    const peer = await registry.peer(port);
    await peer.untilLines(1);
    peer.write('alpha\n');
    await peer.untilLines(2);
    peer.write('sum 5\nsum 7\n');
    await peer.untilLines(4);
    peer.write('beta\r\n'); // a CRLF line is one line too
    await peer.untilLines(5);
    expect(peer.lines).toEqual(['hello', '1:alpha', 'total 5', 'total 12', '4:beta']);
    peer.socket.end();
    const received = await peer.untilClosed();
    expect(received.toString().split('\n').slice(5)).toEqual(['bye 4 12', '']);
    expect(peer.ended).toBe(true);
    await waitUntil(() => server.stats().connections === 0, 'the session is released');
    expect(server.stats()).toMatchObject({ connectionsTotal: 1, requestsOk: 1, requestsFailed: 0 });
  });

  test("the colleague's chat-session: 'q' ends the session from the handler side", async () => {
    const { port } = await start(Server, 'chat-session');
    const peer = await registry.peer(port);
    peer.write('one\ntwo\nq\nnever read\n');
    expect((await peer.untilClosed()).toString()).toBe('hello\n1:one\n2:two\n');
    expect(peer.ended).toBe(true);
  });

  test('rfile.read(n) returns exactly n bytes when the record arrives in several chunks', async () => {
    const { server, port } = await start(Server, 'read-exact');
    const peer = await registry.peer(port);
    const body = 'abcdefghij';
    const pieces = ['10\nab', 'cde', 'f', 'ghij'];
    let sent = 0;
    for (const piece of pieces) {
      peer.write(piece);
      sent += piece.length;
      // Each piece is read by the server before the next is sent: the record really is split.
      await waitUntil(() => server.stats().bytesIn === sent, `the server read ${sent} bytes`);
    }
    await peer.untilLines(1);
    expect(peer.lines).toEqual([`10 ${sha256(body)}`]);

    // Two records in one write, and a zero-length one: each read(n) stops at its own boundary.
    peer.write(`3\nxyz0\n4\n1234`);
    await peer.untilLines(4);
    expect(peer.lines.slice(1)).toEqual([`3 ${sha256('xyz')}`, `0 ${sha256('')}`, `4 ${sha256('1234')}`]);

    // At EOF, read(n) returns what there is (Python's read(n) at EOF).
    peer.write('8\nshort');
    peer.socket.end();
    const received = await peer.untilClosed();
    expect(received.toString().split('\n').slice(4)).toEqual([`5 ${sha256('short')}`, '']);
  });

  // Python's rfile.read(n) and readline() read as far as asked; sockserv bounds a line by
  // maxFrameBytes (1 MiB), not by readHighWaterMark. The record is sent in two parts, the second
  // only once the server has read the first — more than readHighWaterMark — so the session's
  // read pause has surely taken effect. HANG_MS only bounds a hang (the transfer takes ms).
  const HANG_MS = 3_000;
  const part = DEFAULTS.readHighWaterMark * 2;

  async function sendInTwoParts(server: Recording, peer: Peer, head: string, body: Buffer, tail: string): Promise<void> {
    const first = Buffer.concat([Buffer.from(head), body.subarray(0, part)]);
    peer.write(first);
    await waitUntil(() => server.stats().bytesIn >= first.length, 'the server read the first part');
    await settle(() => server.stats().bytesIn, 'bytes read by the server');
    peer.write(Buffer.concat([body.subarray(part), Buffer.from(tail)]));
  }

  test('rfile.read(n) with n above readHighWaterMark (64 KiB) returns all n bytes', async () => {
    const { server, port } = await start(Server, 'read-exact');
    const peer = await registry.peer(port);
    const body = Buffer.alloc(part * 3, 'r');
    await sendInTwoParts(server, peer, `${body.length}\n`, body, '');
    await peer.until(() => peer.lines.length >= 1, 'the read(n) reply', HANG_MS);
    expect(peer.lines).toEqual([`${body.length} ${sha256(body)}`]);
  });

  test('a line longer than readHighWaterMark but within maxFrameBytes is read whole by readline()', async () => {
    const { server, port } = await start(Server, 'long-line');
    const peer = await registry.peer(port);
    const body = Buffer.alloc(part * 3, 'l');
    await sendInTwoParts(server, peer, '', body, '\n');
    await peer.until(() => peer.lines.length >= 1, 'the readline() reply', HANG_MS);
    expect(peer.text).toBe(`echo ${body.toString()}\n`);
  });

  test('request.recv(4) gets what is available, at most 4 bytes; sendall answers each', async () => {
    const { port } = await start(Server, 'recv-upper');
    const peer = await registry.peer(port);
    peer.write('hello ');
    await peer.until(() => peer.text.replace(/[[\]]/g, '') === 'HELLO ', "'hello ' answered");
    peer.write('socket world');
    peer.socket.end();
    const received = (await peer.untilClosed()).toString();
    const pieces = [...received.matchAll(/\[([^\]]*)\]/g)].map((m) => m[1]!);
    expect(pieces.join('')).toBe('HELLO SOCKET WORLD');
    expect(received).toBe(pieces.map((p) => `[${p}]`).join(''));
    for (const piece of pieces) {
      expect(piece.length).toBeGreaterThanOrEqual(1);
      expect(piece.length).toBeLessThanOrEqual(4);
    }
  });

  test('a client that half-closes right after writing gets every reply and the final write, then the server closes', async () => {
    const { server, port } = await start(Server, 'session-tally');
    const peer = await registry.peer(port);
    peer.write('a\nb\nsum 3\nc');
    peer.socket.end();
    const received = await peer.untilClosed();
    expect(received.toString()).toBe('hello\n1:a\n2:b\ntotal 3\n4:c\nbye 4 3\n');
    expect(peer.ended).toBe(true);
    await waitUntil(() => server.stats().connections === 0, 'the session is released');
  });

  test('a handler that does not read while the client sends 5 MiB: the server stops reading, the client backs up, then every byte is read', async () => {
    const control = new Control();
    try {
      const { server, port } = await start(Server, 'lazy-reader', { handlerData: { channel: control.name } });
      const peer = await registry.peer(port);
      await control.next('started');
      const total = 5 * MiB;
      const chunk = Buffer.alloc(64 * 1024, 'p');
      let refused = 0;
      for (let sent = 0; sent < total; sent += chunk.length) if (!peer.socket.write(chunk)) refused++;
      peer.socket.end();
      expect(refused).toBeGreaterThan(0); // the client's writes back up: write() returned false
      expect(peer.socket.writableLength).toBeGreaterThan(0);

      const bytesIn = await settle(() => server.stats().bytesIn, 'bytes read by the server');
      // The server stopped reading: it holds readHighWaterMark in the session plus what was in
      // flight to it when the pause took effect — not the 5 MiB; the rest waits in the client
      // and the kernel. (How far past readHighWaterMark it reads depends on how fast the
      // handler's thread answers, so only "not everything" is asserted.)
      // The main thread reads exactly one credit window (readHighWaterMark) and then stops.
      expect(bytesIn).toBeGreaterThanOrEqual(DEFAULTS.readHighWaterMark);
      expect(bytesIn).toBeLessThan(total);
      expect(control.events.some((e) => e.event === 'read')).toBe(false);

      control.send({ cmd: 'read' });
      expect((await control.next('read')).bytes).toBe(total);
      await peer.untilLines(1);
      expect(peer.lines).toEqual([`bytes ${total}`]);
      await peer.untilClosed();
      expect(server.stats().bytesIn).toBe(total);
    } finally {
      control.close();
    }
  });

  test("a client that does not read while the handler writes 20 MiB: the handler's write waits, and nothing is lost once the client reads", async () => {
    const control = new Control();
    const total = 20 * MiB;
    try {
      const { server, port } = await start(Server, 'big-writer', { handlerData: { channel: control.name, totalBytes: total } });
      const peer = await registry.peer(port);
      peer.socket.pause();
      const blocked = await control.next('blocked');
      expect(blocked.written).toBeLessThan(total);
      // Still waiting, not disconnected: the unsent bytes stay under writeBufferHardLimit.
      await sleep(100);
      expect(control.events.some((e) => e.event === 'done')).toBe(false);
      expect(server.stats().connections).toBe(1);
      expect(peer.bytes).toBe(0);

      peer.socket.resume();
      const received = await peer.untilBytes(total);
      expect((await control.next('done')).written).toBe(total);
      await peer.untilClosed();
      expect(received.length).toBe(total);
      let wrong = -1;
      for (let i = 0; i < received.length; i++) {
        if (received[i] !== i % 251) {
          wrong = i;
          break;
        }
      }
      expect(wrong).toBe(-1);
    } finally {
      control.close();
    }
  });

  test('200 sessions at once each get their own exact conversation', async () => {
    const { server, port } = await start(Server, 'session-tally');
    const peers = await Promise.all(Array.from({ length: 200 }, () => registry.peer(port)));
    peers.forEach((peer, i) => {
      peer.write(`p${i}\nsum ${i}\n`);
      peer.socket.end(`last${i}\n`);
    });
    const received = await Promise.all(peers.map((peer) => peer.untilClosed()));
    received.forEach((bytes, i) => {
      expect(bytes.toString()).toBe(`hello\n1:p${i}\ntotal ${i}\n3:last${i}\nbye 3 ${i}\n`);
    });
    await waitUntil(() => server.stats().connections === 0, 'every session is released');
    expect(server.stats()).toMatchObject({ connectionsTotal: 200, requestsOk: 200, requestsFailed: 0 });
    if (name === 'ThreadingTCPServer') expect(server.stats().workers).toBe(2);
  });

  test('a handler that throws: handleError gets ERR_HANDLER_FAILED, that connection closes, the others go on', async () => {
    const { server, port } = await start(Server, 'session-faulty');
    const [victim, ...others] = await Promise.all(Array.from({ length: 4 }, () => registry.peer(port)));
    for (const peer of [victim!, ...others]) peer.write('before\n');
    for (const peer of [victim!, ...others]) await peer.untilLines(1);
    victim!.write('throw\nafter\n');
    expect((await victim!.untilClosed()).toString()).toBe('ok before\n');
    expect(victim!.ended).toBe(true);
    await waitUntil(() => server.failures.length === 1, 'handleError is called');
    expect(server.failures[0]!.error.code).toBe('ERR_HANDLER_FAILED');
    expect(server.failures[0]!.error.message).toContain('session-faulty: thrown on request');
    expect(server.failures[0]!.clientAddress).toEqual(['127.0.0.1', victim!.localPort]);
    for (const peer of others) peer.write('after\n');
    for (const peer of others) await peer.untilLines(2);
    for (const peer of others) expect(peer.lines).toEqual(['ok before', 'ok after']);
    expect(server.failures).toHaveLength(1);
  });

  test('shutdown() with sessions open: each gets EOF, its final write arrives, then the close; shutdown resolves', async () => {
    const { server, port } = await start(Server, 'session-tally', { shutdownTimeout: 20_000 });
    const peers = await Promise.all(Array.from({ length: 5 }, () => registry.peer(port)));
    peers.forEach((peer, i) => peer.write(`open${i}\n`));
    for (const peer of peers) await peer.untilLines(2);
    await server.shutdown();
    const received = await Promise.all(peers.map((peer) => peer.untilClosed()));
    received.forEach((bytes, i) => expect(bytes.toString()).toBe(`hello\n1:open${i}\nbye 1 0\n`));
    for (const peer of peers) expect(peer.ended).toBe(true);
    expect(server.stats().connections).toBe(0);
    expect(server.failures).toEqual([]);
  });

  test('a readline() past maxFrameBytes rejects with ERR_FRAME_TOO_LONG inside the handler', async () => {
    const { server, port } = await start(Server, 'long-line', { maxFrameBytes: 1024 });
    const peer = await registry.peer(port);
    peer.write('short\n');
    await peer.untilLines(1);
    peer.write('x'.repeat(5000));
    const received = await peer.untilClosed();
    expect(received.toString()).toBe('echo short\ncaught ERR_FRAME_TOO_LONG\n');
    expect(server.failures).toEqual([]); // the handler caught it: not a handler failure
    // A line of exactly maxFrameBytes (newline included) is still fine.
    const fits = await registry.peer(port);
    fits.write(`${'y'.repeat(1023)}\n`);
    await fits.untilLines(1);
    expect(fits.text).toBe(`echo ${'y'.repeat(1023)}\n`);
  });
});

describe('ThreadingTCPServer session on a busy worker', () => {
  // options.ts: "every buffer and queue sockserv keeps is bounded". A worker busy in synchronous
  // code (a CPU-bound handler) cannot answer the read-pause message, so the bound must not
  // depend on the handler's thread answering.
  test('a session whose worker is blocked while its client sends 5 MiB: the server still does not buffer it all', async () => {
    const gate = new Int32Array(new SharedArrayBuffer(8));
    const release = () => {
      Atomics.store(gate, 0, 1);
      Atomics.notify(gate, 0);
    };
    try {
      const { server, port } = await start(RecordingThreadingTCPServer, 'blocked-session', { workers: 1, handlerData: { gate: gate.buffer } });
      const peer = await registry.peer(port);
      await waitUntil(() => Atomics.load(gate, 1) === 1, 'the handler is blocking its worker');
      const total = 5 * MiB;
      const chunk = Buffer.alloc(64 * 1024, 'b');
      for (let sent = 0; sent < total; sent += chunk.length) peer.socket.write(chunk);
      peer.socket.end();
      const bytesIn = await settle(() => server.stats().bytesIn, 'bytes read by the server');
      expect(bytesIn).toBeLessThan(total);

      release();
      await peer.untilLines(1);
      expect(peer.lines).toEqual([`bytes ${total}`]);
    } finally {
      release();
    }
  });
});

describe('ThreadingTCPServer worker death during sessions', () => {
  test('process.exit in a handler ends only the sessions on that worker, with a clean close; new sessions are served', async () => {
    const { server, port } = await start(RecordingThreadingTCPServer, 'session-faulty');
    const threadOf = new Map<Peer, string>();
    const peers: Peer[] = [];
    // Open sessions until both workers hold some (bounded).
    for (let i = 0; i < 24 && new Set(threadOf.values()).size < 2; i++) {
      const peer = await registry.peer(port);
      peer.write('who\n');
      await peer.untilLines(1);
      threadOf.set(peer, peer.lines[0]!);
      peers.push(peer);
    }
    const threads = [...new Set(threadOf.values())];
    expect(threads).toHaveLength(2);
    const victim = peers[0]!;
    const doomed = peers.filter((p) => threadOf.get(p) === threadOf.get(victim));
    const spared = peers.filter((p) => threadOf.get(p) !== threadOf.get(victim));

    victim.write('exit\n');
    for (const peer of doomed) {
      const received = await peer.untilClosed();
      expect(received.toString()).toBe(`${threadOf.get(peer)}\n`);
      expect(peer.ended).toBe(true); // EOF, not a reset
      expect(peer.error).toBeUndefined();
    }
    await waitUntil(() => server.failures.length === doomed.length, 'handleError for each session of the dead worker');
    expect(server.failures.map((f) => f.error.code)).toEqual(doomed.map(() => 'ERR_WORKER_DIED'));

    for (const peer of spared) peer.write('still here\n');
    for (const peer of spared) await peer.untilLines(2);
    for (const peer of spared) expect(peer.lines[1]).toBe('ok still here');

    const fresh = await Promise.all(Array.from({ length: 4 }, () => registry.peer(port)));
    for (const peer of fresh) peer.write('new\n');
    for (const peer of fresh) await peer.untilLines(1);
    for (const peer of fresh) expect(peer.lines).toEqual(['ok new']);
    expect(server.stats().workers).toBe(2);
  });
});
