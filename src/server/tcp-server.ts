// Owns the TCP transport: node:net listeners (epoll underneath — the read set of the classic
// select() loop) handing each accepted socket to the shared request path. One server may listen
// on several addresses and serve them all from one main thread and one pool. TCPServer runs
// handlers inline on the main thread; ThreadingTCPServer runs them on the worker pool.

import type { Server } from 'node:net';
import type { ServerOptions } from '../options.js';
import type { ServerAddress } from './address.js';
import { BaseServer, type HandlerSource } from './base-server.js';
import { coreOf } from './core.js';
import { listenAll, stopAccepting } from './net-listener.js';
import { ThreadingMixIn } from './threading.js';

const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** { host, port } or Python's (host, port) tuple. Host defaults to 127.0.0.1, port to 0 (any free port). */
export type TCPAddress =
  | {
      /** Interface to listen on. Default '127.0.0.1'. */
      host?: string;
      /** Port; 0 (the default) picks a free one. */
      port?: number;
    }
  | readonly [host: string, port: number];

/** Python's TCPServer: framed requests over TCP (or TLS with the `tls` option), handlers run inline on the main thread. */
export class TCPServer extends BaseServer {
  /** The addresses asked for, normalized. */
  readonly requestedAddresses: ReadonlyArray<{
    /** Interface asked for. */
    host: string;
    /** Port asked for (0: any free one; `addresses` has the bound ones). */
    port: number;
  }>;
  #listeners: Server[] = [];

  /** `address` may be one address or an array of them (one server, several listeners). */
  constructor(address: TCPAddress | readonly TCPAddress[], handler: HandlerSource, options: ServerOptions = {}) {
    super(handler, options);
    this.requestedAddresses = isAddressList(address) ? address.map(normalize) : [normalize(address)];
  }

  async serverActivate(): Promise<ServerAddress[]> {
    const targets = this.requestedAddresses.map(({ host, port }) => ({ host, port, backlog: this.options.requestQueueSize }));
    const { listeners, addresses } = await listenAll(
      targets,
      coreOf(this).accept,
      this.logger,
      this.options.tls && {
        options: this.options.tls,
        // A client that never finishes its handshake holds a descriptor: give it idleTimeout (≤ 10 s).
        handshakeTimeout: Math.min(this.options.idleTimeout || TLS_HANDSHAKE_TIMEOUT_MS, TLS_HANDSHAKE_TIMEOUT_MS),
        admit: (handshakes) => this.connectionCount + handshakes < this.options.maxConnections,
      },
    );
    this.#listeners = listeners;
    return addresses;
  }

  async serverDeactivate(): Promise<void> {
    stopAccepting(this.#listeners);
  }
}

/** TCPServer whose handlers run on a worker_threads pool (Python's ThreadingTCPServer). */
export class ThreadingTCPServer extends ThreadingMixIn(TCPServer) {}

function isAddressList(address: TCPAddress | readonly TCPAddress[]): address is readonly TCPAddress[] {
  return Array.isArray(address) && typeof address[0] !== 'string';
}

function normalize(address: TCPAddress): { host: string; port: number } {
  if (Array.isArray(address)) return { host: address[0], port: address[1] };
  const { host = '127.0.0.1', port = 0 } = address as { host?: string; port?: number };
  return { host, port };
}
