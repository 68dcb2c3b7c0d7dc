// Owns listening with node:net for the stream transports (TCP, TLS and Unix): one listener per
// address, each handing accepted sockets to the server's request path. A failed bind closes
// every listener already opened, so nothing leaks (no descriptor, no half-started server).
// With TLS options the listener is a node:tls server and a connection enters the request path
// once its handshake is done; a TLSSocket is a net.Socket, so everything after accept is shared.

import { type ListenOptions, type Server, type Socket, createServer } from 'node:net';
import { type TlsOptions, createServer as createTlsServer } from 'node:tls';
import type { ClientAddress } from '../handler.js';
import type { Logger } from '../logger.js';
import type { ServerAddress } from './address.js';

export type AcceptFn = (socket: Socket, clientAddress: ClientAddress) => void;

export async function listenAll(
  targets: ListenOptions[],
  accept: AcceptFn,
  logger: Logger,
  tls?: TlsListen,
): Promise<{ listeners: Server[]; addresses: ServerAddress[] }> {
  const listeners: Server[] = [];
  const addresses: ServerAddress[] = [];
  try {
    for (const target of targets) {
      const listener = createListener(accept, target.path, tls, logger);
      listeners.push(listener);
      addresses.push(await listenOne(listener, target, tls ? 'tls' : 'tcp'));
      listener.on('error', (err) => logger.error({ err }, 'listener error'));
    }
  } catch (error) {
    await closeAll(listeners);
    throw error;
  }
  return { listeners, addresses };
}

/** Stops accepting at once. (close()'s callback would wait for every connection, so it is not awaited.) */
export function stopAccepting(listeners: Server[]): void {
  for (const listener of listeners) if (listener.listening) listener.close();
}

/**
 * TLS settings of a listener. Sockets still in their handshake are not connections of the server
 * yet, so the listener bounds them itself: `admit` (maxConnections, counting handshakes) decides
 * at TCP accept, and a handshake must finish within `handshakeTimeout` ms.
 */
export interface TlsListen {
  options: TlsOptions;
  handshakeTimeout: number;
  /** False refuses a new TCP connection before its handshake; `pending` is the handshakes under way. */
  admit: (pending: number) => boolean;
}

function createListener(accept: AcceptFn, path: string | undefined, tls: TlsListen | undefined, logger: Logger): Server {
  const onSocket = (socket: Socket) => {
    accept(socket, path !== undefined ? [path, 0] : [socket.remoteAddress ?? '', socket.remotePort ?? 0]);
  };
  // allowHalfOpen: a client that shuts down its sending side still gets every reply.
  if (!tls) return createServer({ allowHalfOpen: true, noDelay: true }, onSocket);
  // Handshakes under way = TCP connections open − TLS connections established.
  const open = new Set<Socket>();
  let established = 0;
  const listener = createTlsServer(
    { ...tls.options, allowHalfOpen: true, noDelay: true, handshakeTimeout: tls.handshakeTimeout },
    (socket: Socket) => {
      established++;
      socket.once('close', () => established--);
      onSocket(socket);
    },
  );
  listener.on('connection', (raw: Socket) => {
    if (!tls.admit(Math.max(0, open.size - established))) {
      raw.destroy();
      return;
    }
    open.add(raw);
    raw.once('close', () => open.delete(raw));
  });
  // A failed handshake is that client's problem: log it once, at debug level.
  // Node reports a handshake timeout here but leaves the socket open: close it.
  listener.on('tlsClientError', (err, socket) => {
    logger.debug({ err }, 'TLS handshake failed');
    socket.destroy();
  });
  return listener;
}

function listenOne(listener: Server, target: ListenOptions, ipScheme: 'tcp' | 'tls'): Promise<ServerAddress> {
  return new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(target, () => {
      listener.off('error', reject);
      const bound = listener.address();
      if (typeof bound === 'string') resolve({ host: bound, port: 0, family: 'unix', scheme: 'unix' });
      else if (bound) resolve({ host: bound.address, port: bound.port, family: bound.family, scheme: ipScheme });
      else reject(new Error('listener has no address'));
    });
  });
}

function closeAll(listeners: Server[]): Promise<void> {
  return Promise.all(
    listeners.map((listener) => new Promise<void>((resolve) => (listener.listening ? listener.close(() => resolve()) : resolve()))),
  ).then(() => {});
}
