// Owns the Unix stream transport: a node:net listener on a socket path. A socket file left by a
// process that died is removed before binding — but only after a connect attempt is refused, so
// a live server's socket is never stolen (EADDRINUSE instead). Node removes the file on close.

import { lstatSync, unlinkSync } from 'node:fs';
import { type Server, connect } from 'node:net';
import { ErrorCodes, SockservError } from '../errors.js';
import type { ServerOptions } from '../options.js';
import type { ServerAddress } from './address.js';
import { BaseServer, type HandlerSource } from './base-server.js';
import { coreOf } from './core.js';
import { listenAll, stopAccepting } from './net-listener.js';
import { ThreadingMixIn } from './threading.js';

/** Python's UnixStreamServer: a stream server on a Unix socket path, handlers inline. ThreadingUnixStreamServer runs them on the pool. */
export class UnixStreamServer extends BaseServer {
  /** The socket path. */
  readonly path: string;
  #listeners: Server[] = [];

  constructor(path: string, handler: HandlerSource, options: ServerOptions = {}) {
    super(handler, options);
    this.path = path;
  }

  async serverActivate(): Promise<ServerAddress[]> {
    await removeStaleSocket(this.path);
    const target = { path: this.path, backlog: this.options.requestQueueSize };
    const { listeners, addresses } = await listenAll([target], coreOf(this).accept, this.logger);
    this.#listeners = listeners;
    return addresses;
  }

  async serverDeactivate(): Promise<void> {
    stopAccepting(this.#listeners);
  }
}

/** UnixStreamServer whose handlers run on the worker pool. */
export class ThreadingUnixStreamServer extends ThreadingMixIn(UnixStreamServer) {}

/**
 * Python's UnixDatagramServer. Node has no AF_UNIX datagram sockets (and the packages that add
 * them are native addons that are not maintained), so constructing one throws ERR_UNSUPPORTED.
 */
export class UnixDatagramServer {
  constructor() {
    throw new SockservError(
      ErrorCodes.UNSUPPORTED,
      'UnixDatagramServer is not available: Node.js has no AF_UNIX datagram sockets. Use UDPServer on 127.0.0.1 or UnixStreamServer.',
    );
  }
}

export { UnixDatagramServer as ThreadingUnixDatagramServer };

async function removeStaleSocket(path: string): Promise<void> {
  let isSocket = false;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) return; // a regular file: let bind fail with EADDRINUSE rather than delete it
  const alive = await new Promise<boolean>((resolve) => {
    const probe = connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (!alive) unlinkSync(path);
}
