// Owns reading the servers for one scrape: every collector of a scrape runs in the same
// synchronous pass, so server.stats() is called once per server per scrape, not once per metric.
// Also names each server for the `server` label.

import type { BaseServer } from '../server/base-server.js';
import { UDPServer } from '../server/udp-server.js';
import type { ServerStats } from '../stats.js';

export interface ServerSample {
  /** The `server` label: scheme://host:port of the first listener (unix://PATH for Unix sockets). */
  label: string;
  stats: ServerStats;
}

export class StatsSampler {
  readonly servers: readonly BaseServer[];
  #samples: ServerSample[] | undefined;

  constructor(servers: readonly BaseServer[]) {
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
export function serverLabel(server: BaseServer, index: number): string {
  const address = server.addresses[0];
  if (address === undefined) return `server-${index}`;
  if (address.family === 'unix') return `unix://${address.host}`;
  const scheme = server instanceof UDPServer ? 'udp' : server.options.tls ? 'tls' : 'tcp';
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `${scheme}://${host}:${address.port}`;
}
