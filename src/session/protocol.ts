// Owns the messages of a session: the byte stream of one connection carried over a MessagePort
// between the main thread (which owns the socket) and the thread running its StreamRequestHandler.
// Node 20 cannot pass a socket to a worker thread, so the main thread stays the multiplexer and
// the session sees a socket-like stream. Bytes travel as transferred ArrayBuffers (no clone).
// Reads are credit-based: the main thread counts bytes it forwarded that the handler has not
// consumed and stops reading the socket past readHighWaterMark by itself — a busy or stalled
// handler thread cannot make it buffer more — while the handler acknowledges what it consumed.
// Writes are credit-based too, the mirror image: the handler counts the bytes it wrote that the
// main thread has not yet acknowledged, and its write() resolves only while that count is within
// the write window (writeHighWaterMark, announced once by the main thread). The main thread
// acknowledges bytes as the socket flushes them to the kernel — so a handler that only writes
// runs at the client's pace (Python's sendall blocks until the kernel takes the bytes) instead of
// depending on a pause message it would not read while busy writing.

import type { ErrorInfo } from '../errors.js';

/**
 * The part of MessagePort a session end uses: a MessagePort itself, or the cheaper ends of
 * src/dispatch/session-port.ts (in-thread pairs; records of a worker channel).
 */
export interface SessionPort {
  postMessage(message: unknown, transfer?: readonly ArrayBuffer[]): void;
  on(event: 'message', listener: (message: never) => void): unknown;
  unref(): void;
  close(): void;
}

/** Main thread → handler. */
export type ToHandler =
  /** Bytes the client sent. */
  | { t: 'data'; b: ArrayBuffer }
  /** The client half-closed: reads return what is buffered, then EOF. */
  | { t: 'eof' }
  /** The connection is gone (reset, or cut by shutdown): reads return EOF, writes throw ERR_CONNECTION_CLOSED. */
  | { t: 'closed' }
  /** The write window: how many written bytes may be unacknowledged before write() waits (sent first). */
  | { t: 'wwin'; n: number }
  /** `n` more written bytes have been flushed to the kernel. */
  | { t: 'wack'; n: number };

/** Handler → main thread. */
export type ToServer =
  /** Bytes for the client. */
  | { t: 'data'; b: ArrayBuffer }
  /**
   * The handler consumed `n` more bytes. `more`: it is waiting for bytes beyond what the
   * main thread's window allows (a read(n) or a line longer than readHighWaterMark): open the
   * window by another readHighWaterMark.
   */
  | { t: 'ack'; n: number; more: boolean }
  /** handle() returned (or threw): flush, then close the connection. */
  | { t: 'end'; error: ErrorInfo | null };

/** Limits the handler side enforces, from the server options. */
export interface SessionLimits {
  /** Bytes forwarded and not yet consumed at which the socket is paused. */
  readHighWaterMark: number;
  /** Longest line readline() buffers, and most bytes read(-1) collects (ERR_FRAME_TOO_LONG past it). */
  maxFrameBytes: number;
}

/** Copies bytes into an ArrayBuffer of their own, which can then be transferred. */
export function ownBuffer(bytes: Uint8Array): ArrayBuffer {
  const copy = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(copy).set(bytes);
  return copy;
}
