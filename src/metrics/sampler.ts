// Owns reading the servers for one scrape: every collector of a scrape runs in the same
// synchronous pass, so server.stats() is called once per server per scrape, not once per metric.
// Also names each server for the `server` label, from its address's scheme.

import { addressUrl } from '../server/address.js';
import type { ServerStats } from '../stats.js';
import type { MeteredServer } from './metered-server.js';

export interface ServerSample {
  /** The `server` label: scheme://host:port of the first listener (unix://PATH for Unix sockets). */
  label: string;
  stats: ServerStats;
}

export class StatsSampler {
  readonly servers: readonly MeteredServer[];
  #samples: ServerSample[] | undefined;

  constructor(servers: readonly MeteredServer[]) {
    this.servers = servers;
  }

  /** This scrape's samples; taken on first use and forgotten once the scrape's pass is over. */
  samples(): ServerSample[] {
    if (this.#samples === undefined) {
      this.#samples = this.servers.map((server, index) => ({ label: serverLabel(server, index), stats: server.stats() }));
      setImmediate(() => (this.#samples = undefined)).unref();
    }
    return this.#samples;
  }
}

/** scheme://host:port of the server's first listener; `server-N` before it listens. */
function serverLabel(server: MeteredServer, index: number): string {
  const address = server.addresses[0];
  return address === undefined ? `server-${index}` : addressUrl(address);
}
