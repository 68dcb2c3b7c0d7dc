// Owns where the load may go. `HOST:PORT` is parsed here, and a target whose host is not loopback
// (127.0.0.0/8, ::1, or a name such as localhost that resolves only to those) is refused unless the
// caller opts in: a stress tool pointed at the wrong address is a denial-of-service tool, so
// sending load off this machine must be a deliberate choice (--allow-remote), never a typo.

import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

export interface Target {
  host: string;
  port: number;
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** True for an IP literal in 127.0.0.0/8 or ::1 (IPv4-mapped forms included). */
export function isLoopbackAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  return LOOPBACK.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** Parses "HOST:PORT", "[IPv6]:PORT" or a bare "PORT" (meaning 127.0.0.1). Throws RangeError. */
export function parseTarget(text: string): Target {
  let host: string;
  let portText: string;
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2]!;
  } else if (/^\d+$/.test(text)) {
    host = '127.0.0.1';
    portText = text;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon <= 0 || text.indexOf(':') !== colon) {
      throw new RangeError(`target must be HOST:PORT or [IPv6]:PORT (got "${text}")`);
    }
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65_535) {
    throw new RangeError(`target port must be 1-65535 (got "${portText}")`);
  }
  return { host, port };
}

/**
 * Resolves `host` (without connecting) and throws RangeError unless every address it stands for
 * is loopback, or `allowRemote` is set. Unresolvable names throw too.
 */
export async function checkTargetHost(host: string, allowRemote: boolean): Promise<void> {
  if (allowRemote) return;
  let addresses: string[];
  if (isIP(host) !== 0) {
    addresses = [host];
  } else {
    try {
      addresses = (await lookup(host, { all: true, verbatim: true })).map((entry) => entry.address);
    } catch (error) {
      throw new RangeError(`cannot resolve host "${host}": ${(error as Error).message}`);
    }
  }
  const remote = addresses.filter((address) => !isLoopbackAddress(address));
  if (addresses.length === 0 || remote.length > 0) {
    throw new RangeError(
      `refusing to send load to ${host}${remote.length && remote[0] !== host ? ` (${remote.join(', ')})` : ''}: ` +
        'not a loopback address; pass --allow-remote if you mean to stress another machine',
    );
  }
}
