// Owns the handler classes users subclass, as in Python's socketserver. One handler instance is
// made per request, in whichever thread runs it (a pool worker, or the main thread for the inline
// TCPServer); the runner calls setup(), handle(), then finish() — finish() even if handle() throws.

/** The peer of a request: [host, port] for TCP and UDP, as Python's (host, port) tuple. */
export type ClientAddress = readonly [host: string, port: number];

/** What a handler may know about its server. A snapshot: the server object lives on the main thread. */
export interface ServerInfo {
  /** The address the server listens on. */
  readonly address: { readonly host: string; readonly port: number; readonly family: string };
  /** The framing name ('line', 'length', 'raw', 'delimiter:0a', or a custom framer's name). */
  readonly framing: string;
  /** The server's `handlerData` option, cloned into each worker: config a handler reads. */
  readonly data: unknown;
}

/** What `handle()` may return: bytes or text are appended to the reply, anything else is ignored. */
export type HandlerResult = string | Uint8Array | void | undefined | null;

/** Where a handler's written reply chunks are kept; internal, read by the runner. */
export const kReplyChunks = Symbol('sockserv.replyChunks');

export class BaseRequestHandler {
  /** The framed request bytes (for line framing: the line without its newline). */
  readonly request: Buffer;
  readonly clientAddress: ClientAddress;
  readonly server: ServerInfo;
  /** Reply chunks written so far; null until the first write (then an empty reply is still a reply). */
  [kReplyChunks]: Array<string | Uint8Array> | null = null;

  constructor(request: Buffer, clientAddress: ClientAddress, server: ServerInfo) {
    this.request = request;
    this.clientAddress = clientAddress;
    this.server = server;
  }

  /** Runs before handle(); may be async. */
  setup(): void | Promise<void> {}

  /** Does the work. Write the reply with write(), or return it. May be async. */
  handle(): HandlerResult | Promise<HandlerResult> {}

  /** Runs after handle(), even when it threw; may be async. */
  finish(): void | Promise<void> {}

  /**
   * Appends to this request's reply. The framer encodes the whole reply once (line framing adds
   * one "\n"), and replies leave the connection in request order.
   */
  write(data: string | Uint8Array): void {
    (this[kReplyChunks] ??= []).push(data);
  }
}

/** The constructor a handler module exports. */
export type HandlerClass = new (
  request: Buffer,
  clientAddress: ClientAddress,
  server: ServerInfo,
) => BaseRequestHandler;
