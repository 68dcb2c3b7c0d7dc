// Owns what counts: which outcomes are measured (sent at or after measureStart; warmup is not),
// the latency histograms, error and byte counters, and the per-second timeline. Percentiles come
// from Node's HDR histogram (perf_hooks.createHistogram), recording nanoseconds: each second gets
// its own histogram for the timeline's p99, merged into the run's total when the second closes.
// With a mix, each request's kind is counted again on its own (kind-stats.ts).

import type { RecordableHistogram } from 'node:perf_hooks';
import { HIGHEST_NS, KindStats, latencySummary, newHistogram } from './kind-stats.js';
import type { ErrorKind, StressResult } from './options.js';

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
  /** Per kind of a mix, in the mix's order; undefined without a mix. */
  readonly kinds: KindStats[] | undefined;

  readonly #total: RecordableHistogram = newHistogram();
  readonly #second: RecordableHistogram = newHistogram();
  /** When the current timeline second ends. */
  #secondEnd = Infinity;
  /** End of the measured window; the second it falls in also takes the replies that drain after it. */
  #deadline = Infinity;
  #secondRequests = 0;
  #secondErrors = 0;

  /** @param mix the kinds of a mixed load, to count apart; none for a single payload. */
  constructor(mix?: ReadonlyArray<{ name: string; weight: number }>) {
    this.kinds = mix?.map((kind) => new KindStats(kind.name, kind.weight));
  }

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

  /** A good reply to a request (of the mix's kind `kind`) whose latency counts from `latencyFrom`. */
  reply(latencyFrom: number, now: number, kind = 0): void {
    this.allReplies++;
    if (latencyFrom < this.measureStart) return;
    let ns = Math.round((now - latencyFrom) * 1e6);
    ns = ns < 1 ? 1 : ns > HIGHEST_NS ? HIGHEST_NS : ns;
    this.#second.record(ns);
    this.requests++;
    this.#secondRequests++;
    if (this.kinds !== undefined) this.kinds[kind]!.reply(ns);
  }

  /** A request (of the mix's kind `kind`) that failed; counted when it was sent in the measured window. */
  requestError(error: ErrorKind, latencyFrom: number, kind = 0): void {
    if (latencyFrom < this.measureStart) return;
    this.errors[error]++;
    this.#secondErrors++;
    if (this.kinds !== undefined) this.kinds[kind]!.error(error);
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
    const durationSec = started ? (end - this.measureStart) / 1000 : 0;
    const reportedSec = round(durationSec, 6);
    const result: StressResult = {
      requests: this.requests,
      durationSec: reportedSec,
      // From the reported duration, so rps = requests / durationSec holds for the numbers printed.
      rps: reportedSec > 0 ? round(this.requests / reportedSec, 3) : 0,
      latencyMs: latencySummary(this.#total),
      errors: { ...this.errors },
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      timeline: this.timeline.slice(),
    };
    if (this.kinds !== undefined) result.kinds = this.kinds.map((kind) => kind.result());
    return result;
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

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
