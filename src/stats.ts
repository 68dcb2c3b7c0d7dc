// Owns the numbers a server keeps about itself: plain counters bumped on the hot path (no
// allocation), and the snapshot `server.stats()` returns for benchmarks and metrics.

import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

export interface ServerCounters {
  connectionsTotal: number;
  connectionsRefused: number;
  requestsReceived: number;
  requestsOk: number;
  requestsFailed: number;
  protocolErrors: number;
  bytesIn: number;
  bytesOut: number;
}

export function newCounters(): ServerCounters {
  return {
    connectionsTotal: 0,
    connectionsRefused: 0,
    requestsReceived: 0,
    requestsOk: 0,
    requestsFailed: 0,
    protocolErrors: 0,
    bytesIn: 0,
    bytesOut: 0,
  };
}

export interface ServerStats extends ServerCounters {
  /** Connections open now. */
  connections: number;
  /** Requests received and not yet answered (queued, running, or waiting for an earlier reply). */
  requestsInFlight: number;
  /** Requests waiting for a pool slot. */
  queuedRequests: number;
  workers: number;
  /** Fraction of worker time spent busy since start (0..1). */
  poolUtilization: number;
  /** Event-loop delay of the main thread, in milliseconds, since the server started. */
  eventLoopDelay: { p50: number; p99: number; max: number };
}

const RESOLUTION_MS = 5;

/** Samples the main thread's event-loop delay: the multiplexer must never stall. */
export class LoopDelayMonitor {
  readonly #histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });

  start(): void {
    this.#histogram.enable();
  }

  stop(): void {
    this.#histogram.disable();
  }

  snapshot(): { p50: number; p99: number; max: number } {
    const h = this.#histogram;
    if (h.count === 0) return { p50: 0, p99: 0, max: 0 };
    // Node records the whole interval between samples; the delay is what exceeds the resolution.
    const delay = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS);
    return { p50: delay(h.percentile(50)), p99: delay(h.percentile(99)), max: delay(h.max) };
  }
}
