// Owns when requests are sent — the two load models of a load generator:
//  - ClosedLoop (wrk, redis-benchmark): each connection keeps `pipeline` requests outstanding and
//    sends the next as soon as a reply frees a slot; the server's speed sets the rate.
//  - OpenLoop (wrk2): requests are due on a fixed schedule, request i at t0 + i/rate, whatever the
//    replies do. Latency counts from that intended time, so a server stall shows up as latency of
//    every request that should have gone out meanwhile (no coordinated omission). When every
//    connection is at its pipeline cap, due requests wait in the tool and the wait counts.
// Both stop at the end of the measured window or once the request budget is sent.

/** What a load pattern needs from a connection. */
export interface RequestSender {
  /** Requests it may send now (0 when not connected). */
  readonly free: number;
  /** Sends `count` requests; request j's latency counts from base + (firstIndex + j) * interval. */
  send(count: number, now: number, base: number, firstIndex: number, interval: number): void;
}

/** The run's clock, fixed when the load starts. */
interface LoadWindow {
  /** Requests sent (intended) from here on are measured and use up the budget. */
  measureStart: number;
  /** Nothing is sent (intended) from here on; Infinity for a request-bounded run. */
  deadline: number;
  /** Measured requests to send; Infinity for a time-bounded run. */
  requests: number;
}

export interface LoadPattern {
  readonly stopped: boolean;
  /** Starts sending at `now` over `senders`; `onStop` runs once when no more will be sent. */
  start(now: number, window: LoadWindow, senders: readonly RequestSender[], onStop: () => void): void;
  /** Tops up one connection that has just freed slots (or connected). */
  fill(sender: RequestSender, now: number): void;
  /** Sends nothing more. */
  stop(): void;
}

abstract class BasePattern implements LoadPattern {
  stopped = false;
  protected window: LoadWindow = { measureStart: Infinity, deadline: Infinity, requests: Infinity };
  protected senders: readonly RequestSender[] = [];
  /** Measured requests not yet sent. */
  protected budget = Infinity;
  #onStop: () => void = () => {};

  start(now: number, window: LoadWindow, senders: readonly RequestSender[], onStop: () => void): void {
    this.window = window;
    this.senders = senders;
    this.budget = window.requests;
    this.#onStop = onStop;
    this.begin(now);
  }

  abstract fill(sender: RequestSender, now: number): void;
  protected abstract begin(now: number): void;

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.#onStop();
  }
}

export class ClosedLoop extends BasePattern {
  protected begin(now: number): void {
    for (const sender of this.senders) {
      if (this.stopped) return;
      this.fill(sender, now);
    }
  }

  fill(sender: RequestSender, now: number): void {
    if (this.stopped) return;
    if (now >= this.window.deadline) {
      this.stop();
      return;
    }
    let count = sender.free;
    if (count <= 0) return;
    if (now >= this.window.measureStart) {
      if (count > this.budget) count = this.budget;
      this.budget -= count;
    }
    if (count > 0) sender.send(count, now, now, 0, 0);
    if (this.budget === 0) this.stop();
  }
}

export class OpenLoop extends BasePattern {
  /** Milliseconds between intended sends. */
  readonly #interval: number;
  /** Intended time of request 0. */
  #t0 = 0;
  /** Index of the next request to send; all before it are sent. */
  #next = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Where the next round-robin pass starts, so no connection is always served first. */
  #cursor = 0;
  /** The deadline or the budget is reached: stop once what was taken is sent. */
  #exhausted = false;

  constructor(rate: number) {
    super();
    this.#interval = 1000 / rate;
  }

  protected begin(now: number): void {
    this.#t0 = now;
    this.#pump();
  }

  fill(sender: RequestSender, now: number): void {
    if (this.stopped) return;
    const count = this.#take(Math.min(sender.free, this.#due(now) - this.#next));
    if (count > 0) this.#sendOn(sender, count, now);
    if (this.#exhausted) this.stop();
  }

  override stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    super.stop();
  }

  /** Sends every due request the connections have room for, then sleeps until the next is due. */
  #pump = (): void => {
    this.#timer = undefined;
    if (this.stopped) return;
    const now = performance.now();
    const senders = this.senders;
    let waiting = this.#due(now) - this.#next;
    // Spread the due requests evenly, one write per connection; a second pass fills leftovers.
    for (let pass = 0; pass < 2 && waiting > 0 && !this.stopped; pass++) {
      const share = pass === 0 ? Math.ceil(waiting / Math.max(1, senders.length)) : waiting;
      for (let i = 0; i < senders.length && waiting > 0 && !this.stopped; i++) {
        const sender = senders[(this.#cursor + i) % senders.length]!;
        const count = this.#take(Math.min(sender.free, share, waiting));
        if (count > 0) {
          this.#sendOn(sender, count, now);
          waiting -= count;
        }
      }
    }
    this.#cursor = (this.#cursor + 1) % Math.max(1, senders.length);
    if (this.#exhausted) this.stop();
    if (this.stopped) return;
    // With a backlog, replies free slots and call fill(); still look again soon for new dues.
    const nextDue = this.#t0 + this.#next * this.#interval;
    this.#timer = setTimeout(this.#pump, Math.max(1, nextDue - performance.now()));
  };

  /** How many requests are due by `now` (indices below this). */
  #due(now: number): number {
    return Math.floor((now - this.#t0) / this.#interval) + 1;
  }

  /**
   * Of up to `wanted` requests from #next on, how many may go: none intended at or after the
   * deadline, and no more measured ones than the budget. Sets #exhausted when a limit is reached.
   */
  #take(wanted: number): number {
    let count = 0;
    for (; count < wanted; count++) {
      const intended = this.#t0 + (this.#next + count) * this.#interval;
      if (intended >= this.window.deadline) {
        this.#exhausted = true;
        break;
      }
      if (intended >= this.window.measureStart) {
        if (this.budget === 0) break;
        this.budget--;
      }
    }
    if (this.budget === 0) this.#exhausted = true;
    return count;
  }

  #sendOn(sender: RequestSender, count: number, now: number): void {
    sender.send(count, now, this.#t0, this.#next, this.#interval);
    this.#next += count;
  }
}
