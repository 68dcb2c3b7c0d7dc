// Owns every server option and its default, in one place. Limits are on by default: every buffer
// and queue sockserv keeps is bounded by one of these. docs/operations.md mirrors this file.
// A leaf of the import graph (everything reads it): what an option needs from elsewhere is
// declared here as an interface, not imported.

import { availableParallelism } from 'node:os';
import type { TlsOptions } from 'node:tls';
import { badOption } from './errors.js';
import type { FramingSpec } from './framing/index.js';
import type { Logger } from './logger.js';

/**
 * Every server option, each with its default. All are optional: `new ThreadingTCPServer(address,
 * handler)` is a complete server with every limit on. docs/operations.md explains how to tune them.
 */
export interface ServerOptions {
  /** How bytes become requests: 'line' (default), 'length', 'raw', 'delimiter:HEX', { delimiter }, or a FramerFactory. */
  framing?: FramingSpec;
  /** Which export of the handler module holds the handler class. Default 'default'. */
  exportName?: string;
  /** Worker threads in the pool (Threading servers). Default: the machine's available parallelism. */
  workers?: number;
  /** Share one pool between servers (several listeners, one multiplexer): a WorkerPool. Overrides `workers`. */
  pool?: SharedWorkerPool;
  /** Open connections at most; one more is refused at once (ERR_TOO_MANY_CONNECTIONS). Default 10 000. */
  maxConnections?: number;
  /** Milliseconds a connection may go without completing a request while none is in flight (slowloris, idle clients); then it is closed (ERR_IDLE_TIMEOUT). 0 = off. Default 300 000. */
  idleTimeout?: number;
  /** Milliseconds a pooled handler may run, counted from its start: past it the request fails with ERR_REQUEST_TIMEOUT (a synchronous handler's worker is stopped and replaced; an async one is abandoned). 0 = off. Default 30 000. */
  requestTimeout?: number;
  /** Nice value of worker threads on Linux, so the main thread runs first under contention; 0 = off. Default 10. */
  workerNice?: number;
  /** Threads kept booted with the handler loaded, beside `workers`, to take a dead worker's place at once (a new one boots behind). 0 = none. Default 1. */
  spareWorkers?: number;
  /** Heap limit of each worker in MiB: a handler that exhausts it kills only its worker (ERR_WORKER_DIED). Default 1024. */
  workerHeapMb?: number;
  /** Largest request accepted; a longer one gets ERR_FRAME_TOO_LONG and its connection closes. Default 1 MiB. */
  maxFrameBytes?: number;
  /** Requests of one connection dispatched but not yet replied; past it the connection is not read. Default 128. */
  maxInFlightPerConnection?: number;
  /** Unsent reply bytes at which a connection stops being read and dispatched. Default 256 KiB. */
  writeHighWaterMark?: number;
  /** Unread bytes a StreamRequestHandler may have buffered before its socket is paused. Default 64 KiB. */
  readHighWaterMark?: number;
  /**
   * Unsent reply bytes past which a client that does not read is disconnected
   * (ERR_WRITE_BUFFER_OVERFLOW) — once none of them has reached the kernel for
   * `writeStallTimeout`. It judges a backlog that does not drain, never a reply's size: a client
   * that reads gets a reply of any size whole. Default 16 MiB.
   */
  writeBufferHardLimit?: number;
  /**
   * Milliseconds a connection's unsent bytes may stay past `writeBufferHardLimit` with none of them
   * reaching the kernel before the client is disconnected (ERR_WRITE_BUFFER_OVERFLOW); any progress
   * starts the count again. Long enough for TCP's retransmission backoff (1 + 2 + 4 s) and a
   * client's own pauses; short enough that a client that stopped reading releases what it holds
   * within seconds (maxClientMemory bounds the total meanwhile). 0 = disconnect as soon as the
   * limit is passed, whatever the client reads. Default 10 000.
   */
  writeStallTimeout?: number;
  /** Requests waiting for a pool slot, across connections; when full, sockets stop being read. Default 16384. */
  maxQueuedRequests?: number;
  /**
   * Pooled servers: milliseconds of measured handler work each worker may have queued (at least two
   * requests); the rest wait on the main thread, round-robin across connections. Deep enough that
   * a saturated worker wakes the main thread once per several replies, not each (cheap requests
   * have a lane of their own and never wait behind this queue). Default 3.
   */
  workerQueueMs?: number;
  /**
   * Pooled servers: how one connection's pipelined requests run. 'serial' (default, Python's and
   * Netty's semantics): one after another, in order, on one worker — a request sees the side
   * effects of those before it. 'parallel': spread across workers, for stateless handlers; replies
   * still leave in request order.
   */
  pipelining?: 'serial' | 'parallel';
  /**
   * Pooled servers only: while a request's measured cost stays under this many microseconds, run
   * it on the main thread instead of a worker (the trip to a worker costs more). Opt-in: inline
   * requests lose crash isolation (see src/dispatch/inline-lane.ts). 0 = off. Default 0.
   */
  inlineBelowMicros?: number;
  /** When a handler throws: 'close' the connection after the replies before it (Python), or 'reply' with errorReply() and go on. Default 'close'. */
  onHandlerError?: 'close' | 'reply';
  /** Milliseconds shutdown() waits for in-flight requests before cutting connections. Default 10 000. */
  shutdownTimeout?: number;
  /**
   * Pooled servers, after `server.reload()`: milliseconds the old version's sessions
   * (StreamRequestHandler) may go on before they get EOF as in a shutdown; whatever still runs on
   * the old version `shutdownTimeout` ms after that is cut (ERR_RELOAD_TIMEOUT). Requests need no
   * wait: each connection's next request goes to the new version once its earlier ones are answered.
   * 0 = end the old sessions' input at once. Default 30 000.
   */
  reloadTimeout?: number;
  /** close() on a serving server drains gracefully (true, Python's block_on_close) or cuts every connection at once. Default true. */
  blockOnClose?: boolean;
  /** SO_REUSEADDR. Always on for TCP in Node (libuv sets it); passed to UDP sockets. Default true. */
  allowReuseAddress?: boolean;
  /** Largest UDP datagram handled; a longer one is dropped with a log line (ERR_FRAME_TOO_LONG). Default 8192 (Python's max_packet_size). */
  maxPacketSize?: number;
  /** Serve TLS (TCP servers): node:tls options, at least { key, cert }. Default: plain TCP. */
  tls?: TlsOptions;
  /**
   * Stream servers behind a load balancer: every connection must start with a PROXY protocol
   * header (v1 text or v2 binary, src/proxy/), and the client address handlers and
   * verifyRequest see is the one it names. A connection without a valid header is closed
   * (ERR_PROXY_HEADER_INVALID). Only for listeners that nothing but the proxy can reach; not with
   * `tls` (the header precedes the handshake). Default false.
   */
  proxyProtocol?: boolean;
  /** Milliseconds a connection has to complete its PROXY header; then it is closed (ERR_PROXY_HEADER_INVALID). 0 = off. Default 5000. */
  proxyHeaderTimeout?: number;
  /** Listen backlog (Python's request_queue_size). Default 511. */
  requestQueueSize?: number;
  // ---- no-data-loss and memory budgets (issue #10) ----
  /**
   * Buffered request and reply bytes of all connections together (unframed input, requests in
   * flight, unsent output), like Redis 7's maxmemory-clients. Past it the connections holding the
   * most are closed (ERR_CLIENT_MEMORY) until the total is back under it. Default 256 MiB.
   */
  maxClientMemory?: number;
  /** Request bytes one connection may have dispatched and not yet answered; past it the connection is not read. Default 16 MiB. */
  maxInFlightBytesPerConnection?: number;
  /** UDP datagrams being handled at once; more are dropped (ERR_DATAGRAMS_IN_FLIGHT, logged once per second). Default 4096. */
  maxDatagramsInFlight?: number;
  /**
   * Lingering close (nginx's lingering_time): after its last reply the server half-closes and
   * reads and discards input for at most this many milliseconds before closing, so unread input
   * cannot turn the close into a reset that destroys the reply. 0 = close at once. Default 30 000.
   */
  lingeringTime?: number;
  /** Lingering close (nginx's lingering_timeout): ms to wait for more input (or the client's FIN) before closing. Default 5000. */
  lingeringTimeout?: number;
  // ---- end of issue #10 options ----
  // ---- rooms: connections that talk to each other (issue #20) ----
  /**
   * Bytes a connection may have waiting to be sent to it (its unsent replies and pushes) when a
   * room broadcast or sendTo queues a message for it: past it that connection is closed
   * (ERR_PUSH_BUFFER_OVERFLOW, logged) — Redis's client-output-buffer-limit for pub/sub clients.
   * The sender never waits for a slow member. Also the largest message one broadcast may carry.
   * Default 32 MiB.
   */
  maxPushBytes?: number;
  /** The soft limit beside `maxPushBytes`: a connection whose unsent output stays past this for `pushSoftSeconds` when pushed to is closed the same way. Default 8 MiB. */
  pushSoftLimit?: number;
  /** Seconds a connection may stay past `pushSoftLimit` (0: none). Default 60. */
  pushSoftSeconds?: number;
  /**
   * Rooms across processes and machines: every server given the same Redis (`'redis://host:port'`,
   * or `{ url, prefix }`) shares its rooms, broadcasts and client ids through Redis pub/sub, as
   * Socket.IO's Redis adapter does. The server does not start if Redis cannot be reached
   * (ERR_PUBSUB_UNAVAILABLE). Default: none — rooms are this server's own.
   */
  pubsub?: string | PubSubOptions;
  /** Structured-clonable data handlers see as `this.server.data`. Default null. */
  handlerData?: unknown;
  /** pino-compatible logger. Default: warnings and errors to stderr. */
  logger?: Logger;
  /** Serve Prometheus metrics for this server on http://host:port/metrics while it runs (loads prom-client; see `sockserv/metrics`). Host defaults to 127.0.0.1. Default: off. */
  metrics?: MetricsOptions;
}

/**
 * The `pool` option: a WorkerPool (`new WorkerPool({ workers })`). Declared by the little options
 * need to know, so that options.ts imports nothing from dispatch; a Threading server checks that
 * it is a real WorkerPool.
 */
export interface SharedWorkerPool {
  /** Worker threads in the pool. */
  readonly workers: number;
  /** Stops every worker; call it after the servers sharing the pool have closed. */
  close(): Promise<void>;
}

/** The `pubsub` option in full: the Redis server, and the prefix of the channels (servers sharing rooms use the same one). */
export interface PubSubOptions {
  /** `redis://[[user]:password@]host[:port][/db]` or `rediss://…` (TLS). */
  url: string;
  /** Prefix of the pub/sub channels: servers share rooms only with servers using the same one. Default 'sockserv'. */
  prefix?: string;
}

/** Where the metrics endpoint listens (the `metrics` option, and `serveMetrics` of `sockserv/metrics`). */
export interface MetricsOptions {
  /** TCP port of the HTTP endpoint; 0 picks a free one (read it from `endpoint.port`). */
  port: number;
  /** Interface to listen on. Default '127.0.0.1': metrics are not for the internet. */
  host?: string;
}

/** ServerOptions with every default filled in: a server's `options`. */
export type ResolvedOptions = Required<Omit<ServerOptions, 'pool' | 'logger' | 'tls' | 'metrics' | 'pubsub'>> & {
  pool: SharedWorkerPool | undefined;
  logger: Logger | undefined;
  tls: TlsOptions | undefined;
  metrics: MetricsOptions | undefined;
  /** The `pubsub` option as { url, prefix }, or undefined. */
  pubsub: Required<PubSubOptions> | undefined;
};

/** The default of every ServerOptions field that has one (frozen). `workers` is the machine's available parallelism. */
export const DEFAULTS = Object.freeze({
  framing: 'line',
  exportName: 'default',
  workers: availableParallelism(),
  maxConnections: 10_000,
  idleTimeout: 300_000,
  requestTimeout: 30_000,
  workerHeapMb: 1024,
  workerNice: 10,
  spareWorkers: 1,
  maxFrameBytes: 1024 * 1024,
  maxInFlightPerConnection: 128,
  writeHighWaterMark: 256 * 1024,
  readHighWaterMark: 64 * 1024,
  writeBufferHardLimit: 16 * 1024 * 1024,
  writeStallTimeout: 10_000,
  maxQueuedRequests: 16384,
  workerQueueMs: 3,
  pipelining: 'serial',
  inlineBelowMicros: 0,
  onHandlerError: 'close',
  shutdownTimeout: 10_000,
  reloadTimeout: 30_000,
  requestQueueSize: 511,
  blockOnClose: true,
  allowReuseAddress: true,
  maxPacketSize: 8192,
  handlerData: null,
  proxyProtocol: false,
  proxyHeaderTimeout: 5000,
  // issue #10: no data loss, memory budgets
  maxClientMemory: 256 * 1024 * 1024,
  maxInFlightBytesPerConnection: 16 * 1024 * 1024,
  maxDatagramsInFlight: 4096,
  lingeringTime: 30_000,
  lingeringTimeout: 5000,
  // issue #20: rooms (Redis's client-output-buffer-limit pubsub 32mb 8mb 60)
  maxPushBytes: 32 * 1024 * 1024,
  pushSoftLimit: 8 * 1024 * 1024,
  pushSoftSeconds: 60,
} as const satisfies Omit<ResolvedOptions, 'pool' | 'logger' | 'tls' | 'metrics' | 'pubsub'>);

const POSITIVE_INTEGERS = [
  'workers',
  'maxConnections',
  'workerHeapMb',
  'maxFrameBytes',
  'maxInFlightPerConnection',
  'writeHighWaterMark',
  'readHighWaterMark',
  'writeBufferHardLimit',
  'maxQueuedRequests',
  'requestQueueSize',
  'maxPacketSize',
  'maxClientMemory',
  'maxInFlightBytesPerConnection',
  'maxDatagramsInFlight',
  'maxPushBytes',
  'pushSoftLimit',
] as const;

export function resolveOptions(options: ServerOptions = {}): ResolvedOptions {
  const merged = { ...DEFAULTS, ...stripUndefined(options) } as ResolvedOptions;
  for (const key of POSITIVE_INTEGERS) {
    const value = merged[key];
    if (!Number.isSafeInteger(value) || value < 1) {
      throw badOption(`${key} must be a positive integer (got ${String(value)})`);
    }
  }
  for (const key of ['workerQueueMs', 'shutdownTimeout', 'reloadTimeout', 'idleTimeout', 'requestTimeout', 'workerNice', 'inlineBelowMicros', 'lingeringTime', 'lingeringTimeout', 'pushSoftSeconds', 'writeStallTimeout'] as const) {
    if (!(typeof merged[key] === 'number' && merged[key] >= 0)) {
      throw badOption(`${key} must be a non-negative number (got ${String(merged[key])})`);
    }
  }
  if (!Number.isSafeInteger(merged.spareWorkers) || merged.spareWorkers < 0) {
    throw badOption(`spareWorkers must be a non-negative integer (got ${String(merged.spareWorkers)})`);
  }
  if (merged.onHandlerError !== 'close' && merged.onHandlerError !== 'reply') {
    throw badOption(`onHandlerError must be 'close' or 'reply' (got ${String(merged.onHandlerError)})`);
  }
  if (merged.pipelining !== 'serial' && merged.pipelining !== 'parallel') {
    throw badOption(`pipelining must be 'serial' or 'parallel' (got ${String(merged.pipelining)})`);
  }
  if (merged.workerQueueMs <= 0) throw badOption(`workerQueueMs must be positive (got ${merged.workerQueueMs})`);
  if (merged.writeBufferHardLimit < merged.writeHighWaterMark) {
    throw badOption('writeBufferHardLimit must be at least writeHighWaterMark');
  }
  // A longer timer would fire after 1 ms (Node's TimeoutOverflowWarning): the opposite of what was asked.
  if (merged.writeStallTimeout > 2_147_483_647) throw badOption(`writeStallTimeout must be at most 2147483647 ms (got ${merged.writeStallTimeout})`);
  merged.pool = options.pool;
  merged.logger = options.logger;
  merged.tls = options.tls;
  if (!(typeof merged.proxyHeaderTimeout === 'number' && merged.proxyHeaderTimeout >= 0)) {
    throw badOption(`proxyHeaderTimeout must be a non-negative number (got ${String(merged.proxyHeaderTimeout)})`);
  }
  if (merged.proxyProtocol && merged.tls) {
    throw badOption('proxyProtocol cannot be combined with tls: the PROXY header comes before the TLS handshake');
  }
  if (options.metrics !== undefined) {
    const { port } = options.metrics;
    if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) {
      throw badOption(`metrics.port must be an integer from 0 to 65535 (got ${String(port)})`);
    }
  }
  merged.metrics = options.metrics;
  if (merged.pushSoftLimit > merged.maxPushBytes) throw badOption('pushSoftLimit must be at most maxPushBytes');
  merged.pubsub = resolvePubsub(options.pubsub);
  return merged;
}

function resolvePubsub(pubsub: ServerOptions['pubsub']): Required<PubSubOptions> | undefined {
  if (pubsub === undefined) return undefined;
  const { url, prefix = 'sockserv' } = typeof pubsub === 'string' ? { url: pubsub } : pubsub;
  if (typeof url !== 'string' || !/^rediss?:\/\/./.test(url)) {
    throw badOption(`pubsub must be a redis:// or rediss:// URL (got ${JSON.stringify(url)})`);
  }
  if (typeof prefix !== 'string' || prefix.length === 0 || /\s/.test(prefix)) {
    throw badOption(`pubsub.prefix must be a non-empty string without spaces (got ${JSON.stringify(prefix)})`);
  }
  return { url, prefix };
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
