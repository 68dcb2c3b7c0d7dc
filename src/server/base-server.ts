// Owns the server lifecycle shared by every transport, as Python's BaseServer does, and the
// request path's overridable steps:
//
//   accept → [the PROXY header, with proxyProtocol] → verifyRequest → processRequest
//   → finishRequest (a Connection: frame, order, write;
//   or a SessionConnection for StreamRequestHandler) → dispatcher (inline, or the worker pool)
//   → … → shutdownRequest → closeRequest
//
// Transports (TCP, Unix stream, UDP) supply only serverActivate/serverDeactivate; concurrency is
// the one step (createDispatcher) that ThreadingMixIn overrides.
//
// The overridable steps are user code: each runs guarded (./hook-guard.ts), so one that throws
// is logged and closes only the connection it ran for. Connections end with a lingering close
// (./lingering-close.ts) so no reply is lost to a reset, and hold client memory within
// maxClientMemory (./memory-budget.ts).
//
// The plumbing connections and transports need (counters, write set, dispatcher, clock, live
// connections, hook guard, memory budget) lives in a ServerCore (./core.ts) made in the
// constructor and handed to them, not in members of this class: a subclass sees only Python's
// methods, the documented options and stats().
//
// Methods for the caller:
//   listen() serveForever() shutdown() close() handleRequest(timeout) stats() address addresses
//   serving connectionCount recordRequestDurations() onClose(callback) reload(handler)
//   broadcast(room, data) sendTo(clientId, data) rooms() members(room)   (rooms: src/rooms/)
// Methods that may be overridden:
//   verifyRequest(request, clientAddress)   → false refuses the connection (allow-lists go here)
//   processRequest / finishRequest          → how an accepted connection starts being served
//   handleError(request, clientAddress, error)
//   errorReply(error)                       → bytes sent when a request fails, or null
//   handleTimeout()                         → handleRequest() saw no request within `timeout`
//   serviceActions()                        → called every pollInterval while serveForever runs
//   shutdownRequest / closeRequest          → how a connection is ended
//   createDispatcher()                      → inline here; a worker pool in ThreadingMixIn
// Class variables that may be overridden: timeout

import type { Socket } from 'node:net';
import type { ServerAddress } from './address.js';
import { Connection } from '../connection.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import { InlineDispatcher } from '../dispatch/inline.js';
import { ErrorCodes, SockservError } from '../errors.js';
import { resolveFraming } from '../framing/index.js';
import type { AnyHandlerClass, ClientAddress, ServerInfo } from '../handler.js';
import { type HandlerRef, checkHandlerClass, toHandlerRef } from '../handler-module.js';
import { ErrorBurst, LogBurst } from '../log-burst.js';
import { ServerCore, attachCore } from './core.js';
import { HookGuard } from './hook-guard.js';
import { lingeringClose } from './lingering-close.js';
import { LiveConnections } from './live-connections.js';
import { MemoryBudget } from './memory-budget.js';
import { type Logger, stderrLogger } from '../logger.js';
import { type ResolvedOptions, type ServerOptions, resolveOptions } from '../options.js';
import { ProxyHeaderReader } from '../proxy/header-reader.js';
import { RedisPubSub } from '../rooms/redis-pubsub.js';
import { RoomRegistry } from '../rooms/registry.js';
import { SessionConnection } from '../session/session-connection.js';
import { LoopDelayMonitor, RequestDurations, type ServerStats } from '../stats.js';

/** A handler module (path or URL; workers import it) or, for inline servers only, the class itself. */
export type HandlerSource = string | URL | AnyHandlerClass;

type State = 'new' | 'starting' | 'serving' | 'shutting-down' | 'stopped' | 'closed';

/**
 * What every sockserv server shares (Python's BaseServer): the lifecycle — listen(),
 * serveForever(), shutdown(), close() — and the overridable steps of the request path (see the
 * top of this file). Use a concrete class: TCPServer, ThreadingTCPServer, UDPServer,
 * UnixStreamServer and their Threading forms.
 */
export abstract class BaseServer implements AsyncDisposable {
  /** Seconds handleRequest() waits when called without a timeout; null waits for ever (Python's `timeout`). */
  timeout: number | null = null;
  /** The options as given, with every default filled in (see ServerOptions and DEFAULTS). */
  readonly options: ResolvedOptions;
  /** `options.logger`, or by default stderrLogger (warnings and errors to stderr). */
  readonly logger: Logger;
  /** The handler as given (Python's RequestHandlerClass): a module reference, or a class for inline servers. */
  readonly handlerSource: HandlerRef | AnyHandlerClass;
  /** What connections and transports share (./core.ts); never reachable from a subclass by name. */
  readonly #core: ServerCore;
  readonly #loopDelay = new LoopDelayMonitor();
  #dispatcher: Dispatcher | undefined;
  #state: State = 'new';
  #addresses: ServerAddress[] = [];
  #info: { address: ServerInfo['address']; framing: string; data: unknown } | undefined;
  #listening: Promise<ServerAddress> | undefined;
  #shuttingDown: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** Resolves when shutdown() has finished; serveForever() waits on it. */
  #stopped = deferred();
  /** Connections refused for maxConnections: one log line per second at most. */
  #refusals: LogBurst | undefined;
  /** What close() runs once the listener and the workers are released (onClose). */
  #closeCallbacks: Array<() => unknown> = [];
  readonly #hooks: HookGuard;
  /** handleError's default log: the first failure of each second with its stack, then a count. */
  #failedRequests: ErrorBurst | undefined;

  constructor(handler: HandlerSource, options: ServerOptions = {}) {
    this.options = resolveOptions(options);
    this.logger = this.options.logger ?? stderrLogger;
    this.#hooks = new HookGuard(this.logger);
    this.handlerSource = typeof handler === 'function' ? handler : toHandlerRef(handler, this.options.exportName);
    const framing = resolveFraming(this.options.framing);
    const { pubsub } = this.options;
    this.#core = new ServerCore(
      this.options,
      this.logger,
      framing,
      new LiveConnections(this.logger),
      this.#hooks,
      new MemoryBudget(this.options.maxClientMemory, this.logger),
      new RoomRegistry(this.options, this.logger, framing.push, pubsub === undefined ? null : new RedisPubSub(pubsub, this.logger)),
      this,
    );
    this.#core.accept = (socket, clientAddress) => this.#accept(socket, clientAddress);
    attachCore(this, this.#core);
  }

  // ---- transport hooks -------------------------------------------------------------------

  /** Binds and starts listening (Python's server_bind + server_activate); returns the bound addresses. */
  abstract serverActivate(): Promise<ServerAddress[]>;

  /** Stops accepting new connections (existing ones are untouched). */
  abstract serverDeactivate(): Promise<void>;

  // ---- methods for the caller ------------------------------------------------------------

  /** The (first) address the server listens on; the real port when asked for port 0. */
  get address(): ServerAddress {
    const first = this.#addresses[0];
    if (!first) throw new SockservError(ErrorCodes.BAD_OPTION, 'the server is not listening yet: await listen() first');
    return first;
  }

  /** True from the moment listen() has bound until shutdown() or close() starts draining (what /readyz reports). */
  get serving(): boolean {
    return this.#state === 'serving' && this.#addresses.length > 0;
  }

  /** Every address the server listens on (one server may watch several, like the classic select loop). */
  get addresses(): readonly ServerAddress[] {
    return this.#addresses;
  }

  /**
   * Loads the handler (in every worker, for pooled servers), binds and starts accepting; resolves
   * with the first bound address. A handler module that fails to load rejects here, before
   * anything listens; a failed bind leaves nothing open.
   */
  listen(): Promise<ServerAddress> {
    if (this.#state === 'closed') return Promise.reject(new SockservError(ErrorCodes.SERVER_CLOSED, 'the server is closed'));
    this.#listening ??= this.#start();
    return this.#listening;
  }

  /**
   * Listens if needed, then serves until shutdown() has finished. serviceActions() runs every
   * `pollInterval` seconds meanwhile (Python's poll_interval; shutdown never waits for it).
   */
  async serveForever(pollInterval = 0.5): Promise<void> {
    await this.listen();
    const timer = setInterval(() => this.#hooks.run('serviceActions', null, () => this.serviceActions(), null, undefined), pollInterval * 1000);
    timer.unref();
    try {
      await this.#stopped.promise;
    } finally {
      clearInterval(timer);
    }
  }

  /**
   * Waits for one request to be handled (Python's handle_request). Resolves true when one was,
   * false after `timeout` seconds (default: this.timeout) without one — then handleTimeout() ran.
   */
  async handleRequest(timeout: number | null = this.timeout): Promise<boolean> {
    await this.listen();
    const next = this.#core.nextRequest();
    const handled = next.finished.then(() => true);
    if (timeout === null) return handled;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeout * 1000);
    });
    const outcome = await Promise.race([handled, timedOut]);
    clearTimeout(timer);
    if (!outcome) {
      next.cancel();
      this.#hooks.run('handleTimeout', null, () => this.handleTimeout(), null, undefined);
    }
    return outcome;
  }

  /**
   * Stops accepting, lets every request already received finish and its reply flush, then ends
   * each connection. Connections still busy after `shutdownTimeout` ms are cut (logged with
   * ERR_SHUTDOWN_TIMEOUT and the number of requests cut). Resolves as soon as all are closed:
   * no polling interval.
   */
  shutdown(): Promise<void> {
    return this.#shutdownWithin(this.options.shutdownTimeout);
  }

  /**
   * Releases the listener and the workers (Python's server_close). If the server is still
   * serving it shuts down first: gracefully when `blockOnClose` (the default), otherwise cutting
   * every connection at once.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#state === 'starting') await this.#listening?.catch(() => {});
      await this.#shutdownWithin(this.options.blockOnClose ? this.options.shutdownTimeout : 0);
      await this.#dispatcher?.close();
      await this.#core.rooms.close();
      this.#loopDelay.stop();
      await this.#runCloseCallbacks();
      this.#state = 'closed';
    })();
    return this.#closing;
  }

  /**
   * Loads a new version of the handler and switches to it without dropping a connection (nginx's
   * SIGHUP; `sockserv serve` reloads on SIGHUP and, with --watch, on a file change). Pooled
   * servers (ThreadingTCPServer and the other Threading servers) only: an inline server rejects
   * with ERR_UNSUPPORTED (the main thread cannot unload a module), and so does a server on a shared
   * `pool` (its threads serve other servers).
   *
   * The module — `handler`, or the one served now, read again from disk with everything it
   * imports — is loaded and validated in fresh worker threads first. If it does not load, nothing
   * changes: the version serving goes on and this rejects with ERR_HANDLER_LOAD (naming file:line)
   * or ERR_HANDLER_INVALID. Otherwise, from the switch on, every new request and session goes to
   * the new version. Requests already sent to a worker finish on the old version, and a
   * connection's next request waits for them: its replies stay in order, nothing runs twice,
   * nothing is lost. Sessions (StreamRequestHandler) stay on the old version until they end, or
   * until `reloadTimeout` ms (default 30 000), when they get EOF as in a shutdown; whatever still
   * runs on the old version `shutdownTimeout` ms after that is cut (ERR_RELOAD_TIMEOUT). The old
   * threads stop once they carry nothing. Reloads run one at a time, in the order called.
   *
   * @param handler A module path or URL (the `exportName` option names the class); default: the module served now.
   * @returns Once the new version serves: its number, as `stats().handlerVersion` reports it (1 at start).
   */
  async reload(handler?: string | URL): Promise<{ version: number }> {
    if (this.#state === 'starting') await this.#listening?.catch(() => {});
    if (this.#state === 'new') throw new SockservError(ErrorCodes.BAD_OPTION, 'the server is not listening yet: await listen() first');
    if (this.#state !== 'serving') throw new SockservError(ErrorCodes.SERVER_CLOSED, 'the server is shutting down or closed');
    const dispatcher = this.#dispatcher!;
    const { counters } = this.#core;
    try {
      if (dispatcher.reload === undefined) throw new SockservError(ErrorCodes.UNSUPPORTED, 'this server\'s dispatcher cannot reload its handler');
      const result = await dispatcher.reload(handler === undefined ? undefined : toHandlerRef(handler, this.options.exportName));
      counters.reloads++;
      return result;
    } catch (error) {
      counters.reloadsFailed++;
      throw error;
    }
  }

  /** `await using server = new ThreadingTCPServer(...)`: closes the server (Python's `with`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** A snapshot of the server's counters and gauges (what the metrics endpoint reports). Cheap: no I/O. */
  stats(): ServerStats {
    const dispatch = this.#dispatcher?.stats() ?? { queued: 0, running: 0, workers: 0, utilization: 0, pool: null, handlerVersion: 1 };
    const { counters, connections, requestDurations } = this.#core;
    return {
      ...counters,
      connections: connections.size,
      requestsInFlight: connections.inFlight,
      queuedRequests: dispatch.queued,
      workers: dispatch.workers,
      poolUtilization: dispatch.utilization,
      pool: dispatch.pool,
      handlerVersion: dispatch.handlerVersion,
      eventLoopDelay: this.#loopDelay.snapshot(),
      requestDurations: requestDurations?.snapshot() ?? null,
      rooms: this.#core.rooms.stats(),
    };
  }

  /**
   * Starts timing framed requests, from framing to the release of their reply, into
   * `stats().requestDurations`. Off by default (two clock reads per request); the metrics
   * endpoint switches it on. Idempotent.
   */
  recordRequestDurations(): void {
    this.#core.requestDurations ??= new RequestDurations();
  }

  // ---- rooms: connections that talk to each other ----------------------------------------

  /**
   * Sends `data` to every member of `room` (on every process sharing rooms through `pubsub`),
   * framed as handlers' broadcast() frames it. Resolves once it is queued for every member on
   * this server; rejects ERR_PUBSUB_REQUIRED when several processes serve without `pubsub`.
   */
  broadcast(room: string, data: string | Uint8Array): Promise<void> {
    return this.#core.rooms.broadcast('', room, data, false);
  }

  /** Sends `data` to the connection `clientId` (a handler's `this.clientId`); rejects ERR_NO_SUCH_CLIENT when it is gone. */
  sendTo(clientId: string, data: string | Uint8Array): Promise<void> {
    return this.#core.rooms.sendTo('', clientId, data);
  }

  /** The rooms that have members on this server (with `pubsub`, other processes' members are theirs to list). */
  rooms(): string[] {
    return this.#core.rooms.rooms();
  }

  /** The client ids of this server's members of `room` ([] if none). */
  members(room: string): string[] {
    return this.#core.rooms.members(room);
  }

  /** Runs `callback` (awaited) when close() has released the listener and the workers: resources tied to this server's life, like a metrics endpoint. */
  onClose(callback: () => unknown): void {
    this.#closeCallbacks.push(callback);
  }

  // ---- methods that may be overridden ----------------------------------------------------

  /** Makes the dispatcher: inline (the handler runs on the main thread). ThreadingMixIn overrides. */
  createDispatcher(): Dispatcher {
    if (typeof this.handlerSource === 'function') checkHandlerClass(this.handlerSource, 'given to the server');
    return new InlineDispatcher(this.handlerSource, this.options, this.#core.rooms);
  }

  /** Return false to refuse a connection (the place for allow-lists). Default: accept all. */
  verifyRequest(_request: Socket, _clientAddress: ClientAddress): boolean {
    return true;
  }

  /** Starts serving an accepted connection. Default: finishRequest(). */
  processRequest(request: Socket, clientAddress: ClientAddress): void {
    this.finishRequest(request, clientAddress);
  }

  /** Attaches the connection to the request path: framed requests, or a session for StreamRequestHandler. */
  finishRequest(request: Socket, clientAddress: ClientAddress): void {
    const core = this.#core;
    core.counters.connectionsTotal++;
    if (core.dispatcher.handlerKind === 'stream') {
      core.track(new SessionConnection(request, clientAddress, core));
      return;
    }
    const framer = core.framing.create({ maxFrameBytes: this.options.maxFrameBytes });
    core.track(new Connection(request, clientAddress, framer, core));
  }

  /**
   * Called for every failed request. Default: log it with its stack — the first failure of each
   * second in full, then one line with how many followed (a flood of failures is not a flood of
   * synchronous stack traces).
   */
  handleError(_request: Socket | null, clientAddress: ClientAddress, error: SockservError): void {
    this.#failedRequests ??= new ErrorBurst(this.logger, 'request failed');
    this.#failedRequests.hit({ err: error, code: error.code, client: clientAddress.join(':') });
  }

  /**
   * The reply sent for a failed request (onHandlerError 'reply') and before closing on bad input;
   * null sends nothing. Default: the protocol's own error form where it has one (RESP:
   * `-ERR ERR_FRAME_INVALID`), else `ERROR <code>` — the stable code, never the message, so no
   * internals leak to clients.
   */
  errorReply(error: SockservError): string | Uint8Array | null {
    return this.#core.framing.errorReply?.(error) ?? `ERROR ${error.code}`;
  }

  /** handleRequest() timed out. Default: nothing. */
  handleTimeout(): void {}

  /** Called every pollInterval seconds by serveForever(). Default: nothing. */
  serviceActions(): void {}

  /**
   * Ends a connection: our FIN once everything queued is written, then — lingering close — input
   * is read and dropped until the client's FIN (at most lingeringTimeout ms apart, lingeringTime
   * in all), so unread input cannot reset the connection and destroy the replies; then
   * closeRequest(). Called once per connection.
   */
  shutdownRequest(request: Socket): void {
    if (request.destroyed) return;
    lingeringClose(request, this.options, () =>
      this.#hooks.run('closeRequest', null, () => this.closeRequest(request), () => request.destroy(), undefined),
    );
  }

  /** Releases the connection's socket. */
  closeRequest(request: Socket): void {
    request.destroy();
  }

  // ---- the request path ------------------------------------------------------------------

  /** Every accepted socket (transports call core.accept): maxConnections, the PROXY header, then #admit. */
  #accept(socket: Socket, clientAddress: ClientAddress): void {
    if (this.#core.connections.size >= this.options.maxConnections) {
      socket.on('error', () => {}); // a refused client's reset is no error of the server's
      this.#core.counters.connectionsRefused++;
      this.#refusals ??= new LogBurst(this.logger, 'refused connections: maxConnections reached', {
        code: ErrorCodes.TOO_MANY_CONNECTIONS,
        maxConnections: this.options.maxConnections,
      }, 'refused');
      this.#refusals.hit();
      socket.destroy();
      return;
    }
    if (this.options.proxyProtocol && this.#state === 'serving') {
      // The peer is a load balancer: the client's address comes in a PROXY header, before any
      // request byte. Read it, then carry on as below with that address.
      this.#core.track(new ProxyHeaderReader(socket, clientAddress, this.#core, (client) => this.#admit(socket, client)));
      return;
    }
    this.#admit(socket, clientAddress);
  }

  /** verifyRequest, then processRequest, once the client's address is known. */
  #admit(socket: Socket, clientAddress: ClientAddress): void {
    const cut = () => socket.destroy();
    if (this.#state !== 'serving' || !this.#hooks.run('verifyRequest', clientAddress, () => this.verifyRequest(socket, clientAddress), cut, false)) {
      if (socket.destroyed) return;
      this.#core.counters.connectionsRefused++;
      socket.on('error', () => {}); // a refused client's reset is no error of the server's
      this.#hooks.run('shutdownRequest', clientAddress, () => this.shutdownRequest(socket), cut, undefined);
      return;
    }
    this.#hooks.run('processRequest', clientAddress, () => this.processRequest(socket, clientAddress), cut, undefined);
  }

  /** Connections open now (what stats().connections reports), without building a snapshot. */
  get connectionCount(): number {
    return this.#core.connections.size;
  }

  // ---- internals -------------------------------------------------------------------------

  async #start(): Promise<ServerAddress> {
    this.#state = 'starting';
    this.#info = { address: { host: '', port: 0, family: '' }, framing: this.#core.framing.name, data: this.options.handlerData };
    const dispatcher = this.createDispatcher();
    this.#dispatcher = dispatcher;
    this.#core.dispatcher = dispatcher;
    try {
      await this.#core.rooms.start(); // pubsub: Redis must answer before anything listens
      await dispatcher.start(this.#info);
      if (this.options.metrics) {
        const { serveMetrics } = await import('../metrics/index.js'); // prom-client loads only when asked for
        await serveMetrics([this], this.options.metrics);
      }
      this.#state = 'serving'; // before activation: the first connection may arrive before listen's callback
      this.#addresses = await this.serverActivate();
    } catch (error) {
      this.#state = 'stopped';
      this.#stopped.resolve();
      await dispatcher.close().catch(() => {});
      await this.#core.rooms.close().catch(() => {});
      await this.#runCloseCallbacks();
      throw error;
    }
    this.#info.address = this.#addresses[0]!;
    this.#loopDelay.start();
    this.#core.connections.startSweep(this.options.idleTimeout);
    return this.#addresses[0]!;
  }

  async #runCloseCallbacks(): Promise<void> {
    for (const callback of this.#closeCallbacks.splice(0)) {
      try {
        await callback();
      } catch (err) {
        this.#hooks.failed('onClose', null, err, null);
      }
    }
  }

  #shutdownWithin(timeoutMs: number): Promise<void> {
    if (this.#state === 'new' || this.#state === 'stopped' || this.#state === 'closed') {
      if (this.#state === 'new') this.#state = 'stopped';
      this.#stopped.resolve();
      return Promise.resolve();
    }
    this.#shuttingDown ??= this.#drain(timeoutMs);
    return this.#shuttingDown;
  }

  async #drain(timeoutMs: number): Promise<void> {
    if (this.#state === 'starting') await this.#listening?.catch(() => {});
    this.#state = 'shutting-down';
    await this.serverDeactivate();
    await this.#core.connections.drain(timeoutMs);
    this.#state = 'stopped';
    this.#stopped.resolve();
  }

}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

