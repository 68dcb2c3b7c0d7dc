// Owns StreamRequestHandler: Python's one-handler-per-connection class. handle() runs for the
// life of the connection in one thread (a pool worker, or the main thread for inline servers);
// many sessions share a worker while they await. When handle() returns, finish() runs and the
// connection is closed, as in Python.

import { type ClientAddress, HandlerBase, type HandlerKind, type ServerInfo } from '../handler.js';
import type { SessionChannel } from './channel.js';
import { SessionReader, SessionSocket, SessionWriter } from './stream-io.js';

/**
 * Python's StreamRequestHandler: one instance per connection, whose handle() runs for the life of
 * the connection and talks through `rfile`/`wfile` or `request.recv()`/`sendall()`. The connection
 * closes when handle() returns. Framing options do not apply: the handler reads the raw stream.
 */
export class StreamRequestHandler extends HandlerBase<SessionSocket> {
  static override readonly kind: HandlerKind = 'stream';
  /** Read side: readline(), read(n), `for await (const line of this.rfile)`. */
  readonly rfile: SessionReader;
  /** Write side: `await this.wfile.write(data)`. */
  readonly wfile: SessionWriter;
  /** Python's self.connection: the same socket-like object as `request`. */
  readonly connection: SessionSocket;

  /** @internal sockserv constructs handlers; the channel is the session's end in this thread. */
  constructor(channel: SessionChannel, clientAddress: ClientAddress, server: ServerInfo) {
    const rfile = new SessionReader(channel);
    const wfile = new SessionWriter(channel);
    const socket = new SessionSocket(rfile, wfile);
    super(socket, clientAddress, server);
    this.rfile = rfile;
    this.wfile = wfile;
    this.connection = socket;
  }

  /** Serves the connection; may be async. The connection closes when it returns. */
  override handle(): void | Promise<void> {}
}
