// Owns the numbers a server keeps about itself: plain counters bumped on the hot path (no
// allocation), the request-duration histogram (off until asked for: it costs two clock reads per
// request), and the snapshot `server.stats()` returns for benchmarks and metrics.

import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

/** Totals since the server started. */
export interface ServerCounters {
  /** Connections accepted (passed verifyRequest). */
  connectionsTotal: number;
  /** Connections refused: maxConnections reached, verifyRequest said no, or the server was shutting down. */
  connectionsRefused: number;
  /** Requests framed (or datagrams received) and dispatched. */
  requestsReceived: number;
  /** Requests whose handler returned (a StreamRequestHandler session counts once). */
  requestsOk: number;
  /** Requests whose handler threw, timed out or lost its worker; datagrams dropped under overload. */
  requestsFailed: number;
  /** Bad input: connections ended for ERR_FRAME_TOO_LONG / ERR_FRAME_INVALID, oversized datagrams dropped. */
  protocolErrors: number;
  /** Bytes read from clients. */
  bytesIn: number;
  /** Reply bytes handed to client sockets. */
  bytesOut: number;
  /** server.reload() calls that switched to a new version of the handler. */
  reloads: number;
  /** server.reload() calls that failed (the module did not load): the version before kept serving. */
  reloadsFailed: number;
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
    reloads: 0,
    reloadsFailed: 0,
  };
}

/**
 * A pool's cumulative accounts, summed over its channels (including lost ones'). Sample twice and
 * subtract to judge a window: the workers' idle share is ΔworkerIdleMs / (ΔworkerBusyMs + ΔworkerIdleMs).
 */
export interface PoolCounters {
  /** Milliseconds workers spent in handlers. */
  workerBusyMs: number;
  /** Milliseconds workers spent asleep with nothing to run. */
  workerIdleMs: number;
  /** Times a worker woke the sleeping main thread, and the main thread a sleeping worker. */
  wakesToMain: number;
  wakesToWorker: number;
  /** Waits that timed out and then found work: wakes the doorbell protocol lost (expected 0). */
  missedWakes: number;
  /** Linux thread ids of the live workers (/proc/<pid>/task/<tid>: their CPU time); empty elsewhere. */
  workerTids: number[];
  /** Kinds of request (commands) suspect now: one of theirs killed a worker recently (the bulkhead, docs/operations.md). */
  suspectKinds: number;
}

/** The rooms' part of server.stats() (src/rooms/registry.ts). */
export interface RoomStats {
  /** Rooms with at least one member on this server. */
  rooms: number;
  /** Memberships: a connection in three rooms counts three. */
  memberships: number;
  /** Messages queued to connections by broadcasts and sendTo (one per member reached), since start. */
  pushes: number;
  /** Connections closed for not reading what rooms pushed to them (maxPushBytes, pushSoftLimit), since start. */
  pushDisconnects: number;
}

/** What `server.stats()` returns: the counters, plus gauges read at the time of the call. */
export interface ServerStats extends ServerCounters {
  /** Connections open now. */
  connections: number;
  /** Requests received and not yet answered (queued, running, or waiting for an earlier reply). */
  requestsInFlight: number;
  /** Requests waiting for a pool slot. */
  queuedRequests: number;
  /** Worker threads in the pool (0 for inline servers). */
  workers: number;
  /** Fraction of worker time spent busy since start (0..1). */
  poolUtilization: number;
  /** Pooled servers: the workers' busy and idle time and the wakes between threads, cumulative (null inline). */
  pool: PoolCounters | null;
  /** The version of the handler serving new requests: 1 at start, one more for each reload (`reloads`). */
  handlerVersion: number;
  /** Event-loop delay of the main thread, in milliseconds, since the server started. */
  eventLoopDelay: {
    /** Median delay. */
    p50: number;
    /** 99th percentile. */
    p99: number;
    /** Longest delay seen. */
    max: number;
  };
  /**
   * Time from a request being framed to its reply being released, in fixed buckets; null until
   * `server.recordRequestDurations()` switches the recording on (the metrics endpoint does).
   * Framed TCP/Unix requests only: not datagrams, not StreamRequestHandler sessions.
   */
  requestDurations: RequestDurationsSnapshot | null;
  /** Rooms, memberships and the messages pushed to connections (broadcast, sendTo). */
  rooms: RoomStats;
}

/** Upper bounds (ms) of the request-duration buckets: 0.1 ms .. 10 s, Prometheus' usual 1-2.5-5 steps. */
export const REQUEST_DURATION_BOUNDS_MS: readonly number[] = Object.freeze([
  0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
]);

/** The request-duration histogram at one moment (ServerStats.requestDurations). */
export interface RequestDurationsSnapshot {
  /** Bucket upper bounds in milliseconds (REQUEST_DURATION_BOUNDS_MS). */
  boundsMs: readonly number[];
  /** Requests per bucket, not cumulative; one more entry than boundsMs (the overflow bucket). */
  counts: number[];
  /** Requests recorded. */
  count: number;
  /** Sum of their durations, in milliseconds. */
  sumMs: number;
}

/**
 * A histogram with fixed buckets, counted as requests are released: a short scan (most requests
 * stop at the first buckets) and two additions, no allocation. Exact Prometheus buckets at scrape.
 */
export class RequestDurations {
  readonly #bounds = Float64Array.from(REQUEST_DURATION_BOUNDS_MS);
  readonly #counts = new Float64Array(REQUEST_DURATION_BOUNDS_MS.length + 1);
  #count = 0;
  #sumMs = 0;

  record(ms: number): void {
    const bounds = this.#bounds;
    let bucket = 0;
    while (bucket < bounds.length && ms > bounds[bucket]) bucket++;
    this.#counts[bucket]++;
    this.#count++;
    this.#sumMs += ms;
  }

  snapshot(): RequestDurationsSnapshot {
    return { boundsMs: REQUEST_DURATION_BOUNDS_MS, counts: Array.from(this.#counts), count: this.#count, sumMs: this.#sumMs };
  }
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
