// Owns what a mixed load counts per kind of request: good replies, errors by error kind and an HDR
// latency histogram (nanoseconds) for each kind, and the summary a report shows. Only a run with a
// mix keeps these; the run's overall numbers stay in Recorder either way.

import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import type { ErrorKind, KindResult, StressResult } from './options.js';

/** Latencies above this (an hour, in ns) are recorded as this. */
export const HIGHEST_NS = 3_600 * 1e9;

export function newHistogram(): RecordableHistogram {
  return createHistogram({ lowest: 1, highest: HIGHEST_NS, figures: 3 });
}

/** A histogram of nanoseconds as the result's milliseconds (all 0 when empty). */
export function latencySummary(histogram: RecordableHistogram): StressResult['latencyMs'] {
  const any = histogram.count > 0;
  const ms = (ns: number) => (any ? Math.round(ns / 1e3) / 1e3 : 0);
  return {
    min: ms(histogram.min),
    mean: ms(histogram.mean),
    p50: ms(histogram.percentile(50)),
    p90: ms(histogram.percentile(90)),
    p99: ms(histogram.percentile(99)),
    p999: ms(histogram.percentile(99.9)),
    max: ms(histogram.max),
  };
}

export class KindStats {
  requests = 0;
  readonly errors: StressResult['errors'] = { refused: 0, reset: 0, timeout: 0, badReply: 0, other: 0 };
  readonly #latency: RecordableHistogram = newHistogram();

  constructor(
    readonly name: string,
    readonly weight: number,
  ) {}

  /** A measured good reply, `ns` after its latency started (already clamped). */
  reply(ns: number): void {
    this.#latency.record(ns);
    this.requests++;
  }

  error(kind: ErrorKind): void {
    this.errors[kind]++;
  }

  result(): KindResult {
    return {
      name: this.name,
      weight: this.weight,
      requests: this.requests,
      errors: { ...this.errors },
      latencyMs: latencySummary(this.#latency),
    };
  }
}
