// Owns the server lifecycle shared by every transport, as Python's BaseServer does: listen,
// serveForever, shutdown (graceful, prompt: no poll interval), close, and the request path's
// overridable steps. Accept → verifyRequest → Connection (frame, order, write) → dispatcher.
// Transports (TCP now; Unix, UDP later) supply only how to listen; concurrency is the one
// dispatch step that ThreadingMixIn overrides.
//
// Methods for the caller:    listen() serveForever() shutdown() close() stats() address
// Methods that may be overridden:
//   verifyRequest(request, clientAddress)   → false refuses the connection
//   handleError(request, clientAddress, error)
//   errorReply(error)                       → bytes sent when a request fails, or null
//   createDispatcher()                      → inline here; a worker pool in ThreadingMixIn

import type { Socket } from 'node:net';
import { Connection, type ConnectionHost, type ServerConnection } from '../connection.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import { InlineDispatcher } from '../dispatch/inline.js';
import { ErrorCodes, SockservError } from '../errors.js';
import { type ResolvedFraming, resolveFraming } from '../framing/index.js';
import type { AnyHandlerClass, ClientAddress, ServerInfo } from '../handler.js';
import { type HandlerRef, toHandlerRef } from '../handler-module.js';
import { type Logger, stderrLogger } from '../logger.js';
import { type ResolvedOptions, type ServerOptions, resolveOptions } from '../options.js';
import { LoopDelayMonitor, type ServerCounters, type ServerStats, newCounters } from '../stats.js';
import { SessionConnection } from '../session/session-connection.js';
import { WriteSet } from '../write-set.js';

export interface ServerAddress {
  host: string;
  port: number;
  family: string;
}

/** A handler module (path or URL; workers import it) or, for inline servers only, the class itself. */
export type HandlerSource = string | URL | AnyHandlerClass;

type State = 'new' | 'starting' | 'serving' | 'shutting-down' | 'stopped' | 'closed';

export abstract class BaseServer implements ConnectionHost {
  readonly options: ResolvedOptions;
  readonly logger: Logger;
  readonly counters: ServerCounters = newCounters();
  readonly writeSet = new WriteSet();
  /** The handler as given: a module reference, or a class for inline servers. */
  readonly handlerSource: HandlerRef | AnyHandlerClass;
  readonly #framing: ResolvedFraming;
  readonly #connections = new Set<ServerConnection>();
  readonly #loopDelay = new LoopDelayMonitor();
  #dispatcher: Dispatcher | undefined;
  #state: State = 'new';
  #address: ServerAddress | undefined;
  #info: { address: ServerAddress; framing: string; data: unknown } | undefined;
  #listening: Promise<ServerAddress> | undefined;
  #shuttingDown: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** Resolves when shutdown() has finished; serveForever() waits on it. */
  #stopped = deferred();
  /** Resolves when the last connection closes during shutdown. */
  #allClosed: ReturnType<typeof deferred> | undefined;

  constructor(handler: HandlerSource, options: ServerOptions = {}) {
    this.options = resolveOptions(options);
    this.logger = this.options.logger ?? stderrLogger;
    this.handlerSource = typeof handler === 'function' ? handler : toHandlerRef(handler, this.options.exportName);
    this.#framing = resolveFraming(this.options.framing);
  }

  // ---- transport hooks -------------------------------------------------------------------

  /** Binds and starts listening (Python's server_bind + server_activate); calls acceptConnection. */
  abstract serverActivate(): Promise<ServerAddress>;

  /** Stops accepting new connections (existing ones are untouched). */
  abstract serverDeactivate(): Promise<void>;

  // ---- methods for the caller ------------------------------------------------------------

  /** The address the server listens on; the real port when asked for port 0. */
  get address(): ServerAddress {
    if (!this.#address) throw new SockservError(ErrorCodes.BAD_OPTION, 'the server is not listening yet: await listen() first');
    return this.#address;
  }

  get dispatcher(): Dispatcher {
    if (!this.#dispatcher) throw new SockservError(ErrorCodes.BAD_OPTION, 'the server has not started');
    return this.#dispatcher;
  }

  /**
   * Loads the handler (in every worker, for pooled servers), binds and starts accepting.
   * A handler module that fails to load rejects here, before anything listens.
   */
  listen(): Promise<ServerAddress> {
    if (this.#state === 'closed') return Promise.reject(new SockservError(ErrorCodes.SERVER_CLOSED, 'the server is closed'));
    this.#listening ??= this.#start();
    return this.#listening;
  }

  /** Listens if needed, then serves until shutdown() has finished. */
  async serveForever(): Promise<void> {
    await this.listen();
    await this.#stopped.promise;
  }

  /**
   * Stops accepting, lets every request already received finish and its reply flush, then ends
   * each connection. Connections still busy after `shutdownTimeout` ms are cut (logged with
   * ERR_SHUTDOWN_TIMEOUT and the number of requests cut). Resolves when all are closed.
   */
  shutdown(): Promise<void> {
    if (this.#state === 'new' || this.#state === 'stopped' || this.#state === 'closed') {
      this.#state = this.#state === 'closed' ? 'closed' : 'stopped';
      this.#stopped.resolve();
      return Promise.resolve();
    }
    this.#shuttingDown ??= this.#drain();
    return this.#shuttingDown;
  }

  /** Shuts down if serving, then releases the listener and the workers (Python's server_close). */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#state === 'starting') await this.#listening?.catch(() => {});
      await this.shutdown();
      await this.#dispatcher?.close();
      this.#loopDelay.stop();
      this.#state = 'closed';
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  stats(): ServerStats {
    const dispatch = this.#dispatcher?.stats() ?? { queued: 0, running: 0, workers: 0, utilization: 0 };
    let inFlight = 0;
    for (const connection of this.#connections) inFlight += connection.inFlight;
    return {
      ...this.counters,
      connections: this.#connections.size,
      requestsInFlight: inFlight,
      queuedRequests: dispatch.queued,
      workers: dispatch.workers,
      poolUtilization: dispatch.utilization,
      eventLoopDelay: this.#loopDelay.snapshot(),
    };
  }

  // ---- methods that may be overridden ----------------------------------------------------

  /** Makes the dispatcher: inline (the handler runs on the main thread). ThreadingMixIn overrides. */
  createDispatcher(): Dispatcher {
    return new InlineDispatcher(this.handlerSource, this.options);
  }

  /** Return false to refuse a connection (the place for allow-lists). Default: accept all. */
  verifyRequest(_request: Socket, _clientAddress: ClientAddress): boolean {
    return true;
  }

  /** Called for every failed request. Default: log it with its stack. */
  handleError(_request: Socket, clientAddress: ClientAddress, error: SockservError): void {
    this.logger.error({ err: error, code: error.code, client: clientAddress.join(':') }, 'request failed');
  }

  /** The reply sent for a failed request (onHandlerError 'reply') and before closing on bad input. */
  errorReply(error: SockservError): string | Uint8Array | null {
    return `ERROR ${error.code}`;
  }

  /** Refuses a connection that verifyRequest rejected (Python's shutdown_request). */
  shutdownRequest(request: Socket): void {
    this.counters.connectionsRefused++;
    request.destroy();
  }

  // ---- the request path ------------------------------------------------------------------

  /** Transports call this for every accepted socket. */
  acceptConnection(socket: Socket, clientAddress: ClientAddress): void {
    if (this.#state !== 'serving' || !this.verifyRequest(socket, clientAddress)) {
      this.shutdownRequest(socket);
      return;
    }
    this.counters.connectionsTotal++;
    if (this.dispatcher.handlerKind === 'stream') {
      this.#connections.add(new SessionConnection(socket, clientAddress, this));
      return;
    }
    const framer = this.#framing.create({ maxFrameBytes: this.options.maxFrameBytes });
    this.#connections.add(new Connection(socket, clientAddress, framer, this));
  }

  connectionClosed(connection: ServerConnection): void {
    this.#connections.delete(connection);
    if (this.#connections.size === 0) this.#allClosed?.resolve();
  }

  // ---- internals -------------------------------------------------------------------------

  async #start(): Promise<ServerAddress> {
    this.#state = 'starting';
    this.#info = { address: { host: '', port: 0, family: '' }, framing: this.#framing.name, data: this.options.handlerData };
    const dispatcher = this.createDispatcher();
    this.#dispatcher = dispatcher;
    try {
      await dispatcher.start(this.#info satisfies ServerInfo);
      this.#address = await this.serverActivate();
    } catch (error) {
      this.#state = 'stopped';
      this.#stopped.resolve();
      await dispatcher.close().catch(() => {});
      throw error;
    }
    this.#info.address = this.#address;
    this.#loopDelay.start();
    if (this.#state === 'starting') this.#state = 'serving';
    return this.#address;
  }

  async #drain(): Promise<void> {
    if (this.#state === 'starting') await this.#listening?.catch(() => {});
    this.#state = 'shutting-down';
    await this.serverDeactivate();
    if (this.#connections.size > 0) {
      this.#allClosed = deferred();
      for (const connection of this.#connections) connection.drain();
      const timedOut = await raceTimeout(this.#allClosed.promise, this.options.shutdownTimeout);
      if (timedOut) this.#cutRemaining();
    }
    this.#state = 'stopped';
    this.#stopped.resolve();
  }

  #cutRemaining(): void {
    let requestsCut = 0;
    for (const connection of this.#connections) requestsCut += connection.inFlight;
    this.logger.warn(
      { code: ErrorCodes.SHUTDOWN_TIMEOUT, connections: this.#connections.size, requestsCut },
      `shutdown timeout (${this.options.shutdownTimeout} ms): cutting the remaining connections`,
    );
    for (const connection of [...this.#connections]) connection.destroy();
    this.#connections.clear();
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Resolves true if `ms` passed before `promise` settled. */
async function raceTimeout(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), ms);
  });
  try {
    return await Promise.race([promise.then(() => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
