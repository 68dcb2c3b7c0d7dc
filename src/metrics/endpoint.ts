// Owns the HTTP side of metrics: a node:http server answering GET /metrics with the Prometheus
// text format, and the health checks /livez and /readyz (health.ts); nothing else (404; 405 for
// other methods). It listens on loopback unless told otherwise, and closes with the servers it
// reports on: when the last of them has closed.

import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { Registry } from 'prom-client';
import type { MetricsOptions } from '../options.js';
import { answerHealth, closeHttp, listenHttp } from './health.js';
import type { MeteredServer } from './metered-server.js';
import { createMetricsRegistry } from './registry.js';

/** A running metrics endpoint. */
export interface MetricsEndpoint {
  /** The scrape URL, http://HOST:PORT/metrics. */
  readonly url: string;
  /** The bound address. */
  readonly host: string;
  /** The bound port (the real one when asked for 0). */
  readonly port: number;
  /** The registry it serves; register your own metrics on it if you like. */
  readonly registry: Registry;
  /** Stops the endpoint now (it also stops by itself when the last of its servers closes). Idempotent. */
  close(): Promise<void>;
}

/**
 * Serves the sockserv metrics of `servers` (and prom-client's default process metrics) on
 * http://HOST:PORT/metrics, and their health on /livez and /readyz (see serveHealth). Logs `metrics on URL` at info level through the first server's
 * logger. Resolves once listening; rejects if the port cannot be bound.
 */
export async function serveMetrics(servers: readonly MeteredServer[], { host = '127.0.0.1', port }: MetricsOptions): Promise<MetricsEndpoint> {
  const registry = createMetricsRegistry(servers);
  const http = createServer((request, response) => {
    if (!answerHealth(servers, request, response)) void answer(registry, request, response);
  });
  const bound = await listenHttp(http, host, port);
  const urlHost = bound.address.includes(':') ? `[${bound.address}]` : bound.address;
  let closing: Promise<void> | undefined;
  const endpoint: MetricsEndpoint = {
    url: `http://${urlHost}:${bound.port}/metrics`,
    host: bound.address,
    port: bound.port,
    registry,
    close: () => (closing ??= closeHttp(http)),
  };
  let open = servers.length;
  for (const server of servers) server.onClose(() => (--open === 0 ? endpoint.close() : undefined));
  servers[0]?.logger.info({ url: endpoint.url }, `metrics on ${endpoint.url}`);
  return endpoint;
}

async function answer(registry: Registry, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = (request.url ?? '/').split('?')[0];
  if (path !== '/metrics') {
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /livez or /readyz\n');
    return;
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
    return;
  }
  try {
    const body = await registry.metrics();
    response.writeHead(200, { 'content-type': registry.contentType }).end(request.method === 'HEAD' ? undefined : body);
  } catch (error) {
    response.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(error as Error).message}\n`);
  }
}
