// Owns letting the kernel's TIME_WAIT sockets from one churn row expire before the next row runs.
// A churn row opens tens of thousands of loopback connections; each closed one stays in TIME_WAIT
// for 60 s, and while ~28,000 ephemeral ports are taken that way every connect() of the next row
// searches for a free one — measured on the 2-core VM: node:net's churn fell from 12,600 to 9,400
// connections/s when it ran right after another churn row. Rows are compared only on a clean table.

import { readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

/** Below this many TIME_WAIT sockets the next churn row starts (a few hundred connect() port probes at worst). */
const QUIET_TIME_WAIT = 1_000;
/** TIME_WAIT lasts 60 s on Linux (TCP_TIMEWAIT_LEN): never wait longer than that and a little. */
const MAX_WAIT_MS = 65_000;
const POLL_MS = 1_000;

/** TIME_WAIT sockets now (IPv4 and IPv6), from /proc/net/sockstat{,6}; null off Linux. */
function timeWaitSockets(): number | null {
  let total: number | null = null;
  for (const file of ['/proc/net/sockstat', '/proc/net/sockstat6']) {
    try {
      const match = /\btw (\d+)/.exec(readFileSync(file, 'utf8'));
      if (match) total = (total ?? 0) + Number(match[1]);
    } catch {
      // no such file (not Linux, or no IPv6): nothing to count there
    }
  }
  return total;
}

/**
 * Waits until the TIME_WAIT sockets are under QUIET_TIME_WAIT, at most MAX_WAIT_MS; the loop ends
 * on that count, that deadline, or `signal` (the run's SIGINT). Logs a wait that happened.
 */
export async function settleTimeWait(signal: AbortSignal, log: (line: string) => void): Promise<void> {
  const started = Date.now();
  let count = timeWaitSockets();
  if (count === null || count < QUIET_TIME_WAIT) return;
  const from = count;
  while (count !== null && count >= QUIET_TIME_WAIT && Date.now() - started < MAX_WAIT_MS) {
    await delay(POLL_MS, undefined, { signal });
    count = timeWaitSockets();
  }
  log(`churn: waited ${((Date.now() - started) / 1000).toFixed(0)} s for TIME_WAIT sockets to expire (${from} -> ${count ?? '?'})`);
}
