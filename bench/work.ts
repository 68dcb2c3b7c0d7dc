// Owns the work every benchmarked server does, defined once so that sockserv handlers, the
// hand-written node:net servers, the piscina task and the harness's reply checks agree byte for
// byte. The Python baseline (baselines/python_threading.py) repeats these constants.

import { pbkdf2Sync } from 'node:crypto';

/** The trivial request and its reply (line framing: the newline is the framer's). */
export const PING = 'PING';
export const PONG = 'PONG';

/** CPU-heavy work: hex PBKDF2-SHA256(text, SALT, ITERATIONS, KEY_BYTES) — about 0.5 ms of CPU. */
const SALT = 'sockserv';
export const ITERATIONS = 2000;
const KEY_BYTES = 32;

export function hashLine(line: Uint8Array | string): string {
  return pbkdf2Sync(line, SALT, ITERATIONS, KEY_BYTES, 'sha256').toString('hex');
}

/** What a server answers to one line, by work name: the hand-written servers' only logic. */
export type WorkName = 'ping' | 'pbkdf2' | 'echo' | 'mixed';

/** The reply to one line as a latin1 string (binary-safe; PONG and hex are plain ASCII). */
export function replyFor(work: WorkName, line: Buffer): string {
  switch (work) {
    case 'ping':
      return PONG;
    case 'pbkdf2':
      return hashLine(line);
    case 'echo':
      return line.toString('latin1');
    case 'mixed':
      return mixedReply(line);
  }
}

/** Cheap and heavy on one listener (the "cheap under heavy" scenario): PING → PONG, any other line → its hash. */
export function mixedReply(line: Uint8Array): string {
  return isPing(line) ? PONG : hashLine(line);
}

const PING_BYTES = Buffer.from(PING);

function isPing(line: Uint8Array): boolean {
  return line.length === PING_BYTES.length && PING_BYTES.equals(line);
}

export function isWorkName(value: string | undefined): value is WorkName {
  return value === 'ping' || value === 'pbkdf2' || value === 'echo' || value === 'mixed';
}
