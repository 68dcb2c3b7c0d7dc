// Owns the handler classes users subclass, as in Python's socketserver:
//
//   HandlerBase ─┬─ BaseRequestHandler ── DatagramRequestHandler     one instance per request
//                └─ StreamRequestHandler (src/session/)              one instance per connection
//
// A handler runs in whichever thread its server chose (a pool worker, or the main thread for the
// inline servers); the runner calls setup(), handle(), then finish() — finish() even if handle()
// throws. The static `kind` tells the server which request path the class needs.
//
// Every handler can talk to other connections (rooms, src/rooms/): `clientId`, join(), leave(),
// broadcast(), sendTo(). The runner binds the handler's rooms just before constructing it
// (bindRooms), and the constructor takes them: a handler holds its client id and one RoomAccess
// shared by every handler of its thread — nothing per request beyond two fields.

import { NO_ROOMS, type RoomAccess } from './rooms/access.js';

/** The peer of a request: [host, port] for TCP and UDP, as Python's (host, port) tuple; [path, 0] for Unix sockets. */
export type ClientAddress = readonly [host: string, port: number];

/** What a handler may know about its server. A snapshot: the server object lives on the main thread. */
export interface ServerInfo {
  /** The address the server listens on (for Unix sockets, host is the socket path and port 0). */
  readonly address: {
    /** IP address, or the socket path. */
    readonly host: string;
    /** Port (0 for Unix sockets). */
    readonly port: number;
    /** 'IPv4', 'IPv6' or 'unix'. */
    readonly family: string;
  };
  /** The framing name ('line', 'length', 'raw', 'delimiter:0a', 'resp', or a custom framer's name). */
  readonly framing: string;
  /** The server's `handlerData` option, cloned into each worker: config a handler reads. */
  readonly data: unknown;
}

/** Options of `broadcast()`. */
export interface BroadcastOptions {
  /** Leave out the sending connection itself (default false: a member hears its own broadcasts). */
  exceptSelf?: boolean;
}

/** What the next handler constructed takes as its rooms (set by the runners through bindRooms, taken by the constructor). */
const binding: { rooms: RoomAccess; clientId: string } = { rooms: NO_ROOMS, clientId: '' };

/**
 * The runners (run-handler.ts, run-session.ts) call this right before constructing a handler:
 * that instance's rooms are `rooms`, its client id `clientId`. A handler constructed without it
 * (by hand, in a unit test) has no rooms: its calls reject ERR_UNSUPPORTED.
 */
export function bindRooms(rooms: RoomAccess, clientId: string): void {
  binding.rooms = rooms;
  binding.clientId = clientId;
}

/** 'request': one handler per framed request. 'stream': one handler per connection (a session). */
export type HandlerKind = 'request' | 'stream';

/** What `handle()` may return: bytes or text are appended to the reply, anything else is ignored. */
export type HandlerResult = string | Uint8Array | void | undefined | null;

/** The shape every handler shares: request, clientAddress, server, the rooms; setup → handle → finish. */
export abstract class HandlerBase<TRequest> {
  /** Which request path the server gives this class. */
  static readonly kind: HandlerKind = 'request';
  /** The request: the framed bytes (BaseRequestHandler), or the connection (StreamRequestHandler's SessionSocket). */
  readonly request: TRequest;
  /** The peer, as Python's (host, port). */
  readonly clientAddress: ClientAddress;
  /** What the handler may know of its server (a snapshot cloned into each worker). */
  readonly server: ServerInfo;
  readonly #rooms: RoomAccess;
  readonly #clientId: string;

  constructor(request: TRequest, clientAddress: ClientAddress, server: ServerInfo) {
    this.request = request;
    this.clientAddress = clientAddress;
    this.server = server;
    this.#rooms = binding.rooms;
    this.#clientId = binding.clientId;
    binding.rooms = NO_ROOMS;
    binding.clientId = '';
  }

  /**
   * This connection's id: unique on its server (across every process sharing rooms through
   * `pubsub`), the same for every request of the connection, for its whole life. Hand it to others
   * so they can `sendTo()` it. '' for a datagram (UDP has no connection).
   */
  get clientId(): string {
    return this.#clientId;
  }

  /**
   * Makes this connection a member of `room` (a non-empty string of at most 1024 bytes); joining
   * twice is one membership. Membership ends with leave() or when the connection closes. Once it
   * resolves, the server applies the join before anything this handler does next (its reply, its
   * next call): a broadcast that follows reaches this connection.
   */
  join(room: string): Promise<void> {
    return this.#rooms.join(this.#clientId, room);
  }

  /** Ends this connection's membership of `room` (nothing if it was not a member). */
  leave(room: string): Promise<void> {
    return this.#rooms.leave(this.#clientId, room);
  }

  /**
   * Sends `data` to every member of `room` — on every process, with `pubsub` — this connection
   * included unless `exceptSelf`. Each member gets it framed as a reply is (a line, a length
   * prefix; a RESP push `>3 message <room> <data>` with `framing: 'resp'`; raw bytes for a
   * StreamRequestHandler session), after what is already queued for it and never inside one of
   * its replies; one sender's messages reach each member once, in the order sent. Once it
   * resolves, the message is queued for every member on this server before anything this handler
   * does next — its reply, its next call (inline it is queued already; from a worker it travels
   * ahead of them, on the worker's one ordered path). The sender never waits for a slow member:
   * one that does not read is closed past `maxPushBytes`. Await it: a rejection (a bad room,
   * ERR_PUBSUB_REQUIRED) left unawaited is an unhandled rejection.
   */
  broadcast(room: string, data: string | Uint8Array, options: BroadcastOptions = {}): Promise<void> {
    return this.#rooms.broadcast(this.#clientId, room, data, options.exceptSelf === true);
  }

  /**
   * Sends `data` to the connection `clientId` (framed as broadcast() frames it; a RESP push is
   * `>2 message <data>`), on this server or — with `pubsub` — another. Resolves once it is queued
   * for that connection; rejects with ERR_NO_SUCH_CLIENT when that connection is gone (or never
   * was).
   */
  sendTo(clientId: string, data: string | Uint8Array): Promise<void> {
    return this.#rooms.sendTo(this.#clientId, clientId, data);
  }

  /** Runs before handle(); may be async. */
  setup(): void | Promise<void> {}

  /** Does the work; may be async. */
  handle(): unknown {
    return undefined;
  }

  /** Runs after handle(), even when it threw; may be async. */
  finish(): void | Promise<void> {}
}

/**
 * Where a handler's written reply chunks are kept; internal, read by the runner. A registered
 * symbol (Symbol.for), so that a handler class from a second copy of sockserv — a nested install,
 * say — writes where this copy's runner reads.
 */
export const kReplyChunks = Symbol.for('sockserv.replyChunks');

/** One instance per framed request. Reply with write() or by returning bytes or text from handle(). */
export class BaseRequestHandler extends HandlerBase<Buffer> {
  /**
   * Set `static override idempotent = true` when running a request twice is harmless. Then a
   * request whose worker dies while it runs (a crash, not a timeout) is run once more on another
   * worker instead of failing with ERR_WORKER_DIED — at most once more. Default false: each
   * request runs at most once.
   */
  static idempotent = false;

  /** Reply chunks written so far; null until the first write (then an empty reply is still a reply). */
  [kReplyChunks]: Array<string | Uint8Array> | null = null;

  /** `request` is the framed request bytes (for line framing: the line without its newline). */
  override handle(): HandlerResult | Promise<HandlerResult> {}

  /**
   * Appends to this request's reply. The framer encodes the whole reply once (line framing adds
   * one "\n"), and replies leave the connection in request order.
   */
  write(data: string | Uint8Array): void {
    (this[kReplyChunks] ??= []).push(data);
  }
}

/** Python's DatagramRequestHandler: `rfile` reads the request, whatever goes to `wfile` is the reply. */
export class DatagramRequestHandler extends BaseRequestHandler {
  /** Reads the request's bytes (read(), readline(), iteration by line). */
  readonly rfile: BytesReader;
  /** Whatever is written here is the reply (the same as write()). */
  readonly wfile: {
    /** Appends to the reply. */
    write(data: string | Uint8Array): void;
  };

  constructor(request: Buffer, clientAddress: ClientAddress, server: ServerInfo) {
    super(request, clientAddress, server);
    this.rfile = new BytesReader(request);
    this.wfile = { write: (data) => this.write(data) };
  }
}

/** A synchronous reader over one request's bytes (Python's io.BytesIO, read side). */
export class BytesReader {
  #offset = 0;
  /** @param bytes The bytes to read, kept as given. */
  constructor(readonly bytes: Buffer) {}

  /** Up to `size` bytes (all that remain by default); empty at the end. */
  read(size = -1): Buffer {
    const end = size < 0 ? this.bytes.length : Math.min(this.bytes.length, this.#offset + size);
    const out = this.bytes.subarray(this.#offset, end);
    this.#offset = end;
    return out;
  }

  /** The next line including its "\n" (the last line may lack one); empty at the end. */
  readline(): Buffer {
    const newline = this.bytes.indexOf(10, this.#offset);
    return this.read(newline === -1 ? -1 : newline + 1 - this.#offset);
  }

  /** The remaining lines, each with its "\n" (`for (const line of this.rfile)`). */
  *[Symbol.iterator](): Iterator<Buffer> {
    for (let line = this.readline(); line.length > 0; line = this.readline()) yield line;
  }
}

/** The constructor a request handler module exports. */
export type HandlerClass = new (
  request: Buffer,
  clientAddress: ClientAddress,
  server: ServerInfo,
) => BaseRequestHandler;

/** Any handler class, with its kind. */
// `any` request: stream handlers take a SessionSocket, the others a Buffer; one type covers both.
export type AnyHandlerClass = (new (request: any, clientAddress: ClientAddress, server: ServerInfo) => HandlerBase<any>) & {
  /** 'stream' for StreamRequestHandler subclasses; 'request' (or absent) otherwise. */
  kind?: HandlerKind;
};

export function handlerKindOf(Handler: AnyHandlerClass): HandlerKind {
  return Handler.kind === 'stream' ? 'stream' : 'request';
}

/** Whether the class declared its requests safe to run twice (BaseRequestHandler.idempotent). */
export function isIdempotent(Handler: AnyHandlerClass): boolean {
  return (Handler as { idempotent?: unknown }).idempotent === true;
}
