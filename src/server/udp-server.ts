// Owns the UDP transport (Python's UDPServer): every datagram is one request, its reply (if the
// handler wrote one) goes back to the sender. There is no connection to pause, so when the
// dispatcher is full a datagram is dropped and counted — UDP's own answer to overload.
// Datagrams longer than maxPacketSize are dropped, logged once per second with their count
// (ERR_FRAME_TOO_LONG). So are datagrams arriving while maxDatagramsInFlight are being handled
// (ERR_DATAGRAMS_IN_FLIGHT): a flood cannot queue without bound (each holds its bytes and a sink).
// handleError and errorReply are user code and run guarded: one that throws is logged, and the
// datagram gets no reply.

import { type Socket as DgramSocket, createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { ConnectionHost, ServerConnection } from '../connection.js';
import type { RequestSink } from '../dispatch/dispatcher.js';
import { ErrorCodes, SockservError } from '../errors.js';
import type { ClientAddress } from '../handler.js';
import { LogBurst } from '../log-burst.js';
import type { ServerOptions } from '../options.js';
import { type Reply, replyBytes } from '../reply.js';
import type { ServerAddress } from './address.js';
import { BaseServer, type HandlerSource } from './base-server.js';
import { coreOf } from './core.js';
import type { TCPAddress } from './tcp-server.js';
import { ThreadingMixIn } from './threading.js';

/** Python's UDPServer: each datagram is one request, run inline; a reply goes back to its sender. ThreadingUDPServer runs them on the pool. */
export class UDPServer extends BaseServer {
  /** The address asked for (host defaults to 127.0.0.1, port to 0); `address` has the bound one. */
  readonly requestedAddress: {
    /** Interface asked for. */
    host: string;
    /** Port asked for (0: any free one). */
    port: number;
  };
  #endpoint: DatagramEndpoint | undefined;

  constructor(address: TCPAddress, handler: HandlerSource, options: ServerOptions = {}) {
    super(handler, options);
    const { host = '127.0.0.1', port = 0 } = Array.isArray(address)
      ? { host: address[0], port: address[1] }
      : (address as { host?: string; port?: number });
    this.requestedAddress = { host, port };
  }

  async serverActivate(): Promise<ServerAddress[]> {
    const core = coreOf(this);
    if (core.dispatcher.handlerKind === 'stream') {
      throw new SockservError(ErrorCodes.BAD_OPTION, 'a UDP server serves datagrams: use BaseRequestHandler or DatagramRequestHandler, not StreamRequestHandler');
    }
    const { host, port } = this.requestedAddress;
    const socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', reuseAddr: this.options.allowReuseAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address: host, port }, () => {
        socket.off('error', reject);
        resolve();
      });
    }).catch((error: unknown) => {
      socket.close();
      throw error;
    });
    this.#endpoint = new DatagramEndpoint(socket, core);
    core.track(this.#endpoint);
    const bound = socket.address();
    return [{ host: bound.address, port: bound.port, family: bound.family, scheme: 'udp' }];
  }

  /** Datagrams stop being handled when the endpoint drains (shutdown); nothing to do here. */
  async serverDeactivate(): Promise<void> {}
}

/** UDPServer whose handlers run on the worker pool (Python's ThreadingUDPServer). */
export class ThreadingUDPServer extends ThreadingMixIn(UDPServer) {}

/** The UDP socket as one long-lived "connection" of the server, so shutdown drains it like the others. */
class DatagramEndpoint implements ServerConnection {
  readonly #socket: DgramSocket;
  readonly #server: ConnectionHost;
  #inFlight = 0;
  #draining = false;
  #oversized: LogBurst | undefined;
  #overflowing: LogBurst | undefined;
  /** The UDP socket is never idle-closed. */
  readonly lastActive = 0;
  readonly idleCandidate = false;
  #closed = false;

  constructor(socket: DgramSocket, server: ConnectionHost) {
    this.#socket = socket;
    this.#server = server;
    socket.on('message', (data, rinfo) => this.#receive(data, [rinfo.address, rinfo.port]));
    socket.on('error', (err) => server.logger.warn({ err }, 'udp socket error'));
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  drain(): void {
    this.#draining = true;
    this.#closeIfIdle();
  }

  destroy(): void {
    this.#close();
  }

  #receive(data: Buffer, clientAddress: ClientAddress): void {
    const server = this.#server;
    server.counters.bytesIn += data.length;
    if (this.#draining) return;
    const { dispatcher, options } = server;
    if (data.length > options.maxPacketSize) {
      server.counters.protocolErrors++;
      this.#oversized ??= new LogBurst(server.logger, `datagrams longer than maxPacketSize (${options.maxPacketSize}) dropped`, {
        code: ErrorCodes.FRAME_TOO_LONG,
      }, 'dropped');
      this.#oversized.hit({ client: clientAddress.join(':'), bytes: data.length });
      return;
    }
    if (this.#inFlight >= options.maxDatagramsInFlight) {
      server.counters.requestsFailed++;
      this.#overflowing ??= new LogBurst(server.logger, `datagrams dropped: maxDatagramsInFlight (${options.maxDatagramsInFlight}) are being handled`, {
        code: ErrorCodes.DATAGRAMS_IN_FLIGHT,
      }, 'dropped');
      this.#overflowing.hit({ client: clientAddress.join(':'), bytes: data.length });
      return;
    }
    if (!dispatcher.hasCapacity()) {
      server.counters.requestsFailed++;
      return; // overloaded: drop, as the kernel would with a full receive buffer
    }
    server.counters.requestsReceived++;
    this.#inFlight++;
    dispatcher.submit(new DatagramSink(this, clientAddress), 0, data);
  }

  reply(clientAddress: ClientAddress, reply: Reply, error: SockservError | undefined): void {
    this.#inFlight--;
    const server = this.#server;
    server.requestFinished();
    if (error) {
      server.counters.requestsFailed++;
      const hooks = server.hooks;
      hooks.run('handleError', clientAddress, () => server.handleError(null, clientAddress, error), null, undefined);
      reply = null;
      if (server.options.onHandlerError === 'reply') {
        const errorReply = hooks.run('errorReply', clientAddress, () => server.errorReply(error), null, null);
        reply = errorReply === null ? null : hooks.run('errorReply', clientAddress, () => replyBytes(errorReply), null, null);
      }
    } else {
      server.counters.requestsOk++;
    }
    if (reply !== null && !this.#closed) {
      server.counters.bytesOut += reply.length;
      this.#socket.send(reply, clientAddress[1], clientAddress[0]);
    }
    this.#closeIfIdle();
  }

  get closed(): boolean {
    return this.#closed;
  }

  #closeIfIdle(): void {
    if (this.#draining && this.#inFlight === 0) this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.close();
    this.#server.connectionClosed(this);
  }
}

/** One datagram's way back to its sender. */
class DatagramSink implements RequestSink {
  constructor(
    readonly endpoint: DatagramEndpoint,
    readonly clientAddress: ClientAddress,
  ) {}

  get closed(): boolean {
    return this.endpoint.closed;
  }

  complete(_seq: number, reply: Reply, error?: SockservError): void {
    this.endpoint.reply(this.clientAddress, reply, error);
  }

  pump(): void {}
}
