// Issue #10, memory budgets, on real sockets: maxClientMemory closes the connections holding the
// most (ERR_CLIENT_MEMORY) and keeps serving small clients; a small run of the memory soak
// (test/soak/memory.mjs) bounds the server process's RSS; maxDatagramsInFlight drops UDP
// datagrams past its bound (ERR_DATAGRAMS_IN_FLIGHT).

import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { ThreadingTCPServer, ThreadingUDPServer } from '../src/index.js';
import { startBystanders } from './helpers/bystanders.js';
import { fixture } from './helpers/client.js';
import { captureLogger, type Peer, Registry, waitUntil } from './helpers/net.js';
import { coreOf } from '../src/server/core.js';

const registry = new Registry();
afterEach(() => registry.cleanup());

const KiB = 1024;
const MiB = 1024 * KiB;

test('past maxClientMemory the connections holding the most are closed (ERR_CLIENT_MEMORY); small clients keep being served', async () => {
  const { logger, entries } = captureLogger();
  const budget = 8 * MiB;
  const server = registry.server(
    new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('faulty'), { workers: 2, logger, maxClientMemory: budget }),
  );
  const { port } = await server.listen();
  const others = await startBystanders(port, registry, { count: 10, requests: 50, waves: 10, gapMs: 30 });
  // 20 clients, one after the other, each sending 900 KiB of a line (under maxFrameBytes, 1 MiB)
  // and never its newline. Nine fit in 8 MiB; each one more makes the server close one of the
  // biggest, so nine stay open whatever the order the bytes arrive in.
  const frame = 900 * KiB;
  const hogs: Peer[] = [];
  for (let i = 0; i < 20; i++) {
    const hog = await registry.peer(port);
    hogs.push(hog);
    const before = server.stats().bytesIn;
    hog.write(Buffer.alloc(frame, 'h'));
    // Received in full, or the connection was closed part way.
    await waitUntil(() => server.stats().bytesIn - before >= frame || hog.closed, `hog ${i}'s bytes to arrive`);
  }
  await waitUntil(() => hogs.filter((h) => h.closed).length === 11, 'eleven hogs to be closed');
  expect(hogs.filter((h) => !h.closed)).toHaveLength(9);
  for (const hog of hogs) expect(hog.bytes).toBe(0); // a hog gets no reply: it never finished a request
  expect(coreOf(server).memory.total).toBeLessThanOrEqual(budget); // the budget's own count: white-box
  expect(await others.done).toBe(500);
  await waitUntil(() => entries.some((e) => e.context.code === 'ERR_CLIENT_MEMORY'), 'the ERR_CLIENT_MEMORY line');
  const lines = entries.filter((e) => e.context.code === 'ERR_CLIENT_MEMORY');
  expect(lines[0]!.level).toBe('warn');
  expect(lines.reduce((n, e) => n + (e.context.closed as number), 0)).toBe(11);
});

test('the memory soak, small: 200 clients × ~1 MiB partial frames against a 16 MiB budget keep the server RSS bounded', async () => {
  const script = fileURLToPath(new URL('./soak/memory.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, '--clients', '200', '--budget', String(16 * MiB), '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
  const result = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, number>;
  const frame = MiB - KiB;
  expect(result.kept).toBe(Math.floor((16 * MiB) / frame)); // 16
  expect(result.evicted).toBe(200 - result.kept!);
  expect(result.clientMemoryAtPeak).toBe(result.kept! * frame);
  // Unbounded, the server would hold 200 MiB of frames; bounded, its RSS grows by far less.
  expect(result.rssPeak! - result.rssBefore!).toBeLessThan(16 * MiB + 96 * MiB);
}, 120_000);

test('maxDatagramsInFlight: datagrams past the bound are dropped (ERR_DATAGRAMS_IN_FLIGHT, logged once), the rest answered', async () => {
  const { logger, entries } = captureLogger();
  const server = registry.server(
    new ThreadingUDPServer({ host: '127.0.0.1', port: 0 }, fixture('fault-modes'), { workers: 1, logger, maxDatagramsInFlight: 2 }),
  );
  const { port } = await server.listen();
  const socket = createSocket('udp4');
  const replies: string[] = [];
  socket.on('message', (message) => replies.push(message.toString()));
  try {
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
    for (let i = 0; i < 6; i++) socket.send(`sleep 300`, port, '127.0.0.1');
    await waitUntil(() => server.stats().bytesIn === 6 * 'sleep 300'.length, 'all six datagrams to arrive');
    await waitUntil(() => replies.length === 2, 'the two answered datagrams');
    expect(replies).toEqual(['slept 300', 'slept 300']);
    expect(server.stats().requestsFailed).toBe(4);
    await waitUntil(() => entries.some((e) => e.context.code === 'ERR_DATAGRAMS_IN_FLIGHT'), 'the dropped-datagrams line');
    expect(entries.filter((e) => e.context.code === 'ERR_DATAGRAMS_IN_FLIGHT').map((e) => e.context.dropped)).toEqual([4]);
  } finally {
    socket.close();
  }
});
