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
