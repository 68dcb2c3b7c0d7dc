// Owns the plumbing a server hands to what serves its connections — Connection, SessionConnection,
// the PROXY header reader, the UDP endpoint — and to its transports: the resolved options, the
// logger, the counters behind stats(), the write set, the dispatcher, the coarse clock, the live
// connections, the hook guard, the memory budget, the rooms (src/rooms/), and the overridable
// steps bound to the server.
// One is made in BaseServer's constructor. Keeping all of this off BaseServer keeps the class a
// user subclasses down to Python's methods, the documented options and stats(): a subclass field
// named `counters` or `writeSet` cannot break the server, and none of it is in the .d.ts.
//
// Transports and the CLI (this package only) reach a server's core with coreOf(server).

import type { Socket } from 'node:net';
import type { ConnectionHost, ServerConnection } from '../connection.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import { ErrorCodes, SockservError } from '../errors.js';
import type { ResolvedFraming } from '../framing/index.js';
import type { ClientAddress } from '../handler.js';
import type { Logger } from '../logger.js';
import type { ResolvedOptions } from '../options.js';
import type { ProxyHeaderHost } from '../proxy/header-reader.js';
import type { RoomRegistry } from '../rooms/registry.js';
import { type RequestDurations, type ServerCounters, newCounters } from '../stats.js';
import { WriteSet } from '../write-set.js';
import type { HookGuard } from './hook-guard.js';
import type { LiveConnections } from './live-connections.js';
import type { MemoryBudget } from './memory-budget.js';

/** The overridable steps a core calls on its server (BaseServer's methods, subclass overrides included). */
export interface ServerSteps {
  handleError(request: Socket | null, clientAddress: ClientAddress, error: SockservError): void;
  shutdownRequest(request: Socket): void;
  errorReply(error: SockservError): string | Uint8Array | null;
}

export class ServerCore implements ConnectionHost, ProxyHeaderHost {
  /** The plain counters behind stats(), bumped on the hot path. */
  readonly counters: ServerCounters = newCounters();
  /** Connections with replies to flush at the end of this tick. */
  readonly writeSet = new WriteSet();
  /** Where request durations go; null (the default) skips the clock reads. */
  requestDurations: RequestDurations | null = null;
  /** Transports call this for every accepted socket: maxConnections, the PROXY header, verifyRequest, processRequest. */
  accept: (socket: Socket, clientAddress: ClientAddress) => void = () => {};
  #dispatcher: Dispatcher | undefined;
  readonly #steps: ServerSteps;
  /** handleRequest() callers waiting for the next finished request. */
  #requestWaiters: Array<() => void> = [];

  constructor(
    readonly options: ResolvedOptions,
    readonly logger: Logger,
    /** The framing option, resolved to a framer factory. */
    readonly framing: ResolvedFraming,
    readonly connections: LiveConnections,
    readonly hooks: HookGuard,
    readonly memory: MemoryBudget,
    /** Which connection is in which room; client ids; the push path. */
    readonly rooms: RoomRegistry,
    steps: ServerSteps,
  ) {
    this.#steps = steps;
  }

  /** Runs the handlers: inline, or on the worker pool (set by listen()). */
  get dispatcher(): Dispatcher {
    if (!this.#dispatcher) throw new SockservError(ErrorCodes.BAD_OPTION, 'the server has not started');
    return this.#dispatcher;
  }

  set dispatcher(dispatcher: Dispatcher) {
    this.#dispatcher = dispatcher;
  }

  /** A coarse clock (ms since start), advanced by the idle sweep: cheap to read per request. */
  get clock(): number {
    return this.connections.clock;
  }

  /** Registers a live connection so shutdown can drain it and stats can count it. */
  track(connection: ServerConnection): void {
    this.connections.add(connection);
  }

  /** A tracked connection has closed: it is forgotten, and its room memberships end. */
  connectionClosed(connection: ServerConnection): void {
    this.connections.delete(connection);
    if (connection.clientId !== undefined) this.rooms.forget(connection.clientId);
  }

  /** Resolves when the next request finishes (handleRequest); `cancel` forgets the wait. */
  nextRequest(): { finished: Promise<void>; cancel: () => void } {
    let wake!: () => void;
    const finished = new Promise<void>((resolve) => {
      wake = resolve;
      this.#requestWaiters.push(wake);
    });
    return { finished, cancel: () => (this.#requestWaiters = this.#requestWaiters.filter((w) => w !== wake)) };
  }

  /** Connections and sessions report each finished request here (wakes handleRequest()). */
  requestFinished(): void {
    if (this.#requestWaiters.length === 0) return;
    const waiters = this.#requestWaiters;
    this.#requestWaiters = [];
    for (const wake of waiters) wake();
  }

  handleError(request: Socket | null, clientAddress: ClientAddress, error: SockservError): void {
    this.#steps.handleError(request, clientAddress, error);
  }

  shutdownRequest(request: Socket): void {
    this.#steps.shutdownRequest(request);
  }

  errorReply(error: SockservError): string | Uint8Array | null {
    return this.#steps.errorReply(error);
  }
}

const cores = new WeakMap<object, ServerCore>();

/** Ties `core` to `server` (BaseServer's constructor). */
export function attachCore(server: object, core: ServerCore): void {
  cores.set(server, core);
}

/** The core of a sockserv server: for its transports, ThreadingMixIn and the CLI. */
export function coreOf(server: object): ServerCore {
  const core = cores.get(server);
  if (core === undefined) throw new TypeError('not a sockserv server');
  return core;
}
