// runStress with a mixed load (`mix`) on real sockets: a node:net echo server and sockserv servers
// (pool and inline, line and RESP framing) on 127.0.0.1:0. The weighted order is deterministic, so
// a request-bounded run's per-kind counts are asserted exactly; timing is never asserted.

import { pbkdf2Sync } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { silentLogger, TCPServer, ThreadingTCPServer } from '../src/index.js';
import { runStress, type StressOptions, type StressResult } from '../stress/index.js';
import { fixture } from './helpers/client.js';
import { rawServer } from './helpers/net.js';

const RESP_HANDLER = fileURLToPath(new URL('../dist/examples/resp/handler.js', import.meta.url));
const servers: Array<{ close(): unknown }> = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function echoServer(): Promise<number> {
  const server = await rawServer((socket) => socket.on('data', (chunk) => socket.write(chunk)));
  servers.push(server);
  return server.port;
}

function mixed(port: number, extra: Partial<StressOptions>): StressOptions {
  return {
    host: '127.0.0.1',
    port,
    connections: 4,
    pipeline: 4,
    payload: Buffer.alloc(0),
    framing: 'line',
    mix: [
      { payload: Buffer.from('PING'), weight: 9 },
      { payload: Buffer.from('HASH x'), weight: 1 },
    ],
    ...extra,
  };
}

const noErrors = { refused: 0, reset: 0, timeout: 0, badReply: 0, other: 0 };

function kindCounts(result: StressResult): Array<[string, number]> {
  return (result.kinds ?? []).map((kind) => [kind.name, kind.requests]);
}

function expectKindsWellFormed(result: StressResult): void {
  const kinds = result.kinds!;
  expect(kinds.reduce((sum, kind) => sum + kind.requests, 0)).toBe(result.requests);
  for (const kind of kinds) {
    const l = kind.latencyMs;
    expect(l.min).toBeLessThanOrEqual(l.p50);
    expect(l.p50).toBeLessThanOrEqual(l.p90);
    expect(l.p90).toBeLessThanOrEqual(l.p99);
    expect(l.p99).toBeLessThanOrEqual(l.max);
    expect(l.max).toBeLessThanOrEqual(result.latencyMs.max);
  }
}

describe('runStress with a mix', () => {
  test('node:net echo: exact per-kind counts, bytes, and each reply checked against its own request', async () => {
    const port = await echoServer();
    const result = await runStress(mixed(port, { requests: 1000, expectReply: (reply, request) => reply.equals(request) }));
    expect(result.requests).toBe(1000);
    expect(result.errors).toEqual(noErrors);
    expect(kindCounts(result)).toEqual([
      ['PING', 900],
      ['HASH x', 100],
    ]);
    expect(result.kinds!.map((kind) => kind.weight)).toEqual([9, 1]);
    expect(result.bytesSent).toBe(900 * 5 + 100 * 7);
    expect(result.bytesReceived).toBe(result.bytesSent);
    expectKindsWellFormed(result);
  });

  test('two runs send the same requests in the same order', async () => {
    const port = await echoServer();
    const seen: string[][] = [[], []];
    for (const run of [0, 1]) {
      await runStress(
        mixed(port, {
          connections: 1,
          pipeline: 1,
          requests: 37,
          mix: [
            { payload: Buffer.from('a'), weight: 5 },
            { payload: Buffer.from('b'), weight: 3 },
            { payload: Buffer.from('c'), weight: 2 },
          ],
          expectReply: (reply) => seen[run]!.push(reply.toString()) > 0,
        }),
      );
    }
    expect(seen[0]).toHaveLength(37);
    expect(seen[1]).toEqual(seen[0]);
    expect(seen[0]!.slice(0, 10).join('')).toBe('abcaabacba');
  });

  test('a rejected reply is a badReply of its own kind only', async () => {
    const port = await echoServer();
    const result = await runStress(mixed(port, { requests: 500, expectReply: (reply) => reply.toString() !== 'HASH x' }));
    expect(result.errors).toEqual({ ...noErrors, badReply: 50 });
    expect(result.kinds!.map((kind) => [kind.requests, kind.errors.badReply])).toEqual([
      [450, 0],
      [0, 50],
    ]);
  });

  test.each(['length', 'raw'] as const)('%s framing over payloads of different lengths', async (framing) => {
    const port = await echoServer();
    const result = await runStress(
      mixed(port, {
        framing,
        requests: 600,
        pipeline: 8,
        mix: [
          { payload: Buffer.from('xy'), weight: 1 },
          { payload: Buffer.from('a longer one'), weight: 2 },
        ],
        expectReply: (reply, request) => reply.equals(request),
      }),
    );
    expect(result.errors).toEqual(noErrors);
    expect(kindCounts(result)).toEqual([
      ['xy', 200],
      ['a longer one', 400],
    ]);
  });

  test('a pooled ThreadingTCPServer answers every kind (line framing)', async () => {
    const server = new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('upper'), { framing: 'line', workers: 2, logger: silentLogger });
    servers.push(server);
    const { port } = await server.listen();
    const result = await runStress(
      mixed(port, { requests: 2000, pipeline: 8, expectReply: (reply, request) => reply.toString() === request.toString().toUpperCase() }),
    );
    expect(result.errors).toEqual(noErrors);
    expect(kindCounts(result)).toEqual([
      ['PING', 1800],
      ['HASH x', 200],
    ]);
    expectKindsWellFormed(result);
  });

  test('RESP: PING and PBKDF2 commands against the RESP example on an inline TCPServer', async () => {
    const server = new TCPServer({ host: '127.0.0.1', port: 0 }, RESP_HANDLER, { framing: 'resp', logger: silentLogger });
    servers.push(server);
    const { port } = await server.listen();
    const hash = pbkdf2Sync('pw', 'salt', 10, 32, 'sha256').toString('hex');
    const expected: Record<string, string> = {
      PING: '+PONG\r\n',
      'PBKDF2 pw salt 10': `$${hash.length}\r\n${hash}\r\n`,
    };
    const result = await runStress(
      mixed(port, {
        framing: 'resp',
        requests: 400,
        mix: [
          { payload: Buffer.from('PING'), weight: 3 },
          { payload: Buffer.from('PBKDF2 pw salt 10'), weight: 1, name: 'pbkdf2' },
        ],
        expectReply: (reply, request) => reply.toString() === expected[request.toString()],
      }),
    );
    expect(result.errors).toEqual(noErrors);
    expect(kindCounts(result)).toEqual([
      ['PING', 300],
      ['pbkdf2', 100],
    ]);
    expect(result.bytesSent).toBe(300 * '*1\r\n$4\r\nPING\r\n'.length + 100 * '*4\r\n$6\r\nPBKDF2\r\n$2\r\npw\r\n$4\r\nsalt\r\n$2\r\n10\r\n'.length);
  });

  test('invalid mixes are rejected before any connection', async () => {
    await expect(runStress(mixed(1, { requests: 1, mix: [] }))).rejects.toThrow(/mix/);
    await expect(runStress(mixed(1, { requests: 1, mix: [{ payload: Buffer.from('a'), weight: 0 }] }))).rejects.toThrow(/weight/);
    await expect(runStress(mixed(1, { requests: 1, mix: [{ payload: Buffer.from('a\nb'), weight: 1 }] }))).rejects.toThrow(/line-framed/);
    await expect(
      runStress(mixed(1, { requests: 1, mix: [{ payload: Buffer.from('a'), weight: 999_999 }, { payload: Buffer.from('b'), weight: 2 }] })),
    ).rejects.toThrow(/add up/);
    await expect(runStress(mixed(1, { requests: 1, framing: 'resp', mix: [{ payload: Buffer.from('  '), weight: 1 }] }))).rejects.toThrow(/word/);
  });
});
