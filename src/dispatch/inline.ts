// Owns inline dispatch: the handler runs on the main thread, right where the request was framed
// (Python's synchronous TCPServer). The right choice for trivial handlers: no hop at all. A
// synchronous handler completes before submit() returns; an async one completes later. Sessions
// (StreamRequestHandler) run here too, over an in-thread port pair (no MessageChannel, no copies),
// interleaved while they await.

import { ErrorCodes, SockservError, fromErrorInfo, toErrorInfo } from '../errors.js';
import { type AnyHandlerClass, type ClientAddress, type HandlerClass, type HandlerKind, type ServerInfo, handlerKindOf } from '../handler.js';
import { type HandlerRef, loadHandler } from '../handler-module.js';
import type { ResolvedOptions } from '../options.js';
import type { Reply } from '../reply.js';
import { isThenable, runHandler } from '../run-handler.js';
import { runSession } from '../session/run-session.js';
import type { Dispatcher, DispatcherStats, RequestSink } from './dispatcher.js';
import { type SessionPort, localPorts } from './session-port.js';

export class InlineDispatcher implements Dispatcher {
  readonly #source: HandlerRef | AnyHandlerClass;
  readonly #options: ResolvedOptions;
  #Handler: AnyHandlerClass | undefined;
  #server: ServerInfo | undefined;
  #running = 0;

  constructor(source: HandlerRef | AnyHandlerClass, options: ResolvedOptions) {
    this.#source = source;
    this.#options = options;
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
    let reply: Reply | Promise<Reply>;
    try {
      reply = runHandler(this.#Handler as HandlerClass, request, sink.clientAddress, this.#server!);
    } catch (error) {
      sink.complete(seq, null, fromErrorInfo(toErrorInfo(error), ErrorCodes.HANDLER_FAILED));
      return;
    }
    if (!isThenable<Reply>(reply)) {
      sink.complete(seq, reply);
      return;
    }
    this.#running++;
    // An async handler that never settles must not hold its connection for ever: past
    // requestTimeout it fails (a synchronous one cannot be stopped on this thread).
    let settled = false;
    const { requestTimeout } = this.#options;
    const timer =
      requestTimeout > 0
        ? setTimeout(() => {
            settled = true;
            this.#running--;
            sink.complete(seq, null, new SockservError(ErrorCodes.REQUEST_TIMEOUT, `async handler did not settle within requestTimeout (${requestTimeout} ms)`));
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
      },
      (error: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#running--;
        sink.complete(seq, null, fromErrorInfo(toErrorInfo(error), ErrorCodes.HANDLER_FAILED));
      },
    );
  }

  startSession(clientAddress: ClientAddress): { port: SessionPort; done: Promise<void> } {
    const [port, handlerSide] = localPorts();
    this.#running++;
    const done = runSession(this.#Handler!, handlerSide, clientAddress, this.#server!, {
      readHighWaterMark: this.#options.readHighWaterMark,
      maxFrameBytes: this.#options.maxFrameBytes,
    }).then(
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
    return { queued: 0, running: this.#running, workers: 0, utilization: 0 };
  }

  async close(): Promise<void> {}
}
