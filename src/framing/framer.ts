// Owns the Framer contract: how a connection's byte stream becomes requests and how replies go
// back on the wire. Framers run on the main thread (the read set), one instance per connection.
// "Incomplete" is the normal state of a framer — next() returns undefined — and bad input is a
// thrown SockservError that ends only the connection it came from.

/** Turns one connection's bytes into requests, and replies into bytes. One instance per connection. */
export interface Framer {
  /** Appends bytes read from the socket. */
  push(chunk: Buffer): void;
  /** The next complete request, or undefined until more bytes arrive. Throws SockservError. */
  next(): Buffer | undefined;
  /** Called once at end of input: a trailing request the protocol allows (an unterminated last line). */
  end(): Buffer | undefined;
  /** Bytes held that are not yet part of a returned request. */
  readonly bufferedBytes: number;
  /** Appends the wire form of one reply to `out` (pushing chunks; never copying the reply). */
  encode(reply: Uint8Array, out: Uint8Array[]): void;
}

/** The limits a FramerFactory is given (from the server options). */
export interface FramerLimits {
  /** A request longer than this is refused with ERR_FRAME_TOO_LONG (`maxFrameBytes`, default 1 MiB). */
  maxFrameBytes: number;
}

/** Makes one Framer per connection; pass one as the `framing` option for a custom protocol. */
export type FramerFactory = (limits: FramerLimits) => Framer;
