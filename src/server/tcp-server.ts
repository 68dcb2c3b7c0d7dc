// Owns the TCP transport: a node:net listener (epoll underneath — the read set of the classic
// select() loop) that hands each accepted socket to the shared request path. TCPServer runs
// handlers inline on the main thread; ThreadingTCPServer runs them on the worker pool.

import { type Server, type Socket, createServer } from 'node:net';
import type { ServerOptions } from '../options.js';
import { BaseServer, type HandlerSource, type ServerAddress } from './base-server.js';
import { ThreadingMixIn } from './threading.js';

/** { host, port } or Python's (host, port) tuple. Host defaults to 127.0.0.1, port to 0 (any free port). */
export type TCPAddress = { host?: string; port?: number } | readonly [host: string, port: number];

export class TCPServer extends BaseServer {
  readonly requestedAddress: { host: string; port: number };
  #listener: Server | undefined;

  constructor(address: TCPAddress, handler: HandlerSource, options: ServerOptions = {}) {
    super(handler, options);
    const { host = '127.0.0.1', port = 0 } = Array.isArray(address)
      ? { host: address[0], port: address[1] }
      : (address as { host?: string; port?: number });
    this.requestedAddress = { host, port };
  }

  serverActivate(): Promise<ServerAddress> {
    // allowHalfOpen: a client that shuts down its sending side still gets every reply.
    const listener = createServer({ allowHalfOpen: true, noDelay: true }, (socket: Socket) => {
      this.acceptConnection(socket, [socket.remoteAddress ?? '', socket.remotePort ?? 0]);
    });
    this.#listener = listener;
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => {
        listener.close();
        reject(error);
      };
      listener.once('error', onError);
      listener.listen(
        { host: this.requestedAddress.host, port: this.requestedAddress.port, backlog: this.options.requestQueueSize },
        () => {
          listener.off('error', onError);
          listener.on('error', (err) => this.logger.error({ err }, 'listener error'));
          const bound = listener.address();
          if (bound === null || typeof bound === 'string') {
            reject(new Error(`unexpected listener address ${String(bound)}`));
            return;
          }
          resolve({ host: bound.address, port: bound.port, family: bound.family });
        },
      );
    });
  }

  serverDeactivate(): Promise<void> {
    // close() stops accepting at once; its callback would wait for every connection, so don't.
    this.#listener?.close();
    return Promise.resolve();
  }
}

/** TCPServer whose handlers run on a worker_threads pool (Python's ThreadingTCPServer). */
export class ThreadingTCPServer extends ThreadingMixIn(TCPServer) {}
