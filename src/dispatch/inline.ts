// Owns inline dispatch: the handler runs on the main thread, right where the request was framed
// (Python's synchronous TCPServer). The right choice for trivial handlers: no hop at all. A
// synchronous handler completes before submit() returns; an async one completes later. Sessions
// (StreamRequestHandler) run here too, over an in-thread port pair (no MessageChannel, no copies),
// interleaved while they await. Handlers' room calls go straight to the server's rooms (`rooms`,
// the registry on this same thread).
//
// Invariant: one connection's requests run one after another, as on a worker — while its async
// handler awaits, its later requests wait here (`pipelining: 'parallel'` lets them overlap).
// No reload: a new version needs a thread that never imported the module (ESM caches it per
// thread and cannot unload it), and this is the main thread — reload() rejects (ERR_UNSUPPORTED).

import { ErrorCodes, SockservError, fromErrorInfo, requestTimeout as requestTimeoutError, toErrorInfo } from '../errors.js';
import { type AnyHandlerClass, type ClientAddress, type HandlerClass, type HandlerKind, type ServerInfo, handlerKindOf } from '../handler.js';
import { type HandlerRef, loadHandler } from '../handler-module.js';
import type { ResolvedOptions } from '../options.js';
import type { Reply } from '../reply.js';
import type { RoomAccess } from '../rooms/access.js';
import { isThenable, runHandler } from '../run-handler.js';
import { runSession } from '../session/run-session.js';
import type { Dispatcher, DispatcherStats, RequestSink, SessionOwner } from './dispatcher.js';
import { type SessionPort, localPorts } from './session-port.js';

export class InlineDispatcher implements Dispatcher {
  readonly #source: HandlerRef | AnyHandlerClass;
  readonly #options: ResolvedOptions;
  readonly #rooms: RoomAccess;
  #Handler: AnyHandlerClass | undefined;
  #server: ServerInfo | undefined;
  #running = 0;
  readonly #ordered: boolean;
  /** Connections with an async run awaiting, and their requests held behind it. */
  readonly #held = new Map<RequestSink, Array<{ seq: number; request: Buffer }>>();

  constructor(source: HandlerRef | AnyHandlerClass, options: ResolvedOptions, rooms: RoomAccess) {
    this.#source = source;
    this.#options = options;
    this.#rooms = rooms;
    this.#ordered = options.pipelining !== 'parallel';
  }

  get handlerKind(): HandlerKind {
    return this.#Handler ? handlerKindOf(this.#Handler) : 'request';
  }

  async start(server: ServerInfo): Promise<void> {
    this.#server = server;
    this.#Handler = typeof this.#source === 'function' ? this.#source : await loadHandler(this.#source);
  }

  hasCapacity(): boolean {
    return true;
  }

  waitForCapacity(sink: RequestSink): void {
    sink.pump();
  }

  submit(sink: RequestSink, seq: number, request: Buffer): void {
    const held = this.#held.get(sink);
    if (held !== undefined) held.push({ seq, request });
    else this.#run(sink, seq, request);
  }

  /** Runs one request; an async one holds its connection's next requests until it settles. */
  #run(sink: RequestSink, seq: number, request: Buffer): void {
    let reply: Reply | Promise<Reply>;
    try {
      reply = runHandler(this.#Handler as HandlerClass, request, sink.clientAddress, this.#server!, this.#rooms, sink.clientId ?? '');
    } catch (error) {
      sink.complete(seq, null, fromErrorInfo(toErrorInfo(error), ErrorCodes.HANDLER_FAILED));
      return;
    }
    if (!isThenable<Reply>(reply)) {
      sink.complete(seq, reply);
      return;
    }
    this.#running++;
    if (this.#ordered) this.#held.set(sink, []);
    // An async handler that never settles must not hold its connection for ever: past
    // requestTimeout it fails (a synchronous one cannot be stopped on this thread).
    let settled = false;
    const { requestTimeout } = this.#options;
    const timer =
      requestTimeout > 0
        ? setTimeout(() => {
            settled = true;
            this.#running--;
            sink.complete(seq, null, requestTimeoutError(requestTimeout, 'abandoned'));
            this.#release(sink);
          }, requestTimeout)
        : undefined;
    timer?.unref();
    reply.then(
      (value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#running--;
        sink.complete(seq, value);
        this.#release(sink);
      },
      (error: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#running--;
        sink.complete(seq, null, fromErrorInfo(toErrorInfo(error), ErrorCodes.HANDLER_FAILED));
        this.#release(sink);
      },
    );
  }

  /** `sink`'s async run settled: its held requests run, in order, until one awaits again. */
  #release(sink: RequestSink): void {
    const held = this.#held.get(sink);
    if (held === undefined) return;
    this.#held.delete(sink);
    for (let i = 0; i < held.length; i++) {
      if (sink.closed) return;
      this.#run(sink, held[i]!.seq, held[i]!.request);
      const again = this.#held.get(sink);
      if (again !== undefined) {
        again.push(...held.slice(i + 1));
        return;
      }
    }
  }

  startSession(clientAddress: ClientAddress, _owner?: SessionOwner, clientId = ''): { port: SessionPort; done: Promise<void> } {
    const [port, handlerSide] = localPorts();
    this.#running++;
    const done = runSession(this.#Handler!, handlerSide, clientAddress, this.#server!, {
      readHighWaterMark: this.#options.readHighWaterMark,
      maxFrameBytes: this.#options.maxFrameBytes,
    }, this.#rooms, clientId).then(
      () => {
        this.#running--;
      },
      (error: unknown) => {
        this.#running--;
        throw error;
      },
    );
    return { port, done };
  }

  stats(): DispatcherStats {
    return { queued: 0, running: this.#running, workers: 0, utilization: 0, pool: null, handlerVersion: 1 };
  }

  /**
   * Always rejects: importing the module again on the main thread would re-run only the module
   * itself (the modules it imports stay cached, old) and keep every version in memory for ever.
   */
  reload(): Promise<{ version: number }> {
    return Promise.reject(
      new SockservError(
        ErrorCodes.UNSUPPORTED,
        'an inline server cannot reload its handler: the handler runs on the main thread, which cannot unload a module it imported — use a Threading server (or `sockserv serve` without --inline), whose reload starts fresh worker threads',
      ),
    );
  }

  async close(): Promise<void> {}
}
