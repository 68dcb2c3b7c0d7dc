// Owns reading a server's memory per idle connection: with the server warmed up (its throughput
// loads done), read its RSS, open `count` connections in batches and hold them, run one round in
// which every connection sends its own line and must get it back (so each is a live session, not
// a queued accept), read the RSS again, close them. Per connection = (held − idle) / opened.

import { setTimeout as sleep } from 'node:timers/promises';
import type { RunningServer } from './children.js';
import { HeldConnections } from './many-connections.js';
import { type ManyConnections, round } from './results.js';

export async function idleMemory(
  server: RunningServer,
  sockserv: boolean,
  count: number,
  batch: number,
  signal: AbortSignal,
  log: (line: string) => void,
): Promise<ManyConnections> {
  const name = server.spec.name;
  await sleep(500, undefined, { signal });
  const rssIdle = server.rssBytes();
  const clients = new HeldConnections();
  try {
    const opening = performance.now();
    await clients.open(server.ports[0]!, count, batch, signal);
    const openSec = (performance.now() - opening) / 1000;
    const result = await clients.round(0, 30_000);
    log(`${name}: ${clients.size} open (${clients.openErrors} failed) in ${openSec.toFixed(1)} s; ` +
      `${result.answered} answered, ${result.wrong} wrong, ${result.missing} missing`);
    await sleep(500, undefined, { signal });
    const rssHeld = server.rssBytes();
    const many: ManyConnections = {
      server: name,
      sockserv,
      target: count,
      opened: clients.size,
      openErrors: clients.openErrors,
      openSec: round(openSec, 2),
      rounds: [{ ...result, sec: round(result.sec, 3) }],
      rssIdleMiB: round(rssIdle / 2 ** 20, 1),
      rssHeldMiB: round(rssHeld / 2 ** 20, 1),
      bytesPerConnection: Math.round((rssHeld - rssIdle) / Math.max(1, clients.size)),
    };
    log(`${name}: RSS idle ${many.rssIdleMiB} MiB, held ${many.rssHeldMiB} MiB: ${(many.bytesPerConnection / 1024).toFixed(2)} KiB per connection`);
    return many;
  } finally {
    clients.close();
  }
}
