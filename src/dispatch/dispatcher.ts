// Owns the dispatch contract: the one step where the inline TCPServer and the pooled
// ThreadingTCPServer differ (Python's process_request). A dispatcher takes framed requests and
// reports each outcome back to the connection that sent it, in any order; the connection orders.
// A dispatcher may reload its handler (reload(): the pool's, src/dispatch/reload.ts); one that
// cannot leaves it out or rejects with ERR_UNSUPPORTED.

import type { SockservError } from '../errors.js';
import type { ClientAddress, HandlerKind, ServerInfo } from '../handler.js';
import type { HandlerRef } from '../handler-module.js';
import type { Reply } from '../reply.js';
import type { SessionPort } from '../session/protocol.js';
import type { PoolCounters } from '../stats.js';

/** A connection, as a dispatcher sees it. */
export interface RequestSink {
  /** The peer that sent the requests. */
  readonly clientAddress: ClientAddress;
  /** The connection's client id (its name in rooms: handlers see it as `this.clientId`); absent for a datagram. */
  readonly clientId?: string;
  /** True once the connection is gone; its outcomes are then dropped. */
  readonly closed: boolean;
  /** Reports the outcome of request `seq`. */
  complete(seq: number, reply: Reply, error?: SockservError): void;
  /** Called when a saturated dispatcher has room again (after waitForCapacity). */
  pump(): void;
}

/** A dispatcher's part of server.stats(). */
export interface DispatcherStats {
  /** Requests queued for a pool slot. */
  queued: number;
  /** Requests handed to workers (or running inline) and not yet finished. */
  running: number;
  /** Worker threads (0 inline). */
  workers: number;
  /** Fraction of worker time busy since start (0..1); 0 inline. */
  utilization: number;
  /** Pooled servers: where the workers' time went and what waking cost (cumulative; null inline). */
  pool: PoolCounters | null;
  /** The version of the handler serving new requests: 1 at start, one more for each reload that switched. */
  handlerVersion: number;
}

/** What a session's connection offers its dispatcher: drain() ends the session's input as a shutdown does (a reload's old version past reloadTimeout). */
export interface SessionOwner {
  drain(): void;
}

/** Runs handlers for a server: InlineDispatcher (TCPServer…) or PoolDispatcher (ThreadingTCPServer…); made by createDispatcher(). */
export interface Dispatcher {
  /** Loads the handler (and starts workers) so a broken module fails before the server listens. */
  start(server: ServerInfo): Promise<void>;
  /** The handler's kind ('request' or 'stream'); known once start() has resolved. */
  readonly handlerKind: HandlerKind;
  /**
   * Starts a StreamRequestHandler session for one connection: returns the main thread's end of
   * its port and `done`, which resolves when the handler has returned and rejects when it could
   * not run to the end (its worker died). `owner`, if given, is the session's connection;
   * `clientId` is the connection's name in rooms.
   */
  startSession(clientAddress: ClientAddress, owner?: SessionOwner, clientId?: string): { port: SessionPort; done: Promise<void> };
  /** False while the dispatcher's queue is full: the caller must stop reading and wait. */
  hasCapacity(): boolean;
  /** Calls sink.pump() once capacity returns. */
  waitForCapacity(sink: RequestSink): void;
  /** Runs a handler for request number `seq` of `sink`; the outcome comes back through sink.complete(). */
  submit(sink: RequestSink, seq: number, request: Buffer): void;
  /** Queue, workers and utilization now. */
  stats(): DispatcherStats;
  /**
   * Loads a new version of the handler (`handler`, or the current module read again) and switches
   * to it without dropping a connection; resolves with its version number once it serves. Absent
   * (or rejecting with ERR_UNSUPPORTED) where the dispatcher cannot reload.
   */
  reload?(handler?: HandlerRef): Promise<{ version: number }>;
  /** Releases workers (unless the pool is shared). */
  close(): Promise<void>;
}
