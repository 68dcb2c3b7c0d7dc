// The PROXY protocol, v1 and v2: the parser fed raw bytes (one at a time, and in one chunk with
// the first request bytes after the header), every malformed or oversized header failing with
// ERR_PROXY_HEADER_INVALID, and servers with `proxyProtocol` giving handlers and verifyRequest
// the client address the header names — over real sockets, inline and pooled.

import type { Socket } from 'node:net';
import {
  type ClientAddress,
  PROXY_V1_MAX_BYTES,
  PROXY_V2_TLV_MAX_BYTES,
  ProxyHeaderParser,
  type ProxyParseResult,
  type ServerOptions,
  SockservError,
  TCPServer,
  ThreadingTCPServer,
  silentLogger,
} from '../src/index.js';
import { fixture } from './helpers/client.js';
import { captureLogger, Registry, waitUntil } from './helpers/net.js';

const registry = new Registry();
afterEach(() => registry.cleanup());

const V2_SIGNATURE = '0d0a0d0a000d0a515549540a';

/** A v2 header from its parts: ver/cmd byte, family byte, then the block (addresses and TLVs). */
function v2(versionCommand: number, family: number, block: Buffer = Buffer.alloc(0)): Buffer {
  const fixed = Buffer.from(`${V2_SIGNATURE}${hex(versionCommand)}${hex(family)}0000`, 'hex');
  fixed.writeUInt16BE(block.length, 14);
  return Buffer.concat([fixed, block]);
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}

/** One TLV: type, 16-bit length, value. */
function tlv(type: number, value: Buffer | string): Buffer {
  const body = Buffer.from(value);
  const head = Buffer.from([type, 0, 0]);
  head.writeUInt16BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** v2 PROXY TCP over IPv4: 192.0.2.1:56324 → 198.51.100.7:443, written out byte for byte. */
const V2_TCP4 = Buffer.from(`${V2_SIGNATURE}2111000c` + 'c0000201' + 'c6336407' + 'dc04' + '01bb', 'hex');

/** v2 PROXY TCP over IPv6: [2001:db8::1]:65535 → [::ffff:127.0.0.1]:8080. */
const V2_TCP6 = Buffer.from(
  `${V2_SIGNATURE}21210024` + '20010db8000000000000000000000001' + '00000000000000000000ffff7f000001' + 'ffff' + '1f90',
  'hex',
);

/** Pushes `bytes` one byte at a time; returns the result and how many bytes it took. */
function feedBytewise(bytes: Buffer): { result: ProxyParseResult; pushes: number } {
  const parser = new ProxyHeaderParser();
  for (let i = 0; i < bytes.length; i++) {
    const result = parser.push(bytes.subarray(i, i + 1));
    if (result !== undefined) return { result, pushes: i + 1 };
  }
  throw new Error('the header never completed');
}

function parseOnce(bytes: Buffer): ProxyParseResult | undefined {
  return new ProxyHeaderParser().push(bytes);
}

/** The error the parser throws for `bytes`, fed byte by byte (fails at the first byte that cannot fit). */
function errorAt(bytes: Buffer): { code: string; at: number } {
  const parser = new ProxyHeaderParser();
  for (let i = 0; i < bytes.length; i++) {
    try {
      parser.push(bytes.subarray(i, i + 1));
    } catch (error) {
      expect(error).toBeInstanceOf(SockservError);
      return { code: (error as SockservError).code, at: i };
    }
  }
  throw new Error('no error');
}

describe('ProxyHeaderParser: v1', () => {
  const LAST = -1;
  const TCP4 = 'PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n';

  test('TCP4 in one chunk: the bytes after the header are returned untouched', () => {
    const parsed = parseOnce(Buffer.from(`${TCP4}PING\r\nsecond`));
    expect(parsed?.header).toEqual({
      version: 1,
      command: 'proxy',
      transport: 'tcp4',
      source: ['1.2.3.4', 1111],
      destination: ['5.6.7.8', 2222],
      tlvs: [],
      length: TCP4.length,
    });
    expect(parsed?.rest.toString()).toBe('PING\r\nsecond');
  });

  test('TCP4 byte by byte: incomplete until the LF, nothing left over', () => {
    const { result, pushes } = feedBytewise(Buffer.from(`${TCP4}PING\r\n`));
    expect(pushes).toBe(TCP4.length);
    expect(result.header.source).toEqual(['1.2.3.4', 1111]);
    expect(result.rest.length).toBe(0);
  });

  test('TCP6', () => {
    const parsed = parseOnce(Buffer.from('PROXY TCP6 2001:db8::1 ::1 65535 0\r\nx'));
    expect(parsed?.header).toMatchObject({ transport: 'tcp6', source: ['2001:db8::1', 65535], destination: ['::1', 0] });
    expect(parsed?.rest.toString()).toBe('x');
  });

  test('UNKNOWN names no client (the socket address stands), with or without addresses after it', () => {
    expect(parseOnce(Buffer.from('PROXY UNKNOWN\r\n'))?.header).toMatchObject({ transport: 'unknown', source: null, destination: null });
    // The spec's longest v1 header: exactly 107 bytes.
    const longest = 'PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n';
    expect(longest.length).toBe(PROXY_V1_MAX_BYTES);
    const { result } = feedBytewise(Buffer.from(`${longest}A`));
    expect(result.header).toMatchObject({ transport: 'unknown', source: null, length: 107 });
  });

  test.each([
    // `at`: the byte where the parser knows; LAST = the LF, for faults only a whole line shows.
    ['not a PROXY header at all', 'GET / HTTP/1.1\r\n', 0],
    ['a wrong prefix', 'PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n', 4],
    ['an unknown protocol', 'PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n', LAST],
    ['a bare LF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', LAST],
    ['a missing field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', LAST],
    ['an extra field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n', LAST],
    ['double spaces', 'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n', LAST],
    ['an IPv6 address under TCP4', 'PROXY TCP4 ::1 ::1 1 2\r\n', LAST],
    ['a bad IPv4 address', 'PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n', LAST],
    ['a port past 65535', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n', LAST],
    ['a signed port', 'PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n', LAST],
    ['a control byte', 'PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n', LAST],
  ])('%s fails with ERR_PROXY_HEADER_INVALID', (_what, text, at) => {
    expect(errorAt(Buffer.from(text))).toEqual({ code: 'ERR_PROXY_HEADER_INVALID', at: at === LAST ? text.length - 1 : at });
    expect(() => parseOnce(Buffer.from(text))).toThrow(expect.objectContaining({ code: 'ERR_PROXY_HEADER_INVALID' }));
  });

  test('a header with no LF within 107 bytes fails at byte 107, before anything more is buffered', () => {
    const oversized = Buffer.from(`PROXY UNKNOWN ${'x'.repeat(200)}\r\n`);
    expect(errorAt(oversized)).toEqual({ code: 'ERR_PROXY_HEADER_INVALID', at: PROXY_V1_MAX_BYTES - 1 });
    expect(() => parseOnce(oversized)).toThrow(/longer than 107 bytes/);
  });
});

describe('ProxyHeaderParser: v2', () => {
  test('PROXY over TCP/IPv4 in one chunk with request bytes after it', () => {
    const parsed = parseOnce(Buffer.concat([V2_TCP4, Buffer.from('PING\r\n')]));
    expect(parsed?.header).toEqual({
      version: 2,
      command: 'proxy',
      transport: 'tcp4',
      source: ['192.0.2.1', 56324],
      destination: ['198.51.100.7', 443],
      tlvs: [],
      length: 28,
    });
    expect(parsed?.rest.toString()).toBe('PING\r\n');
  });

  test('PROXY over TCP/IPv4 byte by byte completes on its last byte', () => {
    const { result, pushes } = feedBytewise(Buffer.concat([V2_TCP4, Buffer.from('PING')]));
    expect(pushes).toBe(28);
    expect(result.header.source).toEqual(['192.0.2.1', 56324]);
    expect(result.rest.length).toBe(0);
  });

  test('PROXY over TCP/IPv6: addresses in the form Node reports them', () => {
    const { result } = feedBytewise(V2_TCP6);
    expect(result.header).toMatchObject({
      transport: 'tcp6',
      source: ['2001:db8::1', 65535],
      destination: ['::ffff:127.0.0.1', 8080],
      length: 52,
    });
  });

  test('PROXY over UDP/IPv4 and over AF_UNIX stream', () => {
    const udp = v2(0x21, 0x12, Buffer.from('0a000001' + '0a000002' + '0035' + '0035', 'hex'));
    expect(parseOnce(udp)?.header).toMatchObject({ transport: 'udp4', source: ['10.0.0.1', 53], destination: ['10.0.0.2', 53] });
    const paths = Buffer.alloc(216);
    paths.write('/run/client.sock', 0);
    paths.write('/run/server.sock', 108);
    expect(parseOnce(v2(0x21, 0x31, paths))?.header).toMatchObject({
      transport: 'unix-stream',
      source: ['/run/client.sock', 0],
      destination: ['/run/server.sock', 0],
    });
  });

  test('LOCAL (a health check) names no client, whatever block it carries; PROXY over AF_UNSPEC neither', () => {
    const local = parseOnce(Buffer.concat([v2(0x20, 0x00), Buffer.from('x')]));
    expect(local?.header).toMatchObject({ version: 2, command: 'local', source: null, destination: null, length: 16 });
    expect(local?.rest.toString()).toBe('x');
    const localWithBlock = feedBytewise(v2(0x20, 0x11, V2_TCP4.subarray(16))).result;
    expect(localWithBlock.header).toMatchObject({ command: 'local', source: null });
    expect(parseOnce(v2(0x21, 0x00, Buffer.from('ignored')))?.header).toMatchObject({ command: 'proxy', transport: 'unknown', source: null });
  });

  test('TLVs after the addresses are read in order and skipped; the request bytes follow them', () => {
    const tlvs = Buffer.concat([tlv(0x01, 'h2'), tlv(0x04, Buffer.alloc(5)), tlv(0x02, 'example.com')]);
    const header = v2(0x21, 0x11, Buffer.concat([V2_TCP4.subarray(16), tlvs]));
    const { result } = feedBytewise(Buffer.concat([header, Buffer.from('PING')]));
    expect(result.header.source).toEqual(['192.0.2.1', 56324]);
    expect(result.header.tlvs.map((t) => [t.type, t.value.toString()])).toEqual([
      [0x01, 'h2'],
      [0x04, '\0\0\0\0\0'],
      [0x02, 'example.com'],
    ]);
    const atBound = v2(0x21, 0x11, Buffer.concat([V2_TCP4.subarray(16), tlv(0xe0, Buffer.alloc(PROXY_V2_TLV_MAX_BYTES - 3))]));
    const chunked = parseOnce(Buffer.concat([atBound, Buffer.from('PING')]));
    expect(chunked?.header.tlvs[0]?.value.length).toBe(PROXY_V2_TLV_MAX_BYTES - 3);
    expect(chunked?.rest.toString()).toBe('PING');
  });

  test.each([
    ['a wrong signature byte', Buffer.from(`${V2_SIGNATURE.slice(0, 8)}ff`, 'hex'), 4],
    ['version 1 in the version nibble', v2(0x11, 0x11, V2_TCP4.subarray(16)), 12],
    ['an undefined command', v2(0x22, 0x11, V2_TCP4.subarray(16)), 12],
    ['an undefined family', v2(0x21, 0x41, V2_TCP4.subarray(16)), 13],
    ['an undefined transport', v2(0x21, 0x13, V2_TCP4.subarray(16)), 13],
    ['a block too short for IPv4', v2(0x21, 0x11, Buffer.alloc(8)), 15],
    ['a block too short for IPv6', v2(0x21, 0x21, Buffer.alloc(12)), 15],
    ['a TLV that overruns the block', v2(0x21, 0x11, Buffer.concat([V2_TCP4.subarray(16), Buffer.from('01000968', 'hex')])), 31],
    ['a truncated TLV header', v2(0x21, 0x11, Buffer.concat([V2_TCP4.subarray(16), Buffer.from('0100', 'hex')])), 29],
  ])('%s fails with ERR_PROXY_HEADER_INVALID', (_what, bytes, at) => {
    expect(errorAt(bytes)).toEqual({ code: 'ERR_PROXY_HEADER_INVALID', at });
  });

  test('a length past the bound fails as soon as the 16 fixed bytes are in, without waiting for the block', () => {
    const oversized = v2(0x21, 0x11, Buffer.alloc(12 + PROXY_V2_TLV_MAX_BYTES + 1));
    expect(errorAt(oversized)).toEqual({ code: 'ERR_PROXY_HEADER_INVALID', at: 15 });
    const huge = Buffer.from(`${V2_SIGNATURE}2111ffff`, 'hex');
    expect(() => parseOnce(huge)).toThrow(/exceeds the bound/);
  });

  test('a parser is single use', () => {
    const parser = new ProxyHeaderParser();
    expect(parser.push(V2_TCP4)).toBeDefined();
    expect(() => parser.push(Buffer.from('x'))).toThrow(expect.objectContaining({ code: 'ERR_PROXY_HEADER_INVALID' }));
  });
});

// ---- servers -----------------------------------------------------------------------------------

interface Who {
  host: string;
  port: number;
  request: string;
}

const KINDS = [
  ['ThreadingTCPServer', ThreadingTCPServer],
  ['TCPServer', TCPServer],
] as const;

async function start(Server: typeof TCPServer, options: ServerOptions = {}, handler = 'whoami'): Promise<number> {
  const server = registry.server(new Server({ host: '127.0.0.1', port: 0 }, fixture(handler), { workers: 1, logger: silentLogger, proxyProtocol: true, ...options }));
  return (await server.listen()).port;
}

function parseWho(lines: string[]): Who[] {
  return lines.map((line) => JSON.parse(line) as Who);
}

describe.each(KINDS)('%s with proxyProtocol', (_name, Server) => {
  test('a v1 header and two requests in one write: handlers see the address from the header', async () => {
    const port = await start(Server);
    const peer = await registry.peer(port);
    peer.write('PROXY TCP4 203.0.113.9 127.0.0.1 40001 8001\r\nfirst\nsecond\n');
    const who = parseWho(await peer.untilLines(2));
    expect(who).toEqual([
      expect.objectContaining({ host: '203.0.113.9', port: 40001, request: 'first' }),
      expect.objectContaining({ host: '203.0.113.9', port: 40001, request: 'second' }),
    ]);
  });

  test('a v2 header split over writes, the request starting in the chunk that ends it', async () => {
    const port = await start(Server);
    const peer = await registry.peer(port);
    const bytes = Buffer.concat([V2_TCP6, Buffer.from('hello\n')]);
    peer.write(bytes.subarray(0, 7));
    peer.write(bytes.subarray(7, 50));
    peer.write(bytes.subarray(50));
    const [who] = parseWho(await peer.untilLines(1));
    expect(who).toMatchObject({ host: '2001:db8::1', port: 65535, request: 'hello' });
  });

  test('header, request and FIN in one segment: the reply comes, then the close', async () => {
    const port = await start(Server);
    const peer = await registry.peer(port);
    peer.socket.end(Buffer.concat([V2_TCP4, Buffer.from('last')]));
    const [who] = parseWho((await peer.untilClosed()).toString().trimEnd().split('\n'));
    expect(who).toMatchObject({ host: '192.0.2.1', port: 56324, request: 'last' });
    const headerOnly = await registry.peer(port);
    headerOnly.socket.end('PROXY TCP4 192.0.2.2 127.0.0.1 1 80\r\n');
    expect((await headerOnly.untilClosed()).length).toBe(0);
  });

  test('PROXY UNKNOWN and v2 LOCAL keep the socket address', async () => {
    const port = await start(Server);
    const unknown = await registry.peer(port);
    unknown.write('PROXY UNKNOWN\r\nu\n');
    const local = await registry.peer(port);
    local.write(Buffer.concat([v2(0x20, 0x00), Buffer.from('l\n')]));
    expect(parseWho(await unknown.untilLines(1))[0]).toMatchObject({ host: '127.0.0.1', port: unknown.localPort, request: 'u' });
    expect(parseWho(await local.untilLines(1))[0]).toMatchObject({ host: '127.0.0.1', port: local.localPort, request: 'l' });
  });

  test('a bad header closes only its connection, logged with ERR_PROXY_HEADER_INVALID', async () => {
    const { logger, entries } = captureLogger();
    const port = await start(Server, { logger });
    const good = await registry.peer(port);
    good.write('PROXY TCP4 198.51.100.1 127.0.0.1 1234 80\r\n');
    const bad = await registry.peer(port);
    bad.write('hello\n');
    expect((await bad.untilClosed()).length).toBe(0);
    good.write('still here\n');
    expect(parseWho(await good.untilLines(1))[0]).toMatchObject({ host: '198.51.100.1', port: 1234, request: 'still here' });
    expect(entries).toContainEqual(
      expect.objectContaining({ level: 'warn', context: expect.objectContaining({ code: 'ERR_PROXY_HEADER_INVALID' }) }),
    );
  });

  test('connect-and-close (a TCP health check) is not a bad header; a partial header then FIN is', async () => {
    const { logger, entries } = captureLogger();
    const port = await start(Server, { logger });
    const probe = await registry.peer(port);
    probe.socket.end();
    await probe.untilClosed();
    const partial = await registry.peer(port);
    partial.socket.end('PROXY TCP4 1.2.');
    await partial.untilClosed();
    const warnings = entries.filter((e) => e.level === 'warn');
    expect(warnings).toEqual([
      expect.objectContaining({ context: expect.objectContaining({ code: 'ERR_PROXY_HEADER_INVALID', detail: expect.stringMatching(/ended before/) }) }),
    ]);
  });

  test('a header not complete within proxyHeaderTimeout closes the connection', async () => {
    const { logger, entries } = captureLogger();
    const port = await start(Server, { logger, proxyHeaderTimeout: 100 });
    const slow = await registry.peer(port);
    slow.write('PROXY TCP4 1.2.3.4 ');
    expect((await slow.untilClosed()).length).toBe(0);
    expect(entries).toContainEqual(
      expect.objectContaining({ context: expect.objectContaining({ code: 'ERR_PROXY_HEADER_INVALID', detail: expect.stringMatching(/within 100 ms/) }) }),
    );
  });
});

describe('proxyProtocol and the rest of the server', () => {
  test('verifyRequest gets the address from the header', async () => {
    const seen: ClientAddress[] = [];
    class AllowList extends ThreadingTCPServer {
      override verifyRequest(_socket: Socket, clientAddress: ClientAddress): boolean {
        seen.push(clientAddress);
        return clientAddress[0] !== '192.0.2.66';
      }
    }
    const server = registry.server(new AllowList({ host: '127.0.0.1', port: 0 }, fixture('whoami'), { workers: 1, logger: silentLogger, proxyProtocol: true }));
    const { port } = await server.listen();
    const refused = await registry.peer(port);
    refused.write('PROXY TCP4 192.0.2.66 127.0.0.1 5000 80\r\nlet me in\n');
    expect((await refused.untilClosed()).length).toBe(0);
    const allowed = await registry.peer(port);
    allowed.write('PROXY TCP4 192.0.2.67 127.0.0.1 5001 80\r\nhi\n');
    expect(parseWho(await allowed.untilLines(1))[0]).toMatchObject({ host: '192.0.2.67', port: 5001 });
    expect(seen).toEqual([
      ['192.0.2.66', 5000],
      ['192.0.2.67', 5001],
    ]);
  });

  test('a StreamRequestHandler session gets the address from the header and every byte after it', async () => {
    const port = await start(ThreadingTCPServer, {}, 'whoami-session');
    const peer = await registry.peer(port);
    peer.write('PROXY TCP4 203.0.113.5 127.0.0.1 4242 80\r\nhello session\n');
    expect((await peer.untilClosed()).toString()).toBe('203.0.113.5 4242 hello session\n');
  });

  test('off by default: a PROXY line is just a request', async () => {
    const port = await start(ThreadingTCPServer, { proxyProtocol: undefined });
    const peer = await registry.peer(port);
    peer.write('PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n');
    expect(parseWho(await peer.untilLines(1))[0]).toMatchObject({
      host: '127.0.0.1',
      port: peer.localPort,
      request: 'PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222',
    });
  });

  test('shutdown does not wait for a connection that has not sent its header', async () => {
    const server = new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('whoami'), {
      workers: 1,
      logger: silentLogger,
      proxyProtocol: true,
      proxyHeaderTimeout: 0,
    });
    registry.server(server);
    const { port } = await server.listen();
    const waiting = await registry.peer(port);
    waiting.write('PROXY ');
    const served = await registry.peer(port);
    served.write('PROXY TCP4 1.2.3.4 127.0.0.1 9 80\r\nping\n');
    await served.untilLines(1);
    await waitUntil(() => server.stats().connections === 2, 'the connection without a header is tracked');
    await server.close();
    expect((await waiting.untilClosed()).length).toBe(0);
    await served.untilClosed();
  });

  test('connections still reading their header count toward maxConnections', async () => {
    const server = registry.server(
      new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('whoami'), { workers: 1, logger: silentLogger, proxyProtocol: true, maxConnections: 1 }),
    );
    const { port } = await server.listen();
    const first = await registry.peer(port);
    first.write('PROXY ');
    await waitUntil(() => server.stats().connections === 1, 'the first connection is tracked');
    const second = await registry.peer(port);
    await second.untilClosed();
    first.write('TCP4 1.2.3.4 127.0.0.1 9 80\r\nok\n');
    expect(parseWho(await first.untilLines(1))[0]).toMatchObject({ host: '1.2.3.4', request: 'ok' });
  });

  test('proxyProtocol with tls is refused: the header would come before the handshake', () => {
    expect(() => new ThreadingTCPServer({ port: 0 }, fixture('whoami'), { proxyProtocol: true, tls: {} })).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_OPTION' }),
    );
  });
});
