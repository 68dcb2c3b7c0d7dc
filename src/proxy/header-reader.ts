// Owns the first moments of a connection on a `proxyProtocol` server: reading its PROXY header
// (./protocol.ts) before anything else touches the socket. Until the header is complete
// the connection is tracked like any other — it counts toward maxConnections and shutdown ends
// it — but nothing is framed. Then the bytes that followed the header are put back in front of
// the socket's stream and the server's request path carries on (verifyRequest, processRequest)
// with the client address the header named.
//
// The socket is read in paused mode ('readable' + read()), so that once the listener is removed
// the stream falls back to its initial state and the next reader gets every byte, unshifted
// ones first, exactly as from a freshly accepted socket.

import type { Socket } from 'node:net';
import type { ServerConnection } from '../connection.js';
import { ErrorCodes, SockservError } from '../errors.js';
import type { ClientAddress } from '../handler.js';
import type { Logger } from '../logger.js';
import type { ResolvedOptions } from '../options.js';
import { ProxyHeaderParser } from './protocol.js';
import type { ServerCounters } from '../stats.js';

/** What the reader needs from its server. */
export interface ProxyHeaderHost {
  readonly options: ResolvedOptions;
  readonly logger: Logger;
  readonly counters: ServerCounters;
  readonly clock: number;
  connectionClosed(connection: ServerConnection): void;
}

export class ProxyHeaderReader implements ServerConnection {
  /** No request is read before the header: nothing is ever in flight here. */
  readonly inFlight = 0;
  readonly idleCandidate = true;
  readonly lastActive: number;
  readonly #socket: Socket;
  /** The proxy's own address (the socket peer): kept when the header names no client. */
  readonly #peerAddress: ClientAddress;
  readonly #host: ProxyHeaderHost;
  readonly #onHeader: (clientAddress: ClientAddress) => void;
  readonly #parser = new ProxyHeaderParser();
  #timer: NodeJS.Timeout | undefined;
  /** The header was read or the connection failed: read no more. */
  #finished = false;
  /** The server was told this reader is done (once: on hand-over or on close). */
  #released = false;
  /** Bytes received so far: a connection that ends before sending any is a probe, not an error. */
  #received = 0;

  /** Starts reading; calls `onHeader` with the client's address once the header is complete. */
  constructor(socket: Socket, peerAddress: ClientAddress, host: ProxyHeaderHost, onHeader: (clientAddress: ClientAddress) => void) {
    this.#socket = socket;
    this.#peerAddress = peerAddress;
    this.#host = host;
    this.#onHeader = onHeader;
    this.lastActive = host.clock;
    const timeout = host.options.proxyHeaderTimeout;
    if (timeout > 0) {
      this.#timer = setTimeout(() => this.#fail(new SockservError(ErrorCodes.PROXY_HEADER_INVALID, `no complete PROXY header within ${timeout} ms`)), timeout);
      this.#timer.unref();
    }
    socket.on('readable', this.#onReadable);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
  }

  /** Shutdown: no request has been received, so nothing is owed: close now. */
  drain(): void {
    this.destroy();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  readonly #onReadable = (): void => {
    let chunk: Buffer | null;
    while (!this.#finished && (chunk = this.#socket.read() as Buffer | null) !== null) {
      this.#host.counters.bytesIn += chunk.length;
      this.#received += chunk.length;
      let result;
      try {
        result = this.#parser.push(chunk);
      } catch (error) {
        this.#fail(error as SockservError);
        return;
      }
      if (result === undefined) continue;
      this.#finished = true;
      clearTimeout(this.#timer);
      this.#socket.off('readable', this.#onReadable);
      // Counted again by whoever reads the stream next.
      this.#host.counters.bytesIn -= result.rest.length;
      if (result.rest.length > 0) this.#socket.unshift(result.rest);
      const clientAddress = result.header.source ?? this.#peerAddress;
      // Removing the 'readable' listener returns the stream to its initial mode on the next tick;
      // hand over after that, so the next reader starts as on a fresh socket.
      process.nextTick(() => this.#handOver(clientAddress));
      return;
    }
  };

  #handOver(clientAddress: ClientAddress): void {
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('error', this.#onError);
    this.#socket.off('close', this.#onClose);
    this.#release();
    if (this.#socket.destroyed) return;
    this.#onHeader(clientAddress);
  }

  readonly #onEnd = (): void => {
    if (this.#finished) return;
    if (this.#received === 0) {
      // Connect-and-close: a load balancer's TCP health check or a port probe. Nothing to report.
      this.#finished = true;
      clearTimeout(this.#timer);
      this.#host.logger.debug({ peer: this.#peerAddress.join(':') }, 'connection closed before sending anything');
      this.#socket.destroy();
      return;
    }
    this.#fail(new SockservError(ErrorCodes.PROXY_HEADER_INVALID, 'the connection ended before its PROXY header was complete'));
  };

  #fail(error: SockservError): void {
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#timer);
    this.#host.counters.protocolErrors++;
    this.#host.logger.warn(
      { code: error.code, peer: this.#peerAddress.join(':'), detail: error.message },
      'bad PROXY header: closing the connection',
    );
    this.#socket.destroy();
  }

  readonly #onError = (err: Error): void => {
    this.#host.logger.debug({ err, peer: this.#peerAddress.join(':') }, 'connection error before the PROXY header');
  };

  readonly #onClose = (): void => {
    this.#finished = true;
    clearTimeout(this.#timer);
    this.#release();
  };

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#host.connectionClosed(this);
  }
}
