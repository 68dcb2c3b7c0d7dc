// The metrics entry point, `sockserv/metrics`: a Prometheus endpoint for sockserv servers, built
// on prom-client. Kept apart from the main entry so that servers without metrics never load
// prom-client. The `metrics` server option uses it too (the server starts and stops it).
//
//   endpoint.ts   serveMetrics(): the HTTP endpoint on /metrics (and /livez, /readyz)
//   health.ts     serveHealth(): /livez and /readyz alone (also exported by the main entry)
//   registry.ts   createMetricsRegistry(): the registry, for your own HTTP server
//   collectors.ts the metric families, read from server.stats() at scrape time
//   duration-histogram.ts  sockserv_request_duration_seconds from the servers' buckets
//   sampler.ts    one stats() call per server per scrape; the `server` label

/**
 * sockserv/metrics: a Prometheus endpoint for sockserv servers (prom-client), loaded only by servers that ask for it.
 * @module sockserv/metrics
 */

export { serveMetrics } from './endpoint.js';
export type { MetricsEndpoint } from './endpoint.js';
export type { MetricsOptions } from '../options.js';
export type { MeteredServer } from './metered-server.js';
export { createMetricsRegistry } from './registry.js';
export { markNotReady, serveHealth } from './health.js';
export type { HealthEndpoint, HealthOptions } from './health.js';
