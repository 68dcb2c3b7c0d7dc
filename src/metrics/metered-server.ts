// Owns what sockserv/metrics needs of a server, as an interface: the endpoint, the registry, the
// sampler and the health checks read servers through it, never through the server classes, so the
// import graph points one way (servers → metrics, for the `metrics` option).

import type { Logger } from '../logger.js';
import type { ServerAddress } from '../server/address.js';
import type { ServerStats } from '../stats.js';

/**
 * What metrics and health checks read of a server: every sockserv server (BaseServer) is one.
 * Declared here rather than importing BaseServer, so that metrics depend on the stats, not on the
 * server classes (which load metrics when asked to).
 */
export interface MeteredServer {
  /** The bound addresses; the first names the server in the `server` label. */
  readonly addresses: readonly ServerAddress[];
  /** Where the endpoint logs its URL. */
  readonly logger: Logger;
  /** True while listening and not draining: what /readyz reports. */
  readonly serving: boolean;
  /** The counters and gauges of one scrape. */
  stats(): ServerStats;
  /** Switches on the timing behind the request-duration histogram. */
  recordRequestDurations(): void;
  /** Runs `callback` when the server has closed (the endpoint closes with its last server). */
  onClose(callback: () => unknown): void;
}
