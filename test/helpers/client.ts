// Test helpers: a raw TCP client that collects everything the server sends until it closes.

import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

export function fixture(name: string): string {
  return fileURLToPath(new URL(`../fixtures/${name}.js`, import.meta.url));
}

/** Connects, writes `chunks` (with a pause between each), half-closes, and resolves with all bytes received. */
export async function exchange(
  port: number,
  chunks: Array<string | Buffer>,
  options: { gapMs?: number; end?: boolean } = {},
): Promise<Buffer> {
  const socket = await open(port);
  const received: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => received.push(chunk));
  const closed = new Promise<void>((resolve, reject) => {
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
  for (const chunk of chunks) {
    socket.write(chunk);
    if (options.gapMs) await new Promise((r) => setTimeout(r, options.gapMs));
  }
  if (options.end !== false) socket.end();
  await closed;
  return Buffer.concat(received);
}

export function open(port: number, host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host }, () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}
