// Owns a server's live connections: the set shutdown drains and stats() counts, the idle sweep
// (connections with nothing in flight and no progress for idleTimeout are closed, once a sweep
// logs how many), the coarse clock connections stamp their progress with, and the graceful drain
// that cuts what is left after the shutdown timeout — with one log line saying how many
// requests were cut.

import { performance } from 'node:perf_hooks';
import type { ServerConnection } from '../connection.js';
import { ErrorCodes } from '../errors.js';
import type { Logger } from '../logger.js';

export class LiveConnections {
  readonly #logger: Logger;
  readonly #set = new Set<ServerConnection>();
  /** Resolves when the last connection closes during a drain. */
  #allClosed: (() => void) | undefined;
  /** Coarse clock (ms since the sweep started), advanced by the sweep timer. */
  #clock = 0;
  #sweepTimer: NodeJS.Timeout | undefined;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  get size(): number {
    return this.#set.size;
  }

  /** Requests received and not yet answered, over every connection. */
  get inFlight(): number {
    let count = 0;
    for (const connection of this.#set) count += connection.inFlight;
    return count;
  }

  /** Cheap to read per request: a number, not a clock call. */
  get clock(): number {
    return this.#clock;
  }

  add(connection: ServerConnection): void {
    this.#set.add(connection);
  }

  delete(connection: ServerConnection): void {
    this.#set.delete(connection);
    if (this.#set.size === 0) this.#allClosed?.();
  }

  /** Starts the clock and, with idleTimeout > 0, the idle sweep. The clock starts here, at listen. */
  startSweep(idleTimeout: number): void {
    const origin = performance.now();
    this.#clock = 0;
    const interval = idleTimeout > 0 ? Math.min(1000, Math.max(10, idleTimeout / 4)) : 1000;
    this.#sweepTimer = setInterval(() => {
      this.#clock = performance.now() - origin;
      if (idleTimeout > 0) this.#closeIdle(idleTimeout);
    }, interval);
    this.#sweepTimer.unref();
  }

  /**
   * Asks every connection to drain and resolves once all have closed; after `timeoutMs`
   * (0: at once) the rest are cut.
   */
  async drain(timeoutMs: number): Promise<void> {
    clearInterval(this.#sweepTimer);
    if (this.#set.size === 0) return;
    const allClosed = new Promise<void>((resolve) => (this.#allClosed = resolve));
    for (const connection of this.#set) connection.drain();
    const timedOut = timeoutMs === 0 || (await closesBefore(allClosed, timeoutMs)) === false;
    if (timedOut && this.#set.size > 0) this.#cut(timeoutMs);
  }

  #closeIdle(idleTimeout: number): void {
    let closed = 0;
    for (const connection of this.#set) {
      if (connection.idleCandidate && this.#clock - connection.lastActive > idleTimeout) {
        connection.destroy();
        closed++;
      }
    }
    if (closed > 0) this.#logger.warn({ code: ErrorCodes.IDLE_TIMEOUT, connections: closed, idleTimeout }, 'closed idle connections');
  }

  #cut(timeoutMs: number): void {
    this.#logger.warn(
      { code: ErrorCodes.SHUTDOWN_TIMEOUT, connections: this.#set.size, requestsCut: this.inFlight },
      `shutdown: cutting the remaining connections after ${timeoutMs} ms`,
    );
    for (const connection of [...this.#set]) connection.destroy();
    this.#set.clear();
  }
}

/** True if `closed` settled within `ms`. */
async function closesBefore(closed: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([closed.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
