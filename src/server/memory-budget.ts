// Owns the global budget of client memory (`maxClientMemory`), as Redis 7's maxmemory-clients:
// the bytes every connection holds on behalf of its client — input not yet framed, requests
// dispatched and not yet answered, replies not yet written to the kernel. Limits on requests
// alone do not bound memory (1,000 clients each sending just under maxFrameBytes without the
// end of the frame hold ~1 GB); this does. Connections report their figure when it grows (each
// read) and when it shrinks as they learn of it; the running total is kept without a scan. Only
// past the budget are all figures read afresh (unsent socket bytes drain without telling
// anyone), and if the total is still over, the connections holding the most are closed
// (ERR_CLIENT_MEMORY) until it is under: the few big clients go, the many small ones are served.
// Closures are logged once per second with their count.

import { ErrorCodes } from '../errors.js';
import { LogBurst } from '../log-burst.js';
import type { Logger } from '../logger.js';

/** A connection, as the budget sees it. */
export interface MemoryHolder {
  /** Bytes it holds now (exact, read on demand). */
  readonly memoryBytes: number;
  /** Frees it all: closes the connection at once. */
  evict(): void;
  /** For the log line. */
  readonly clientAddress?: readonly [string, number];
}

export class MemoryBudget {
  readonly #limit: number;
  /** What each holder last reported. */
  readonly #accounted = new Map<MemoryHolder, number>();
  #total = 0;
  readonly #evictions: LogBurst;
  #evicting = false;

  constructor(limit: number, logger: Logger) {
    this.#limit = limit;
    this.#evictions = new LogBurst(
      logger,
      'closed the connections holding the most memory: maxClientMemory reached',
      { code: ErrorCodes.CLIENT_MEMORY, maxClientMemory: limit },
      'closed',
    );
  }

  /** Bytes held by all connections, as last reported. */
  get total(): number {
    return this.#total;
  }

  /** `holder`'s figure may have changed: account for it and, past the budget, evict. */
  note(holder: MemoryHolder): void {
    const now = holder.memoryBytes;
    this.#total += now - (this.#accounted.get(holder) ?? 0);
    this.#accounted.set(holder, now);
    if (this.#total > this.#limit) this.#enforce();
  }

  /** `holder` closed: it holds nothing any more. */
  forget(holder: MemoryHolder): void {
    const had = this.#accounted.get(holder);
    if (had === undefined) return;
    this.#total -= had;
    this.#accounted.delete(holder);
  }

  #enforce(): void {
    if (this.#evicting) return; // an eviction closing a socket can report back into note()
    this.#evicting = true;
    try {
      // Read every figure afresh: replies flushed to the kernel since their last report no longer count.
      let total = 0;
      const holders: Array<{ holder: MemoryHolder; bytes: number }> = [];
      for (const holder of this.#accounted.keys()) {
        const bytes = holder.memoryBytes;
        this.#accounted.set(holder, bytes);
        total += bytes;
        holders.push({ holder, bytes });
      }
      this.#total = total;
      if (total <= this.#limit) return;
      holders.sort((a, b) => b.bytes - a.bytes);
      for (const { holder, bytes } of holders) {
        if (this.#total <= this.#limit) break;
        this.forget(holder);
        this.#evictions.hit({ bytes, ...(holder.clientAddress ? { client: holder.clientAddress.join(':') } : {}) });
        holder.evict();
      }
    } finally {
      this.#evicting = false;
    }
  }
}
