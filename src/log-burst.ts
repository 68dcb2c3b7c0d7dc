// Owns logging events that can come in floods (refused connections, oversized datagrams): the
// first occurrence starts a one-second window, and one line at its end says how many there were.
// A flood costs one log line per second, never one per event.

import type { Logger } from './logger.js';

export class LogBurst {
  #count = 0;

  constructor(
    readonly logger: Logger,
    readonly message: string,
    readonly context: object,
    /** The field that carries the count in the log line. */
    readonly countKey = 'count',
    readonly windowMs = 1000,
  ) {}

  /** Counts one occurrence; `detail` of the first one in a window goes into its log line. */
  hit(detail?: object): void {
    if (this.#count++ > 0) return;
    const first = detail;
    setTimeout(() => {
      this.logger.warn({ ...this.context, [this.countKey]: this.#count, ...(first ? { first } : {}) }, this.message);
      this.#count = 0;
    }, this.windowMs).unref();
  }
}

/**
 * Failures that can come in floods (failed requests, a user hook that throws on every call): the
 * first of each one-second window is logged at once and in full — its stack is what someone
 * needs to fix it — the rest are only counted, and one line at the window's end says how many
 * followed. A flood costs two log lines per second, never one per failure.
 */
export class ErrorBurst {
  #count = 0;

  constructor(
    readonly logger: Logger,
    readonly message: string,
    readonly windowMs = 1000,
  ) {}

  /** Logs `record` (pino-style: put the error under `err` for its stack) if it is the first of its window; counts it otherwise. */
  hit(record: object): void {
    if (this.#count++ > 0) return;
    this.logger.error(record, this.message);
    setTimeout(() => {
      const more = this.#count - 1;
      this.#count = 0;
      if (more > 0) this.logger.error({ more }, `${this.message} (${more} more in the last ${this.windowMs} ms, not logged one by one)`);
    }, this.windowMs).unref();
  }
}
