// Owns listening with node:net for the stream transports (TCP, TLS and Unix): one listener per
// address, each handing accepted sockets to the server's request path. A failed bind closes
// every listener already opened, so nothing leaks (no descriptor, no half-started server).
// With TLS options the listener is a node:tls server and a connection enters the request path
// once its handshake is done; a TLSSocket is a net.Socket, so everything after accept is shared.

import { type ListenOptions, type Server, type Socket, createServer } from 'node:net';
import { type TlsOptions, createServer as createTlsServer } from 'node:tls';
import type { ClientAddress } from '../handler.js';
import type { Logger } from '../logger.js';
import type { ServerAddress } from './base-server.js';

export type AcceptFn = (socket: Socket, clientAddress: ClientAddress) => void;

export async function listenAll(
  targets: ListenOptions[],
  accept: AcceptFn,
  logger: Logger,
  tlsOptions?: TlsOptions,
): Promise<{ listeners: Server[]; addresses: ServerAddress[] }> {
  const listeners: Server[] = [];
  const addresses: ServerAddress[] = [];
  try {
    for (const target of targets) {
      const listener = createListener(accept, target.path, tlsOptions, logger);
      listeners.push(listener);
      addresses.push(await listenOne(listener, target));
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

function createListener(accept: AcceptFn, path: string | undefined, tlsOptions: TlsOptions | undefined, logger: Logger): Server {
  const onSocket = (socket: Socket) => {
    accept(socket, path !== undefined ? [path, 0] : [socket.remoteAddress ?? '', socket.remotePort ?? 0]);
  };
  // allowHalfOpen: a client that shuts down its sending side still gets every reply.
  if (!tlsOptions) return createServer({ allowHalfOpen: true, noDelay: true }, onSocket);
  const listener = createTlsServer({ ...tlsOptions, allowHalfOpen: true, noDelay: true }, onSocket);
  // A failed handshake is that client's problem: log it once, at debug level.
  listener.on('tlsClientError', (err) => logger.debug({ err }, 'TLS handshake failed'));
  return listener;
}

function listenOne(listener: Server, target: ListenOptions): Promise<ServerAddress> {
  return new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(target, () => {
      listener.off('error', reject);
      const bound = listener.address();
      if (typeof bound === 'string') resolve({ host: bound, port: 0, family: 'unix' });
      else if (bound) resolve({ host: bound.address, port: bound.port, family: bound.family });
      else reject(new Error('listener has no address'));
    });
  });
}

function closeAll(listeners: Server[]): Promise<void> {
  return Promise.all(
    listeners.map((listener) => new Promise<void>((resolve) => (listener.listening ? listener.close(() => resolve()) : resolve()))),
  ).then(() => {});
}
