// The inline lane of a pooled server (inlineBelowMicros): cheap requests move to the main thread
// once the pool has measured them cheap, replies stay correct and in order across the switch,
// and slow requests send the lane back to the pool.

import { connect, type Socket } from 'node:net';
import { ThreadingTCPServer } from '../src/index.js';
import { fixture } from './helpers/client.js';

interface LogLine {
  level: string;
  msg: string;
}

function capturingLogger(lines: LogLine[]) {
  const at = (level: string) => (context: object | string, message?: string) =>
    lines.push({ level, msg: typeof context === 'string' ? context : (message ?? '') });
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Sends `requests` in bursts and resolves with every reply line, in arrival order. */
async function exchangeLines(port: number, requests: string[], burst: number): Promise<string[]> {
  const socket: Socket = await new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
  let received = '';
  socket.on('data', (chunk) => (received += chunk.toString()));
  for (let i = 0; i < requests.length; i += burst) {
    socket.write(requests.slice(i, i + burst).map((r) => `${r}\n`).join(''));
    await new Promise((r) => setTimeout(r, 2));
  }
  while (received.split('\n').length - 1 < requests.length) await new Promise((r) => setTimeout(r, 5));
  socket.destroy();
  return received.split('\n').slice(0, requests.length);
}

describe('inline lane (inlineBelowMicros)', () => {
  let server: ThreadingTCPServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  test('cheap requests move to the main thread and every reply stays in order', async () => {
    const log: LogLine[] = [];
    server = new ThreadingTCPServer({ port: 0 }, fixture('sometimes-slow'), {
      workers: 2,
      inlineBelowMicros: 200,
      logger: capturingLogger(log),
    });
    const { port } = await server.listen();
    const requests = Array.from({ length: 4000 }, (_, i) => `r${i}`);
    const replies = await exchangeLines(port, requests, 50);
    expect(replies).toEqual(requests.map((r) => `ok ${r}`));
    expect(log.some((l) => l.level === 'debug' && l.msg.includes('main thread'))).toBe(true);
  });

  test('slow requests send the lane back to the pool, and no reply is lost', async () => {
    const log: LogLine[] = [];
    server = new ThreadingTCPServer({ port: 0 }, fixture('sometimes-slow'), {
      workers: 2,
      inlineBelowMicros: 200,
      logger: capturingLogger(log),
    });
    const { port } = await server.listen();
    const warmup = Array.from({ length: 3000 }, (_, i) => `w${i}`);
    expect(await exchangeLines(port, warmup, 50)).toEqual(warmup.map((r) => `ok ${r}`));
    expect(log.some((l) => l.msg.includes('main thread'))).toBe(true);
    // One long run may be a pause (GC, preemption): the lane trips on three within its window.
    const mixed = Array.from({ length: 200 }, (_, i) => (i % 20 === 10 ? 'slow' : `m${i}`));
    expect(await exchangeLines(port, mixed, 20)).toEqual(mixed.map((r) => `ok ${r}`));
    expect(log.some((l) => l.level === 'info' && l.msg.includes('back to the pool'))).toBe(true);
  });
});
