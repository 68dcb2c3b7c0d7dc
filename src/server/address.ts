// Owns what a listening address is: host, port, family and the scheme it speaks. A leaf, so that
// readers of addresses (the metrics `server` label, logs) need not know the server classes.

/** How a listener is reached: plain TCP, TLS over TCP, UDP datagrams, or a Unix stream socket. */
export type AddressScheme = 'tcp' | 'tls' | 'udp' | 'unix';

/** An address a server listens on. */
export interface ServerAddress {
  /** IP address, or the socket path for Unix servers. */
  host: string;
  /** The bound port (0 for Unix servers). */
  port: number;
  /** 'IPv4', 'IPv6', or 'unix'. */
  family: string;
  /** The protocol spoken there: 'tcp', 'tls', 'udp' or 'unix'. */
  scheme: AddressScheme;
}

/** scheme://host:port (IPv6 hosts in brackets), or unix://PATH. */
export function addressUrl(address: ServerAddress): string {
  if (address.scheme === 'unix') return `unix://${address.host}`;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `${address.scheme}://${host}:${address.port}`;
}
