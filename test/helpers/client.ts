// Test helpers, part one: where the handler fixtures are, and one-shot exchanges — connect, send,
// half-close, and collect everything until the server closes. The line between the helpers:
// this file is for a conversation that ends with the connection (the client's whole story is
// "send this, then read to EOF"); ./net.ts holds the Peer for connections a test keeps open and
// watches (waits on lines, bytes or close), the Registry that closes everything after a test,
// and the rest of the plumbing (waitUntil, captureLogger, codecs). Both fail after WAIT_MS.

import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { WAIT_MS } from './net.js';

/** The path of test/fixtures/NAME.js, a small handler module (workers import it by path). */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`../fixtures/${name}.js`, import.meta.url));
}

/**
 * Connects, writes `chunks` (with a pause between each), half-closes (unless `end: false`), and
 * resolves with all bytes received once the server closes; rejects if it has not within WAIT_MS.
 */
export async function exchange(
  port: number,
  chunks: Array<string | Buffer>,
  options: { gapMs?: number; end?: boolean } = {},
): Promise<Buffer> {
  const socket = await open(port);
  const received: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => received.push(chunk));
  const closed = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`exchange: the server did not close within ${WAIT_MS} ms; received ${JSON.stringify(Buffer.concat(received).toString('latin1').slice(-300))}`));
    }, WAIT_MS);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
  for (const chunk of chunks) {
    socket.write(chunk);
    if (options.gapMs) await new Promise((r) => setTimeout(r, options.gapMs));
  }
  if (options.end !== false) socket.end();
  await closed;
  return Buffer.concat(received);
}

/** A connected raw socket to 127.0.0.1 (or `host`); the caller owns it. */
export function open(port: number, host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host }, () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}
