// writeBufferHardLimit judges a backlog that does not drain, never the size of a reply (issue 16,
// item 11), for framed requests and for sessions alike, on ThreadingTCPServer with 2 real workers
// over real sockets:
//   - with default options, a client that reads gets a 32 MiB reply whole (twice the limit), and
//     its connection goes on;
//   - a client that never reads is disconnected about writeStallTimeout after its backlog stopped
//     draining, with ERR_WRITE_BUFFER_OVERFLOW logged;
//   - a slow reader (1 MiB every 100 ms) is not disconnected while it makes progress;
//   - a client that never reads is still evicted by maxClientMemory long before writeStallTimeout;
//   - writeStallTimeout's default (10 s) and its validation.
// Before the fix, the unsent bytes were compared with the limit as soon as a reply was handed to
// the socket: the 32 MiB reply was cut after the 5-12 MiB the kernel took at once.

import { DEFAULTS, type ServerOptions, ThreadingTCPServer } from '../src/index.js';
import { fixture } from './helpers/client.js';
import { captureLogger, type LogEntry, type Peer, Registry, waitUntil } from './helpers/net.js';

const registry = new Registry();
afterEach(() => registry.cleanup());

const MiB = 1024 * 1024;
const BIG = 32 * MiB;
const LIMIT = 16 * MiB; // writeBufferHardLimit's default

interface Kind {
  /** The handler module: answers `BIG n` with n bytes (i % 251), anything else with `ok <line>`. */
  handler: string;
  /** Bytes a client receives for `BIG n`: the line framer ends a reply with "\n"; a session writes the bytes alone. */
  replyBytes(n: number): number;
}

const KINDS: Array<[string, Kind]> = [
  ['framed requests (BaseRequestHandler, line framing)', { handler: 'big-reply', replyBytes: (n) => n + 1 }],
  ['sessions (StreamRequestHandler, one wfile.write)', { handler: 'session-big-reply', replyBytes: (n) => n }],
];

async function start(kind: Kind, options: ServerOptions = {}): Promise<{ server: ThreadingTCPServer; port: number; entries: LogEntry[] }> {
  const { logger, entries } = captureLogger();
  const server = registry.server(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture(kind.handler), { workers: 2, logger, ...options }));
  const { port } = await server.listen();
  return { server, port, entries };
}

const logged = (entries: LogEntry[], code: string) => entries.filter((e) => e.context.code === code);

/** The first `n` bytes of `bytes` follow the pattern (byte i is i % 251); returns the first that does not, or -1. */
function firstWrongByte(bytes: Buffer, n: number): number {
  for (let i = 0; i < n; i++) if (bytes[i] !== i % 251) return i;
  return -1;
}

/** Reads `chunkBytes` every `everyMs` (paused once this tick's allowance is read); returns a function that reads at full speed again. */
function readSlowly(peer: Peer, chunkBytes: number, everyMs: number): () => void {
  let allowance = chunkBytes;
  const onData = (): void => {
    if (peer.bytes >= allowance) peer.socket.pause();
  };
  peer.socket.on('data', onData);
  const timer = setInterval(() => {
    allowance += chunkBytes;
    peer.socket.resume();
  }, everyMs);
  return () => {
    clearInterval(timer);
    peer.socket.off('data', onData);
    peer.socket.resume();
  };
}

describe.each(KINDS)('%s', (_name, kind) => {
  const expected = kind.replyBytes(BIG);

  test('with default options, a client that reads gets a 32 MiB reply (twice writeBufferHardLimit) whole, and its connection goes on', async () => {
    const { server, port, entries } = await start(kind);
    const client = await registry.peer(port);
    client.write(`BIG ${BIG}\n`);
    await client.until(() => client.bytes >= expected, `the ${expected}-byte reply`, 60_000);
    client.write('hello\n');
    await client.until(() => client.bytes >= expected + 'ok hello\n'.length, 'the reply after it');
    const received = client.received;
    expect(received.length).toBe(expected + 'ok hello\n'.length);
    expect(firstWrongByte(received, BIG)).toBe(-1);
    expect(received.subarray(expected).toString()).toBe('ok hello\n');
    if (expected > BIG) expect(received[BIG]).toBe(0x0a);
    expect(logged(entries, 'ERR_WRITE_BUFFER_OVERFLOW')).toEqual([]);
    expect(server.stats().connections).toBe(1);
  }, 90_000);

  test('a client that never reads is disconnected about writeStallTimeout after its backlog stops draining (ERR_WRITE_BUFFER_OVERFLOW logged)', async () => {
    const writeStallTimeout = 300;
    const { server, port, entries } = await start(kind, { writeStallTimeout });
    const client = await registry.peer(port);
    client.socket.pause(); // never reads: the kernel's buffers fill, then nothing more leaves
    const asked = performance.now();
    client.write(`BIG ${BIG}\n`);
    await waitUntil(() => logged(entries, 'ERR_WRITE_BUFFER_OVERFLOW').length > 0, 'the overflow to be logged');
    const elapsed = performance.now() - asked;
    // Not before the backlog made no progress for writeStallTimeout; soon after (the timer fires then).
    expect(elapsed).toBeGreaterThanOrEqual(writeStallTimeout);
    expect(elapsed).toBeLessThan(writeStallTimeout + 5000);
    const [entry] = logged(entries, 'ERR_WRITE_BUFFER_OVERFLOW');
    expect(entry).toMatchObject({ level: 'warn', message: 'disconnecting a client that does not read', context: { client: `127.0.0.1:${client.localPort}`, writeStallTimeout } });
    expect(entry!.context.unsentBytes).toBeGreaterThan(LIMIT);
    expect(entry!.context.unsentBytes).toBeLessThanOrEqual(expected);
    await waitUntil(() => server.stats().connections === 0, 'the connection to be released');
  });

  test('a slow reader (1 MiB every 100 ms) of a 32 MiB reply is not disconnected while it makes progress, with a 300 ms writeStallTimeout', async () => {
    const { server, port, entries } = await start(kind, { writeStallTimeout: 300 });
    const client = await registry.peer(port);
    const fullSpeed = readSlowly(client, MiB, 100);
    try {
      client.write(`BIG ${BIG}\n`);
      await client.until(() => client.bytes >= expected, `the ${expected}-byte reply, slowly`, 60_000);
    } finally {
      fullSpeed();
    }
    expect(client.bytes).toBe(expected);
    expect(firstWrongByte(client.received, BIG)).toBe(-1);
    expect(logged(entries, 'ERR_WRITE_BUFFER_OVERFLOW')).toEqual([]);
    expect(server.stats().connections).toBe(1);
  }, 90_000);

  test('a client that never reads is still evicted by maxClientMemory (ERR_CLIENT_MEMORY) long before a 60 s writeStallTimeout; others are served', async () => {
    const { server, port, entries } = await start(kind, { maxClientMemory: 8 * MiB, writeStallTimeout: 60_000 });
    const hog = await registry.peer(port);
    hog.socket.pause();
    hog.write(`BIG ${BIG}\n`);
    await waitUntil(() => logged(entries, 'ERR_CLIENT_MEMORY').length > 0, 'the eviction to be logged');
    await waitUntil(() => server.stats().connections === 0, 'the hog to be released');
    expect(logged(entries, 'ERR_WRITE_BUFFER_OVERFLOW')).toEqual([]);
    const other = await registry.peer(port);
    other.write('hello\n');
    await other.until(() => other.text === 'ok hello\n', 'a small client to be served');
  });
});

test('writeStallTimeout: 10 000 ms by default; a negative one, or one past setTimeout’s range (which would fire after 1 ms), is refused (ERR_BAD_OPTION)', () => {
  expect(DEFAULTS.writeStallTimeout).toBe(10_000);
  for (const writeStallTimeout of [-1, Number.NaN, 2 ** 31, Number.POSITIVE_INFINITY]) {
    expect(() => new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('big-reply'), { writeStallTimeout })).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_OPTION', message: expect.stringContaining('writeStallTimeout') }),
    );
  }
});
