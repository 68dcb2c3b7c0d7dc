// Replies leave each connection in request order, even when handlers finish out of order on
// different workers; and every framing works end to end on real sockets, checked as raw bytes.

import { type BaseServer, silentLogger, TCPServer, ThreadingTCPServer } from '../src/index.js';
import type { ServerOptions } from '../src/index.js';
import { fixture } from './helpers/client.js';
import { lengthFrame, parseLengthFrames, Registry, sleep } from './helpers/net.js';

const registry = new Registry();
afterEach(() => registry.cleanup());

const KINDS = [
  ['ThreadingTCPServer', ThreadingTCPServer],
  ['TCPServer', TCPServer],
] as const;

async function start(Server: (typeof KINDS)[number][1], handler: string, options: ServerOptions = {}): Promise<{ server: BaseServer; port: number }> {
  const server = registry.server(new Server({ host: '127.0.0.1', port: 0 }, fixture(handler), { workers: 2, logger: silentLogger, ...options }));
  const { port } = await server.listen();
  return { server, port };
}

function requests(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}-${i}-${'x'.repeat(i % 7)}`);
}

describe.each(KINDS)('%s', (_name, Server) => {
  test('300 pipelined requests on one connection, handlers finishing in random order: replies in request order', async () => {
    const { server, port } = await start(Server, 'jitter');
    const peer = await registry.peer(port);
    const sent = requests('solo', 300);
    peer.write(sent.map((r) => `${r}\n`).join(''));
    const lines = await peer.untilLines(sent.length);
    expect(lines).toEqual(sent);
    // Nothing extra arrives, and every request was counted as answered.
    expect(peer.text).toBe(sent.map((r) => `${r}\n`).join(''));
    expect(server.stats().requestsOk).toBe(sent.length);
  });

  test('10 connections × 60 pipelined requests, written in bursts: each connection in order', async () => {
    const { port } = await start(Server, 'jitter');
    const peers = await Promise.all(Array.from({ length: 10 }, () => registry.peer(port)));
    const sent = peers.map((_, c) => requests(`conn${c}`, 60));
    // Three bursts per connection, interleaved across connections.
    for (let burst = 0; burst < 3; burst++) {
      peers.forEach((peer, c) => peer.write(sent[c]!.slice(burst * 20, burst * 20 + 20).map((r) => `${r}\n`).join('')));
      await sleep(5);
    }
    const replies = await Promise.all(peers.map((peer) => peer.untilLines(60)));
    replies.forEach((lines, c) => expect(lines).toEqual(sent[c]));
  });

  test('length-prefixed framing end to end: exact reply bytes, odd splits, empty and binary requests', async () => {
    const { port } = await start(Server, 'echo', { framing: 'length' });
    const payloads = [
      Buffer.from('ab'),
      Buffer.alloc(0),
      Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
      Buffer.from('\n\r\n'),
      Buffer.alloc(70_000, 0x41),
      Buffer.from('last'),
    ];
    const stream = Buffer.concat(payloads.map((p) => lengthFrame(p)));
    const peer = await registry.peer(port);
    // Split inside a header, inside a body and between frames.
    const cuts = [1, 3, 5, 6, 9, 300, 40_000, stream.length];
    let at = 0;
    for (const cut of cuts) {
      peer.write(stream.subarray(at, cut));
      at = cut;
      await sleep(2);
    }
    const received = await peer.untilBytes(stream.length);
    expect(received.equals(stream)).toBe(true);
    const { frames, rest } = parseLengthFrames(received);
    expect(frames.map((f) => f.toString('hex'))).toEqual(payloads.map((p) => p.toString('hex')));
    expect(rest.length).toBe(0);
  });

  test('length-prefixed reply header is the reply length, big-endian', async () => {
    const { port } = await start(Server, 'upper', { framing: 'length' });
    const peer = await registry.peer(port);
    peer.write(Buffer.from([0, 0, 0, 3, 0x61, 0x62, 0x63, 0, 0, 0, 0]));
    const received = await peer.untilBytes(11);
    expect(received.toString('hex')).toBe('00000003414243' + '00000000');
  });

  test("delimiter framing '--': frames split across reads, trailing frame at EOF", async () => {
    const { port } = await start(Server, 'upper', { framing: 'delimiter:2d2d' });
    const peer = await registry.peer(port);
    peer.write('ab--c-d-');
    await sleep(5);
    peer.write('-ef--');
    await sleep(5);
    peer.write('----gh');
    peer.socket.end();
    const received = await peer.untilClosed();
    expect(received.toString()).toBe('AB--C-D--EF------GH--');
  });

  test("delimiter framing '\\r\\n' from { delimiter }: a lone LF is data", async () => {
    const { port } = await start(Server, 'reverse', { framing: { delimiter: '\r\n' } });
    const peer = await registry.peer(port);
    peer.write('abc\r\nx\ny\r\n\r\n');
    const expected = 'cba:3\r\ny\nx:3\r\n:0\r\n';
    await peer.untilBytes(expected.length);
    expect(peer.text).toBe(expected);
  });

  test('raw framing: each read is one request (ping-pong shows the boundaries)', async () => {
    const { port } = await start(Server, 'reverse', { framing: 'raw' });
    const peer = await registry.peer(port);
    let expected = '';
    for (const chunk of ['hello', 'a\nb\n', 'x', 'no framing at all\r\n']) {
      peer.write(chunk);
      expected += `${chunk.split('').reverse().join('')}:${chunk.length}`;
      await peer.until(() => peer.text.length >= expected.length, `the reply to ${JSON.stringify(chunk)}`);
      expect(peer.text).toBe(expected);
    }
  });

  test('raw framing: pipelined bytes come back transformed, in order', async () => {
    const { port } = await start(Server, 'upper', { framing: 'raw' });
    const peer = await registry.peer(port);
    const chunks = Array.from({ length: 50 }, (_, i) => `chunk ${i};`);
    for (const chunk of chunks) {
      peer.write(chunk);
      if (chunks.indexOf(chunk) % 10 === 0) await sleep(1);
    }
    const all = chunks.join('');
    await peer.untilBytes(all.length);
    expect(peer.text).toBe(all.toUpperCase());
  });
});
