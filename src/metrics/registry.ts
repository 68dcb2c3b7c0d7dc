// Owns building the registry a scrape reads: the sockserv metric families for a set of servers,
// plus prom-client's default process and Node.js metrics. The defaults are collected once per
// process (prom-client starts an event-loop monitor and a GC observer for them, which it never
// stops) and merged into each registry.

import { Registry, collectDefaultMetrics } from 'prom-client';
import { registerServerMetrics } from './collectors.js';
import type { MeteredServer } from './metered-server.js';
import { StatsSampler } from './sampler.js';

let processMetrics: Registry | undefined;

/**
 * A prom-client Registry with the sockserv metrics of `servers` (labelled `server`) and the
 * default process metrics, for serving from your own HTTP server: `await registry.metrics()`.
 * Switches on request-duration recording in each server (see BaseServer.recordRequestDurations).
 */
export function createMetricsRegistry(servers: readonly MeteredServer[]): Registry {
  for (const server of servers) server.recordRequestDurations();
  const own = new Registry();
  registerServerMetrics(own, new StatsSampler(servers));
  if (processMetrics === undefined) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  return Registry.merge([own, processMetrics]);
}
