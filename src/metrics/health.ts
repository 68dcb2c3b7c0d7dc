// Owns the health checks orchestrators poll: GET /livez (200 while the event loop answers) and
// GET /readyz (200 once every server it watches listens; 503 before that and from the moment a
// shutdown starts draining, while the requests in flight still finish). Served by the metrics
// endpoint next to /metrics, or on its own (`serveHealth`, the CLI's --health-port) without
// loading prom-client. Listens on loopback unless told otherwise; closes with its servers.
// markNotReady() turns /readyz to 503 ahead of the drain, while the server still accepts: the
// CLI's --drain-delay, for load balancers that must notice before the listener closes.

import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MeteredServer } from './metered-server.js';

/** Where a health endpoint listens. */
export interface HealthOptions {
  /** TCP port of the HTTP endpoint; 0 picks a free one (read it from `endpoint.port`). */
  port: number;
  /** Interface to listen on. Default '127.0.0.1'; a kubelet probing the pod IP needs '0.0.0.0'. */
  host?: string;
}

/** A running health endpoint. */
export interface HealthEndpoint {
  /** http://HOST:PORT — add /livez or /readyz. */
  readonly url: string;
  /** The bound address. */
  readonly host: string;
  /** The bound port (the real one when asked for 0). */
  readonly port: number;
  /** Stops the endpoint now (it also stops by itself when the last of its servers closes). Idempotent. */
  close(): Promise<void>;
}

const notReady = new WeakSet<MeteredServer>();

/**
 * Makes /readyz answer 503 for `server` from now on, while it keeps accepting and serving: the
 * first step of a drain behind a load balancer that polls readiness (HAProxy, nginx plus, a
 * Kubernetes Service). Call shutdown() or close() once the balancer has had time to notice.
 * `sockserv serve --drain-delay MS` does this on SIGTERM.
 */
export function markNotReady(server: MeteredServer): void {
  notReady.add(server);
}

/** What /readyz reports for one server: listening, not draining, not marked not-ready. */
function isReady(server: MeteredServer): boolean {
  return server.serving && !notReady.has(server);
}

/** The health paths, answered by every sockserv HTTP endpoint. */
const HEALTH_PATHS: readonly string[] = ['/livez', '/readyz'];

/**
 * Answers /livez and /readyz for `servers`; returns false (answering nothing) for other paths.
 * Ready means every server listens and none has started to shut down (`server.serving`) or
 * been marked not ready (markNotReady).
 */
export function answerHealth(servers: readonly MeteredServer[], request: IncomingMessage, response: ServerResponse): boolean {
  const path = (request.url ?? '/').split('?')[0]!;
  if (!HEALTH_PATHS.includes(path)) return false;
  const head = request.method === 'HEAD';
  if (request.method !== 'GET' && !head) {
    response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
    return true;
  }
  // No-store: a cached "ready" would outlive the drain it should report.
  const headers = { 'content-type': 'text/plain', 'cache-control': 'no-store' };
  if (path === '/livez') {
    response.writeHead(200, headers).end(head ? undefined : 'ok\n');
    return true;
  }
  const ready = servers.length > 0 && servers.every(isReady);
  response.writeHead(ready ? 200 : 503, headers).end(head ? undefined : ready ? 'ready\n' : 'not ready\n');
  return true;
}

/**
 * Serves /livez and /readyz for `servers` on http://HOST:PORT, without metrics (and without
 * loading prom-client). Start it before `listen()` to have /readyz say 503 until the servers
 * listen. Logs `health on URL` at info level through the first server's logger. Resolves once
 * listening; rejects if the port cannot be bound. Closes when the last of its servers closes.
 */
export async function serveHealth(servers: readonly MeteredServer[], { host = '127.0.0.1', port }: HealthOptions): Promise<HealthEndpoint> {
  const http = createServer((request, response) => {
    if (!answerHealth(servers, request, response)) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /livez or /readyz\n');
    }
  });
  const bound = await listenHttp(http, host, port);
  const urlHost = bound.address.includes(':') ? `[${bound.address}]` : bound.address;
  let closing: Promise<void> | undefined;
  const endpoint: HealthEndpoint = {
    url: `http://${urlHost}:${bound.port}`,
    host: bound.address,
    port: bound.port,
    close: () => (closing ??= closeHttp(http)),
  };
  let open = servers.length;
  for (const server of servers) server.onClose(() => (--open === 0 ? endpoint.close() : undefined));
  servers[0]?.logger.info({ url: endpoint.url }, `health on ${endpoint.url} (/livez, /readyz)`);
  return endpoint;
}

/** Listens; resolves with the bound address, rejects if the port cannot be bound. */
export function listenHttp(http: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    http.once('error', reject);
    http.listen({ host, port }, () => {
      http.off('error', reject);
      resolve(http.address() as AddressInfo);
    });
  });
}

/** Closes, dropping keep-alive connections (a prober's would otherwise hold close() open). */
export function closeHttp(http: Server): Promise<void> {
  return new Promise((resolve) => {
    http.close(() => resolve());
    http.closeAllConnections();
  });
}
