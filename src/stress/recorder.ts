// Owns what counts: which outcomes are measured (sent at or after measureStart; warmup is not),
// the latency histograms, error and byte counters, and the per-second timeline. Percentiles come
// from Node's HDR histogram (perf_hooks.createHistogram), recording nanoseconds: each second gets
// its own histogram for the timeline's p99, merged into the run's total when the second closes.

import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import type { ErrorKind, StressResult } from './options.js';

/** Latencies above this (an hour, in ns) are recorded as this. */
const HIGHEST_NS = 3_600 * 1e9;

type Errors = StressResult['errors'];
type TimelineEntry = StressResult['timeline'][number];

export class Recorder {
  /** performance.now() ms from which outcomes count; Infinity until the load starts. */
  measureStart = Infinity;
  /** Measured good replies. */
  requests = 0;
  /** Good replies including warmup ones (for the live rate only). */
  allReplies = 0;
  readonly errors: Errors = { refused: 0, reset: 0, timeout: 0, badReply: 0, other: 0 };
  bytesSent = 0;
  bytesReceived = 0;
  readonly timeline: TimelineEntry[] = [];

  readonly #total: RecordableHistogram = newHistogram();
  readonly #second: RecordableHistogram = newHistogram();
  /** When the current timeline second ends. */
  #secondEnd = Infinity;
  /** End of the measured window; the second it falls in also takes the replies that drain after it. */
  #deadline = Infinity;
  #secondRequests = 0;
  #secondErrors = 0;

  /**
   * Starts the clock: outcomes of requests sent from `measureStart` on are counted. Replies that
   * arrive after `deadline` (Infinity when the run is bounded by requests) count in the last
   * second, so a 5-second run has a 5-second timeline.
   */
  start(measureStart: number, deadline: number): void {
    this.measureStart = measureStart;
    this.#deadline = deadline;
    this.#secondEnd = measureStart + 1000;
  }

  /** Closes every timeline second that ended before `now`. Call before recording at `now`. */
  advance(now: number): void {
    while (now >= this.#secondEnd && this.#secondEnd < this.#deadline) {
      this.#closeSecond();
      this.#secondEnd += 1000;
    }
  }

  /** A good reply to a request whose latency counts from `latencyFrom`. */
  reply(latencyFrom: number, now: number): void {
    this.allReplies++;
    if (latencyFrom < this.measureStart) return;
    const ns = Math.round((now - latencyFrom) * 1e6);
    this.#second.record(ns < 1 ? 1 : ns > HIGHEST_NS ? HIGHEST_NS : ns);
    this.requests++;
    this.#secondRequests++;
  }

  /** A request that failed; counted when it was sent in the measured window. */
  requestError(kind: ErrorKind, latencyFrom: number): void {
    if (latencyFrom < this.measureStart) return;
    this.errors[kind]++;
    this.#secondErrors++;
  }

  /** A failed connection attempt: always counted, since it shapes the measured load. */
  connectionError(kind: ErrorKind, now: number): void {
    this.errors[kind]++;
    if (now >= this.measureStart) this.#secondErrors++;
  }

  /** Bytes of measured requests written. */
  sent(bytes: number): void {
    this.bytesSent += bytes;
  }

  /** Bytes received from the start of measurement on. */
  received(bytes: number, now: number): void {
    if (now >= this.measureStart) this.bytesReceived += bytes;
  }

  get errorCount(): number {
    const e = this.errors;
    return e.refused + e.reset + e.timeout + e.badReply + e.other;
  }

  /** p99 of the last closed second, in ms (0 before the first). */
  get lastSecondP99Ms(): number {
    return this.timeline.at(-1)?.p99Ms ?? 0;
  }

  /** Ends measurement at `end` and builds the result. */
  finish(end: number): StressResult {
    this.advance(end);
    const started = end > this.measureStart;
    // The last second may be partial: keep it when something happened in it, or when it ends a
    // completed timed window (a silent last second is news).
    const windowDone = Number.isFinite(this.#deadline) && end >= this.#deadline;
    if (started && (windowDone || this.#secondRequests > 0 || this.#secondErrors > 0)) {
      this.#closeSecond();
    }
    const total = this.#total;
    const durationSec = started ? (end - this.measureStart) / 1000 : 0;
    const reportedSec = round(durationSec, 6);
    const any = total.count > 0;
    const ms = (ns: number) => (any ? Math.round(ns / 1e3) / 1e3 : 0);
    return {
      requests: this.requests,
      durationSec: reportedSec,
      // From the reported duration, so rps = requests / durationSec holds for the numbers printed.
      rps: reportedSec > 0 ? round(this.requests / reportedSec, 3) : 0,
      latencyMs: {
        min: ms(total.min),
        mean: ms(total.mean),
        p50: ms(total.percentile(50)),
        p90: ms(total.percentile(90)),
        p99: ms(total.percentile(99)),
        p999: ms(total.percentile(99.9)),
        max: ms(total.max),
      },
      errors: { ...this.errors },
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      timeline: this.timeline.slice(),
    };
  }

  #closeSecond(): void {
    const second = this.#second;
    this.timeline.push({
      second: this.timeline.length + 1,
      requests: this.#secondRequests,
      p99Ms: second.count > 0 ? Math.round(second.percentile(99) / 1e3) / 1e3 : 0,
      errors: this.#secondErrors,
    });
    if (second.count > 0) {
      this.#total.add(second);
      second.reset();
    }
    this.#secondRequests = 0;
    this.#secondErrors = 0;
  }
}

function newHistogram(): RecordableHistogram {
  return createHistogram({ lowest: 1, highest: HIGHEST_NS, figures: 3 });
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
