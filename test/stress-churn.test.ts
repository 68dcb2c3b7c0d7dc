// runStress with newConnection (one request per connection) on real sockets: a node:net echo
// server that counts its connections, sockserv's pooled framed server and its session server, and
// servers that refuse or drop connections. Counts are exact; timing is never asserted.

import { type AddressInfo, createServer, type Socket } from 'node:net';
import { silentLogger, ThreadingTCPServer } from '../src/index.js';
import { runStress, type StressOptions, type StressResult } from '../stress/index.js';
import { fixture } from './helpers/client.js';
import { rawServer } from './helpers/net.js';

const servers: Array<{ close(): unknown }> = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

/** A node:net server on 127.0.0.1:0; `accepted()` counts the connections it has had. */
async function netServer(onSocket: (socket: Socket) => void): Promise<{ port: number; accepted: () => number }> {
  const server = await rawServer(onSocket);
  servers.push(server);
  return server;
}

function churn(port: number, extra: Partial<StressOptions>): StressOptions {
  return {
    host: '127.0.0.1',
    port,
    connections: 4,
    pipeline: 1,
    payload: Buffer.from('hello'),
    framing: 'line',
    newConnection: true,
    ...extra,
  };
}

const noErrors = { refused: 0, reset: 0, timeout: 0, badReply: 0, other: 0 };
const same = (reply: Buffer, request: Buffer) => reply.equals(request);

function expectWellFormed(result: StressResult): void {
  const l = result.latencyMs;
  expect(l.min).toBeLessThanOrEqual(l.p50);
  expect(l.p50).toBeLessThanOrEqual(l.p99);
  expect(l.p99).toBeLessThanOrEqual(l.max);
  expect(result.connectionsPerSec).toBe(result.rps);
  expect(result.timeline.reduce((sum, s) => sum + s.requests, 0)).toBe(result.requests);
}

describe('runStress with newConnection', () => {
  test('node:net echo: exactly one connection per request, each answered, the client closing it', async () => {
    const server = await netServer((socket) => socket.on('data', (chunk) => socket.write(chunk)));
    const result = await runStress(churn(server.port, { requests: 300, expectReply: same }));
    expect(result.requests).toBe(300);
    expect(result.errors).toEqual(noErrors);
    expect(server.accepted()).toBe(300);
    expect(result.bytesSent).toBe(300 * 'hello\n'.length);
    expect(result.bytesReceived).toBe(300 * 'hello\n'.length);
    expectWellFormed(result);
  });

  test('a mix: the weighted order goes on across connections', async () => {
    const server = await netServer((socket) => socket.on('data', (chunk) => socket.write(chunk)));
    const result = await runStress(
      churn(server.port, {
        requests: 200,
        mix: [
          { payload: Buffer.from('cheap'), weight: 3 },
          { payload: Buffer.from('dear'), weight: 1 },
        ],
        expectReply: same,
      }),
    );
    expect(result.errors).toEqual(noErrors);
    expect(result.kinds!.map((kind) => [kind.name, kind.requests])).toEqual([
      ['cheap', 150],
      ['dear', 50],
    ]);
    expect(server.accepted()).toBe(200);
  });

  test('open loop: a rate of new connections, exactly the budget', async () => {
    const server = await netServer((socket) => socket.on('data', (chunk) => socket.write(chunk)));
    const result = await runStress(churn(server.port, { rate: 2000, requests: 100, expectReply: same }));
    expect(result.requests).toBe(100);
    expect(result.errors).toEqual(noErrors);
    expect(server.accepted()).toBe(100);
  });

  test('a duration run ends by itself', async () => {
    const server = await netServer((socket) => socket.on('data', (chunk) => socket.write(chunk)));
    const result = await runStress(churn(server.port, { durationSec: 0.3 }));
    expect(result.requests).toBeGreaterThan(0);
    expect(result.errors).toEqual(noErrors);
    expect(server.accepted()).toBe(result.requests);
  });

  test.each([
    ['framed pool (ThreadingTCPServer, line)', 'stress-echo'],
    ['session (StreamRequestHandler line echo)', 'line-echo-session'],
  ])('sockserv %s', async (_name, handler) => {
    const server = new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture(handler), {
      framing: 'line',
      workers: 2,
      logger: silentLogger,
    });
    servers.push(server);
    const { port } = await server.listen();
    const result = await runStress(churn(port, { requests: 200, expectReply: same }));
    expect(result.requests).toBe(200);
    expect(result.errors).toEqual(noErrors);
    expectWellFormed(result);
  });

  test('a server that drops each connection unanswered: every request is one reset, slots carry on', async () => {
    const server = await netServer((socket) => socket.once('data', () => socket.destroy()));
    const result = await runStress(churn(server.port, { requests: 40 }));
    expect(result.errors).toEqual({ ...noErrors, reset: 40 });
    expect(result.requests).toBe(0);
    expect(server.accepted()).toBe(40);
  });

  test('a server that never replies: each request times out, and its slot goes on to the next', async () => {
    const server = await netServer(() => {});
    const result = await runStress(churn(server.port, { connections: 2, requests: 6, timeoutMs: 100 }));
    expect(result.errors).toEqual({ ...noErrors, timeout: 6 });
    expect(result.requests).toBe(0);
    expect(server.accepted()).toBe(6);
  });

  test('refused: each slot fails its one request and retires, and the run ends', async () => {
    const released = createServer();
    await new Promise<void>((resolve) => released.listen(0, '127.0.0.1', resolve));
    const { port } = released.address() as AddressInfo;
    await new Promise<void>((resolve) => released.close(() => resolve()));
    const result = await runStress(churn(port, { connections: 3, requests: 100 }));
    expect(result.errors).toEqual({ ...noErrors, refused: 3 });
    expect(result.requests).toBe(0);
  });

  test('a pipeline above 1 is rejected', async () => {
    await expect(runStress(churn(1, { pipeline: 2, requests: 1 }))).rejects.toThrow(/pipeline must be 1/);
  });
});
