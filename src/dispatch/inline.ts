// Owns inline dispatch: the handler runs on the main thread, right where the request was framed
// (Python's synchronous TCPServer). The right choice for trivial handlers: no hop at all. A
// synchronous handler completes before submit() returns; an async one completes later.

import { ErrorCodes, fromErrorInfo, toErrorInfo } from '../errors.js';
import type { HandlerClass, ServerInfo } from '../handler.js';
import { type HandlerRef, loadHandler } from '../handler-module.js';
import { isThenable, type Reply, runHandler } from '../run-handler.js';
import type { Dispatcher, DispatcherStats, RequestSink } from './dispatcher.js';

export class InlineDispatcher implements Dispatcher {
  readonly #source: HandlerRef | HandlerClass;
  #Handler: HandlerClass | undefined;
  #server: ServerInfo | undefined;
  #running = 0;

  constructor(source: HandlerRef | HandlerClass) {
    this.#source = source;
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
      reply = runHandler(this.#Handler!, request, sink.clientAddress, this.#server!);
    } catch (error) {
      sink.complete(seq, null, fromErrorInfo(toErrorInfo(error), ErrorCodes.HANDLER_FAILED));
      return;
    }
    if (!isThenable<Reply>(reply)) {
      sink.complete(seq, reply);
      return;
    }
    this.#running++;
    reply.then(
      (value) => {
        this.#running--;
        sink.complete(seq, value);
      },
      (error: unknown) => {
        this.#running--;
        sink.complete(seq, null, fromErrorInfo(toErrorInfo(error), ErrorCodes.HANDLER_FAILED));
      },
    );
  }

  stats(): DispatcherStats {
    return { queued: 0, running: this.#running, workers: 0, utilization: 0 };
  }

  async close(): Promise<void> {}
}
