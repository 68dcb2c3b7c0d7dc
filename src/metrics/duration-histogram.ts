// Owns sockserv_request_duration_seconds. The servers count request durations in fixed buckets as
// replies are released (src/stats.ts, RequestDurations); prom-client has no way to set a
// histogram's buckets from outside, so this Histogram reports those counts instead of its own
// observations: getForPromString(), which the registry renders from, reads them at scrape time.

import { Histogram, type Registry } from 'prom-client';
import { REQUEST_DURATION_BOUNDS_MS } from '../stats.js';
import type { StatsSampler } from './sampler.js';

/** The bucket bounds in seconds, printed as Prometheus expects (0.0001, not 1.0000000000000001e-4). */
const BOUNDS_SECONDS = REQUEST_DURATION_BOUNDS_MS.map((ms) => Number((ms / 1000).toPrecision(6)));

const NAME = 'sockserv_request_duration_seconds';
const HELP = 'Time from a request being framed to its reply being released (framed TCP/Unix requests)';

interface Value {
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
  metricName: string;
}

export class RequestDurationHistogram extends Histogram<'server'> {
  readonly #sampler: StatsSampler;

  constructor(sampler: StatsSampler, registry: Registry) {
    super({ name: NAME, help: HELP, labelNames: ['server'], buckets: BOUNDS_SECONDS, registers: [registry] });
    this.#sampler = sampler;
  }

  /**
   * What the registry renders (prom-client calls it when a metric has it, and Histogram's get()
   * is built on it): the servers' bucket counts, cumulative as Prometheus wants them.
   */
  async getForPromString(): Promise<{ name: string; help: string; type: string; values: Value[]; aggregator: string }> {
    const values: Value[] = [];
    const at = (server: string, metricName: string, value: number, le?: number | string): void => {
      values.push({ labels: le === undefined ? {} : { le }, sharedLabels: { server }, value, metricName });
    };
    for (const { label, stats } of this.#sampler.samples()) {
      const durations = stats.requestDurations;
      if (durations === null) continue;
      let cumulative = 0;
      BOUNDS_SECONDS.forEach((le, i) => {
        cumulative += durations.counts[i]!;
        at(label, `${NAME}_bucket`, cumulative, le);
      });
      at(label, `${NAME}_bucket`, durations.count, '+Inf');
      at(label, `${NAME}_sum`, durations.sumMs / 1000);
      at(label, `${NAME}_count`, durations.count);
    }
    return { name: NAME, help: HELP, type: 'histogram', values, aggregator: 'sum' };
  }
}
