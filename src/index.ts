// The public API of sockserv. Everything a user imports comes from here.

/**
 * sockserv: Python's socketserver for Node.js. Handlers (BaseRequestHandler, StreamRequestHandler,
 * DatagramRequestHandler), servers (TCPServer, ThreadingTCPServer, UDPServer, UnixStreamServer…),
 * ServerOptions with their defaults, framers and error codes.
 * @module sockserv
 */

export { BaseRequestHandler, BytesReader, DatagramRequestHandler, HandlerBase } from './handler.js';
export type { AnyHandlerClass, BroadcastOptions, ClientAddress, HandlerClass, HandlerKind, HandlerResult, ServerInfo } from './handler.js';
export { StreamRequestHandler } from './session/stream-handler.js';
export { SessionReader, SessionSocket, SessionWriter } from './session/stream-io.js';
export { BaseServer } from './server/base-server.js';
export type { HandlerSource } from './server/base-server.js';
export type { AddressScheme, ServerAddress } from './server/address.js';
export { TCPServer, ThreadingTCPServer } from './server/tcp-server.js';
export type { TCPAddress } from './server/tcp-server.js';
export { ThreadingUDPServer, UDPServer } from './server/udp-server.js';
export {
  ThreadingUnixDatagramServer,
  ThreadingUnixStreamServer,
  UnixDatagramServer,
  UnixStreamServer,
} from './server/unix-server.js';
export { ThreadingMixIn } from './server/threading.js';
export type { ServerClass } from './server/threading.js';
export type { HandlerRef } from './handler-module.js';
export type { Reply } from './reply.js';
export type { SessionPort } from './session/protocol.js';
export { WorkerPool } from './dispatch/worker-pool.js';
export type { WorkerPoolOptions } from './dispatch/worker-pool.js';
export type { Dispatcher, DispatcherStats, RequestSink, SessionOwner } from './dispatch/dispatcher.js';
export { DEFAULTS } from './options.js';
export type { MetricsOptions, PubSubOptions, ResolvedOptions, ServerOptions, SharedWorkerPool } from './options.js';
export { ErrorCodes, SockservError } from './errors.js';
export type { ErrorCode } from './errors.js';
export {
  PROXY_V1_MAX_BYTES,
  PROXY_V2_MAX_BYTES,
  PROXY_V2_TLV_MAX_BYTES,
  ProxyHeaderParser,
  parseProxyHeader,
} from './proxy/protocol.js';
export type { ProxyHeader, ProxyParseResult, ProxyTlv, ProxyTransport } from './proxy/protocol.js';
export {
  ByteQueue,
  DelimiterFramer,
  LengthPrefixFramer,
  LineFramer,
  RawFramer,
  resolveFraming,
} from './framing/index.js';
export type { Framer, FramerFactory, FramerLimits, FramingSpec, ResolvedFraming } from './framing/index.js';
export { RespFramer, encodeCommand, parseCommand, respArray, respBulk, respError, respInteger, respNullBulk, respPush, respSimple } from './resp/index.js';
export { silentLogger, stderrLogger } from './logger.js';
export type { LogFn, Logger } from './logger.js';
export { REQUEST_DURATION_BOUNDS_MS } from './stats.js';
export type { PoolCounters, RequestDurationsSnapshot, RoomStats, ServerStats } from './stats.js';
export type { MetricsEndpoint, MeteredServer } from './metrics/index.js';
export { markNotReady, serveHealth } from './metrics/health.js'; // no prom-client: health alone stays light
export type { HealthEndpoint, HealthOptions } from './metrics/health.js';
