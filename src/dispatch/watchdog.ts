// Owns the requestTimeout scan of a pooled server. An async handler past the limit is abandoned
// (its thread is fine; only that request fails); a synchronous one holds its thread, and only
// stopping the thread ends it.
//
// An async handler's continuation can also hold the thread (a loop after an await): then no
// handler "runs", the ABANDON is never read, and the requests queued behind it never start — so
// never time out. So every channel with requests outstanding is pinged each scan, in order with
// its other records: a worker whose loop has not answered for requestTimeout has an event loop
// that stopped turning, and is stopped too (the sync runs between the ping and the answer are
// each shorter than requestTimeout, or the overdue check above stops them first).
//
// Invariants: a worker is stopped at most once (its channel's killedFor is set once), and for a
// request named by its ref — slot and generation — so a slot reused before the stop lands is
// never taken for the overdue request (STALLED when no request is to blame). What finished is
// delivered before anything is judged. Draining channels (a reload's old version) are scanned
// like open ones: their requests are bound by requestTimeout all the same.

import type { SlotEntry } from './slot-table.js';
import type { WorkerChannel } from './worker-channel.js';

/** The scan runs about four times per requestTimeout (a request overruns by at most a quarter of it), but not more often than every 5 ms nor less than every second. */
const SCANS_PER_TIMEOUT = 4;
const MIN_SCAN_MS = 5;
const MAX_SCAN_MS = 1000;
/** killedFor when the worker was stopped because its event loop stopped turning, not for one request. */
const STALLED = -1;

export interface WatchdogActions<C> {
  /** The channels to scan (those neither open nor draining are skipped). */
  channels(): Iterable<WorkerChannel<C>>;
  /** Delivers what a channel has finished (before judging it). */
  drain(channel: WorkerChannel<C>): void;
  /** An async request overran: abandon it and fail it. */
  abandon(channel: WorkerChannel<C>, entry: SlotEntry<C>): void;
  /** Stops the thread of `channel`; false if it is not running. `why`: a request overran, or the loop stalled. */
  stop(channel: WorkerChannel<C>, why: 'overran' | 'stalled'): boolean;
}

export class Watchdog<C> {
  readonly #limitMs: number;
  readonly #actions: WatchdogActions<C>;
  #timer: NodeJS.Timeout | undefined;
  #pings = 0;

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
        if (!this.#actions.stop(channel, 'overran')) channel.killedFor = 0;
        continue;
      }
      this.#checkAlive(channel, now);
    }
  }

  /** Pings a channel with work outstanding; stops its worker if the last ping went unanswered for the limit. */
  #checkAlive(channel: WorkerChannel<C>, now: number): void {
    const answered = channel.pingNumber === 0 || channel.pong === channel.pingNumber;
    if (!answered) {
      if (now - channel.pingAt > this.#limitMs && channel.killedFor === 0) {
        channel.killedFor = STALLED;
        if (!this.#actions.stop(channel, 'stalled')) channel.killedFor = 0;
      }
      return;
    }
    if (channel.used > 0) {
      this.#pings = (this.#pings % 0x7fffffff) + 1;
      channel.ping(this.#pings, now);
      channel.publish();
    }
  }
}
