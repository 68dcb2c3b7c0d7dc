// runStress on real sockets: a node:net echo server and sockserv's own servers on 127.0.0.1:0,
// plus servers that misbehave on purpose (never reply, reset, refuse). Counts are asserted
// exactly where the run makes them exact; timing is never asserted.

import { type AddressInfo, createServer, type Socket } from 'node:net';
import { silentLogger, TCPServer, ThreadingTCPServer } from '../src/index.js';
import { runStress, type StressOptions, type StressResult } from '../stress/index.js';
import { fixture } from './helpers/client.js';
import { rawServer } from './helpers/net.js';

const servers: Array<{ close(): unknown }> = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

/** A node:net server on 127.0.0.1:0 running `onSocket` for each connection; closed after the test. */
async function netServer(onSocket: (socket: Socket) => void): Promise<number> {
  const server = await rawServer(onSocket);
  servers.push(server);
  return server.port;
}

const echoServer = () => netServer((socket) => socket.on('data', (chunk) => socket.write(chunk)));

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function options(port: number, extra: Partial<StressOptions>): StressOptions {
  return {
    host: '127.0.0.1',
    port,
    connections: 4,
    pipeline: 4,
    payload: Buffer.from('ping'),
    framing: 'line',
    ...extra,
  };
}

function totalErrors(result: StressResult): number {
  return Object.values(result.errors).reduce((sum, n) => sum + n, 0);
}

function expectWellFormed(result: StressResult): void {
  const l = result.latencyMs;
  expect(l.min).toBeLessThanOrEqual(l.p50);
  expect(l.p50).toBeLessThanOrEqual(l.p90);
  expect(l.p90).toBeLessThanOrEqual(l.p99);
  expect(l.p99).toBeLessThanOrEqual(l.p999);
  expect(l.p999).toBeLessThanOrEqual(l.max);
  expect(l.mean).toBeGreaterThanOrEqual(l.min);
  expect(l.mean).toBeLessThanOrEqual(l.max);
  expect(result.timeline.reduce((sum, s) => sum + s.requests, 0)).toBe(result.requests);
  expect(result.timeline.reduce((sum, s) => sum + s.errors, 0)).toBeLessThanOrEqual(totalErrors(result));
  result.timeline.forEach((s, i) => expect(s.second).toBe(i + 1));
}

const same = (reply: Buffer, request: Buffer) => reply.equals(request);

describe('runStress against a node:net echo server', () => {
  test('closed loop sends exactly the requested count and counts every byte', async () => {
    const port = await echoServer();
    const result = await runStress(options(port, { requests: 2000, connections: 8, pipeline: 4 }));
    expect(result.requests).toBe(2000);
    expect(totalErrors(result)).toBe(0);
    expect(result.bytesSent).toBe(2000 * 'ping\n'.length);
    expect(result.bytesReceived).toBe(2000 * 'ping\n'.length);
    expect(result.latencyMs.min).toBeGreaterThan(0);
    expect(result.durationSec).toBeGreaterThan(0);
    expect(result.rps).toBeCloseTo(result.requests / result.durationSec, 0);
    expectWellFormed(result);
  });

  test.each([
    ['line', 5],
    ['length', 8],
    ['raw', 4],
  ] as const)('%s framing: every echoed reply passes expectReply', async (framing, wireBytes) => {
    const port = await echoServer();
    const result = await runStress(options(port, { framing, requests: 1000, pipeline: 8, expectReply: same }));
    expect(result.requests).toBe(1000);
    expect(totalErrors(result)).toBe(0);
    expect(result.bytesSent).toBe(1000 * wireBytes);
    expectWellFormed(result);
  });

  test('replies expectReply rejects are counted as badReply, the rest as requests', async () => {
    const port = await echoServer();
    let calls = 0;
    const result = await runStress(
      options(port, { requests: 1000, expectReply: () => ++calls % 10 !== 0 }),
    );
    expect(calls).toBe(1000);
    expect(result.errors).toEqual({ refused: 0, reset: 0, timeout: 0, badReply: 100, other: 0 });
    expect(result.requests).toBe(900);
    expectWellFormed(result);
  });

  test('warmup requests are excluded: the measured count is still exact', async () => {
    const port = await echoServer();
    const result = await runStress(options(port, { requests: 500, warmupSec: 0.2 }));
    expect(result.requests).toBe(500);
    expect(result.bytesSent).toBe(500 * 'ping\n'.length);
    expect(totalErrors(result)).toBe(0);
  });

  test('a duration run stops by itself and reports progress', async () => {
    const port = await echoServer();
    const samples: string[] = [];
    const result = await runStress(
      options(port, { durationSec: 1.1, onProgress: (sample) => samples.push(sample.phase) }),
    );
    expect(result.requests).toBeGreaterThan(0);
    expect(totalErrors(result)).toBe(0);
    expect(samples).toContain('measure');
    expect(result.timeline.length).toBeGreaterThanOrEqual(2);
    expectWellFormed(result);
  });

  test('open loop sends about rate × duration, never more', async () => {
    const port = await echoServer();
    const result = await runStress(options(port, { rate: 2000, durationSec: 0.5 }));
    expect(result.requests).toBeGreaterThanOrEqual(300);
    expect(result.requests).toBeLessThanOrEqual(1000);
    expect(totalErrors(result)).toBe(0);
    expectWellFormed(result);
  });

  test('open loop with a request budget sends exactly that many', async () => {
    const port = await echoServer();
    const result = await runStress(options(port, { rate: 5000, requests: 300, warmupSec: 0.05 }));
    expect(result.requests).toBe(300);
    expect(result.bytesSent).toBe(300 * 'ping\n'.length);
  });

  test('abort ends the run early and resolves with what was measured', async () => {
    const port = await echoServer();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const result = await runStress(options(port, { durationSec: 30, signal: controller.signal }));
    expect(result.durationSec).toBeLessThan(30);
    expect(result.requests).toBeGreaterThan(0);
  });
});

describe('runStress failure counting', () => {
  test('refused: every connection attempt to a closed port counts once, and the run ends', async () => {
    const port = await closedPort();
    const result = await runStress(options(port, { connections: 5, requests: 100 }));
    expect(result.errors).toEqual({ refused: 5, reset: 0, timeout: 0, badReply: 0, other: 0 });
    expect(result.requests).toBe(0);
    expect(result.latencyMs).toEqual({ min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 });
  });

  test('timeout: a server that never replies times out every request', async () => {
    const port = await netServer(() => {});
    const result = await runStress(options(port, { connections: 2, pipeline: 3, requests: 12, timeoutMs: 100 }));
    expect(result.errors).toEqual({ refused: 0, reset: 0, timeout: 12, badReply: 0, other: 0 });
    expect(result.requests).toBe(0);
  });

  test('timeout: a duration run against a silent server still ends', async () => {
    const port = await netServer(() => {});
    const result = await runStress(options(port, { connections: 2, durationSec: 0.3, timeoutMs: 100 }));
    expect(result.errors.timeout).toBeGreaterThan(0);
    expect(result.requests).toBe(0);
  });

  test('reset: a server that drops each connection fails its outstanding requests', async () => {
    const port = await netServer((socket) => socket.once('data', () => socket.destroy()));
    const result = await runStress(options(port, { connections: 2, pipeline: 1, requests: 20 }));
    expect(result.errors).toEqual({ refused: 0, reset: 20, timeout: 0, badReply: 0, other: 0 });
    expect(result.requests).toBe(0);
  });

  test('reset: a server that closes every connection at once still ends the run', async () => {
    const port = await netServer((socket) => socket.destroy());
    const result = await runStress(options(port, { connections: 2, pipeline: 1, requests: 10 }));
    expect(result.errors.reset).toBe(10);
    expect(result.requests).toBe(0);
  });

  test('invalid options are rejected before any connection', async () => {
    await expect(runStress(options(1, { connections: 0, requests: 1 }))).rejects.toThrow(RangeError);
    await expect(runStress(options(1, { payload: Buffer.from('a\nb'), requests: 1 }))).rejects.toThrow(/line-framed/);
    await expect(runStress(options(1, { framing: 'raw', payload: Buffer.alloc(0), requests: 1 }))).rejects.toThrow(/raw/);
    await expect(runStress(options(1, { rate: -1, requests: 1 }))).rejects.toThrow(/rate/);
  });
});

describe('runStress against sockserv servers', () => {
  async function sockserv(
    Server: typeof TCPServer | typeof ThreadingTCPServer,
    framing: 'line' | 'length' | 'raw',
  ): Promise<number> {
    const server = new Server({ host: '127.0.0.1', port: 0 }, fixture('stress-echo'), {
      framing,
      workers: 2,
      logger: silentLogger,
    });
    const { port } = await server.listen();
    servers.push(server);
    return port;
  }

  test.each(['line', 'length', 'raw'] as const)('inline TCPServer, %s framing', async (framing) => {
    const port = await sockserv(TCPServer, framing);
    const result = await runStress(
      options(port, { framing, requests: 2000, connections: 8, pipeline: 8, payload: Buffer.from('hello'), expectReply: same }),
    );
    expect(result.requests).toBe(2000);
    expect(totalErrors(result)).toBe(0);
    expectWellFormed(result);
  });

  test('pooled ThreadingTCPServer, line framing', async () => {
    const port = await sockserv(ThreadingTCPServer, 'line');
    const result = await runStress(options(port, { requests: 2000, connections: 8, pipeline: 8, expectReply: same }));
    expect(result.requests).toBe(2000);
    expect(totalErrors(result)).toBe(0);
  });
});
