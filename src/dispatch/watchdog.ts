// Owns the requestTimeout scan of a pooled server. An async handler past the limit is abandoned
// (its thread is fine; only that request fails); a synchronous one holds its thread, and only
// stopping the thread ends it.
//
// Invariants: a worker is stopped at most once (its channel's killedFor is set once), and for a
// request named by its ref — slot and generation — so a slot reused before the stop lands is
// never taken for the overdue request. What finished is delivered before anything is judged.
// Draining channels (a reload's old version) are scanned like open ones: their requests are bound
// by requestTimeout all the same.

import type { SlotEntry } from './slot-table.js';
import type { WorkerChannel } from './worker-channel.js';

/** The scan runs about four times per requestTimeout (a request overruns by at most a quarter of it), but not more often than every 5 ms nor less than every second. */
const SCANS_PER_TIMEOUT = 4;
const MIN_SCAN_MS = 5;
const MAX_SCAN_MS = 1000;

export interface WatchdogActions<C> {
  /** The channels to scan (those neither open nor draining are skipped). */
  channels(): Iterable<WorkerChannel<C>>;
  /** Delivers what a channel has finished (before judging it). */
  drain(channel: WorkerChannel<C>): void;
  /** An async request overran: abandon it and fail it. */
  abandon(channel: WorkerChannel<C>, entry: SlotEntry<C>): void;
  /** Stops the thread of `channel`; false if it is not running. */
  stop(channel: WorkerChannel<C>): boolean;
}

export class Watchdog<C> {
  readonly #limitMs: number;
  readonly #actions: WatchdogActions<C>;
  #timer: NodeJS.Timeout | undefined;

  constructor(limitMs: number, actions: WatchdogActions<C>) {
    this.#limitMs = limitMs;
    this.#actions = actions;
  }

  /** Starts the scan (unref'd; stop() ends it). */
  start(): void {
    const every = Math.min(MAX_SCAN_MS, Math.max(MIN_SCAN_MS, this.#limitMs / SCANS_PER_TIMEOUT));
    this.#timer = setInterval(() => this.scan(Date.now()), every);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  scan(now: number): void {
    for (const channel of this.#actions.channels()) {
      if (!channel.running) continue;
      this.#actions.drain(channel);
      if (!channel.running) continue;
      const { running, awaiting } = channel.overdue(now, this.#limitMs);
      for (const entry of awaiting) this.#actions.abandon(channel, entry);
      if (running !== null && channel.killedFor === 0) {
        channel.killedFor = running.ref;
        if (!this.#actions.stop(channel)) channel.killedFor = 0;
      }
    }
  }
}
